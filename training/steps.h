// One step function per training method: a batch of samples in, the loss to backpropagate and the
// values to log out (TRL's names), no I/O. The trainer's driver (trainer.cpp) picks one per run,
// once, and `pivot bench` times these very functions.
//
//   pretrain   stage 0: SigLIP's image-text loss (+ conjunction labels)    encoder_pretrain.h
//   caption    stage 1a: next-token loss on the caption
//   sft        stage 1b and stage-2 SFT: next-token loss on the chosen answer
//   dpo, mpo   stage-2 DPO: the preference losses against the frozen reference, weighted (MPO:
//              sigmoid + bco_pair + sft), plus an optional SFT term
//   grpo       stage-2 GRPO: sampled completions, verifiable rewards, the clipped surrogate  grpo.h
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "config/train_config.h"
#include "data/shapes_world.h"
#include "text/word_tokenizer.h"
#include "model/mllm.h"
#include "training/batches.h"
#include "training/encoder_pretrain.h"
#include "store/run_store.h"
#include "training/losses.h"
#include "training/metric_sink.h"

namespace pivot {

class RealData;
class ProcessGroup;

struct StepOutput {
  torch::Tensor loss;
  Scalars scalars;    // without "loss": the driver adds it, with learning rates and grad norm
  double tokens = 0;  // non-padding tokens in the batch (throughput)
  // What `loss` is a mean over (labelled tokens for SFT); 0: the samples of the step. Data-parallel
  // ranks weight their gradients by it, so that their sum is the gradient of the global batch.
  double lossUnits = 0;
  std::vector<CompletionRow> completions;  // GRPO's completions log at a logging step
};

// The methods on ready model inputs, whatever made them (ShapesWorld samples, a real dataset):
// SFT's next-token loss on the labelled tokens; DPO on 2B rows, the B chosen then the B
// rejected, sharing B images.
StepOutput sftStepOn(Mllm& model, const MllmInputs& in);
struct DpoSettings;
StepOutput dpoStepOn(Mllm& policy, Mllm& reference, const MllmInputs& in,
                     const DpoSettings& settings);

// Next-token loss on each sample's `response` (the caption in stage 1a, the chosen answer after).
StepOutput sftStep(Mllm& model, const std::vector<Sample>& samples, Response response,
                   const WordTokenizer& tok, torch::Device device);

struct DpoSettings {
  double beta = 0.1;
  std::vector<DpoLoss> lossTypes = {DpoLoss::Sigmoid};  // summed, each times its weight
  std::vector<double> lossWeights;                      // empty = 1 each
  double labelSmoothing = 0.0;
  double sftWeight = 0.0;      // an SFT term on the chosen answer (0 = pure DPO)
  RunningMean* bco = nullptr;  // bco_pair's reward shift, updated each step (needed by bco_pair)
};

// DPO over (chosen, rejected) pairs that share one image; the reference runs without gradients.
StepOutput dpoStep(Mllm& policy, Mllm& reference, const std::vector<Sample>& samples,
                   const DpoSettings& settings, const WordTokenizer& tok, torch::Device device);

// A run's method, chosen once: the step the driver calls with the dataset indices a step visits,
// how many indices that is, and the state beyond weights and optimiser that a resumed run needs
// (bco_pair's running mean, GRPO's generation batch), kept beside each checkpoint.
struct TrainingMethod {
  int64_t samplesPerStep = 0;  // dataset samples a step draws (GRPO: prompts)
  int64_t stepsPerBatch = 1;   // consecutive steps that share one batch (GRPO's num_iterations)
  std::function<StepOutput(int64_t step, const std::vector<int64_t>& indices)> step;
  std::function<void(const std::string& checkpointDir)> saveState = [](const std::string&) {};
  std::function<void(const std::string& checkpointDir)> restoreState = [](const std::string&) {};
};

// The method of `config`'s stage bound to its models and data (ShapesWorld's training split, or
// `realData` for a real model). `reference` is used by DPO, MPO and GRPO with beta > 0, `heads`
// by stage 0 only.
// `group` (data parallel): stage 0's SigLIP loss spans the ranks' slices (encoder_pretrain.h).
TrainingMethod methodForRun(const TrainConfig& config, Mllm& model, Mllm& reference,
                            ContrastiveHeads& heads, const ShapesWorld& world,
                            const RealData* realData, const WordTokenizer& tok,
                            torch::Device device, ProcessGroup* group = nullptr);

// The objective a stage-2 method trains on, evaluated without gradients on held-out `samples`, so
// that each arm can be tuned on its own terms (lower is better for every method):
//   sft        the chosen answers' mean token negative log-likelihood (its loss)
//   dpo, mpo   its loss (every loss term, its weights and its SFT term) against `reference`
//   grpo       minus the expected accuracy reward: the mean probability that a completion sampled
//              at the run's temperature is exactly the reference answer (its stop token included)
// Stages 0 and 1 have no stage-2 objective: it throws for them.
double heldOutObjective(const TrainConfig& config, Mllm& policy, Mllm& reference,
                        const std::vector<Sample>& samples, const WordTokenizer& tok,
                        torch::Device device, int batchSize = 64);
// What heldOutObjective measures for `config`, in words (e.g. "DPO loss (sigmoid + 0.2 x SFT)").
std::string heldOutObjectiveName(const TrainConfig& config);

// Backward, `afterBackward` (data-parallel: the gradients' all-reduce), gradient clipping (max norm
// `clip`, 0 = none) and the optimiser step; returns the gradient norm before clipping. When that
// norm is not finite the weights are left untouched.
double applyUpdate(const torch::Tensor& loss, torch::optim::Optimizer& optimizer,
                   const std::vector<torch::Tensor>& parameters, double clip,
                   const std::function<void()>& afterBackward = {});

}  // namespace pivot
