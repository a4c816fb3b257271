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
                      const std::string& lossType, double ls) {
  auto h = (policyChosen - refChosen) - (policyRejected - refRejected);  // (B)
  torch::Tensor losses;
  if (lossType == "sigmoid") {
    losses = -torch::log_sigmoid(beta * h) * (1 - ls) - torch::log_sigmoid(-beta * h) * ls;
  } else if (lossType == "robust") {
    losses = (-torch::log_sigmoid(beta * h) * (1 - ls) + torch::log_sigmoid(-beta * h) * ls) /
             (1 - 2 * ls);
  } else if (lossType == "hinge") {
    losses = torch::relu(1 - beta * h);
  } else if (lossType == "ipo") {
    losses = (h - 1 / (2 * beta)).pow(2);
  } else {
    throw std::runtime_error("unknown DPO loss type '" + lossType + "'");
  }
  return {losses.mean(), (beta * (policyChosen - refChosen)).detach(),
          (beta * (policyRejected - refRejected)).detach()};
}

}  // namespace pivot
