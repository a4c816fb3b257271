// Qwen2 causal language model (transformers' Qwen2ForCausalLM), parameter names as HF writes them:
//   model.embed_tokens.weight, model.layers.{i}.{input_layernorm,post_attention_layernorm}.weight,
//   model.layers.{i}.self_attn.{q,k,v}_proj.{weight,bias}, ...self_attn.o_proj.weight,
//   model.layers.{i}.mlp.{gate,up,down}_proj.weight, model.norm.weight, lm_head.weight
#pragma once
#include <torch/torch.h>

#include "model/model_config.h"

namespace pivot {

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// One layer's keys and values of the positions decoded so far, for incremental decoding:
// (B, nkv, S, hs) each, rotary already applied; undefined before the first call.
struct LayerKv {
  torch::Tensor keys, values;
};

struct Qwen2AttentionImpl : torch::nn::Module {
  explicit Qwen2AttentionImpl(const LmConfig& c);
  // x (B, T, D); cos/sin (B, T, hs); additiveMask (B, 1, T, S). Queries only for positions
  // >= queriesFrom (keys and values for all): output (B, T - queriesFrom, D). With a cache, the
  // keys and values of x are appended to it and the queries attend to all S = cached + T of them.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& additiveMask, int64_t queriesFrom = 0,
                        LayerKv* cache = nullptr);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t numHeads, numKvHeads, headDim;
};
TORCH_MODULE(Qwen2Attention);

struct Qwen2MlpImpl : torch::nn::Module {
  explicit Qwen2MlpImpl(const LmConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // SwiGLU
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Qwen2Mlp);

struct Qwen2DecoderLayerImpl : torch::nn::Module {
  explicit Qwen2DecoderLayerImpl(const LmConfig& c);
  // Output (B, T - outputsFrom, D): positions before outputsFrom are not computed (last layer
  // only).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& additiveMask, int64_t outputsFrom = 0,
                        LayerKv* cache = nullptr);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Qwen2Attention self_attn{nullptr};
  Qwen2Mlp mlp{nullptr};
};
TORCH_MODULE(Qwen2DecoderLayer);

struct Qwen2ModelImpl : torch::nn::Module {
  explicit Qwen2ModelImpl(const LmConfig& c);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(Qwen2Model);

// Rotary tables in HF's rotate_half layout. positions (B, T) -> cos, sin (B, T, headDim).
std::pair<torch::Tensor, torch::Tensor> rotaryTables(const torch::Tensor& positions,
                                                     int64_t headDim, double theta,
                                                     torch::ScalarType dtype);
// x (B, nh, T, hs) rotated by position: x * cos + rotate_half(x) * sin.
torch::Tensor applyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin);

// Additive attention mask (B, 1, T, T): key j is visible to query i when j <= i, or when both lie
// in the first prefixLen[b] tokens (prefix LM), and the key is not padding (attentionMask[b, j] ==
// 1), and the two do not lie on different branches: branch (B, T) numbers the segments of a row
// that continue one shared trunk (0) separately, e.g. two responses to one prompt; a token of
// branch k > 0 sees the trunk before it and its own branch only. attentionMask, prefixLen and
// branch may be undefined (no padding, purely causal, one sequence per row).
torch::Tensor buildAttentionMask(int64_t B, int64_t T, const torch::Tensor& attentionMask,
                                 const torch::Tensor& prefixLen, torch::ScalarType dtype,
                                 torch::Device device, const torch::Tensor& branch = {});

struct CausalLMImpl : torch::nn::Module {
  explicit CausalLMImpl(const LmConfig& c);

  torch::Tensor embed(const torch::Tensor& ids);  // (B, T) -> (B, T, D)
  // inputsEmbeds (B, T, D) -> logits (B, T, V). attentionMask (B, T) 1 = real token, 0 = padding;
  // positionIds (B, T) default cumsum(mask) - 1 clamped at 0 (HF's left-padding convention).
  // logitsFrom > 0 returns logits for positions >= logitsFrom only, (B, T - logitsFrom, V), like
  // HF's logits_to_keep; beyond HF, the last layer also skips the positions nobody reads.
  // branch: see buildAttentionMask.
  torch::Tensor forwardEmbeds(const torch::Tensor& inputsEmbeds,
                              const torch::Tensor& attentionMask = {},
                              const torch::Tensor& positionIds = {},
                              const torch::Tensor& prefixLen = {}, int64_t logitsFrom = 0,
                              const torch::Tensor& branch = {});
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& attentionMask = {},
                        const torch::Tensor& positionIds = {});
  // Incremental decoding: the logits of the last of T new positions, (B, V), their keys and
  // values appended to `cache` (one LayerKv per layer, filled on the first call).
  // positions (B, T); additiveMask (B, 1, T, cached + T).
  torch::Tensor forwardCached(const torch::Tensor& inputsEmbeds, const torch::Tensor& positions,
                              const torch::Tensor& additiveMask, std::vector<LayerKv>& cache);
  torch::Tensor outputWeight();  // lm_head weight, or the embedding when tied

  LmConfig config;
  Qwen2Model model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tie_word_embeddings
};
TORCH_MODULE(CausalLM);

}  // namespace pivot
