// softmax(q k^T / sqrt(hs) + mask) v: the attention of every layer of the models, with the CPU's
// float32 batched products on oneDNN.
//
// Why: LibTorch 1.13 (Debian's) multiplies a batch of small matrices on the CPU one matrix at a
// time, each a separate OpenBLAS call on its AVX2 kernels; a mini-preset step makes ~5000 of them
// (32 samples x 4 heads per product, 6 products per layer). oneDNN's batched matmul takes each
// product in one call on the processor's own kernels: the attention's forward and backward run
// about twice as fast, and more of the step scales with a second thread. CUDA, bf16 and autocast
// keep LibTorch's attention (on LibTorch 2.x its fused kernel), as does a build without oneDNN.
#pragma once
#include <string>

#include <torch/torch.h>

namespace pivot {

// q: (B, nh, T, hs); k, v: (B, nkv, S, hs) with nkv dividing nh (head h reads kv head
// h / (nh / nkv), grouped-query attention); additiveMask broadcastable to (B, 1, T, S) (or
// (B, nh, T, S) when nkv == nh), 0 where allowed and a large negative value where not, or
// undefined. Returns (B, nh, T, hs), differentiable in q, k and v. When `probs` is given the
// attention probabilities (B, nh, T, S) are kept there (attention rollout reads them), through the
// plain path that materialises them.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& additiveMask, torch::Tensor* probs = nullptr);

// The same through LibTorch's own operations only: what `attention` computes off the oneDNN path,
// and the reference its tests compare with.
torch::Tensor torchAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& additiveMask, torch::Tensor* probs = nullptr);

// Which library computes the attention's float32 products on the CPU ("oneDNN 2.6.3 matmul",
// "LibTorch"), for the report's Machine section.
std::string cpuAttentionLibrary();

}  // namespace pivot
