#include "study/task_graph.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

namespace pivot {

int machineCores() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// Two at a time from two cores up: measured on the mini preset (2 cores), two 1-thread stages gave
// 1.56x the samples per second of one 2-thread stage. More than two at once would multiply the
// memory (each holds its model, reference and optimiser) for little more on larger machines, where
// each stage's own threads already scale better.
int defaultStudyJobs() { return machineCores() >= 2 ? 2 : 1; }

bool runTaskGraph(const std::vector<Task>& tasks, const TaskGraphOptions& o) {
  const int n = static_cast<int>(tasks.size());
  const int workers = std::max(1, o.workers);
  std::vector<char> started(static_cast<size_t>(n), 0), done(static_cast<size_t>(n), 0);
  std::mutex mutex;
  std::condition_variable changed;
  int running = 0, finished = 0;
  bool wholeMachine = false;  // a task runs alone with every core: nothing starts beside it
  std::exception_ptr firstError;
  std::vector<std::thread> threads;

  const auto isReady = [&](int i) {
    if (started[static_cast<size_t>(i)]) return false;
    return std::all_of(tasks[static_cast<size_t>(i)].after.begin(),
                       tasks[static_cast<size_t>(i)].after.end(),
                       [&](int a) { return done[static_cast<size_t>(a)] != 0; });
  };
  const auto halted = [&] { return firstError || (o.halt && o.halt->load()); };
  // How many tasks wait for each one, directly or not (its descendants): its priority. Tasks only
  // wait for lower-numbered ones, so one pass from the last task down fills the sets.
  std::vector<std::vector<char>> below(static_cast<size_t>(n), std::vector<char>(n, 0));
  std::vector<int> waiting(static_cast<size_t>(n), 0);
  for (int i = n - 1; i >= 0; --i) {
    auto& mine = below[static_cast<size_t>(i)];
    waiting[static_cast<size_t>(i)] = static_cast<int>(std::count(mine.begin(), mine.end(), 1));
    for (int a : tasks[static_cast<size_t>(i)].after) {
      auto& theirs = below[static_cast<size_t>(a)];
      theirs[static_cast<size_t>(i)] = 1;
      for (int j = 0; j < n; ++j) theirs[static_cast<size_t>(j)] |= mine[static_cast<size_t>(j)];
    }
  }

  std::unique_lock<std::mutex> lock(mutex);
  while (true) {
    if (o.stop && o.stop->load() && o.halt) o.halt->store(true);
    if (o.stop && o.stop->load() && !o.halt) break;  // nothing to tell the running tasks: wait
    if (!halted()) {
      std::vector<int> ready;
      for (int i = 0; i < n; ++i)
        if (isReady(i)) ready.push_back(i);
      std::stable_sort(ready.begin(), ready.end(), [&](int a, int b) {
        return waiting[static_cast<size_t>(a)] > waiting[static_cast<size_t>(b)];
      });
      const auto criticalReady = std::count_if(ready.begin(), ready.end(), [&](int i) {
        return tasks[static_cast<size_t>(i)].critical;
      });
      for (size_t next = 0; next < ready.size() && running < workers && !wholeMachine; ++next) {
        const int i = ready[next];
        const bool critical = tasks[static_cast<size_t>(i)].critical;
        const bool alone = running == 0 && (ready.size() == 1 || (critical && criticalReady == 1));
        const int threadCount = alone ? std::max(1, o.cores) : std::max(1, o.cores / workers);
        wholeMachine = alone;
        started[static_cast<size_t>(i)] = 1;
        ++running;
        threads.emplace_back([&, i, threadCount, alone] {
          std::exception_ptr error;
          try {
            tasks[static_cast<size_t>(i)].run(threadCount);
          } catch (...) {
            error = std::current_exception();
          }
          std::lock_guard<std::mutex> guard(mutex);
          --running;
          if (alone) wholeMachine = false;
          if (error) {
            if (!firstError) firstError = error;
            if (o.halt) o.halt->store(true);
          } else {
            done[static_cast<size_t>(i)] = 1;
            ++finished;
          }
          changed.notify_all();
        });
      }
    }
    if (running == 0 && (halted() || finished == n)) break;
    changed.wait_for(lock, std::chrono::milliseconds(100));  // also polls `stop`
  }
  // A stop without a halt flag to pass on: let the running tasks end on their own.
  changed.wait(lock, [&] { return running == 0; });
  lock.unlock();
  for (auto& t : threads) t.join();
  if (firstError) std::rethrow_exception(firstError);
  return finished == n;
}

}  // namespace pivot
