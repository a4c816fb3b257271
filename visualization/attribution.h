// Where the vision encoder looks: attribution maps over the image-token grid for a question and
// answer. Torch only (no Qt, no OpenCV).
//   gradmap  the paper's map: gradient of a loss w.r.t. the visual tokens after the projector,
//            per-token L1 (or L2) norm over channels, border cells suppressed, min-max, gamma 1.1
//   gradcam  Grad-CAM on a vision layer: relu(sum_d mean_n(dL/dA)_d * A_nd)
//   hirescam HiResCAM: relu(sum_d dL/dA_nd * A_nd)
//   layercam LayerCAM: sum_d relu(dL/dA_nd) * A_nd
//   rollout  attention rollout over the vision layers up to the feature layer (heads fused by
//            mean, min or max; the weakest discardRatio of each layer's attention dropped)
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/mllm.h"

#include "config/vocabulary.h"

namespace pivot {

// On a 4 x 4 grid the border ring is 12 of 16 cells: suppressing it would erase the map.
constexpr int64_t kMinGridForBorderSuppression = 6;

// AttributionMethod and its name table live in config/vocabulary.h (the window lists them).
inline const char* attributionMethodName(AttributionMethod m) { return name(m); }

// What the gradient methods differentiate.
enum class AttributionTarget {
  AnswerLogProb,  // log p(answer | image, question), summed over the answer's tokens
  SftLoss,        // the SFT loss of the chosen answer
  DpoLoss         // the DPO loss of the pair (needs rejected rows), at policy == reference
};
AttributionTarget attributionTargetFromName(const std::string& name);

struct AttributionOptions {
  AttributionMethod method = AttributionMethod::GradMap;
  AttributionTarget target = AttributionTarget::SftLoss;
  int layer = -2;              // vision hidden-state index for the CAM methods (HF indexing)
  bool l2 = false;             // gradmap: L2 instead of L1 norm over channels
  bool suppressBorder = true;  // flatten the outermost ring of cells before normalising (grids of
                               // at least kMinGridForBorderSuppression cells a side)
  double gamma = 1.1;          // applied after min-max normalisation
  std::string headFusion = "mean";  // rollout: mean | min | max
  double discardRatio = 0.9;  // rollout: share of the weakest attention entries dropped per layer
  double beta = 0.1;          // DPO target
};

struct AttributionResult {
  torch::Tensor maps;                 // (B, gh, gw) in [0, 1], on CPU
  torch::Tensor raw;                  // (B, gh, gw) before suppression and normalisation
  std::vector<std::string> warnings;  // e.g. all gradients zero (the layer is never used)
};

// One map per answer token (issue 29): for row 0 of `in`, the map (gradmap or a CAM, as `options`
// say; the target is each token's own log-prob) of every labelled position's token, in order.
struct TokenMaps {
  std::vector<int64_t> positions;  // into in.targetLabels()'s columns
  std::vector<int64_t> tokenIds;   // the answer token each map explains
  torch::Tensor logProbs;          // (K) that token's log-prob, CPU
  torch::Tensor maps;              // (K, gh, gw) in [0, 1], CPU
  std::vector<std::string> warnings;
};
TokenMaps explainPerToken(Mllm& model, const MllmInputs& in, const AttributionOptions& options);

// `in` holds the chosen rows (B); for the DPO target, `rejected` holds the same samples with the
// rejected answers. The model's parameters are not changed; no optimizer state is touched.
AttributionResult explain(Mllm& model, const MllmInputs& in, const AttributionOptions& options,
                          const MllmInputs* rejected = nullptr);

// (B, N) token scores -> (B, g, g); N must be g*g, or g*g plus leading special tokens (dropped).
torch::Tensor tokensToGrid(const torch::Tensor& scores);
// Map b of (B, gh, gw) maps as gh * gw floats, row-major (what overlays and scores take).
std::vector<float> mapValues(const torch::Tensor& maps, int64_t b);

// Sets the border ring to the interior's minimum (when asked and the grid is large enough),
// min-max normalises each map, applies gamma.
torch::Tensor normaliseMaps(const torch::Tensor& grids, bool suppressBorder, double gamma);

}  // namespace pivot
