#include "model/linear.h"

#include "model/cpu_kernels.h"  // PIVOT_HAVE_DNNL
#include "torch_compat.h"

#ifdef PIVOT_HAVE_DNNL
#include <dnnl.h>
#endif

#include <atomic>

namespace pivot {

namespace {
std::atomic<bool> g_oneDnn{true};
}  // namespace

void useOneDnn(bool on) { g_oneDnn = on; }

bool usingOneDnn() {
#ifdef PIVOT_HAVE_DNNL
  return g_oneDnn;
#else
  return false;
#endif
}

#ifdef PIVOT_HAVE_DNNL
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Row-major C (M, N) = op(A) op(B), op = transpose when the flag is 'T'; all three contiguous.
void sgemm(char transA, char transB, int64_t M, int64_t N, int64_t K, const torch::Tensor& a,
           const torch::Tensor& b, torch::Tensor& c) {
  const int64_t lda = transA == 'N' ? K : M, ldb = transB == 'N' ? N : K;
  const auto status = dnnl_sgemm(transA, transB, M, N, K, 1.0f, a.data_ptr<float>(), lda,
                                 b.data_ptr<float>(), ldb, 0.0f, c.data_ptr<float>(), N);
  TORCH_CHECK(status == dnnl_success, "oneDNN sgemm failed (status ", static_cast<int>(status),
              ") for M ", M, ", N ", N, ", K ", K);
}

// x (M, K) W^T (K, N): the forward GEMM, and the backward's two (dx = g W, dW = g^T x), each
// computed only when something needs it (a frozen weight gets no gradient).
struct MatmulWeightT : torch::autograd::Function<MatmulWeightT> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight) {
    ctx->save_for_backward({x, weight});
    auto y = torch::empty({x.size(0), weight.size(0)}, x.options());
    sgemm('N', 'T', x.size(0), weight.size(0), x.size(1), x, weight, y);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto g = grads[0].contiguous();
    const int64_t M = x.size(0), K = x.size(1), N = weight.size(0);
    torch::Tensor dx, dweight;
    if (ctx->needs_input_grad(0)) {
      dx = torch::empty({M, K}, x.options());
      sgemm('N', 'N', M, K, N, g, weight, dx);
    }
    if (ctx->needs_input_grad(1)) {
      dweight = torch::empty({N, K}, weight.options());
      sgemm('T', 'N', N, K, M, g, x, dweight);
    }
    return {dx, dweight};
  }
};

// Float32 on the CPU, outside autocast (under it LibTorch's linear runs in bfloat16).
bool onDnnl(const torch::Tensor& x, const torch::Tensor& weight) {
  return usingOneDnn() && x.device().is_cpu() && !cpuAutocastEnabled() &&
         x.scalar_type() == torch::kFloat32 && weight.scalar_type() == torch::kFloat32 &&
         weight.is_contiguous() && x.numel() > 0 && weight.numel() > 0;
}

}  // namespace
#endif

torch::Tensor applyLinear(const torch::Tensor& x, const torch::Tensor& weight,
                          const torch::Tensor& bias) {
#ifdef PIVOT_HAVE_DNNL
  if (onDnnl(x, weight)) {
    const int64_t K = x.size(-1);
    TORCH_CHECK(weight.dim() == 2 && weight.size(1) == K, "linear: input has ", K,
                " features, weight is ", weight.sizes());
    auto outShape = x.sizes().vec();
    outShape.back() = weight.size(0);
    auto y = MatmulWeightT::apply(x.contiguous().view({-1, K}), weight).view(outShape);
    return bias.defined() ? y + bias : y;
  }
#endif
  return torch::nn::functional::linear(x, weight, bias);
}

std::string cpuGemmLibrary() {
#ifdef PIVOT_HAVE_DNNL
  return oneDnnVersion() + " sgemm";
#else
  return "LibTorch's BLAS";
#endif
}

}  // namespace pivot
