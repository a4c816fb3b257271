// The window's view of the run store: every 1.5 s (or at once when asked) a worker thread opens
// the store read-only and brings back the runs with their last loss, margin and checkpoints, the
// experiments with their reports, and the new metric points of the runs whose curves are shown.
// Whoever trains writes the store (this process's training thread, a `pivot train --nproc N` or
// `pivot experiment` child, another process altogether); the window learns of it all here.
#pragma once
#include <QFutureWatcher>
#include <QObject>
#include <QTimer>
#include <functional>
#include <map>
#include <string>

#include "runs_model.h"

namespace pivot {

// What one poll brings back.
struct StorePoll {
  std::vector<RunSummary> runs;
  std::map<int64_t, std::vector<MetricPoint>> newPoints;  // for the runs asked for
  std::vector<ExperimentInfo> experiments;  // status as a person should see it (effectiveStatus)
  QString error;  // the store could not be read (the next poll tries again)
};

// One poll, on the calling thread: the runs, and each wanted run's points after the given step.
StorePoll readStore(const std::string& storePath, const std::map<int64_t, int64_t>& wanted);

class StorePoller : public QObject {
  Q_OBJECT
 public:
  // `wanted` is asked at each poll for the runs whose new points to bring (run -> last step held).
  StorePoller(std::string storePath, std::function<std::map<int64_t, int64_t>()> wanted,
              QObject* parent = nullptr);
  ~StorePoller() override;  // waits for a poll in flight

  void pollNow();  // at once; skipped while a poll is in flight (its result comes soon)

 Q_SIGNALS:
  void polled(const pivot::StorePoll& poll);

 private:
  std::string m_storePath;
  std::function<std::map<int64_t, int64_t>()> m_wanted;
  QTimer m_timer;
  QFutureWatcher<StorePoll> m_watcher;
};

}  // namespace pivot
