// The LLaVA-style multimodal model: vision tower -> mlp2x_gelu projector -> Qwen2 language model.
// Names follow HF's LlavaForConditionalGeneration: vision_tower.*,
// multi_modal_projector.linear_{1,2}.*, language_model.model.*, language_model.lm_head.*
#pragma once
#include <torch/torch.h>

#include "model/causal_lm.h"
#include "model/model_config.h"
#include "model/vision_transformer.h"

namespace pivot {

struct ProjectorImpl : torch::nn::Module {
  ProjectorImpl(int64_t visionDim, int64_t textDim, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);  // Linear-GELU-Linear, (B, N, Dv) -> (B, N, Dt)
  torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(Projector);

// One batch of token sequences in which each row holds numPatches image-token ids where the image
// goes.
struct MllmInputs {
  // (I, C, H, W) float: the images of the rows in order, one per run of image placeholders (a row
  // may have none or several; I = 0 for text only). When the rows show the same images k times
  // in turn (DPO: the chosen rows, then the rejected rows), I holds them once: each image is
  // encoded once and its tokens are spliced into all k.
  torch::Tensor pixels;
  torch::Tensor inputIds;       // (B, T) int64, image placeholder expanded to numPatches copies
  torch::Tensor attentionMask;  // (B, T) int64, 1 = real token, 0 = padding (right padding)
  torch::Tensor labels;         // (B, T) int64, target of position t is labels[t]; -100 = ignored
  torch::Tensor prefixLen;      // (B) int64, tokens before the response (attend bidirectionally)
  int64_t logitsFrom = 0;       // logits only for positions >= this (the first labelled position)
  // Undefined for one sequence per row. Two responses sharing their prompt in one row (packPairs):
  torch::Tensor positionIds;  // (B, T) int64, each response's positions continue the prompt's
  torch::Tensor branch;       // (B, T) int64, 0 prompt, 1 and 2 the responses (buildAttentionMask)

  // The labels of the positions that get logits, (B, T - logitsFrom).
  torch::Tensor targetLabels() const {
    return labels.narrow(1, logitsFrom, labels.size(1) - logitsFrom);
  }
};

struct MllmImpl : torch::nn::Module {
  explicit MllmImpl(const MllmConfig& c);

  // Image tokens after the projector, (B, N, Dt). The tensor the paper's gradient maps are taken
  // on.
  torch::Tensor visualTokens(const torch::Tensor& pixels);
  // Text embeddings with the visual tokens spliced in at the image-token positions. (B, T, Dt)
  torch::Tensor spliceEmbeddings(const torch::Tensor& inputIds, const torch::Tensor& visual);
  // How the visual tokens enter autograd: through the vision tower and projector (training, and
  // maps on a vision layer), or as a leaf computed without recording the tower (a map of the
  // visual tokens alone: the same values, without the tower's autograd bookkeeping).
  enum class Visual { Recorded, Leaf };
  // The language model's input: token embeddings with the images' visual tokens spliced in at
  // their placeholders, (B, T, Dt). When visualOut is given it receives the visual tokens.
  torch::Tensor embedInputs(const MllmInputs& in, torch::Tensor* visualOut = nullptr,
                            Visual visual = Visual::Recorded);
  // logits (B, T - in.logitsFrom, V), aligned with in.targetLabels(). When visualOut is given it
  // receives the visual tokens (for attribution).
  torch::Tensor forward(const MllmInputs& in, torch::Tensor* visualOut = nullptr,
                        Visual visual = Visual::Recorded);

  MllmConfig config;
  VisionTransformer vision_tower{nullptr};
  Projector multi_modal_projector{nullptr};
  CausalLM language_model{nullptr};
};
TORCH_MODULE(Mllm);

// log p(labels[t] | prefix) per position, 0 where labels == -100. logits (B, T, V) -> (B, T).
// Labels are already aligned with logits (labels[t] is the token predicted at position t).
torch::Tensor tokenLogProbs(const torch::Tensor& logits, const torch::Tensor& labels);
// Summed response log-probs, (B): what DPO compares.
torch::Tensor sequenceLogProbs(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace pivot
