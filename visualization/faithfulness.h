// Faithfulness of an attribution map, tested causally.
// The deletion curve: the most relevant patches are greyed out first (0 in the model's [-1, 1]
// input), in steps of a tenth of the patches, while the answer's log-prob is tracked; a faithful
// map makes it fall fast, so a small area under the curve is good.
// Visual-token ablation: the same question asked of the language model's input, the image's tokens
// after the projector, each replaced by its image's mean token (removal), or all replaced and then
// restored (insertion), in the map's order or in a random one. A map that finds what the answer
// reads makes removal fall faster, and insertion rise faster, than a random order.
#pragma once
#include <torch/torch.h>

#include "model/mllm.h"

namespace pivot {

struct DeletionCurve {
  std::vector<double> fractions;  // share of patches deleted: 0, 0.1, ..., 1
  torch::Tensor logProbs;         // (B, steps + 1) answer log-prob at each share, CPU
  torch::Tensor area;             // (B) trapezoid area under logProbs over fractions
};

// maps (B, g, g) from explain(); `in` holds the rows whose answer is tracked.
DeletionCurve deletionCurve(Mllm& model, const MllmInputs& in, const torch::Tensor& maps,
                            int steps = 10);

enum class AblationOrder { MapFirst, Random };  // most relevant first, or a seeded random order

struct AblationCurve {
  std::vector<double> fractions;  // share of visual tokens removed (or restored): 0, 0.1, ..., 1
  torch::Tensor logProbs;         // (B, steps + 1) answer log-prob at each share, CPU
  torch::Tensor area;             // (B) trapezoid area under logProbs over fractions
};

// maps (B, g, g) with g * g = the image's visual tokens (the gradient map's grid); `in` holds one
// image per row. Removal starts at the intact image and ends with every token its image's mean;
// insertion runs the other way.
AblationCurve tokenAblationCurve(Mllm& model, const MllmInputs& in, const torch::Tensor& maps,
                                 AblationOrder order, bool insertion, int steps = 10,
                                 uint64_t seed = 0);

}  // namespace pivot
