// Faithfulness of an attribution map: the deletion curve. The most relevant patches are greyed out
// first (0 in the model's [-1, 1] input), in steps of a tenth of the patches, while the answer's
// log-prob is tracked; a faithful map makes it fall fast, so a small area under the curve is good.
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

}  // namespace pivot
