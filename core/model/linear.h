// y = x W^T + b for every linear layer of the models, with the CPU's float32 GEMMs on oneDNN.
//
// Why: Debian's LibTorch multiplies float32 matrices with OpenBLAS, and this project's machines pin
// OpenBLAS to its AVX2 ("Haswell") kernels, because OpenBLAS 0.3.21's AVX-512 kernels compute
// wrong results on newer processors. oneDNN's sgemm (LibTorch's own dependency) picks its kernels
// by the instructions the processor has: on an AVX-512 machine the layers' GEMMs run about twice
// as fast, and the study's training with them (a transformer's time is mostly these GEMMs).
// Anything else (CUDA, bf16, a step under autocast, a LibTorch built without oneDNN) takes
// LibTorch's own linear.
#pragma once
#include <torch/torch.h>

namespace pivot {

// x (..., K), weight (N, K), bias (N) or undefined: (..., N). Differentiable in all three.
// (Not named `linear`: argument-dependent lookup would also find at::linear for two tensors.)
torch::Tensor applyLinear(const torch::Tensor& x, const torch::Tensor& weight,
                          const torch::Tensor& bias = {});

inline torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return applyLinear(x, layer->weight, layer->bias);
}

// Whether the CPU's float32 products of the linear layers and of attention go to oneDNN (the
// default, where it was built in) or to LibTorch's own kernels. Process-wide; for benchmarks that
// time both in one run (pivot bench) and for checking one against the other.
void useOneDnn(bool on);
bool usingOneDnn();  // false where oneDNN was not built in

// Which library multiplies the layers' float32 matrices on the CPU ("oneDNN 2.6.3 sgemm" or
// "LibTorch's BLAS"), for the report's Machine section.
std::string cpuGemmLibrary();

}  // namespace pivot
