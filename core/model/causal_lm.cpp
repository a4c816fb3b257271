#include "model/causal_lm.h"

#include "model/attention.h"
#include "model/linear.h"

#include "torch_compat.h"

namespace pivot {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto xf = x.to(torch::kFloat32);  // statistics in fp32 even under bf16, as HF does
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(/*dim=*/-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

Qwen2AttentionImpl::Qwen2AttentionImpl(const LmConfig& c)
    : numHeads(c.num_attention_heads), numKvHeads(c.num_key_value_heads), headDim(c.headDim()) {
  const int64_t d = c.hidden_size;
  q_proj = register_module("q_proj", torch::nn::Linear(d, numHeads * headDim));
  k_proj = register_module("k_proj", torch::nn::Linear(d, numKvHeads * headDim));
  v_proj = register_module("v_proj", torch::nn::Linear(d, numKvHeads * headDim));
  o_proj = register_module(
      "o_proj", torch::nn::Linear(torch::nn::LinearOptions(numHeads * headDim, d).bias(false)));
}

torch::Tensor Qwen2AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                          const torch::Tensor& sin,
                                          const torch::Tensor& additiveMask, int64_t queriesFrom,
                                          LayerKv* cache) {
  const int64_t B = x.size(0), T = x.size(1), Tq = T - queriesFrom;
  auto xq = queriesFrom > 0 ? x.narrow(1, queriesFrom, Tq) : x;
  auto q = linear(q_proj, xq).view({B, Tq, numHeads, headDim}).transpose(1, 2);  // (B, nh, Tq, hs)
  auto k = linear(k_proj, x).view({B, T, numKvHeads, headDim}).transpose(1, 2);  // (B, nkv, T, hs)
  auto v = linear(v_proj, x).view({B, T, numKvHeads, headDim}).transpose(1, 2);  // (B, nkv, T, hs)
  q = applyRotary(q, cos.narrow(1, queriesFrom, Tq), sin.narrow(1, queriesFrom, Tq));
  k = applyRotary(k, cos, sin);
  if (cache) {  // the new positions' keys and values join those already decoded
    if (cache->keys.defined()) {
      k = torch::cat({cache->keys, k}, /*dim=*/2);
      v = torch::cat({cache->values, v}, /*dim=*/2);
    }
    cache->keys = k;
    cache->values = v;
  }
  auto mask =
      queriesFrom > 0 ? additiveMask.narrow(2, queriesFrom, Tq) : additiveMask;  // (B, 1, Tq, T)
  auto y = attention(q, k, v, mask);  // (B, nh, Tq, hs); head h reads kv head h / groups
  y = y.transpose(1, 2).contiguous().view({B, Tq, numHeads * headDim});
  return linear(o_proj, y);
}

Qwen2MlpImpl::Qwen2MlpImpl(const LmConfig& c) {
  auto lin = [](int64_t i, int64_t o) { return torch::nn::LinearOptions(i, o).bias(false); };
  gate_proj =
      register_module("gate_proj", torch::nn::Linear(lin(c.hidden_size, c.intermediate_size)));
  up_proj = register_module("up_proj", torch::nn::Linear(lin(c.hidden_size, c.intermediate_size)));
  down_proj =
      register_module("down_proj", torch::nn::Linear(lin(c.intermediate_size, c.hidden_size)));
}

torch::Tensor Qwen2MlpImpl::forward(const torch::Tensor& x) {
  return linear(down_proj, torch::silu(linear(gate_proj, x)) * linear(up_proj, x));
}

Qwen2DecoderLayerImpl::Qwen2DecoderLayerImpl(const LmConfig& c) {
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  self_attn = register_module("self_attn", Qwen2Attention(c));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  mlp = register_module("mlp", Qwen2Mlp(c));
}

torch::Tensor Qwen2DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                             const torch::Tensor& sin,
                                             const torch::Tensor& additiveMask, int64_t outputsFrom,
                                             LayerKv* cache) {
  auto residual = outputsFrom > 0 ? x.narrow(1, outputsFrom, x.size(1) - outputsFrom) : x;
  auto h = residual + self_attn(input_layernorm(x), cos, sin, additiveMask, outputsFrom, cache);
  return h + mlp(post_attention_layernorm(h));
}

Qwen2ModelImpl::Qwen2ModelImpl(const LmConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < c.num_hidden_layers; ++i) layers->push_back(Qwen2DecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

std::pair<torch::Tensor, torch::Tensor> rotaryTables(const torch::Tensor& positions,
                                                     int64_t headDim, double theta,
                                                     torch::ScalarType dtype) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(positions.device());
  auto exponent = torch::arange(0, headDim, 2, opts.dtype(torch::kInt64)).to(torch::kFloat32) /
                  static_cast<double>(headDim);
  auto invFreq = 1.0 / torch::pow(theta, exponent);                    // (hs/2)
  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * invFreq;  // (B, T, hs/2)
  auto emb = torch::cat({freqs, freqs}, /*dim=*/-1);                   // (B, T, hs)
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor applyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, /*dim=*/-1);          // rotate_half
  return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);  // cos/sin (B, 1, T, hs)
}

torch::Tensor buildAttentionMask(int64_t B, int64_t T, const torch::Tensor& attentionMask,
                                 const torch::Tensor& prefixLen, torch::ScalarType dtype,
                                 torch::Device device, const torch::Tensor& branch) {
  auto idx = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(device));
  auto allowed =
      (idx.unsqueeze(0) <= idx.unsqueeze(1)).unsqueeze(0).expand({B, T, T});  // [b, i, j]
  if (prefixLen.defined()) {
    auto p = prefixLen.to(device).view({B, 1, 1});
    auto bothInPrefix = (idx.view({1, T, 1}) < p) & (idx.view({1, 1, T}) < p);
    allowed = allowed | bothInPrefix;
  }
  if (branch.defined()) {
    auto query = branch.to(device).view({B, T, 1}), key = branch.to(device).view({B, 1, T});
    allowed = allowed & ((key == 0) | (key == query));
  }
  if (attentionMask.defined())
    allowed = allowed & attentionMask.to(device).to(torch::kBool).view({B, 1, T});
  auto zeros = torch::zeros({B, T, T}, torch::TensorOptions().dtype(dtype).device(device));
  return zeros.masked_fill(allowed.logical_not(), maskedValue(dtype)).unsqueeze(1);  // (B, 1, T, T)
}

CausalLMImpl::CausalLMImpl(const LmConfig& c) : config(c) {
  model = register_module("model", Qwen2Model(c));
  if (!c.tie_word_embeddings)
    lm_head = register_module(
        "lm_head",
        torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
}

torch::Tensor CausalLMImpl::embed(const torch::Tensor& ids) { return model->embed_tokens(ids); }

torch::Tensor CausalLMImpl::outputWeight() {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

torch::Tensor CausalLMImpl::forwardEmbeds(const torch::Tensor& inputsEmbeds,
                                          const torch::Tensor& attentionMask,
                                          const torch::Tensor& positionIds,
                                          const torch::Tensor& prefixLen, int64_t logitsFrom,
                                          const torch::Tensor& branch) {
  const int64_t B = inputsEmbeds.size(0), T = inputsEmbeds.size(1);
  TORCH_CHECK(logitsFrom >= 0 && logitsFrom < T, "logitsFrom ", logitsFrom, " outside 0..", T - 1);
  const auto device = inputsEmbeds.device();
  torch::Tensor positions = positionIds;
  if (!positions.defined()) {
    if (attentionMask.defined())
      positions = (attentionMask.to(torch::kInt64).cumsum(/*dim=*/1) - 1).clamp_min(0);
    else
      positions = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(device))
                      .unsqueeze(0)
                      .expand({B, T});
  }
  auto [cos, sin] =
      rotaryTables(positions, config.headDim(), config.rope_theta, inputsEmbeds.scalar_type());
  auto mask = buildAttentionMask(B, T, attentionMask, prefixLen, inputsEmbeds.scalar_type(), device,
                                 branch);
  auto h = inputsEmbeds;
  const size_t L = model->layers->size();
  for (size_t i = 0; i < L; ++i)
    h = model->layers->at<Qwen2DecoderLayerImpl>(i).forward(h, cos, sin, mask,
                                                            i + 1 == L ? logitsFrom : 0);
  h = model->norm(h);
  return applyLinear(h, outputWeight());  // (B, T, V)
}

torch::Tensor CausalLMImpl::forwardCached(const torch::Tensor& inputsEmbeds,
                                          const torch::Tensor& positions,
                                          const torch::Tensor& additiveMask,
                                          std::vector<LayerKv>& cache) {
  const size_t L = model->layers->size();
  cache.resize(L);
  auto [cos, sin] =
      rotaryTables(positions, config.headDim(), config.rope_theta, inputsEmbeds.scalar_type());
  const int64_t T = inputsEmbeds.size(1);
  auto h = inputsEmbeds;
  for (size_t i = 0; i < L; ++i)  // the last layer computes only the last position's output
    h = model->layers->at<Qwen2DecoderLayerImpl>(i).forward(h, cos, sin, additiveMask,
                                                            i + 1 == L ? T - 1 : 0, &cache[i]);
  h = model->norm(h);
  return applyLinear(h, outputWeight()).select(1, 0);  // (B, V)
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& ids, const torch::Tensor& attentionMask,
                                    const torch::Tensor& positionIds) {
  return forwardEmbeds(embed(ids), attentionMask, positionIds);
}

}  // namespace pivot
