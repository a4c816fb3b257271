// The one place where Debian's LibTorch 1.13 (CPU) and the CUDA LibTorch 2.x differ for us.
#pragma once
#include <torch/torch.h>
#include <torch/version.h>

namespace pivot {

// Fused scaled-dot-product attention exists from LibTorch 2.0 on.
#if TORCH_VERSION_MAJOR >= 2
inline constexpr bool kHasFusedAttention = true;
#else
inline constexpr bool kHasFusedAttention = false;
#endif

// softmax(q k^T / sqrt(d) + mask) v.  q: (B, nh, T, hs), k/v: (B, nh, S, hs),
// additiveMask: broadcastable to (B, nh, T, S), 0 where allowed and a large negative value where not.
// When probs is non-null the plain path runs and the attention probabilities (B, nh, T, S) are kept
// (attention rollout needs them), since the fused kernel never materialises them.
inline torch::Tensor scaledDotProductAttention(const torch::Tensor& q, const torch::Tensor& k,
                                               const torch::Tensor& v,
                                               const torch::Tensor& additiveMask,
                                               torch::Tensor* probs = nullptr) {
#if TORCH_VERSION_MAJOR >= 2
  if (probs == nullptr) {
    return at::scaled_dot_product_attention(q, k, v, additiveMask.defined()
                                                         ? c10::optional<torch::Tensor>(additiveMask)
                                                         : c10::nullopt);
  }
#endif
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;  // (B, nh, T, S)
  if (additiveMask.defined()) scores = scores + additiveMask;
  auto p = torch::softmax(scores, /*dim=*/-1);
  if (probs != nullptr) *probs = p;
  return torch::matmul(p, v);  // (B, nh, T, hs)
}

// Large negative value instead of -inf, so fully masked rows (left padding) stay finite, as HF does.
inline float maskedValue(torch::ScalarType dtype) {
  return dtype == torch::kFloat16 ? -65504.0f : -1e30f;  // finite for fp16, bf16 and fp32
}

// CUDA when present, CPU otherwise; "cpu" or "cuda" forces one.
inline torch::Device pickDevice(const std::string& request = "auto") {
  if (request == "cpu") return torch::kCPU;
  if (request == "cuda" || (request == "auto" && torch::cuda::is_available()))
    return torch::Device(torch::kCUDA);
  return torch::kCPU;
}

}  // namespace pivot
