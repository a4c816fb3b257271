// Training losses: SFT cross-entropy over response tokens, and DPO with TRL's loss variants.
#pragma once
#include <torch/torch.h>

#include <string>

#include "config/vocabulary.h"

namespace pivot {

// Mean negative log-likelihood over all response tokens of the batch (labels != -100).
// logits (B, T, V), labels (B, T) aligned so labels[t] is the token predicted at t.
torch::Tensor sftLoss(const torch::Tensor& logits, const torch::Tensor& labels);

struct DpoLossOutput {
  torch::Tensor loss;             // scalar, mean over pairs
  torch::Tensor chosenRewards;    // (B) beta * (log p(y_c) - log p_ref(y_c)), detached
  torch::Tensor rejectedRewards;  // (B) beta * (log p(y_r) - log p_ref(y_r)), detached
};

// Summed response log-probs (B) of policy and reference for chosen and rejected answers.
// With h = (pc - rc) - (pr - rr):
//   sigmoid: -logsigmoid(beta h)(1 - ls) - logsigmoid(-beta h) ls      (the paper's loss, ls = 0)
//   robust:  (-logsigmoid(beta h)(1 - ls) + logsigmoid(-beta h) ls) / (1 - 2 ls)
//   hinge:   relu(1 - beta h)
//   ipo:     (h - 1 / (2 beta))^2
//   bco_pair: -logsigmoid(beta (pc - rc) - shift) - logsigmoid(-(beta (pr - rr) - shift)), shift
//            the running mean of the batches' mean reward (RunningMean, updated before the loss)
// sft is not a function of these (the step takes the chosen answer's NLL): it throws.
DpoLossOutput dpoLoss(const torch::Tensor& policyChosen, const torch::Tensor& policyRejected,
                      const torch::Tensor& refChosen, const torch::Tensor& refRejected, double beta,
                      DpoLoss lossType, double labelSmoothing = 0.0, double bcoShift = 0.0);

// BCO's reward shift, as TRL's RunningMoments keeps it: each update adds one batch's mean reward
// (the mean of beta-scaled chosen and rejected log-ratios) to a running mean; count starts at
// 1e-24, so the first update sets the mean to that batch's. Saved with checkpoints (resume).
struct RunningMean {
  double mean = 0.0;
  double count = 1e-24;
  double update(double batchMean);  // returns the new mean
};

// GRPO (as TRL computes it). Rewards (P G) of P prompts' G completions each, in prompt order:
// advantage = reward - its group's mean, divided by (std + 1e-4) where std is the group's
// (sample std), the batch's, or not at all. frac_reward_zero_std: the share of completions whose
// group (or batch) std is zero, i.e. that teach nothing.
struct GroupAdvantages {
  torch::Tensor advantages;  // (P G)
  torch::Tensor groupStd;    // (P) each group's reward std
  double fracZeroStd = 0;
};
GroupAdvantages groupAdvantages(const torch::Tensor& rewards, int64_t groupSize,
                                RewardScaling scaling);

struct GrpoSettings {
  double epsilonLow = 0.2, epsilonHigh = 0.2;  // clip range [1 - low, 1 + high] (clip-higher)
  double beta = 0.0;                           // KL weight; 0 skips the reference
  GrpoLoss lossType = GrpoLoss::Dapo;
  int64_t maxCompletionLength = 0;  // dr_grpo's constant normaliser
  double itemsInBatch = 0;          // dapo: completion tokens of the whole accumulated batch
                                    // (0 = this batch's)
};
struct GrpoLossOutput {
  torch::Tensor loss;                                // scalar
  double kl = 0;                                     // masked mean of the k3 estimator (beta > 0)
  double clipLow = 0, clipHigh = 0, clipRegion = 0;  // shares of tokens clipped
};
// Per token: ratio r = exp(logp - old), loss = -min(r A, clip(r, 1 - low, 1 + high) A)
// + beta (exp(ref - logp) - (ref - logp) - 1); aggregated over the mask by lossType.
// logps, oldLogps, refLogps, mask: (N, L); advantages (N). oldLogps undefined = logps detached
// (one update per generation batch); refLogps may be undefined when beta = 0.
GrpoLossOutput grpoLoss(const torch::Tensor& logps, const torch::Tensor& oldLogps,
                        const torch::Tensor& refLogps, const torch::Tensor& advantages,
                        const torch::Tensor& mask, const GrpoSettings& settings);

}  // namespace pivot
