#include "visualization/faithfulness.h"

namespace pivot {

DeletionCurve deletionCurve(Mllm& model, const MllmInputs& in, const torch::Tensor& maps,
                            int steps) {
  torch::NoGradGuard noGrad;
  const bool wasTraining = model->is_training();
  model->eval();
  const int64_t B = in.inputIds.size(0), S = steps + 1, g = maps.size(1), N = g * g;
  const int64_t H = in.pixels.size(2), W = in.pixels.size(3);
  auto order = maps.reshape({B, N}).argsort(/*dim=*/1, /*descending=*/true);  // most relevant first
  auto rank = torch::empty_like(order);
  rank.scatter_(1, order,
                torch::arange(N).unsqueeze(0).expand({B, N}).contiguous());  // cell -> rank
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
  const double dx = 1.0 / steps;
  curve.area = (logp.narrow(1, 0, S - 1) + logp.narrow(1, 1, S - 1)).sum(/*dim=*/1) * (dx / 2);
  if (wasTraining) model->train();
  return curve;
}

}  // namespace pivot
