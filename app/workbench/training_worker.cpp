#include "training_worker.h"

#include "background_priority.h"

#include <chrono>

#include "config/train_config.h"
#include "training/chain.h"
#include "training/trainer.h"
#include "visualization/overlay.h"

namespace pivot {
namespace {

// The trainer's sink inside the worker: forwards each step into the live buffer.
class BufferSink final : public MetricSink {
 public:
  BufferSink(TrainingWorker* worker, LiveBuffer* buffer, QString stage,
             const ChainStage& place = {})
      : m_worker(worker), m_buffer(buffer), m_stage(std::move(stage)), m_place(place) {}
  void onRunStarted(int64_t runId, const std::string& name, int64_t batchSize,
                    const std::string& device) override {
    m_runId = runId;
    m_device = QString::fromStdString(device);
    Q_EMIT m_worker->runStarted(runId, QString::fromStdString(name),
                                static_cast<double>(batchSize));
  }
  void onStep(int64_t step, int64_t total, const Scalars& scalars) override {
    const auto now = std::chrono::steady_clock::now();
    if (m_firstStep < 0) {
      m_firstStep = step - 1;
      m_start = now;
    }
    const double elapsed = std::chrono::duration<double>(now - m_start).count();
    const double perStep = elapsed / std::max<int64_t>(1, step - m_firstStep);
    LiveBuffer::Status status;
    status.runId = m_runId;
    status.stage = m_stage;
    status.step = step;
    status.totalSteps = total;
    status.etaSeconds = perStep * static_cast<double>(total - step);
    status.device = m_device;
    status.chainIndex = m_place.index;
    status.chainTotal = m_place.total;
    status.chainEtaSeconds = status.etaSeconds + perStep * static_cast<double>(m_place.stepsAfter);
    std::vector<MetricPoint> points;
    const double wall = unixNow();
    for (const auto& [k, v] : scalars) {
      points.push_back({step, k, v, wall});
      if (k == "throughput/samples_per_s") status.samplesPerSecond = v;
    }
    m_buffer->push(m_runId, std::move(points), status);
  }

 private:
  TrainingWorker* m_worker;
  LiveBuffer* m_buffer;
  QString m_stage, m_device;
  ChainStage m_place;  // where this stage sits in the chain the window started
  int64_t m_runId = 0, m_firstStep = -1;
  std::chrono::steady_clock::time_point m_start;
};

}  // namespace

void LiveBuffer::push(int64_t runId, std::vector<MetricPoint> points, const Status& status) {
  std::lock_guard<std::mutex> lock(m_mutex);
  if (!m_pending.empty() && m_pending.back().first == runId) {
    auto& v = m_pending.back().second;
    v.insert(v.end(), points.begin(), points.end());
  } else {
    m_pending.emplace_back(runId, std::move(points));
  }
  m_status = status;
}

std::vector<std::pair<int64_t, std::vector<MetricPoint>>> LiveBuffer::drain() {
  std::lock_guard<std::mutex> lock(m_mutex);
  return std::exchange(m_pending, {});
}

LiveBuffer::Status LiveBuffer::status() const {
  std::lock_guard<std::mutex> lock(m_mutex);
  return m_status;
}

TrainOptions TrainingWorker::optionsFor(MetricSink* sink) {
  TrainOptions opt;
  opt.workspace = m_workspace.toStdString();
  opt.sink = sink;
  opt.stopRequested = &stopFlag;
  opt.pauseRequested = &pauseFlag;
  opt.decodeImage = readRgb8;  // a real model's data
  return opt;
}

void TrainingWorker::start(const LaunchRequest& request) {
  lowerThisThreadsPriority();  // the window's thread first (background_priority.h)
  stopFlag = false;
  pauseFlag = false;
  try {
    std::vector<std::string> overrides;
    for (const auto& o : request.overrides) overrides.push_back(o.toStdString());
    // The chain's rule (chainConfigs): architecture, world and device reach the earlier stages,
    // hyper-parameters only the requested one; everything validated before anything runs.
    const auto plan =
        chainConfigs(request.preset.toStdString(), stageFromName(request.stage.toStdString()),
                     overrides, !request.parentRunId);
    // Earlier stages an identical chain already finished are reused, as experiments do.
    std::unique_ptr<BufferSink> sink;
    ChainHooks hooks;
    hooks.onStage = [this](const ChainStage& s) {
      Q_EMIT stageStarted(s.index, s.total, QString(stageName(s.config->stage)),
                          s.reusedRun ? *s.reusedRun : 0);
    };
    hooks.optionsFor = [&](const ChainStage& s) {
      sink = std::make_unique<BufferSink>(this, m_buffer, stageName(s.config->stage), s);
      return optionsFor(sink.get());
    };
    hooks.onTrained = [this](const ChainStage&, const TrainResult& r) {
      Q_EMIT runEnded(r.runId, QString(name(r.status)), QString::fromStdString(r.message));
    };
    const auto outcome = runChain(m_workspace.toStdString(), plan, request.parentRunId, hooks).last;
    if (outcome.status != RunStatus::Finished) {
      Q_EMIT jobEnded(false, QString::fromStdString(outcome.message));
      return;
    }
    Q_EMIT jobEnded(true, "finished");
  } catch (const std::exception& e) {
    Q_EMIT jobEnded(false, QString::fromUtf8(e.what()));
  }
}

void TrainingWorker::resume(qint64 runId) {
  lowerThisThreadsPriority();
  stopFlag = false;
  pauseFlag = false;
  try {
    BufferSink sink(this, m_buffer, "resume");
    TrainOptions opt = optionsFor(&sink);
    opt.resumeRunId = runId;
    const auto r = train(TrainConfig{}, opt);
    Q_EMIT runEnded(r.runId, QString(name(r.status)), QString::fromStdString(r.message));
    Q_EMIT jobEnded(r.status == RunStatus::Finished, QString::fromStdString(r.message));
  } catch (const std::exception& e) {
    Q_EMIT jobEnded(false, QString::fromUtf8(e.what()));
  }
}

TrainingThread::TrainingThread(const QString& workspace, LiveBuffer* buffer)
    : m_worker(new TrainingWorker(workspace, buffer)) {
  m_worker->moveToThread(&m_thread);
  QObject::connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
  m_thread.setObjectName("training");
  m_thread.start();
}

TrainingThread::~TrainingThread() {
  m_worker->pauseFlag = false;
  m_worker->stopFlag = true;  // the run stops within one step, with a checkpoint
  m_thread.quit();
  m_thread.wait();
}

}  // namespace pivot
