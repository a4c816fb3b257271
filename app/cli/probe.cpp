// `pivot probe`: linear and segmentation probes of frozen vision encoders (the paper's findings 2
// and 3) on ShapesWorld, one or several checkpoints, features computed once per split and reused
// across the C grid and the segmentation seeds.
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "data/idx_reader.h"
#include "data/image_folder.h"
#include "data/image_processor.h"
#include "io/hf_llava.h"
#include "visualization/overlay.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "training/evaluate.h"
#include "store/run_store.h"
#include "training/batches.h"
#include "training/probes.h"
#include "training/run_checkpoint.h"
#include "training/trainer.h"

namespace pivot::cli {

namespace {

// Linear probe on an ImageFolder: the encoder's own processor, C chosen on val, top-1 on test.
LinearProbeResult imageFolderProbe(Mllm& model, const ImageProcessorConfig& processor,
                                   const ImageFolder& folder, const ProbeArgs& a) {
  auto features = [&](const ImageFolderSplit& split, int cap) {
    const auto taken = firstImages(split, static_cast<size_t>(cap));
    return std::make_pair(
        pooledFileFeatures(model, taken.paths, processor, readRgb8, a.layer, a.afterProjector),
        torch::tensor(taken.labels, torch::kInt64));
  };
  const auto [trainX, trainY] = features(folder.train, a.trainSamples);
  const auto [valX, valY] = features(folder.val, a.valSamples);
  const auto [testX, testY] = features(folder.test, a.testSamples);
  return linearProbe(trainX, trainY, valX, valY, testX, testY,
                     static_cast<int>(folder.classes.size()));
}

void printLinearRow(const std::string& label, const LinearProbeResult& linear) {
  std::cout << std::setw(26) << label << std::setw(10) << linear.bestC << std::fixed
            << std::setprecision(4) << std::setw(10) << linear.valAccuracy << std::setw(11)
            << linear.testAccuracy << "-\n";
  std::cout.unsetf(std::ios::fixed);
}

// A linear probe's row, printed and stored with the run's evaluations.
void reportLinear(const std::string& workspace, const LoadedCheckpoint& m,
                  const std::string& evaluation, const LinearProbeResult& linear) {
  printLinearRow(m.label(), linear);
  RunStore(storePath(workspace))
      .addEvaluation(m.runId, {{m.step, evaluation, "linear/test_accuracy", linear.testAccuracy},
                               {m.step, evaluation, "linear/val_accuracy", linear.valAccuracy},
                               {m.step, evaluation, "linear/best_c", linear.bestC}});
}

}  // namespace

int cmdProbe(const std::string& workspace, const ProbeArgs& args) {
  ProbeArgs a = args;
  if (!a.images.empty()) a.task = "imagefolder";
  if (a.checkpoints.empty() && a.models.empty())
    throw std::runtime_error("give at least one --checkpoint RUN[@STEP] or --model DIR");
  if (a.task == "imagefolder" && a.images.empty())
    throw std::runtime_error("--task imagefolder needs --images DIR");
  if (!a.models.empty() && a.task != "imagefolder")
    throw std::runtime_error("--model folders are probed on an --images DIR (ImageFolder)");
  if (a.trainSamples < 10 || a.valSamples < 10 || a.testSamples < 10 || a.segSeeds < 1)
    throw std::runtime_error(
        "--train, --val and --test need at least 10 samples, --seg-seeds at least 1");
  const bool hasMasks = a.task != "imagefolder" && a.task != "fashion-mnist";
  ImageFolder folder;
  if (a.task == "imagefolder") {
    folder = openImageFolder(a.images);
    std::cout << "ImageFolder " << a.images << ": " << folder.classes.size() << " classes; "
              << std::min<size_t>(folder.train.size(), a.trainSamples) << " train / "
              << std::min<size_t>(folder.val.size(), a.valSamples) << " val / "
              << std::min<size_t>(folder.test.size(), a.testSamples) << " test images (of "
              << folder.train.size() << " / " << folder.val.size() << " / " << folder.test.size()
              << ")\n";
  }
  std::cout << "probe task '" << a.task << "', features from layer " << a.layer
            << (a.afterProjector ? " after the projector" : "")
            << "; linear probe C grid {0.01 .. 3.16} chosen on val, top-1 on test; "
            << (hasMasks ? "segmentation probe " + std::to_string(a.segSeeds) + " seeds"
                         : std::string("no segmentation probe (the images have no masks)"))
            << "\n";
  std::cout << std::left << std::setw(26) << "checkpoint" << std::setw(10) << "best C"
            << std::setw(10) << "val acc" << std::setw(11) << "test acc" << std::setw(22)
            << "seg macro recall"
            << "seg mIoU\n";
  const std::string evaluation = "probe/" + a.task + "/layer" + std::to_string(a.layer) +
                                 (a.afterProjector ? "+projector" : "");
  for (const auto& dir : a.models) {  // folders: printed, not stored (no run to store them in)
    HfLlava loaded = loadHfLlava(dir);
    const auto processor = imageProcessorConfigFromFile(
        (std::filesystem::path(dir) / "preprocessor_config.json").string());
    printLinearRow(std::filesystem::path(dir).filename().string(),
                   imageFolderProbe(loaded.model, processor, folder, a));
  }
  for (const auto& spec : a.checkpoints) {
    auto m = loadRunCheckpoint(workspace, spec);
    if (a.task == "imagefolder") {
      // A real model's run has its folder's processor; a ShapesWorld run takes images as SigLIP
      // does (resize to its size, mean = std = 0.5), which is how its own scenes are normalised.
      ImageProcessorConfig processor;
      processor.width = processor.height = m.config.model.vision.image_size;
      if (m.config.realModel())
        processor = imageProcessorConfigFromFile(
            (std::filesystem::path(m.config.model_dir) / "preprocessor_config.json").string());
      const auto linear = imageFolderProbe(m.model, processor, folder, a);
      reportLinear(workspace, m, evaluation, linear);
      continue;
    }
    if (a.task == "fashion-mnist") {  // a real labelled dataset: linear probe only (no masks)
      const int S = m.config.model.vision.image_size;
      const auto train = fashionMnist(false, 0, a.trainSamples, S);
      const auto val = fashionMnist(false, a.trainSamples, a.valSamples, S);
      const auto test = fashionMnist(true, 0, a.testSamples, S);
      const auto linear = linearProbe(
          pooledImageFeatures(m.model, train.pixels, a.layer, a.afterProjector), train.labels,
          pooledImageFeatures(m.model, val.pixels, a.layer, a.afterProjector), val.labels,
          pooledImageFeatures(m.model, test.pixels, a.layer, a.afterProjector), test.labels, 10);
      reportLinear(workspace, m, evaluation, linear);
      continue;
    }
    const ShapesWorld world(m.config.world);
    const int classes = probeTaskClasses(a.task, m.config.world);
    const auto train = shapesWorldFeatures(m.model, world, Split::Train, a.trainSamples, a.layer,
                                           a.afterProjector);
    const auto val =
        shapesWorldFeatures(m.model, world, Split::Val, a.valSamples, a.layer, a.afterProjector);
    const auto test =
        shapesWorldFeatures(m.model, world, Split::Test, a.testSamples, a.layer, a.afterProjector);
    const auto linear = linearProbe(train.pooled, train.labels(a.task), val.pooled,
                                    val.labels(a.task), test.pooled, test.labels(a.task), classes);
    const auto seg = segmentationProbeOverSeeds(train, test, a.segSeeds);
    const double recall = seg.macroRecall.mean, recallStd = seg.macroRecall.std;
    const double iou = seg.meanIoU.mean, iouStd = seg.meanIoU.std;
    std::ostringstream segText, iouText;
    segText << std::fixed << std::setprecision(4) << recall << " +- " << recallStd;
    iouText << std::fixed << std::setprecision(4) << iou << " +- " << iouStd;
    std::cout << std::setw(26) << m.label() << std::setw(10) << linear.bestC << std::fixed
              << std::setprecision(4) << std::setw(10) << linear.valAccuracy << std::setw(11)
              << linear.testAccuracy << std::setw(22) << segText.str() << iouText.str() << "\n";
    std::cout.unsetf(std::ios::fixed);
    RunStore store(storePath(workspace));
    const std::string& name = evaluation;
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
