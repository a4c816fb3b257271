// GRPO, as TRL's GRPOTrainer runs it, on ShapesWorld or a real model's dataset: per prompt
// num_generations completions sampled from the current policy (model/generate.h), scored by
// verifiable reward functions (rewards.h), group-relative advantages, and the clipped surrogate
// with the k3 KL to the frozen stage-1 reference (losses.h). One generation batch (a "rollout")
// serves num_iterations updates, the ratio taken to the policy that sampled it; the rollout is kept
// beside each checkpoint so that a resumed run continues exactly.
#pragma once
#include <torch/torch.h>

#include "config/train_config.h"
#include "data/shapes_world.h"
#include "model/mllm.h"
#include "text/word_tokenizer.h"
#include "training/real_data.h"
#include "training/steps.h"

namespace pivot {

// The prompts' rows followed by their completions, as one batch the policy scores: each row the
// LEFT-padded prompt (T tokens) then its completion (right-padded to L), labels on the completion
// tokens only, logits from position T - 1. pixels: the prompts' images (rows reuse them in turn).
MllmInputs completionBatch(const MllmInputs& prompts, const torch::Tensor& completionIds,
                           const std::vector<int64_t>& lengths, int64_t padId);

// The GRPO method of a run (TrainingMethod: samplesPerStep prompts, stepsPerBatch iterations):
// ShapesWorld's training questions (the checker's answers), or with `realData` the dataset's
// prompts, each record's chosen or last answer the reference.
TrainingMethod grpoMethod(const TrainConfig& config, Mllm& policy, Mllm& reference,
                          const ShapesWorld& world, const RealData* realData,
                          const WordTokenizer& tok, torch::Device device);

}  // namespace pivot
