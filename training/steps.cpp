#include "training/steps.h"

#include <cmath>
#include <limits>

#include "training/losses.h"

namespace pivot {

StepOutput sftStepOn(Mllm& model, const MllmInputs& in) {
  const auto logits = model->forward(in);  // (B, T - logitsFrom, V)
  const auto labels = in.targetLabels();
  StepOutput out;
  out.loss = sftLoss(logits, labels);
  out.scalars = {{"logps/chosen", sequenceLogProbs(logits.detach(), labels).mean().item<double>()}};
  out.tokens = in.attentionMask.sum().item<double>();
  return out;
}

StepOutput sftStep(Mllm& model, const std::vector<Sample>& samples, Response response,
                   const WordTokenizer& tok, torch::Device device) {
  std::vector<BatchRow> rows;
  for (const auto& s : samples) rows.push_back({&s, response});
  return sftStepOn(model, buildBatch(rows, tok, model->config.vision.numPatches(), device));
}

StepOutput dpoStepOn(Mllm& policy, Mllm& reference, const MllmInputs& in,
                     const DpoSettings& settings) {
  const int64_t B = in.inputIds.size(0) / 2;
  const auto logits = policy->forward(in);  // (2B, T - logitsFrom, V)
  const auto labels = in.targetLabels();
  const auto logps = sequenceLogProbs(logits, labels);  // (2B)
  torch::Tensor refLogps;
  {
    torch::NoGradGuard noGrad;
    refLogps = sequenceLogProbs(reference->forward(in), labels);
  }
  const auto pc = logps.narrow(0, 0, B), pr = logps.narrow(0, B, B);
  const auto rc = refLogps.narrow(0, 0, B), rr = refLogps.narrow(0, B, B);
  const auto dpo =
      dpoLoss(pc, pr, rc, rr, settings.beta, settings.lossType, settings.labelSmoothing);
  StepOutput out;
  out.loss = dpo.loss;
  if (settings.sftWeight > 0)
    out.loss =
        out.loss + settings.sftWeight * sftLoss(logits.narrow(0, 0, B), labels.narrow(0, 0, B));
  out.scalars = {
      {"rewards/chosen", dpo.chosenRewards.mean().item<double>()},
      {"rewards/rejected", dpo.rejectedRewards.mean().item<double>()},
      {"rewards/margins", (dpo.chosenRewards - dpo.rejectedRewards).mean().item<double>()},
      {"rewards/accuracies",
       (dpo.chosenRewards > dpo.rejectedRewards).to(torch::kFloat32).mean().item<double>()},
      {"logps/chosen", pc.mean().item<double>()},
      {"logps/rejected", pr.mean().item<double>()},
      {"logps/ref_chosen", rc.mean().item<double>()},
      {"logps/ref_rejected", rr.mean().item<double>()}};
  out.tokens = in.attentionMask.sum().item<double>();
  return out;
}

StepOutput dpoStep(Mllm& policy, Mllm& reference, const std::vector<Sample>& samples,
                   const DpoSettings& settings, const WordTokenizer& tok, torch::Device device) {
  const auto B = static_cast<int64_t>(samples.size());
  std::vector<BatchRow> rows;  // chosen rows, then rejected rows
  for (const auto& s : samples) rows.push_back({&s, Response::Chosen});
  for (const auto& s : samples) rows.push_back({&s, Response::Rejected});
  auto in = buildBatch(rows, tok, policy->config.vision.numPatches(), device);
  in.pixels = in.pixels.narrow(0, 0, B);  // one image per pair, encoded once
  return dpoStepOn(policy, reference, in, settings);
}

StepFunction stepForStage(const TrainConfig& c, Mllm& model, Mllm& reference,
                          ContrastiveHeads& heads, const WordTokenizer& tok, torch::Device device) {
  switch (c.stage) {
    case Stage::Pretrain:
      return [&model, &heads, &tok, device,
              weight = c.conjunction_weight](const std::vector<Sample>& samples) {
        auto pre = pretrainStep(model->vision_tower, heads, samples, tok, device, weight);
        return StepOutput{pre.loss, pre.scalars, 0};
      };
    case Stage::Align:
      return [&model, &tok, device](const std::vector<Sample>& samples) {
        return sftStep(model, samples, Response::Caption, tok, device);
      };
    case Stage::Instruct:
    case Stage::Sft:
      return [&model, &tok, device](const std::vector<Sample>& samples) {
        return sftStep(model, samples, Response::Chosen, tok, device);
      };
    case Stage::Dpo:
      return [&model, &reference, &tok, device,
              settings = DpoSettings{c.beta, c.loss_type, c.label_smoothing, c.sft_weight}](
                 const std::vector<Sample>& samples) {
        return dpoStep(model, reference, samples, settings, tok, device);
      };
  }
  throw std::logic_error("no step function for this stage");
}

double applyUpdate(const torch::Tensor& loss, torch::optim::Optimizer& optimizer,
                   const std::vector<torch::Tensor>& parameters, double clip) {
  optimizer.zero_grad();
  loss.backward();
  const double gradNorm = torch::nn::utils::clip_grad_norm_(
      parameters, clip > 0 ? clip : std::numeric_limits<double>::infinity());
  if (std::isfinite(gradNorm)) optimizer.step();
  return gradNorm;
}

}  // namespace pivot
