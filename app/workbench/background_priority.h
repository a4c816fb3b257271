// The window's own thread comes first: whatever computes beside it (the training thread, the map
// worker, `pivot experiment` and `pivot train --nproc` children) runs at a lower CPU priority, so
// that the GUI thread is scheduled the moment it wakes (a replot, a drag, a poll's result) instead
// of queueing behind busy threads on every core. Training loses nothing while the window is idle:
// a lower priority only matters when both want the same core.
#pragma once

class QProcess;

namespace pivot {

constexpr int kBackgroundNice = 10;  // Linux nice value of background work (the window: 0)

// The calling thread (and the OpenMP workers it creates from now on, which inherit it).
void lowerThisThreadsPriority();
// A child process started after this call.
void lowerChildPriority(QProcess& process);

}  // namespace pivot
