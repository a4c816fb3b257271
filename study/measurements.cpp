#include "study/measurements.h"

#include <filesystem>
#include <map>

#include "data/idx_reader.h"
#include "text/word_tokenizer.h"
#include "training/batches.h"
#include "training/evaluate.h"
#include "training/probes.h"
#include "visualization/attribution.h"
#include "data/scene_edit.h"
#include "study/counterfactual.h"
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

// "encoder.layers.3.mlp.fc1.weight" -> 4 (hidden state 4 is layer 3's output), "embeddings.*" -> 0,
// anything else (the final layer norm) -> -1: counted in "all" only.
int hiddenStateOf(const std::string& name) {
  if (name.rfind("embeddings.", 0) == 0) return 0;
  const std::string prefix = "encoder.layers.";
  if (name.rfind(prefix, 0) != 0) return -1;
  return std::stoi(name.substr(prefix.size())) + 1;
}

}  // namespace

std::vector<ResultRow> displacementRows(Mllm& model, Mllm& reference,
                                        const WorldConfig& worldConfig, const MeasureSettings& s,
                                        const ResultRow& key) {
  torch::NoGradGuard noGrad;
  std::vector<ResultRow> rows;
  // Weights: squared norms of the change and of the reference, per hidden state and overall.
  std::map<int, std::pair<double, double>> sums;
  const auto referenceParameters = reference->vision_tower->named_parameters();
  for (const auto& p : model->vision_tower->named_parameters()) {
    const auto* ref = referenceParameters.find(p.key());
    TORCH_CHECK(ref && ref->sizes() == p.value().sizes(), "the encoders differ at ", p.key());
    const auto r = ref->to(torch::kCPU, torch::kFloat64);
    const double change =
        (p.value().to(torch::kCPU, torch::kFloat64) - r).pow(2).sum().item<double>();
    const double size = r.pow(2).sum().item<double>();
    for (int part : {hiddenStateOf(p.key()), -2}) {  // -2: the whole encoder
      if (part == -1) continue;
      sums[part].first += change;
      sums[part].second += size;
    }
  }
  const auto relative = [](const std::pair<double, double>& sum) {
    return std::sqrt(sum.first / std::max(sum.second, 1e-300));
  };
  for (const auto& [part, sum] : sums)
    if (part >= 0)
      rows.push_back(
          row(key, "displacement", "weight_change/layer_" + std::to_string(part), relative(sum)));
  rows.push_back(row(key, "displacement", "weight_change/all", relative(sums[-2])));
  // Representations: every hidden state of both towers on the same probe test images.
  model->eval();
  reference->eval();
  const ShapesWorld world(worldConfig);
  const auto device = model->parameters().front().device();
  std::vector<std::vector<torch::Tensor>> ours, theirs;  // [hidden state][batch] (B * N, D)
  for (int start = 0; start < s.probeTest; start += 128) {
    std::vector<Sample> samples;
    for (int i = start; i < std::min(s.probeTest, start + 128); ++i)
      samples.push_back(world.sample(Split::Test, s.firstItem + i));
    std::vector<const Scene*> scenes;
    for (const auto& sample : samples) scenes.push_back(&sample.scene);
    const auto pixels = imageTensor(scenes).to(device);
    const auto a = model->vision_tower->hiddenStates(pixels);
    const auto b = reference->vision_tower->hiddenStates(pixels);
    ours.resize(a.size());
    theirs.resize(b.size());
    for (size_t k = 0; k < a.size(); ++k) {
      ours[k].push_back(a[k].reshape({-1, a[k].size(-1)}).to(torch::kCPU));
      theirs[k].push_back(b[k].reshape({-1, b[k].size(-1)}).to(torch::kCPU));
    }
  }
  for (size_t k = 0; k < ours.size(); ++k)
    rows.push_back(row(key, "displacement", "cka/layer_" + std::to_string(k),
                       linearCka(torch::cat(ours[k]), torch::cat(theirs[k]))));
  return rows;
}

bool fashionMnistInstalled() {
  return std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz");
}

std::vector<ResultRow> probeEncoder(Mllm& model, const WorldConfig& worldConfig,
                                    const MeasureSettings& s, const ResultRow& key) {
  model->eval();  // (no NoGradGuard here: the probes themselves train)
  const ShapesWorld world(worldConfig);
  const auto features = [&](Split split, int count) {
    return shapesWorldFeatures(model, world, split, count, kFeatureLayer, false, s.firstItem);
  };
  const auto train = features(Split::Train, s.probeTrain);
  const auto val = features(Split::Val, s.probeVal);
  const auto test = features(Split::Test, s.probeTest);
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
                               const std::string& probe, const ResultRow& key, int64_t first) {
  const ShapesWorld world(worldConfig);
  const auto device = model->parameters().front().device();
  std::vector<ResultRow> rows;
  for (const auto& [k, v] :
       evaluateVqa(model, world, WordTokenizer::shapesWorld(), Split::Val, samples, device,
                   /*batchSize=*/64, first)) {
    if (k == "vqa/samples") continue;
    rows.push_back(row(key, probe, k.substr(4), v));  // "vqa/accuracy/colour" -> "accuracy/colour"
  }
  return rows;
}

std::vector<ResultRow> localisationRows(Mllm& model, const WorldConfig& worldConfig, int samples,
                                        const std::string& probe, const ResultRow& key,
                                        int64_t first) {
  // The paper's gradient map of the SFT loss, scored by the operation `pivot localize` runs.
  const auto scored =
      localise(model, shapesWorldTargets(ShapesWorld(worldConfig), Split::Val, samples, first),
               AttributionOptions{}, /*deletion=*/false);
  std::vector<double> masses, areas;
  for (const auto& s : scored.samples) {
    masses.push_back(s.massInside);
    areas.push_back(s.chanceMass);
  }
  return {row(key, probe, "mass_inside", summarise(masses).mean),
          row(key, probe, "pointing_game", scored.pointingGame.mean),
          row(key, probe, "uniform_baseline", summarise(areas).mean)};
}

std::vector<ResultRow> groundingRows(Mllm& model, const WorldConfig& worldConfig, int samples,
                                     const std::string& probe, const ResultRow& key,
                                     int64_t first) {
  const ShapesWorld world(worldConfig);
  // Items: questions about exactly one object, in scenes with at least one other (the first
  // other object is the distractor removed); at most 4 x samples items looked at.
  std::vector<Sample> originals, withoutTarget, withoutDistractor;
  for (int64_t i = first; i < first + 4 * samples && static_cast<int>(originals.size()) < samples;
       ++i) {
    Sample s = world.sample(Split::Val, i);
    if (s.targets.size() != 1 || s.scene.objects.size() < 2) continue;
    const int target = s.targets[0], distractor = target == 0 ? 1 : 0;
    withoutTarget.push_back(
        editedSample(world, Split::Val, i, {SceneEdit::Kind::Remove, target, 0, 0, 0}));
    withoutDistractor.push_back(
        editedSample(world, Split::Val, i, {SceneEdit::Kind::Remove, distractor, 0, 0, 0}));
    originals.push_back(std::move(s));
  }
  if (originals.empty()) return {};
  const auto answers = [&model](const std::vector<Sample>& set) {
    std::vector<const Sample*> pointers;
    for (const auto& s : set) pointers.push_back(&s);
    return greedyAnswers(model, pointers);
  };
  const auto was = answers(originals), noTarget = answers(withoutTarget),
             noDistractor = answers(withoutDistractor);
  double flipsTarget = 0, flipsDistractor = 0;
  for (size_t i = 0; i < was.size(); ++i) {
    flipsTarget += noTarget[i] != was[i];
    flipsDistractor += noDistractor[i] != was[i];
  }
  const double n = static_cast<double>(was.size());
  return {row(key, probe, "flip_rate_target", flipsTarget / n),
          row(key, probe, "flip_rate_distractor", flipsDistractor / n),
          row(key, probe, "score", (flipsTarget - flipsDistractor) / n),
          row(key, probe, "items", n)};
}

std::vector<ResultRow> answerRows(Mllm& model, const WorldConfig& world,
                                  const MeasureSettings& settings, const std::string& prefix,
                                  const ResultRow& key) {
  auto rows = vqaRows(model, world, settings.vqaSamples, prefix + "vqa", key, settings.firstItem);
  const auto where = localisationRows(model, world, settings.localisationSamples,
                                      prefix + "localisation", key, settings.firstItem);
  rows.insert(rows.end(), where.begin(), where.end());
  const auto grounded = groundingRows(model, world, settings.localisationSamples,
                                      prefix + "grounding", key, settings.firstItem);
  rows.insert(rows.end(), grounded.begin(), grounded.end());
  return rows;
}

}  // namespace pivot
