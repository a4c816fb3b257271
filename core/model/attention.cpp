#include "model/attention.h"

#include <cmath>
#include <map>
#include <vector>

#include "model/cpu_kernels.h"  // PIVOT_HAVE_DNNL
#include "model/linear.h"       // usingOneDnn
#include "torch_compat.h"

#ifdef PIVOT_HAVE_DNNL
#include <dnnl.hpp>
#endif

namespace pivot {

torch::Tensor torchAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& additiveMask, torch::Tensor* probs) {
  const int64_t B = q.size(0), nh = q.size(1), T = q.size(2), hs = q.size(3);
  const int64_t nkv = k.size(1), groups = nh / nkv, S = k.size(2);
  TORCH_CHECK(nkv > 0 && nh % nkv == 0, "attention: ", nh, " query heads, ", nkv, " kv heads");
#if TORCH_VERSION_MAJOR >= 2
  if (probs == nullptr) {
    const auto mask =
        additiveMask.defined() ? c10::optional<torch::Tensor>(additiveMask) : c10::nullopt;
    if (groups == 1) return at::scaled_dot_product_attention(q, k, v, mask);
    return at::scaled_dot_product_attention(q, k.repeat_interleave(groups, /*dim=*/1),
                                            v.repeat_interleave(groups, /*dim=*/1), mask);
  }
#endif
  // The plain path never copies k/v: it folds the query heads of a group into the rows of one
  // larger product per kv head (fewer, larger GEMMs).
  const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
  auto qg = q.reshape({B, nkv, groups * T, hs});  // (B, nkv, g*T, hs)
  auto scores = torch::matmul(qg, k.transpose(-2, -1)).view({B, nh, T, S}) * scale;
  if (additiveMask.defined()) scores = scores + additiveMask;
  auto p = torch::softmax(scores, /*dim=*/-1);
  if (probs != nullptr) *probs = p;
  return torch::matmul(p.view({B, nkv, groups * T, S}), v).view({B, nh, T, hs});
}

#ifdef PIVOT_HAVE_DNNL
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const dnnl::engine& cpuEngine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::memory::desc describe(const torch::Tensor& t) {
  return dnnl::memory::desc(dnnl::memory::dims(t.sizes().begin(), t.sizes().end()),
                            dnnl::memory::data_type::f32,
                            dnnl::memory::dims(t.strides().begin(), t.strides().end()));
}

// A matrix operand oneDNN's kernels take as it lies: row- or column-major in its last two dims.
torch::Tensor asMatrices(const torch::Tensor& t) {
  return t.stride(-1) == 1 || t.stride(-2) == 1 ? t : t.contiguous();
}

// c = a b for every matrix of a batch (the leading dims equal), a new contiguous tensor. The
// primitives are made once per shape, strides and thread count, per worker thread: a training run
// repeats a handful of shapes thousands of times.
torch::Tensor batchedProduct(const torch::Tensor& aIn, const torch::Tensor& bIn) {
  const auto a = asMatrices(aIn), b = asMatrices(bIn);
  const int64_t dims = a.dim();
  TORCH_CHECK(b.dim() == dims && a.size(-1) == b.size(-2) &&
                  a.sizes().slice(0, dims - 2) == b.sizes().slice(0, dims - 2),
              "attention product: ", a.sizes(), " times ", b.sizes());
  auto outShape = a.sizes().vec();
  outShape[static_cast<size_t>(dims - 1)] = b.size(-1);
  auto c = torch::empty(outShape, a.options());

  std::vector<int64_t> key{at::get_num_threads()};
  for (const torch::Tensor* t : std::initializer_list<const torch::Tensor*>{&a, &b, &c}) {
    key.insert(key.end(), t->sizes().begin(), t->sizes().end());
    key.insert(key.end(), t->strides().begin(), t->strides().end());
  }
  thread_local std::map<std::vector<int64_t>, dnnl::matmul> primitives;
  auto found = primitives.find(key);
  if (found == primitives.end()) {
    if (primitives.size() >= 256) primitives.clear();  // padded lengths vary: keep it bounded
#if DNNL_VERSION_MAJOR >= 3
    const dnnl::matmul::primitive_desc made(cpuEngine(), describe(a), describe(b), describe(c));
#else
    const dnnl::matmul::primitive_desc made(
        dnnl::matmul::desc(describe(a), describe(b), describe(c)), cpuEngine());
#endif
    found = primitives.emplace(std::move(key), dnnl::matmul(made)).first;
  }
  thread_local dnnl::stream stream(cpuEngine());
  const auto memory = [](const torch::Tensor& t) {
    return dnnl::memory(describe(t), cpuEngine(), t.data_ptr());
  };
  found->second.execute(
      stream,
      {{DNNL_ARG_SRC, memory(a)}, {DNNL_ARG_WEIGHTS, memory(b)}, {DNNL_ARG_DST, memory(c)}});
  stream.wait();
  return c;
}

// The mask travels wrapped: it takes no gradient, and LibTorch 1.13's Function::apply rejects an
// undefined tensor among the inputs it tracks.
struct ConstantMask {
  torch::Tensor additive;  // or undefined: nothing masked
};

// The query heads of a kv group are folded into the rows of one product per kv head, as in the
// plain path: q (B, nh, T, hs), scaled and made contiguous, is (B, nkv, g*T, hs); the scores
// (B, nkv, g*T, S) are (B, nh, T, S). The backward's products over the rows (dk, dv) then sum the
// group's heads by themselves.
struct BatchedAttention : torch::autograd::Function<BatchedAttention> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const ConstantMask& mask) {
    const int64_t B = q.size(0), nh = q.size(1), T = q.size(2), hs = q.size(3);
    const int64_t nkv = k.size(1), S = k.size(2), rows = nh / nkv * T;
    const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
    auto scaled = torch::empty({B, nh, T, hs}, q.options());
    torch::mul_out(scaled, q, scale);  // scaled and contiguous in one pass
    const auto qRows = scaled.view({B, nkv, rows, hs});
    auto scores = batchedProduct(qRows, k.transpose(-2, -1));  // (B, nkv, g*T, S)
    if (mask.additive.defined()) scores.view({B, nh, T, S}).add_(mask.additive);
    auto p = torch::softmax(scores, /*dim=*/-1);
    ctx->save_for_backward({qRows, k, v, p});
    return batchedProduct(p, v).view({B, nh, T, hs});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &qRows = saved[0], &k = saved[1], &v = saved[2], &p = saved[3];
    const double scale = 1.0 / std::sqrt(static_cast<double>(qRows.size(-1)));
    const auto dOut = grads[0].contiguous().view(qRows.sizes());  // (B, nkv, g*T, hs)
    const auto dProbs = batchedProduct(dOut, v.transpose(-2, -1));
    const auto dScores = torch::_softmax_backward_data(dProbs, p, /*dim=*/-1, torch::kFloat32);
    torch::Tensor dq, dk, dv;
    if (ctx->needs_input_grad(0))
      dq = batchedProduct(dScores, k).mul_(scale).view(grads[0].sizes());
    if (ctx->needs_input_grad(1)) dk = batchedProduct(dScores.transpose(-2, -1), qRows);
    if (ctx->needs_input_grad(2)) dv = batchedProduct(p.transpose(-2, -1), dOut);
    return {dq, dk, dv, torch::Tensor()};  // none for the mask
  }
};

bool onDnnl(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
            const torch::Tensor& mask) {
  const auto f32Cpu = [](const torch::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat32;
  };
  return usingOneDnn() && !cpuAutocastEnabled() && f32Cpu(q) && f32Cpu(k) && f32Cpu(v) &&
         (!mask.defined() || f32Cpu(mask)) && q.numel() > 0 && k.numel() > 0;
}

}  // namespace
#endif

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& additiveMask, torch::Tensor* probs) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.size(1) > 0 &&
                  q.size(1) % k.size(1) == 0 && k.sizes() == v.sizes() && q.size(0) == k.size(0) &&
                  q.size(3) == k.size(3),
              "attention: q ", q.sizes(), ", k ", k.sizes(), ", v ", v.sizes());
#ifdef PIVOT_HAVE_DNNL
  if (probs == nullptr && onDnnl(q, k, v, additiveMask))
    return BatchedAttention::apply(q, k, v, ConstantMask{additiveMask});
#endif
  return torchAttention(q, k, v, additiveMask, probs);
}

std::string cpuAttentionLibrary() {
#ifdef PIVOT_HAVE_DNNL
  return oneDnnVersion() + " matmul";
#else
  return kHasFusedAttention ? "LibTorch (fused)" : "LibTorch";
#endif
}

}  // namespace pivot
