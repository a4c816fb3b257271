#include "explain_worker.h"

#include "background_priority.h"

#include "training/batches.h"
#include "training/real_data.h"
#include "training/run_checkpoint.h"
#include "visualization/attribution.h"
#include "visualization/localization.h"
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
    const int size = m.config.model.vision.image_size;
    Sample sample;
    if (job.fromWorld) {
      WorldConfig world = job.world;
      world.image_size = size;
      sample = ShapesWorld(world).sample(static_cast<Split>(job.split), job.index);
    } else {
      const auto image = loadImage(job.imageFile.toStdString(), size);
      sample.scene.size = size;
      sample.scene.rgb = image.rgb;
      sample.question = job.question.toStdString();
      sample.answer = job.answer.toStdString();
      if (!m.config.realModel()) {  // the miniature's words: "What colour?" reads "what colour ?"
        const WordTokenizer words = WordTokenizer::shapesWorld();
        sample.question = words.normalise(sample.question);
        sample.answer = words.normalise(sample.answer);
      }
    }
    AttributionOptions options;
    options.method = attributionMethodFromName(job.method.toStdString());
    options.target = attributionTargetFromName(job.target.toStdString());
    options.layer = job.layer;
    if (options.target == AttributionTarget::DpoLoss && sample.rejected.empty())
      throw std::runtime_error(
          "the DPO target needs a rejected answer (ShapesWorld samples have one)");
    const auto device = m.model->parameters().front().device();
    MllmInputs in;
    std::optional<MllmInputs> rejected;
    if (m.config.realModel()) {  // its own tokenizer, chat template and SigLIP processor
      if (job.fromWorld)
        throw std::runtime_error(m.label() +
                                 " is a real model: choose a photo and type a question and answer "
                                 "(ShapesWorld samples are the miniature's)");
      in = batcher(m).photoQuestion(job.imageFile.toStdString(), sample.question, sample.answer,
                                    device);
    } else {
      const WordTokenizer tok = WordTokenizer::shapesWorld();
      const int tokens = m.config.model.vision.numPatches();
      in = buildBatch({{&sample, Response::Chosen}}, tok, tokens, device);
      if (!sample.rejected.empty())
        rejected = buildBatch({{&sample, Response::Rejected}}, tok, tokens, device);
    }
    const auto result = explain(m.model, in, options, rejected ? &*rejected : nullptr);
    if (!result.warnings.empty()) out.warning = QString::fromStdString(result.warnings.front());
    auto grid = result.maps[0].contiguous();
    std::vector<float> map(grid.data_ptr<float>(), grid.data_ptr<float>() + grid.numel());
    const int g = static_cast<int>(grid.size(0));
    if (!sample.targets.empty()) {
      const auto mask = targetMask(sample.scene.instanceMask, sample.targets);
      const auto fraction = cellMaskFraction(mask, size, size, g, g);
      out.scored = true;
      out.mass = massInside(map, fraction);
      out.hit = pointingHit(map, fraction);
    }
    OverlayStyle style;
    style.colormap = job.colormap.toStdString();
    const auto overlay = renderOverlay(RgbImage{size, size, sample.scene.rgb}, map, g, g, style);
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
