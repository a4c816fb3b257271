// The training worker: a QObject living on its own QThread that owns all torch state (through
// pivot::train). Commands arrive by queued invocation; per-step metrics go into a LiveBuffer that
// the window drains on a timer (coalesced, never a signal per scalar). Pause and stop are atomic
// flags the trainer polls once per step.
#pragma once
#include <QObject>
#include <QString>
#include <QThread>
#include <atomic>
#include <mutex>
#include <vector>

#include "launch_panel.h"
#include "store/run_store.h"
#include "training/trainer.h"

namespace pivot {

class LiveBuffer {
 public:
  struct Status {
    int64_t runId = 0;
    QString stage;
    int64_t step = 0, totalSteps = 0;
    double samplesPerSecond = 0, etaSeconds = 0;
    QString device;
    int chainIndex = 0, chainTotal = 0;  // stage i of n of the chain the window started (0: none)
    double chainEtaSeconds = 0;          // the rest of the chain at this stage's pace
  };
  void push(int64_t runId, std::vector<MetricPoint> points, const Status& status);
  std::vector<std::pair<int64_t, std::vector<MetricPoint>>> drain();  // per run, in order
  Status status() const;

 private:
  mutable std::mutex m_mutex;
  std::vector<std::pair<int64_t, std::vector<MetricPoint>>> m_pending;
  Status m_status;
};

class TrainingWorker : public QObject {
  Q_OBJECT
 public:
  TrainingWorker(QString workspace, LiveBuffer* buffer)
      : m_workspace(std::move(workspace)), m_buffer(buffer) {}

  std::atomic<bool> stopFlag{false};
  std::atomic<bool> pauseFlag{false};

 public Q_SLOTS:
  void start(const pivot::LaunchRequest& request);  // runs the stages the request needs, in order
  void resume(qint64 runId);                        // continues a stopped or crashed run

 Q_SIGNALS:
  // Before each stage of the chain: its place and, when an identical finished run is reused instead
  // of trained, that run (else 0).
  void stageStarted(int index, int total, const QString& stage, qint64 reusedRun);
  void runStarted(qint64 runId, const QString& name, double batchSize);
  void runEnded(qint64 runId, const QString& status, const QString& message);
  void jobEnded(bool ok, const QString& message);

 private:
  TrainOptions optionsFor(MetricSink* sink);  // this workspace, with the pause and stop flags

  QString m_workspace;
  LiveBuffer* m_buffer;
};

// Owns the thread and the worker: quits and waits on destruction, after asking the run to stop.
class TrainingThread {
 public:
  TrainingThread(const QString& workspace, LiveBuffer* buffer);
  ~TrainingThread();
  TrainingWorker* worker() const { return m_worker; }

 private:
  QThread m_thread;
  TrainingWorker* m_worker;
};

}  // namespace pivot
