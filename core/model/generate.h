// Sampling from the MLLM: for GRPO's completions and for users asking a model a question. A
// key/value cache in the language model (each step feeds one token and attends to the cached
// keys), batched prompts with left padding, greedy or temperature / top-k / top-p sampling, a
// token budget, stop tokens; no gradients, eval mode, seeded so that a run reproduces.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/mllm.h"

namespace pivot {

struct GenerationOptions {
  int maxNewTokens = 32;
  double temperature = 0;  // 0 = greedy (argmax)
  int topK = 0;            // 0 = every token
  double topP = 1.0;       // nucleus: the smallest set of tokens whose probability reaches topP
  std::vector<int64_t> stopIds;  // a row ends after producing one of these (kept in its output)
  // Never produced (HF's suppress_tokens): the image placeholder, padding, a turn's start; a
  // sampled image token would read as an image that is not there.
  std::vector<int64_t> suppressIds;
  int64_t padId = 0;     // fills a row's output after it ended
  uint64_t seed = 0;     // the sampler's generator (greedy ignores it)
  bool useCache = true;  // false: recompute the whole sequence every step (the reference)
};

struct Generation {
  torch::Tensor ids;             // (B, steps) the new tokens, padId after a row's stop token
  std::vector<int64_t> lengths;  // new tokens per row, its stop token included
  std::vector<bool> stopped;     // ended on a stop token (false: ran out of maxNewTokens)
};

// `prompt`: rows LEFT-padded (attentionMask 0 before each row's first token), so that every row's
// next token follows position T - 1; its prefixLen, if any, marks the prompt as the prefix (a
// ShapesWorld model's bidirectional image and question). Labels are ignored.
Generation generate(Mllm& model, const MllmInputs& prompt, const GenerationOptions& options);

// The next token from one step's logits (B, V) by the options' rule (greedy, or temperature with
// top-k and top-p); exposed for tests.
torch::Tensor pickNextTokens(const torch::Tensor& logits, const GenerationOptions& options,
                             torch::Generator& generator);

}  // namespace pivot
