#include "model/vision_transformer.h"

#include <algorithm>

#include "model/attention.h"
#include "model/linear.h"
#include "torch_compat.h"

namespace pivot {

SiglipAttentionImpl::SiglipAttentionImpl(const VisionConfig& c) : numHeads(c.num_attention_heads) {
  const int64_t d = c.hidden_size;
  q_proj = register_module("q_proj", torch::nn::Linear(d, d));
  k_proj = register_module("k_proj", torch::nn::Linear(d, d));
  v_proj = register_module("v_proj", torch::nn::Linear(d, d));
  out_proj = register_module("out_proj", torch::nn::Linear(d, d));
}

torch::Tensor SiglipAttentionImpl::forward(const torch::Tensor& x,
                                           const torch::Tensor& additiveMask) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), hs = D / numHeads;
  auto split = [&](const torch::Tensor& t) { return t.view({B, T, numHeads, hs}).transpose(1, 2); };
  auto q = split(linear(q_proj, x));  // (B, nh, T, hs)
  auto k = split(linear(k_proj, x));
  auto v = split(linear(v_proj, x));
  auto y = attention(q, k, v, additiveMask, keepAttention ? &lastAttention : nullptr);
  y = y.transpose(1, 2).contiguous().view({B, T, D});  // (B, T, D)
  return linear(out_proj, y);
}

SiglipMlpImpl::SiglipMlpImpl(const VisionConfig& c) {
  fc1 = register_module("fc1", torch::nn::Linear(c.hidden_size, c.intermediate_size));
  fc2 = register_module("fc2", torch::nn::Linear(c.intermediate_size, c.hidden_size));
}

torch::Tensor SiglipMlpImpl::forward(const torch::Tensor& x) {
  return linear(fc2, torch::gelu(linear(fc1, x), "tanh"));  // gelu_pytorch_tanh
}

SiglipEncoderLayerImpl::SiglipEncoderLayerImpl(const VisionConfig& c) {
  auto ln = torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps);
  layer_norm1 = register_module("layer_norm1", torch::nn::LayerNorm(ln));
  self_attn = register_module("self_attn", SiglipAttention(c));
  layer_norm2 = register_module("layer_norm2", torch::nn::LayerNorm(ln));
  mlp = register_module("mlp", SiglipMlp(c));
}

torch::Tensor SiglipEncoderLayerImpl::forward(const torch::Tensor& x,
                                              const torch::Tensor& additiveMask) {
  auto h = x + self_attn(layer_norm1(x), additiveMask);
  return h + mlp(layer_norm2(h));
}

SiglipEmbeddingsImpl::SiglipEmbeddingsImpl(const VisionConfig& c) {
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size)
                            .stride(c.patch_size)));
  position_embedding =
      register_module("position_embedding", torch::nn::Embedding(c.numPatches(), c.hidden_size));
}

torch::Tensor SiglipEmbeddingsImpl::forward(const torch::Tensor& pixels) {
  auto patches = patch_embedding(pixels);                      // (B, D, H/p, W/p)
  patches = patches.flatten(/*start_dim=*/2).transpose(1, 2);  // (B, N, D), row-major patch order
  return patches + position_embedding->weight.unsqueeze(0);    // learned position per patch
}

SiglipEncoderImpl::SiglipEncoderImpl(const VisionConfig& c) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < c.num_hidden_layers; ++i) layers->push_back(SiglipEncoderLayer(c));
}

VisionTransformerImpl::VisionTransformerImpl(const VisionConfig& c) : config(c) {
  embeddings = register_module("embeddings", SiglipEmbeddings(c));
  encoder = register_module("encoder", SiglipEncoder(c));
  post_layernorm = register_module(
      "post_layernorm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

int VisionTransformerImpl::resolveLayer(int featureLayer) const {
  const int count = config.num_hidden_layers + 1;  // embeddings + one per layer
  const int index = featureLayer < 0 ? count + featureLayer : featureLayer;
  TORCH_CHECK(index >= 0 && index < count, "vision_feature_layer ", featureLayer, " is outside 0..",
              count - 1);
  return index;
}

std::vector<torch::Tensor> VisionTransformerImpl::hiddenStates(const torch::Tensor& pixels,
                                                               int lastLayer) {
  const int L = lastLayer < 0 ? config.num_hidden_layers : lastLayer;
  std::vector<torch::Tensor> states;
  states.reserve(L + 1);
  captured = torch::Tensor();
  states.push_back(embeddings(pixels));  // (B, N, D)
  for (int i = 0; i < L; ++i)
    states.push_back(encoder->layers->at<SiglipEncoderLayerImpl>(i).forward(states.back()));
  if (captureLayer >= 0 && captureLayer < static_cast<int>(states.size()))
    captured = states[static_cast<size_t>(captureLayer)];
  return states;
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& pixels) {
  return post_layernorm(hiddenStates(pixels).back());
}

torch::Tensor VisionTransformerImpl::features(const torch::Tensor& pixels, int featureLayer) {
  const int index = resolveLayer(featureLayer);
  return hiddenStates(pixels, index).back();  // (B, N, D)
}

torch::Tensor VisionTransformerImpl::features(const torch::Tensor& pixels,
                                              const std::vector<int>& featureLayers) {
  TORCH_CHECK(!featureLayers.empty(), "vision_feature_layer lists no layer");
  if (featureLayers.size() == 1) return features(pixels, featureLayers[0]);
  std::vector<int> indices;
  for (int layer : featureLayers) indices.push_back(resolveLayer(layer));
  const auto states = hiddenStates(pixels, *std::max_element(indices.begin(), indices.end()));
  std::vector<torch::Tensor> picked;
  for (int index : indices) picked.push_back(states[static_cast<size_t>(index)]);
  return torch::cat(picked, /*dim=*/-1);
}

}  // namespace pivot
