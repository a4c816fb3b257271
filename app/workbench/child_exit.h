// How a `pivot` child process of the window ended (the data-parallel `pivot train --nproc` and
// `pivot experiment`): one rule for both, so a stop and a failure read the same wherever they come
// from.
#pragma once
#include <QProcess>
#include <QString>

namespace pivot {

struct ChildExit {
  bool ok = false;
  bool stopped = false;  // the window asked it to stop (or it exited on SIGTERM / SIGINT)
  QString error;         // its last "pivot: ..." line without the prefix, else the exit status
};

// `stderrTail`: the end of what it wrote to stderr; `stopRequested`: the window sent SIGTERM (a
// kill after the grace period then counts as stopped too, a crash without one does not).
ChildExit childExit(int code, QProcess::ExitStatus status, const QString& stderrTail,
                    bool stopRequested);

}  // namespace pivot
