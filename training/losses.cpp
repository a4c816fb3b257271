#include "training/losses.h"

#include <stdexcept>

namespace pivot {

torch::Tensor sftLoss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t V = logits.size(-1);
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, V}).to(torch::kFloat32), labels.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
}

DpoLossOutput dpoLoss(const torch::Tensor& policyChosen, const torch::Tensor& policyRejected,
                      const torch::Tensor& refChosen, const torch::Tensor& refRejected, double beta,
                      DpoLoss lossType, double ls, double bcoShift) {
  auto h = (policyChosen - refChosen) - (policyRejected - refRejected);  // (B)
  torch::Tensor losses;
  switch (lossType) {
    case DpoLoss::Sigmoid:
      losses = -torch::log_sigmoid(beta * h) * (1 - ls) - torch::log_sigmoid(-beta * h) * ls;
      break;
    case DpoLoss::Robust:
      losses = (-torch::log_sigmoid(beta * h) * (1 - ls) + torch::log_sigmoid(-beta * h) * ls) /
               (1 - 2 * ls);
      break;
    case DpoLoss::Hinge:
      losses = torch::relu(1 - beta * h);
      break;
    case DpoLoss::Ipo:
      losses = (h - 1 / (2 * beta)).pow(2);
      break;
    case DpoLoss::BcoPair:
      losses = -torch::log_sigmoid(beta * (policyChosen - refChosen) - bcoShift) -
               torch::log_sigmoid(-(beta * (policyRejected - refRejected) - bcoShift));
      break;
    case DpoLoss::Sft:
      throw std::invalid_argument(
          "dpoLoss: sft is the chosen answer's NLL (sftLoss), not a "
          "function of the log-probs");
  }
  return {losses.mean(), (beta * (policyChosen - refChosen)).detach(),
          (beta * (policyRejected - refRejected)).detach()};
}

double RunningMean::update(double batchMean) {
  const double total = count + 1.0;  // TRL's RunningMoments: one scalar per update
  mean += (batchMean - mean) / total;
  count = total;
  return mean;
}

GroupAdvantages groupAdvantages(const torch::Tensor& rewards, int64_t G, RewardScaling scaling) {
  TORCH_CHECK(G >= 1 && rewards.dim() == 1 && rewards.size(0) % G == 0, "rewards (",
              rewards.sizes(), ") are not whole groups of ", G);
  const auto r = rewards.to(torch::kFloat64);
  const auto groups = r.view({-1, G});
  const auto mean = groups.mean(1).repeat_interleave(G);
  GroupAdvantages out;
  out.groupStd =
      G > 1 ? groups.std(1, /*unbiased=*/true) : torch::zeros({groups.size(0)}, r.options());
  const auto std = scaling == RewardScaling::Batch
                       ? (r.numel() > 1 ? r.std() : torch::zeros({}, r.options())).expand_as(r)
                       : out.groupStd.repeat_interleave(G);
  out.fracZeroStd = std.abs().lt(1e-8).to(torch::kFloat64).mean().item<double>();
  auto advantages = r - mean;
  if (scaling != RewardScaling::None) advantages = advantages / (std + 1e-4);
  out.advantages = advantages.to(rewards.scalar_type());
  return out;
}

GrpoLossOutput grpoLoss(const torch::Tensor& logps, const torch::Tensor& oldLogps,
                        const torch::Tensor& refLogps, const torch::Tensor& advantages,
                        const torch::Tensor& mask, const GrpoSettings& s) {
  const auto m = mask.to(logps.scalar_type());
  const auto tokens = m.sum().clamp_min(1.0);
  const auto old = oldLogps.defined() ? oldLogps : logps.detach();
  const auto ratio = torch::exp(logps - old);
  const auto clipped = ratio.clamp(1.0 - s.epsilonLow, 1.0 + s.epsilonHigh);
  const auto a = advantages.unsqueeze(1);
  auto perToken = -torch::min(ratio * a, clipped * a);
  GrpoLossOutput out;
  if (s.beta != 0.0) {
    TORCH_CHECK(refLogps.defined(), "GRPO with beta != 0 needs the reference log-probs");
    const auto delta = refLogps - logps;
    const auto kl = torch::exp(delta) - delta - 1.0;  // k3: unbiased, always >= 0
    perToken = perToken + s.beta * kl;
    out.kl = ((kl * m).sum() / tokens).item<double>();
  }
  switch (s.lossType) {
    case GrpoLoss::Grpo:
      out.loss = ((perToken * m).sum(1) / m.sum(1).clamp_min(1.0)).mean();
      break;
    case GrpoLoss::Bnpo:
      out.loss = (perToken * m).sum() / tokens;
      break;
    case GrpoLoss::DrGrpo:
      TORCH_CHECK(s.maxCompletionLength > 0, "dr_grpo needs max_completion_length");
      out.loss = (perToken * m).sum() / static_cast<double>(logps.size(0) * s.maxCompletionLength);
      break;
    case GrpoLoss::Dapo:
      out.loss = (perToken * m).sum() /
                 (s.itemsInBatch > 0 ? torch::full({}, s.itemsInBatch, m.options()) : tokens);
      break;
  }
  torch::NoGradGuard noGrad;
  const auto low = (ratio < 1.0 - s.epsilonLow) & (a < 0);
  const auto high = (ratio > 1.0 + s.epsilonHigh) & (a > 0);
  auto share = [&](const torch::Tensor& b) {
    return ((b.to(m.scalar_type()) * m).sum() / tokens).item<double>();
  };
  out.clipLow = share(low);
  out.clipHigh = share(high);
  out.clipRegion = share(low | high);
  return out;
}

}  // namespace pivot
