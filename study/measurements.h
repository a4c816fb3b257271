// What an experiment measures on each encoder and each MLLM, as result rows (store/results.h):
//   probes          linear probes (ShapesWorld shape, colour, conjunction, count; Fashion-MNIST
//   when
//                   installed) and the segmentation probe over several seeds, on frozen vision
//                   towers; each encoder's features are computed once per split and reused across
//                   tasks, C and probe seeds
//   vqa             an MLLM's held-out VQA by category, chosen log-prob and pairwise accuracy
//   swap_*          a stage-2 encoder under the stage-1 projector and LM (the swap test): VQA and
//                   localisation again
//   localisation    gradient-map mass inside the asked-about object and the pointing game
#pragma once
#include <string>
#include <vector>

#include "data/shapes_world.h"
#include "model/mllm.h"
#include "results/results_table.h"

namespace pivot {

struct MeasureSettings {
  int probeTrain = 512, probeVal = 256, probeTest = 512;
  int segmentationSeeds = 6;
  int vqaSamples = 192;
  int localisationSamples = 96;
  bool fashionMnist = true;  // skipped (with a message) when the dataset is not installed
};

// `key` gives sweep, seed and encoder of every row returned.
std::vector<ResultRow> probeEncoder(Mllm& model, const WorldConfig& world,
                                    const MeasureSettings& settings, const ResultRow& key);
std::vector<ResultRow> vqaRows(Mllm& model, const WorldConfig& world, int samples,
                               const std::string& probe, const ResultRow& key);
std::vector<ResultRow> localisationRows(Mllm& model, const WorldConfig& world, int samples,
                                        const std::string& probe, const ResultRow& key);
// How the MLLM answers and where its encoder looks: VQA then localisation rows, named
// "<prefix>vqa" and "<prefix>localisation" ("" for a model's own, "swap_" for the swap test).
std::vector<ResultRow> answerRows(Mllm& model, const WorldConfig& world,
                                  const MeasureSettings& settings, const std::string& prefix,
                                  const ResultRow& key);

bool fashionMnistInstalled();

}  // namespace pivot
