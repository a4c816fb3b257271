#include "training/steps.h"

#include <cmath>
#include <limits>

#include <filesystem>
#include <memory>
#include <sstream>

#include "io/safetensors.h"
#include "training/distributed.h"
#include "training/grpo.h"
#include "training/losses.h"
#include "training/real_data.h"

namespace fs = std::filesystem;

namespace pivot {
namespace {
constexpr const char* kMethodStateFile = "method_state.safetensors";  // beside a checkpoint
}  // namespace

StepOutput sftStepOn(Mllm& model, const MllmInputs& in) {
  const auto logits = model->forward(in);  // (B, T - logitsFrom, V)
  const auto labels = in.targetLabels();
  StepOutput out;
  out.loss = sftLoss(logits, labels);
  out.scalars = {{"logps/chosen", sequenceLogProbs(logits.detach(), labels).mean().item<double>()}};
  out.tokens = in.attentionMask.sum().item<double>();
  out.lossUnits = labels.ne(-100).sum().item<double>();  // sftLoss's mean is over these
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
  // Each pair's prompt once, its two responses side by side (training/batches.h): the same
  // log-probabilities as the 2B rows at about half the cost; the 2B rows when the prompts differ.
  const auto packed = packPairs(in, policy->config.image_token_id);
  const MllmInputs& rows = packed ? packed->in : in;
  const auto logits = policy->forward(rows);  // (B or 2B, T - logitsFrom, V)
  torch::Tensor refLogits;
  {
    torch::NoGradGuard noGrad;
    refLogits = reference->forward(rows);
  }
  torch::Tensor chosenLogits = logits, chosenLabels, pc, pr, rc, rr;
  if (packed) {
    chosenLabels = packed->chosenLabels;
    pc = sequenceLogProbs(logits, chosenLabels);
    pr = sequenceLogProbs(logits, packed->rejectedLabels);
    rc = sequenceLogProbs(refLogits, chosenLabels);
    rr = sequenceLogProbs(refLogits, packed->rejectedLabels);
  } else {
    const auto labels = in.targetLabels();
    const auto logps = sequenceLogProbs(logits, labels),
               refLogps = sequenceLogProbs(refLogits, labels);
    pc = logps.narrow(0, 0, B), pr = logps.narrow(0, B, B);
    rc = refLogps.narrow(0, 0, B), rr = refLogps.narrow(0, B, B);
    chosenLogits = logits.narrow(0, 0, B);
    chosenLabels = labels.narrow(0, 0, B);
  }
  const double beta = settings.beta;
  const auto chosenRewards = (beta * (pc - rc)).detach();
  const auto rejectedRewards = (beta * (pr - rr)).detach();
  StepOutput out;
  const auto chosenNll = [&] { return sftLoss(chosenLogits, chosenLabels); };
  // TRL's DPOTrainer with a list of loss types: each term computed alone, summed with its weight.
  for (size_t i = 0; i < settings.lossTypes.size(); ++i) {
    const DpoLoss type = settings.lossTypes[i];
    torch::Tensor term;
    if (type == DpoLoss::Sft) {
      term = chosenNll();
    } else {
      double shift = 0.0;
      if (type == DpoLoss::BcoPair) {
        TORCH_CHECK(settings.bco, "bco_pair needs its running reward mean");
        shift = settings.bco->update(
            torch::cat({chosenRewards, rejectedRewards}).mean().item<double>());
        out.scalars.push_back({"bco/reward_shift", shift});
      }
      term = dpoLoss(pc, pr, rc, rr, beta, type, settings.labelSmoothing, shift).loss;
    }
    const double weight = settings.lossWeights.empty() ? 1.0 : settings.lossWeights[i];
    out.loss = out.loss.defined() ? out.loss + weight * term : weight * term;
    if (settings.lossTypes.size() > 1)
      out.scalars.push_back({std::string("loss/") + name(type), term.item<double>()});
  }
  if (settings.sftWeight > 0) out.loss = out.loss + settings.sftWeight * chosenNll();
  const Scalars rewards = {
      {"rewards/chosen", chosenRewards.mean().item<double>()},
      {"rewards/rejected", rejectedRewards.mean().item<double>()},
      {"rewards/margins", (chosenRewards - rejectedRewards).mean().item<double>()},
      {"rewards/accuracies",
       (chosenRewards > rejectedRewards).to(torch::kFloat32).mean().item<double>()},
      {"logps/chosen", pc.mean().item<double>()},
      {"logps/rejected", pr.mean().item<double>()},
      {"logps/ref_chosen", rc.mean().item<double>()},
      {"logps/ref_rejected", rr.mean().item<double>()}};
  out.scalars.insert(out.scalars.begin(), rewards.begin(), rewards.end());
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

namespace {

std::vector<Sample> trainingSamples(const ShapesWorld& world, const std::vector<int64_t>& indices) {
  std::vector<Sample> samples;
  for (auto index : indices) samples.push_back(world.sample(Split::Train, index));
  return samples;
}

// DPO and MPO: bco_pair's running mean lives beside each checkpoint, so a resumed run shifts as
// the uninterrupted one would.
TrainingMethod preferenceMethod(const TrainConfig& c, Mllm& model, Mllm& reference,
                                const ShapesWorld& world, const RealData* realData,
                                const WordTokenizer& tok, torch::Device device) {
  auto bco = std::make_shared<RunningMean>();
  DpoSettings settings{c.beta,       c.loss_type, c.loss_weights, c.label_smoothing,
                       c.sft_weight, bco.get()};
  TrainingMethod m;
  m.samplesPerStep = c.batch_size;
  m.step = [&model, &reference, &world, realData, &tok, device, settings, bco](
               int64_t, const std::vector<int64_t>& indices) {
    if (realData) return dpoStepOn(model, reference, realData->dpoBatch(indices, device), settings);
    return dpoStep(model, reference, trainingSamples(world, indices), settings, tok, device);
  };
  m.saveState = [bco](const std::string& dir) {
    saveSafetensors(
        (fs::path(dir) / kMethodStateFile).string(),
        {{"bco_running_mean", torch::tensor({bco->mean, bco->count}, torch::kFloat64)}});
  };
  m.restoreState = [bco](const std::string& dir) {
    const auto path = fs::path(dir) / kMethodStateFile;
    if (!fs::exists(path)) return;  // a checkpoint from before bco_pair kept its mean
    const auto state = loadSafetensors(path.string()).at("bco_running_mean");
    bco->mean = state[0].item<double>();
    bco->count = state[1].item<double>();
  };
  return m;
}

}  // namespace

TrainingMethod methodForRun(const TrainConfig& c, Mllm& model, Mllm& reference,
                            ContrastiveHeads& heads, const ShapesWorld& world,
                            const RealData* realData, const WordTokenizer& tok,
                            torch::Device device, ProcessGroup* group) {
  TrainingMethod m;
  m.samplesPerStep = c.batch_size;
  switch (c.stage) {
    case Stage::Pretrain: {
      std::shared_ptr<BatchPeers> peers;
      if (group)
        peers = std::make_shared<BatchPeers>(
            BatchPeers{group->rank(), group->size(),
                       [group](const torch::Tensor& t) { return group->allGather(t); }});
      m.step = [&model, &heads, &world, &tok, device, weight = c.conjunction_weight, peers](
                   int64_t, const std::vector<int64_t>& indices) {
        auto pre = pretrainStep(model->vision_tower, heads, trainingSamples(world, indices), tok,
                                device, weight, peers.get());
        StepOutput out;
        out.loss = pre.loss;
        out.scalars = pre.scalars;
        return out;
      };
      return m;
    }
    case Stage::Align:
    case Stage::Instruct:
    case Stage::Sft: {
      const Response response = c.stage == Stage::Align ? Response::Caption : Response::Chosen;
      m.step = [&model, &world, realData, &tok, device, response](
                   int64_t, const std::vector<int64_t>& indices) {
        if (realData) return sftStepOn(model, realData->sftBatch(indices, device));
        return sftStep(model, trainingSamples(world, indices), response, tok, device);
      };
      return m;
    }
    case Stage::Dpo:
    case Stage::Mpo:
      return preferenceMethod(c, model, reference, world, realData, tok, device);
    case Stage::Grpo:
      return grpoMethod(c, model, reference, world, realData, tok, device);
  }
  throw std::logic_error("no training method for this stage");
}

namespace {

// Minus the mean probability of sampling each sample's chosen answer, stop token included, at
// `temperature`.
double minusExpectedAccuracy(Mllm& policy, const std::vector<Sample>& samples,
                             const WordTokenizer& tok, torch::Device device, double temperature) {
  std::vector<BatchRow> rows;
  for (const auto& s : samples) rows.push_back({&s, Response::Chosen});
  const auto in = buildBatch(rows, tok, policy->config.vision.numPatches(), device);
  const auto logits = policy->forward(in).to(torch::kFloat32) / temperature;
  const auto logps = sequenceLogProbs(logits, in.targetLabels());
  return -logps.exp().sum().item<double>();
}

}  // namespace

double heldOutObjective(const TrainConfig& c, Mllm& policy, Mllm& reference,
                        const std::vector<Sample>& samples, const WordTokenizer& tok,
                        torch::Device device, int batchSize) {
  if (!c.isStageTwo())
    throw std::runtime_error(std::string("stage ") + stageName(c.stage) +
                             " has no held-out stage-2 objective");
  if (samples.empty()) throw std::runtime_error("a held-out objective needs samples");
  torch::NoGradGuard noGrad;
  const bool policyTrained = policy->is_training(), referenceTrained = reference->is_training();
  policy->eval();
  reference->eval();
  double sum = 0;  // over samples (or, for SFT, over answer tokens)
  double units = 0;
  for (size_t start = 0; start < samples.size(); start += static_cast<size_t>(batchSize)) {
    const std::vector<Sample> batch(
        samples.begin() + static_cast<long>(start),
        samples.begin() + static_cast<long>(std::min(samples.size(), start + batchSize)));
    const auto n = static_cast<double>(batch.size());
    if (c.stage == Stage::Sft) {
      const auto out = sftStep(policy, batch, Response::Chosen, tok, device);
      sum += out.loss.item<double>() * out.lossUnits;  // sftLoss is a mean over answer tokens
      units += out.lossUnits;
    } else if (c.stage == Stage::Grpo) {
      sum += minusExpectedAccuracy(policy, batch, tok, device, c.temperature);
      units += n;
    } else {
      RunningMean bco;  // bco_pair's shift: this batch's mean reward (no training history)
      const DpoSettings settings{c.beta,       c.loss_type, c.loss_weights, c.label_smoothing,
                                 c.sft_weight, &bco};
      sum += dpoStep(policy, reference, batch, settings, tok, device).loss.item<double>() * n;
      units += n;
    }
  }
  if (policyTrained) policy->train();
  if (referenceTrained) reference->train();
  return sum / units;
}

std::string heldOutObjectiveName(const TrainConfig& c) {
  std::ostringstream out;
  switch (c.stage) {
    case Stage::Sft:
      return "answer NLL per token";
    case Stage::Grpo:
      out << "minus the expected accuracy reward (temperature " << c.temperature << ")";
      return out.str();
    case Stage::Dpo:
    case Stage::Mpo:
      out << (c.stage == Stage::Dpo ? "DPO" : "MPO") << " loss (";
      for (size_t i = 0; i < c.loss_type.size(); ++i) {
        out << (i ? " + " : "");
        if (!c.loss_weights.empty()) out << c.loss_weights[i] << " x ";
        out << name(c.loss_type[i]);
      }
      if (c.sft_weight > 0) out << " + " << c.sft_weight << " x SFT";
      out << ", beta " << c.beta << ")";
      return out.str();
    default:
      throw std::runtime_error(std::string("stage ") + stageName(c.stage) +
                               " has no held-out stage-2 objective");
  }
}

double applyUpdate(const torch::Tensor& loss, torch::optim::Optimizer& optimizer,
                   const std::vector<torch::Tensor>& parameters, double clip,
                   const std::function<void()>& afterBackward) {
  optimizer.zero_grad();
  loss.backward();
  if (afterBackward) afterBackward();
  const double gradNorm = torch::nn::utils::clip_grad_norm_(
      parameters, clip > 0 ? clip : std::numeric_limits<double>::infinity());
  if (std::isfinite(gradNorm)) optimizer.step();
  return gradNorm;
}

}  // namespace pivot
