#include "visualization/faithfulness.h"

#include <ATen/CPUGeneratorImpl.h>

namespace pivot {

namespace {

// rank[b][n]: the position of cell (or visual token) n in row b's order (0 = first to go).
torch::Tensor tokenRanks(const torch::Tensor& maps, AblationOrder order, uint64_t seed) {
  const int64_t B = maps.size(0), N = maps.size(1) * maps.size(2);
  torch::Tensor ordering;
  if (order == AblationOrder::MapFirst) {
    ordering = maps.reshape({B, N}).argsort(/*dim=*/1, /*descending=*/true);
  } else {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    std::vector<torch::Tensor> rows;
    for (int64_t b = 0; b < B; ++b)
      rows.push_back(torch::randperm(N, generator, torch::TensorOptions().dtype(torch::kInt64)));
    ordering = torch::stack(rows);
  }
  auto rank = torch::empty_like(ordering);
  rank.scatter_(1, ordering, torch::arange(N).unsqueeze(0).expand({B, N}).contiguous());
  return rank;
}

// The area under each row's log-prob curve over shares 0, 1/steps, ..., 1 (trapezoids), (B).
torch::Tensor trapezoidArea(const torch::Tensor& logProbs, int steps) {
  const int64_t S = logProbs.size(1);
  return (logProbs.narrow(1, 0, S - 1) + logProbs.narrow(1, 1, S - 1)).sum(/*dim=*/1) *
         (0.5 / steps);
}

}  // namespace

DeletionCurve deletionCurve(Mllm& model, const MllmInputs& in, const torch::Tensor& maps,
                            int steps) {
  torch::NoGradGuard noGrad;
  const bool wasTraining = model->is_training();
  model->eval();
  const int64_t B = in.inputIds.size(0), S = steps + 1, g = maps.size(1), N = g * g;
  const int64_t H = in.pixels.size(2), W = in.pixels.size(3);
  const auto rank = tokenRanks(maps, AblationOrder::MapFirst, 0);  // most relevant first
  std::vector<torch::Tensor> images;
  DeletionCurve curve;
  for (int64_t s = 0; s < S; ++s) {
    const double fraction = static_cast<double>(s) / steps;
    curve.fractions.push_back(fraction);
    const int64_t k = static_cast<int64_t>(std::llround(fraction * static_cast<double>(N)));
    auto keep = (rank >= k).to(torch::kFloat32).view({B, 1, g, g});  // 1 = kept cell
    keep = keep.repeat_interleave(H / g, /*dim=*/2)
               .repeat_interleave(W / g, /*dim=*/3);  // (B, 1, H, W)
    images.push_back(in.pixels * keep.to(in.pixels.device()));
  }
  MllmInputs batch = in;  // level-major rows: row s * B + b is sample b at deletion level s
  batch.pixels = torch::cat(images);
  batch.inputIds = in.inputIds.repeat({S, 1});
  batch.attentionMask = in.attentionMask.repeat({S, 1});
  batch.labels = in.labels.repeat({S, 1});
  batch.prefixLen = in.prefixLen.repeat({S});
  auto logp = sequenceLogProbs(model->forward(batch), batch.targetLabels())
                  .view({S, B})
                  .t()
                  .to(torch::kCPU);
  curve.logProbs = logp;  // (B, S)
  curve.area = trapezoidArea(logp, steps);
  if (wasTraining) model->train();
  return curve;
}

AblationCurve tokenAblationCurve(Mllm& model, const MllmInputs& in, const torch::Tensor& maps,
                                 AblationOrder order, bool insertion, int steps, uint64_t seed) {
  torch::NoGradGuard noGrad;
  const bool wasTraining = model->is_training();
  model->eval();
  const auto visual = model->visualTokens(in.pixels);  // (B, N, D)
  const int64_t B = visual.size(0), N = visual.size(1), S = steps + 1;
  TORCH_CHECK(B == in.inputIds.size(0), "token ablation needs one image per row, got ", B,
              " images for ", in.inputIds.size(0), " rows");
  TORCH_CHECK(maps.size(0) == B && maps.size(1) * maps.size(2) == N, "the maps' grid (",
              maps.size(1), " x ", maps.size(2), ") does not cover the ", N, " visual tokens");
  const auto rank = tokenRanks(maps.to(torch::kCPU), order, seed).to(visual.device());
  const auto mean = visual.mean(/*dim=*/1, /*keepdim=*/true).expand_as(visual);
  std::vector<torch::Tensor> levels;
  AblationCurve curve;
  for (int64_t s = 0; s < S; ++s) {
    const double fraction = static_cast<double>(s) / steps;
    curve.fractions.push_back(fraction);
    const int64_t k = static_cast<int64_t>(std::llround(fraction * static_cast<double>(N)));
    // Removal: the first k of the order are replaced; insertion: all but the first k are.
    const auto replaced = insertion ? rank >= k : rank < k;  // (B, N)
    levels.push_back(torch::where(replaced.unsqueeze(-1), mean, visual));
  }
  // Level-major rows: row s * B + b is sample b at level s.
  const auto repeat = [S](const torch::Tensor& t) {
    if (!t.defined()) return t;
    std::vector<int64_t> times(static_cast<size_t>(t.dim()), 1);
    times[0] = S;
    return t.repeat(times);
  };
  const auto ids = repeat(in.inputIds);
  const auto embeds = model->spliceEmbeddings(ids, torch::cat(levels));
  const auto logits = model->language_model->forwardEmbeds(
      embeds, repeat(in.attentionMask), repeat(in.positionIds),
      model->config.prefix_bidirectional ? repeat(in.prefixLen) : torch::Tensor(), in.logitsFrom,
      repeat(in.branch));
  const auto labels = repeat(in.labels);
  const auto logp =
      sequenceLogProbs(logits, labels.narrow(1, in.logitsFrom, labels.size(1) - in.logitsFrom))
          .view({S, B})
          .t()
          .to(torch::kCPU);
  curve.logProbs = logp;
  curve.area = trapezoidArea(logp, steps);
  if (wasTraining) model->train();
  return curve;
}

}  // namespace pivot
