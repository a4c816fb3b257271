// SigLIP vision tower (transformers' SiglipVisionModel), parameter names as Hugging Face writes
// them:
//   embeddings.patch_embedding.{weight,bias}, embeddings.position_embedding.weight,
//   encoder.layers.{i}.{layer_norm1,self_attn.{q,k,v,out}_proj,layer_norm2,mlp.fc1,mlp.fc2}.*,
//   post_layernorm.*
#pragma once
#include <torch/torch.h>

#include "model/model_config.h"

namespace pivot {

struct SiglipAttentionImpl : torch::nn::Module {
  explicit SiglipAttentionImpl(const VisionConfig& c);
  // (B, T, D) -> (B, T, D); additiveMask (B, 1, 1, T) hides padded keys (the text tower's captions)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& additiveMask = {});

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  int64_t numHeads;
  bool keepAttention = false;  // when set, lastAttention holds (B, nh, T, T) for attention rollout
  torch::Tensor lastAttention;
};
TORCH_MODULE(SiglipAttention);

struct SiglipMlpImpl : torch::nn::Module {
  explicit SiglipMlpImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SiglipMlp);

struct SiglipEncoderLayerImpl : torch::nn::Module {
  explicit SiglipEncoderLayerImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x,
                        const torch::Tensor& additiveMask = {});  // pre-LN block
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  SiglipAttention self_attn{nullptr};
  SiglipMlp mlp{nullptr};
};
TORCH_MODULE(SiglipEncoderLayer);

struct SiglipEmbeddingsImpl : torch::nn::Module {
  explicit SiglipEmbeddingsImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& pixels);  // (B, C, H, W) -> (B, N, D)
  torch::nn::Conv2d patch_embedding{nullptr};
  torch::nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(SiglipEmbeddings);

struct SiglipEncoderImpl : torch::nn::Module {
  explicit SiglipEncoderImpl(const VisionConfig& c);
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(SiglipEncoder);

struct VisionTransformerImpl : torch::nn::Module {
  explicit VisionTransformerImpl(const VisionConfig& c);

  // Hidden states as HF returns them: [embeddings, after layer 1, ..., after layer L] (no post-LN).
  // Stops after `lastLayer` layers (default: all), so unused top layers cost nothing.
  std::vector<torch::Tensor> hiddenStates(const torch::Tensor& pixels, int lastLayer = -1);
  // post_layernorm(hidden_states[L]), HF's last_hidden_state.
  torch::Tensor forward(const torch::Tensor& pixels);
  // HF-style index into hiddenStates (negative counts from the end, -2 = penultimate layer).
  torch::Tensor features(const torch::Tensor& pixels, int featureLayer);
  // Several of them concatenated along the feature axis, (B, N, D * layers.size()), from one pass.
  torch::Tensor features(const torch::Tensor& pixels, const std::vector<int>& featureLayers);
  int resolveLayer(int featureLayer) const;

  // Hook for attribution: when captureLayer >= 0, hiddenStates() keeps hidden state number
  // captureLayer (0 = embeddings) in `captured`, (B, N, D), part of the autograd graph. It stays
  // undefined when that layer is never computed (above the feature layer).
  int captureLayer = -1;
  torch::Tensor captured;

  VisionConfig config;
  SiglipEmbeddings embeddings{nullptr};
  SiglipEncoder encoder{nullptr};
  torch::nn::LayerNorm post_layernorm{nullptr};
};
TORCH_MODULE(VisionTransformer);

}  // namespace pivot
