// Independent pieces of work side by side: the study's stages (a stage waits for the run it starts
// from, a transplant for its encoder) and its measurements.
//
// Why: on a few CPU cores a small model's step uses two intra-op threads less well than two
// independent stages use one each (the mini stage 1b: 1.7x one thread's samples per second with two
// threads, 2x with two stages side by side), so the study trains two independent stages at a time,
// one thread each. The exception is the chain that everything else starts from (a base's stages 0,
// 1a and 1b): while it is the only one ready it runs alone with every core, as the rest waits for
// it anyway.
#pragma once
#include <atomic>
#include <functional>
#include <vector>

namespace pivot {

struct Task {
  std::vector<int> after;  // indices of the tasks that must finish first (lower than this one's)
  std::function<void(int threads)> run;  // the CPU threads it may use
  // On the path everything else waits for: when no other such task is ready or running, it runs
  // alone with every core, and nothing starts beside it (tasks that could are held back).
  bool critical = false;
};

struct TaskGraphOptions {
  int workers = 1;  // tasks at most at once
  int cores = 1;    // CPU threads shared among them: cores / workers each, and all of them to a
                    // task that starts alone (nothing else running or ready, or a critical task
                    // with no other critical one ready), which then runs alone
  // Set when a task throws, or copied from `stop` while waiting: running tasks poll it (the trainer
  // stops with a checkpoint) and no task starts after it.
  std::atomic<bool>* halt = nullptr;
  const std::atomic<bool>* stop = nullptr;  // a signal or the window's Stop
};

// Runs every task once its predecessors finished. Of the ready tasks, the one that the most tasks
// wait for (directly or through others) starts first, the lowest-numbered among equals: a chain
// that everything else builds on (a base's stages 0 and 1) is not left to run alone at the end
// while a worker idles, and one worker with no such chain runs the tasks in index order. Several
// bases' chains run side by side, one worker each; a lone chain takes every core. The first
// exception a task throws is rethrown after the running tasks returned; tasks not started by then
// never start. Returns false when a stop or halt left tasks unstarted without any task throwing.
bool runTaskGraph(const std::vector<Task>& tasks, const TaskGraphOptions& options);

// How many stages the study trains at once by default on this machine, and the cores it has.
int defaultStudyJobs();
int machineCores();

}  // namespace pivot
