#include "study/measurements.h"

#include <filesystem>

#include "data/idx_reader.h"
#include "text/word_tokenizer.h"
#include "training/batches.h"
#include "training/evaluate.h"
#include "training/probes.h"
#include "visualization/attribution.h"
#include "study/localise.h"
#include "visualization/localization.h"

namespace pivot {
namespace {

constexpr int kFeatureLayer =
    -2;  // the layer the MLLM reads (penultimate), as in the paper's probes

ResultRow row(const ResultRow& key, const std::string& probe, const std::string& metric,
              double value) {
  ResultRow r = key;
  r.probe = probe;
  r.metric = metric;
  r.value = value;
  return r;
}

}  // namespace

bool fashionMnistInstalled() {
  return std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz");
}

std::vector<ResultRow> probeEncoder(Mllm& model, const WorldConfig& worldConfig,
                                    const MeasureSettings& s, const ResultRow& key) {
  model->eval();  // (no NoGradGuard here: the probes themselves train)
  const ShapesWorld world(worldConfig);
  const auto train =
      shapesWorldFeatures(model, world, Split::Train, s.probeTrain, kFeatureLayer, false);
  const auto val = shapesWorldFeatures(model, world, Split::Val, s.probeVal, kFeatureLayer, false);
  const auto test =
      shapesWorldFeatures(model, world, Split::Test, s.probeTest, kFeatureLayer, false);
  std::vector<ResultRow> rows;
  for (const std::string task : {"shape", "colour", "conjunction", "count"}) {
    const auto r = linearProbe(train.pooled, train.labels(task), val.pooled, val.labels(task),
                               test.pooled, test.labels(task), probeTaskClasses(task, worldConfig));
    rows.push_back(row(key, "linear/" + task, "test_accuracy", r.testAccuracy));
  }
  if (s.fashionMnist && fashionMnistInstalled()) {
    const int size = model->config.vision.image_size;
    const auto tr = fashionMnist(false, 0, s.probeTrain, size);
    const auto va = fashionMnist(false, s.probeTrain, s.probeVal, size);
    const auto te = fashionMnist(true, 0, s.probeTest, size);
    const auto r =
        linearProbe(pooledImageFeatures(model, tr.pixels, kFeatureLayer, false), tr.labels,
                    pooledImageFeatures(model, va.pixels, kFeatureLayer, false), va.labels,
                    pooledImageFeatures(model, te.pixels, kFeatureLayer, false), te.labels, 10);
    rows.push_back(row(key, "linear/fashion-mnist", "test_accuracy", r.testAccuracy));
  }
  // The segmentation probe's seeds are probe seeds: the row holds their mean (and spread).
  const auto seg = segmentationProbeOverSeeds(train, test, s.segmentationSeeds);
  const auto &recall = seg.macroRecall, &iou = seg.meanIoU;
  rows.push_back(row(key, "segmentation", "macro_recall", recall.mean));
  rows.push_back(row(key, "segmentation", "macro_recall_probe_std", recall.std));
  rows.push_back(row(key, "segmentation", "miou", iou.mean));
  return rows;
}

std::vector<ResultRow> vqaRows(Mllm& model, const WorldConfig& worldConfig, int samples,
                               const std::string& probe, const ResultRow& key) {
  const ShapesWorld world(worldConfig);
  const auto device = model->parameters().front().device();
  std::vector<ResultRow> rows;
  for (const auto& [k, v] :
       evaluateVqa(model, world, WordTokenizer::shapesWorld(), Split::Val, samples, device)) {
    if (k == "vqa/samples") continue;
    rows.push_back(row(key, probe, k.substr(4), v));  // "vqa/accuracy/colour" -> "accuracy/colour"
  }
  return rows;
}

std::vector<ResultRow> localisationRows(Mllm& model, const WorldConfig& worldConfig, int samples,
                                        const std::string& probe, const ResultRow& key) {
  // The paper's gradient map of the SFT loss, scored by the operation `pivot localize` runs.
  const auto scored =
      localise(model, shapesWorldTargets(ShapesWorld(worldConfig), Split::Val, samples),
               AttributionOptions{}, /*deletion=*/false);
  std::vector<double> masses, areas;
  for (const auto& s : scored.samples) {
    masses.push_back(s.massInside);
    areas.push_back(s.targetArea);
  }
  return {row(key, probe, "mass_inside", summarise(masses).mean),
          row(key, probe, "pointing_game", scored.pointingGame.mean),
          row(key, probe, "uniform_baseline", summarise(areas).mean)};
}

std::vector<ResultRow> answerRows(Mllm& model, const WorldConfig& world,
                                  const MeasureSettings& settings, const std::string& prefix,
                                  const ResultRow& key) {
  auto rows = vqaRows(model, world, settings.vqaSamples, prefix + "vqa", key);
  const auto where =
      localisationRows(model, world, settings.localisationSamples, prefix + "localisation", key);
  rows.insert(rows.end(), where.begin(), where.end());
  return rows;
}

}  // namespace pivot
