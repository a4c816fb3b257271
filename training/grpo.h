// GRPO, as TRL's GRPOTrainer runs it, on ShapesWorld or a real model's dataset: per prompt
// num_generations completions sampled from the current policy (model/generate.h), scored by
// verifiable reward functions (rewards.h), group-relative advantages, and the clipped surrogate
// with the k3 KL to the frozen stage-1 reference (losses.h). One generation batch (a "rollout")
// serves num_iterations updates, the ratio taken to the policy that sampled it; the rollout is kept
// beside each checkpoint so that a resumed run continues exactly.
#pragma once
#include <torch/torch.h>

#include <optional>

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

// completionBatch's G P rows (generation-major: row g P + p is completion g of prompt p) with each
// prompt once: row p is prompt p's T tokens, then its G completions side by side (L tokens each),
// each on its own branch, seeing the prompt but not the other completions, positions continuing
// the prompt's. The same log-probabilities as the G P rows for about 1 / G of the language model's
// work, since the prompt (the image tokens above all) is most of a row and a completion 2-8
// tokens. Empty when G < 2 or the rows of a prompt do not start alike.
struct PackedCompletions {
  MllmInputs in;              // P rows, logits from position T - 1 (the prompt's last)
  torch::Tensor predictedAt;  // (P, G L): the logits position predicting completion g's token l
  torch::Tensor tokens;       // (P, G L): that token
  int64_t generations = 0, length = 0;
};
std::optional<PackedCompletions> packCompletions(const MllmInputs& completions,
                                                 int64_t generations);

// Per completion token, from the packed logits, in completionBatch's layout (G P, L + 1), the last
// column and every position past a completion 0 (`mask`: completionBatch's labels != -100): the
// token's log-probability and, when asked, the entropy of the distribution it was drawn from.
struct CompletionScores {
  torch::Tensor logps, entropy;
};
CompletionScores scorePackedCompletions(const PackedCompletions& packed,
                                        const torch::Tensor& logits, const torch::Tensor& mask,
                                        bool entropy);

// The GRPO method of a run (TrainingMethod: samplesPerStep prompts, stepsPerBatch iterations):
// ShapesWorld's training questions (the checker's answers), or with `realData` the dataset's
// prompts, each record's chosen or last answer the reference.
TrainingMethod grpoMethod(const TrainConfig& config, Mllm& policy, Mllm& reference,
                          const ShapesWorld& world, const RealData* realData,
                          const WordTokenizer& tok, torch::Device device);

}  // namespace pivot
