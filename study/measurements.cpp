#include "study/measurements.h"

#include <filesystem>

#include "data/idx_reader.h"
#include "data/tokenizer.h"
#include "training/batches.h"
#include "training/evaluate.h"
#include "training/probes.h"
#include "visualization/attribution.h"
#include "visualization/localization.h"

namespace pivot {
namespace {

constexpr int kFeatureLayer = -2;  // the layer the MLLM reads (penultimate), as in the paper's probes

ResultRow row(const ResultRow& key, const std::string& probe, const std::string& metric, double value) {
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

std::vector<ResultRow> probeEncoder(Mllm& model, const WorldConfig& worldConfig, const MeasureSettings& s,
                                    const ResultRow& key) {
  model->eval();  // (no NoGradGuard here: the probes themselves train)
  const ShapesWorld world(worldConfig);
  const auto train = shapesWorldFeatures(model, world, Split::Train, s.probeTrain, kFeatureLayer, false);
  const auto val = shapesWorldFeatures(model, world, Split::Val, s.probeVal, kFeatureLayer, false);
  const auto test = shapesWorldFeatures(model, world, Split::Test, s.probeTest, kFeatureLayer, false);
  std::vector<ResultRow> rows;
  for (const std::string task : {"shape", "colour", "conjunction", "count"}) {
    const auto r = linearProbe(train.pooled, train.labels(task), val.pooled, val.labels(task), test.pooled,
                               test.labels(task), probeTaskClasses(task, worldConfig));
    rows.push_back(row(key, "linear/" + task, "test_accuracy", r.testAccuracy));
  }
  if (s.fashionMnist && fashionMnistInstalled()) {
    const int size = model->config.vision.image_size;
    const auto tr = fashionMnist(false, 0, s.probeTrain, size);
    const auto va = fashionMnist(false, s.probeTrain, s.probeVal, size);
    const auto te = fashionMnist(true, 0, s.probeTest, size);
    const auto r = linearProbe(pooledImageFeatures(model, tr.pixels, kFeatureLayer, false), tr.labels,
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

std::vector<ResultRow> vqaRows(Mllm& model, const WorldConfig& worldConfig, int samples, const std::string& probe,
                               const ResultRow& key) {
  const ShapesWorld world(worldConfig);
  const auto device = model->parameters().front().device();
  std::vector<ResultRow> rows;
  for (const auto& [k, v] : evaluateVqa(model, world, WordTokenizer::shapesWorld(), Split::Val, samples, device)) {
    if (k == "vqa/samples") continue;
    rows.push_back(row(key, probe, k.substr(4), v));  // "vqa/accuracy/colour" -> "accuracy/colour"
  }
  return rows;
}

std::vector<ResultRow> localisationRows(Mllm& model, const WorldConfig& worldConfig, int samples, const std::string& probe,
                                        const ResultRow& key) {
  const ShapesWorld world(worldConfig);
  const WordTokenizer tok = WordTokenizer::shapesWorld();
  const auto& v = model->config.vision;
  const int S = v.image_size, g = S / v.patch_size;
  const auto device = model->parameters().front().device();
  std::vector<Sample> items;  // questions about an object: there is something to point at
  for (int i = 0; static_cast<int>(items.size()) < samples && i < samples * 4; ++i) {
    auto s = world.sample(Split::Val, i);
    if (!s.targets.empty()) items.push_back(std::move(s));
  }
  AttributionOptions options;  // the paper's gradient map of the SFT loss
  std::vector<double> masses, areas;
  int hits = 0;
  for (size_t start = 0; start < items.size(); start += 32) {
    const size_t end = std::min(items.size(), start + 32);
    std::vector<BatchRow> rowsIn;
    for (size_t i = start; i < end; ++i) rowsIn.push_back({&items[i], Response::Chosen});
    const auto result = explain(model, buildBatch(rowsIn, tok, v.numPatches(), device), options);
    for (size_t i = start; i < end; ++i) {
      const auto mask = targetMask(items[i].scene.instanceMask, items[i].targets);
      const auto fraction = cellMaskFraction(mask, S, S, g, g);
      const auto map = mapValues(result.maps, static_cast<int64_t>(i - start));
      masses.push_back(massInside(map, fraction));
      areas.push_back(static_cast<double>(std::count(mask.begin(), mask.end(), 1)) / mask.size());
      hits += pointingHit(map, fraction);
    }
  }
  return {row(key, probe, "mass_inside", summarise(masses).mean),
          row(key, probe, "pointing_game", masses.empty() ? 0 : static_cast<double>(hits) / masses.size()),
          row(key, probe, "uniform_baseline", summarise(areas).mean)};
}

}  // namespace pivot
