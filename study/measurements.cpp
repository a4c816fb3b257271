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

struct SplitFeatures {
  torch::Tensor patches;      // (B, N, D) frozen features
  torch::Tensor pooled;       // (B, D) L2-normalised mean of the patches
  torch::Tensor patchLabels;  // (B, N) majority class per patch
  std::vector<Sample> samples;
};

SplitFeatures featuresOf(Mllm& model, const ShapesWorld& world, Split split, int count) {
  const auto& v = model->config.vision;
  const int grid = v.image_size / v.patch_size;
  const auto device = model->parameters().front().device();
  SplitFeatures f;
  std::vector<torch::Tensor> parts;
  std::vector<int64_t> cells;
  for (int start = 0; start < count; start += 128) {
    std::vector<const Scene*> scenes;
    const size_t first = f.samples.size();
    for (int i = start; i < std::min(count, start + 128); ++i) f.samples.push_back(world.sample(split, i));
    for (size_t i = first; i < f.samples.size(); ++i) {
      scenes.push_back(&f.samples[i].scene);
      const auto p = patchLabels(f.samples[i].scene.classMask, v.image_size, grid);
      cells.insert(cells.end(), p.begin(), p.end());
    }
    parts.push_back(patchFeatures(model, imageTensor(scenes).to(device), kFeatureLayer, false));
  }
  f.patches = torch::cat(parts);
  f.pooled = pooledFeatures(f.patches);
  f.patchLabels = torch::tensor(cells, torch::kInt64).view({count, grid * grid});
  return f;
}

torch::Tensor labelsOf(const std::vector<Sample>& samples, const std::string& task) {
  std::vector<int64_t> out;
  for (const auto& s : samples) out.push_back(probeLabel(task, s));
  return torch::tensor(out, torch::kInt64);
}

torch::Tensor pooledOfImages(Mllm& model, const torch::Tensor& pixels) {
  const auto device = model->parameters().front().device();
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < pixels.size(0); start += 128)
    parts.push_back(patchFeatures(model, pixels.narrow(0, start, std::min<int64_t>(128, pixels.size(0) - start)).to(device),
                                  kFeatureLayer, false));
  return pooledFeatures(torch::cat(parts));
}

std::vector<float> mapOf(const torch::Tensor& maps, int64_t b) {
  auto m = maps[b].contiguous();
  return std::vector<float>(m.data_ptr<float>(), m.data_ptr<float>() + m.numel());
}

}  // namespace

bool fashionMnistInstalled() {
  return std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz");
}

std::vector<ResultRow> probeEncoder(Mllm& model, const WorldConfig& worldConfig, const MeasureSettings& s,
                                    const ResultRow& key) {
  model->eval();  // (no NoGradGuard here: the probes themselves train)
  const ShapesWorld world(worldConfig);
  const auto train = featuresOf(model, world, Split::Train, s.probeTrain);
  const auto val = featuresOf(model, world, Split::Val, s.probeVal);
  const auto test = featuresOf(model, world, Split::Test, s.probeTest);
  std::vector<ResultRow> rows;
  for (const std::string task : {"shape", "colour", "conjunction", "count"}) {
    const auto r = linearProbe(train.pooled, labelsOf(train.samples, task), val.pooled, labelsOf(val.samples, task),
                               test.pooled, labelsOf(test.samples, task), probeTaskClasses(task, worldConfig));
    rows.push_back(row(key, "linear/" + task, "test_accuracy", r.testAccuracy));
  }
  if (s.fashionMnist && fashionMnistInstalled()) {
    const int size = model->config.vision.image_size;
    const auto tr = fashionMnist(false, 0, s.probeTrain, size);
    const auto va = fashionMnist(false, s.probeTrain, s.probeVal, size);
    const auto te = fashionMnist(true, 0, s.probeTest, size);
    const auto r = linearProbe(pooledOfImages(model, tr.pixels), tr.labels, pooledOfImages(model, va.pixels), va.labels,
                               pooledOfImages(model, te.pixels), te.labels, 10);
    rows.push_back(row(key, "linear/fashion-mnist", "test_accuracy", r.testAccuracy));
  }
  // The segmentation probe's seeds are probe seeds: the row holds their mean (and spread).
  std::vector<double> recalls, ious;
  for (int seed = 0; seed < s.segmentationSeeds; ++seed) {
    const auto seg = segmentationProbe(train.patches, train.patchLabels, test.patches, test.patchLabels,
                                       ShapesWorld::numClasses(), static_cast<uint64_t>(seed));
    recalls.push_back(seg.macroRecall);
    ious.push_back(seg.meanIoU);
  }
  const auto recall = summarise(recalls), iou = summarise(ious);
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
      const auto map = mapOf(result.maps, static_cast<int64_t>(i - start));
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
