// The one place where Debian's LibTorch 1.13 (CPU) and the CUDA LibTorch 2.x differ for us.
#pragma once
#include <torch/torch.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace pivot {

// Fused scaled-dot-product attention exists from LibTorch 2.0 on.
#if TORCH_VERSION_MAJOR >= 2
inline constexpr bool kHasFusedAttention = true;
#else
inline constexpr bool kHasFusedAttention = false;
#endif

// Large negative value instead of -inf, so fully masked rows (left padding) stay finite, as HF
// does.
inline float maskedValue(torch::ScalarType dtype) {
  return dtype == torch::kFloat16 ? -65504.0f : -1e30f;  // finite for fp16, bf16 and fp32
}

// CUDA when present, CPU otherwise; "cpu" or "cuda" forces one.
// "cuda" on a machine (or a LibTorch build) without CUDA is a one-line error, not a stack trace
// from the first tensor moved there.
inline torch::Device pickDevice(const std::string& request = "auto") {
  if (request == "cpu") return torch::kCPU;
  const bool haveCuda = torch::cuda::is_available();
  if (request == "cuda" && !haveCuda)
    throw std::runtime_error(
        "device=cuda, but this LibTorch sees no CUDA device (use device=cpu or auto)");
  if (haveCuda && (request == "cuda" || request == "auto")) return torch::Device(torch::kCUDA);
  return torch::kCPU;
}

// Whether CPU autocast is on (a bf16 step): operations that bypass the dispatcher must then leave
// the work to LibTorch's own ones, which autocast casts.
inline bool cpuAutocastEnabled() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

// bf16 autocast over a scope (one step's forward passes): matrix products and convolutions run in
// bfloat16, what autocast's policy keeps in float32 stays there, and the float32 weights are never
// changed (autocast casts a cached copy), so they remain the master copy the optimizer updates.
// Restores the previous state on exit; a disabled scope does nothing. CPU and CUDA alike.
class AutocastScope {
 public:
  AutocastScope(bool enabled, torch::Device device) : active_(enabled), cuda_(device.is_cuda()) {
    if (!active_) return;
    const auto type = cuda_ ? at::kCUDA : at::kCPU;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    wasEnabled_ = at::autocast::is_autocast_enabled(type);
    previousDtype_ = at::autocast::get_autocast_dtype(type);
    at::autocast::set_autocast_enabled(type, true);
    at::autocast::set_autocast_dtype(type, at::kBFloat16);
#else
    (void)type;
    wasEnabled_ = cuda_ ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
    previousDtype_ =
        cuda_ ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
    if (cuda_) {
      at::autocast::set_enabled(true);
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    } else {
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    }
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!active_) return;
    // The outermost scope drops the cast copies of the weights: the next step casts the updated
    // ones.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    const auto type = cuda_ ? at::kCUDA : at::kCPU;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(type, wasEnabled_);
    at::autocast::set_autocast_dtype(type, previousDtype_);
#else
    (void)type;
    if (cuda_) {
      at::autocast::set_enabled(wasEnabled_);
      at::autocast::set_autocast_gpu_dtype(previousDtype_);
    } else {
      at::autocast::set_cpu_enabled(wasEnabled_);
      at::autocast::set_autocast_cpu_dtype(previousDtype_);
    }
#endif
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false, cuda_ = false, wasEnabled_ = false;
  at::ScalarType previousDtype_ = at::kBFloat16;
};

}  // namespace pivot
