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
                      DpoLoss lossType, double ls) {
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
  }
  return {losses.mean(), (beta * (policyChosen - refChosen)).detach(),
          (beta * (policyRejected - refRejected)).detach()};
}

}  // namespace pivot
