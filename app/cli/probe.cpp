// `pivot probe`: linear and segmentation probes of frozen vision encoders (SCIENCE.md, findings 2
// and 3) on ShapesWorld, one or several checkpoints, features computed once per split and reused
// across the C grid and the segmentation seeds.
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "store/run_store.h"
#include "training/batches.h"
#include "training/probes.h"
#include "training/run_checkpoint.h"
#include "training/trainer.h"

namespace pivot::cli {
namespace {

struct SplitData {
  torch::Tensor patches;  // (B, N, D)
  torch::Tensor labels;   // (B) probe task labels
  torch::Tensor patchLabels;  // (B, N)
};

SplitData featuresOf(LoadedCheckpoint& m, const ShapesWorld& world, Split split, int count, const ProbeArgs& a) {
  const int size = m.config.model.vision.image_size, grid = size / m.config.model.vision.patch_size;
  const auto device = m.model->parameters().front().device();
  std::vector<torch::Tensor> patches;
  std::vector<int64_t> labels, cells;
  for (int start = 0; start < count; start += 64) {
    std::vector<Sample> samples;
    std::vector<const Scene*> scenes;
    for (int i = start; i < std::min(count, start + 64); ++i) samples.push_back(world.sample(split, i));
    for (const auto& s : samples) {
      scenes.push_back(&s.scene);
      labels.push_back(probeLabel(a.task, s));
      const auto p = patchLabels(s.scene.classMask, size, grid);
      cells.insert(cells.end(), p.begin(), p.end());
    }
    patches.push_back(patchFeatures(m.model, imageTensor(scenes).to(device), a.layer, a.afterProjector));
  }
  SplitData d;
  d.patches = torch::cat(patches);
  d.labels = torch::tensor(labels, torch::kInt64);
  d.patchLabels = torch::tensor(cells, torch::kInt64).view({count, grid * grid});
  return d;
}

}  // namespace

int cmdProbe(const std::string& workspace, const ProbeArgs& a) {
  if (a.checkpoints.empty()) throw std::runtime_error("give at least one --checkpoint RUN[@STEP]");
  if (a.trainSamples < 10 || a.valSamples < 10 || a.testSamples < 10 || a.segSeeds < 1)
    throw std::runtime_error("--train, --val and --test need at least 10 samples, --seg-seeds at least 1");
  std::cout << "probe task '" << a.task << "', features from layer " << a.layer << (a.afterProjector ? " after the projector" : "")
            << "; linear probe C grid {0.01 .. 3.16} chosen on val, top-1 on test; segmentation probe "
            << a.segSeeds << " seeds\n";
  std::cout << std::left << std::setw(26) << "checkpoint" << std::setw(10) << "best C" << std::setw(10) << "val acc"
            << std::setw(11) << "test acc" << std::setw(22) << "seg macro recall" << "seg mIoU\n";
  for (const auto& spec : a.checkpoints) {
    auto m = loadRunCheckpoint(workspace, spec);
    const ShapesWorld world(m.config.world);
    const int classes = probeTaskClasses(a.task, m.config.world);
    const auto train = featuresOf(m, world, Split::Train, a.trainSamples, a);
    const auto val = featuresOf(m, world, Split::Val, a.valSamples, a);
    const auto test = featuresOf(m, world, Split::Test, a.testSamples, a);
    const auto linear = linearProbe(pooledFeatures(train.patches), train.labels, pooledFeatures(val.patches), val.labels,
                                    pooledFeatures(test.patches), test.labels, classes);
    std::vector<double> recalls, ious;
    for (int seed = 0; seed < a.segSeeds; ++seed) {
      const auto seg = segmentationProbe(train.patches, train.patchLabels, test.patches, test.patchLabels,
                                         ShapesWorld::numClasses(), static_cast<uint64_t>(seed));
      recalls.push_back(seg.macroRecall);
      ious.push_back(seg.meanIoU);
    }
    auto meanStd = [](const std::vector<double>& v) {
      double mean = 0, ss = 0;
      for (double x : v) mean += x / v.size();
      for (double x : v) ss += (x - mean) * (x - mean);
      return std::pair{mean, v.size() > 1 ? std::sqrt(ss / (v.size() - 1)) : 0.0};
    };
    const auto [recall, recallStd] = meanStd(recalls);
    const auto [iou, iouStd] = meanStd(ious);
    std::ostringstream segText, iouText;
    segText << std::fixed << std::setprecision(4) << recall << " +- " << recallStd;
    iouText << std::fixed << std::setprecision(4) << iou << " +- " << iouStd;
    std::cout << std::setw(26) << m.label() << std::setw(10) << linear.bestC << std::fixed << std::setprecision(4)
              << std::setw(10) << linear.valAccuracy << std::setw(11) << linear.testAccuracy << std::setw(22)
              << segText.str() << iouText.str() << "\n";
    std::cout.unsetf(std::ios::fixed);
    RunStore store(storePath(workspace));
    const std::string name = "probe/" + a.task + "/layer" + std::to_string(a.layer) + (a.afterProjector ? "+projector" : "");
    store.addEvaluation(m.runId, {{m.step, name, "linear/test_accuracy", linear.testAccuracy},
                                  {m.step, name, "linear/val_accuracy", linear.valAccuracy},
                                  {m.step, name, "linear/best_c", linear.bestC},
                                  {m.step, name, "segmentation/macro_recall_mean", recall},
                                  {m.step, name, "segmentation/macro_recall_std", recallStd},
                                  {m.step, name, "segmentation/miou_mean", iou},
                                  {m.step, name, "segmentation/miou_std", iouStd}});
  }
  return 0;
}

}  // namespace pivot::cli
