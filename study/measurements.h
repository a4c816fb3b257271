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
//   grounding       how often the answer changes when the asked-about object is removed, against
//                   when another object is
//   displacement    how far an encoder moved from a reference encoder (a stage-2 arm's from its
//                   stage-1 encoder): per layer the relative change of its weights and the linear
//                   CKA of its patch tokens
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
  // The first ShapesWorld index of every split the measurements read: each base of a study draws
  // its evaluation items from its own range, so bases do not share their items' luck
  // (Fashion-MNIST's test set is fixed and shared).
  int64_t firstItem = 0;
};

// `key` gives sweep, seed and encoder of every row returned.
std::vector<ResultRow> probeEncoder(Mllm& model, const WorldConfig& world,
                                    const MeasureSettings& settings, const ResultRow& key);
// Held-out items [first, first + samples) of the validation split.
std::vector<ResultRow> vqaRows(Mllm& model, const WorldConfig& world, int samples,
                               const std::string& probe, const ResultRow& key, int64_t first = 0);
std::vector<ResultRow> localisationRows(Mllm& model, const WorldConfig& world, int samples,
                                        const std::string& probe, const ResultRow& key,
                                        int64_t first = 0);
// Whether the MLLM's answer rests on the object it is asked about (a counterfactual test,
// data/scene_edit.h): over held-out questions about one object in scenes with another, the share
// whose greedy answer changes when that object is removed (flip_rate_target: it should) and when
// another object is removed instead (flip_rate_distractor: it should not), and their difference
// (score), per item averaged; rows of probe `probe`, plus the items counted.
std::vector<ResultRow> groundingRows(Mllm& model, const WorldConfig& world, int samples,
                                     const std::string& probe, const ResultRow& key,
                                     int64_t first = 0);
// How the MLLM answers and where its encoder looks: VQA, localisation and grounding rows, named
// "<prefix>vqa", "<prefix>localisation" and "<prefix>grounding" ("" for a model's own, "swap_"
// for the swap test).
std::vector<ResultRow> answerRows(Mllm& model, const WorldConfig& world,
                                  const MeasureSettings& settings, const std::string& prefix,
                                  const ResultRow& key);

// How far `model`'s vision tower moved from `reference`'s (same architecture), as rows of probe
// "displacement": weight_change/layer_k (k = 0 the embeddings, 1..L the transformer layers) and
// weight_change/all, each ||W - W_ref|| / ||W_ref|| over the parameters of that part; cka/layer_k,
// the linear CKA of the two towers' patch tokens at hidden state k on the probe test images
// (every image's every token an item; 1 where nothing changed).
std::vector<ResultRow> displacementRows(Mllm& model, Mllm& reference, const WorldConfig& world,
                                        const MeasureSettings& settings, const ResultRow& key);

bool fashionMnistInstalled();

}  // namespace pivot
