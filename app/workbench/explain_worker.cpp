#include "explain_worker.h"

#include "background_priority.h"

#include "study/explain_sample.h"
#include "training/real_data.h"
#include "training/run_checkpoint.h"
#include "visualization/overlay.h"

namespace pivot {
namespace {
constexpr size_t kModelsKept = 6;  // checkpoints held in memory for quick switching
}

ExplainWorker::ExplainWorker() = default;
ExplainWorker::~ExplainWorker() = default;

LoadedCheckpoint& ExplainWorker::model(const std::string& path) {
  for (auto it = m_models.begin(); it != m_models.end(); ++it)
    if (it->first == path) {
      m_models.splice(m_models.begin(), m_models, it);
      return *m_models.front().second;
    }
  m_models.emplace_front(path, std::make_unique<LoadedCheckpoint>(loadCheckpointFolder(path)));
  if (m_models.size() > kModelsKept) m_models.pop_back();
  return *m_models.front().second;
}

const ConversationBatcher& ExplainWorker::batcher(const LoadedCheckpoint& m) {
  auto& slot = m_batchers[m.config.model_dir + "\n" + m.config.chat_format];
  if (!slot)
    slot = std::make_unique<ConversationBatcher>(m.config.model, m.config.model_dir,
                                                 m.config.chat_format, readRgb8);
  return *slot;
}

void ExplainWorker::run(const ExplainJob& job) {
  lowerThisThreadsPriority();  // the window's thread first (background_priority.h)
  ExplainOutcome out;
  out.id = job.id;
  out.key = job.cacheKey();
  out.label = job.label;
  try {
    auto& m = model(job.checkpointPath.toStdString());
    ExplainSubject subject;
    subject.fromWorld = job.fromWorld;
    subject.world = job.world;
    subject.split = static_cast<Split>(job.split);
    subject.index = job.index;
    subject.imageFile = job.imageFile.toStdString();
    subject.question = job.question.toStdString();
    subject.answer = job.answer.toStdString();
    const Sample sample = sampleFor(m, subject);
    AttributionOptions options;
    options.method = attributionMethodFromName(job.method.toStdString());
    options.target = attributionTargetFromName(job.target.toStdString());
    options.layer = job.layer;
    const SampleMap result = explainSample(m, sample, subject.imageFile, options,
                                           m.config.realModel() ? &batcher(m) : nullptr);
    if (!result.warnings.empty()) out.warning = QString::fromStdString(result.warnings.front());
    out.scored = result.scored;
    out.mass = result.massInside;
    out.hit = result.pointingHit;
    const int size = sample.scene.size;
    OverlayStyle style;
    style.colormap = job.colormap.toStdString();
    const auto overlay = renderOverlay(RgbImage{size, size, sample.scene.rgb}, result.map,
                                       result.gridH, result.gridW, style);
    out.overlay = QImage(overlay.rgb.data(), overlay.width, overlay.height, overlay.width * 3,
                         QImage::Format_RGB888)
                      .copy();
    for (const auto& [r, g, b] : colormapColours(style.colormap)) out.colourScale << qRgb(r, g, b);
  } catch (const std::exception& e) {
    out.error = QString::fromUtf8(e.what());
  }
  Q_EMIT finished(out);
}

ExplainThread::ExplainThread() : m_worker(new ExplainWorker) {
  m_worker->moveToThread(&m_thread);
  QObject::connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
  m_thread.setObjectName("explain");
  m_thread.start();
}

ExplainThread::~ExplainThread() {
  m_thread.quit();
  m_thread.wait();
}

}  // namespace pivot
