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
// Throws for an unknown loss type.
DpoLossOutput dpoLoss(const torch::Tensor& policyChosen, const torch::Tensor& policyRejected,
                      const torch::Tensor& refChosen, const torch::Tensor& refRejected, double beta,
                      DpoLoss lossType, double labelSmoothing = 0.0);

}  // namespace pivot
