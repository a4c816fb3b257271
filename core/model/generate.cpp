#include "model/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <limits>

#include "torch_compat.h"

namespace pivot {

torch::Tensor pickNextTokens(const torch::Tensor& logits, const GenerationOptions& o,
                             torch::Generator& generator) {
  const double minusInf = -std::numeric_limits<double>::infinity();
  auto scores = logits.to(torch::kFloat32);  // (B, V)
  if (!o.suppressIds.empty())
    scores = scores.index_fill(-1, torch::tensor(o.suppressIds, torch::kInt64), minusInf);
  if (o.temperature <= 0) return scores.argmax(/*dim=*/-1);
  scores = scores / o.temperature;
  if (o.topK > 0 && o.topK < scores.size(-1)) {
    const auto kth = std::get<0>(scores.topk(o.topK, /*dim=*/-1)).narrow(-1, o.topK - 1, 1);
    scores = scores.masked_fill(scores < kth, minusInf);
  }
  if (o.topP < 1.0) {
    auto [sorted, order] = scores.sort(/*dim=*/-1, /*descending=*/true);
    const auto probabilities = sorted.softmax(-1);
    // Drop a token when the tokens ranked above it already reach topP (the first always stays).
    auto drop = (probabilities.cumsum(-1) - probabilities) >= o.topP;
    scores = scores.scatter(-1, order, sorted.masked_fill(drop, minusInf));
  }
  return torch::multinomial(scores.softmax(-1), /*num_samples=*/1, /*replacement=*/false, generator)
      .squeeze(-1);
}

Generation generate(Mllm& model, const MllmInputs& prompt, const GenerationOptions& o) {
  torch::NoGradGuard noGrad;
  model->eval();
  auto& lm = model->language_model;
  const auto device = prompt.inputIds.device();
  const int64_t B = prompt.inputIds.size(0), T = prompt.inputIds.size(1);
  auto keyMask =
      prompt.attentionMask.defined()
          ? prompt.attentionMask.to(torch::kInt64)
          : torch::ones({B, T}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  // The prompt is the prefix: a bidirectional model attends both ways within it, as in training.
  const torch::Tensor prefix =
      model->config.prefix_bidirectional
          ? torch::full({B}, T, torch::TensorOptions().dtype(torch::kInt64).device(device))
          : torch::Tensor();
  auto embeds = model->embedInputs(prompt);  // (B, T, D)
  const auto dtype = embeds.scalar_type();
  auto positions = (keyMask.cumsum(1) - 1).clamp_min(0);  // HF's left-padding convention

  torch::Generator generator = at::detail::createCPUGenerator(o.seed);
  Generation out;
  out.lengths.assign(static_cast<size_t>(B), 0);
  out.stopped.assign(static_cast<size_t>(B), false);
  std::vector<torch::Tensor> produced;
  auto alive = torch::ones({B}, torch::TensorOptions().dtype(torch::kBool).device(device));
  std::vector<LayerKv> cache;

  // First step: the whole prompt (either way); then one token at a time.
  torch::Tensor logits;
  if (o.useCache) {
    const auto mask = buildAttentionMask(B, T, keyMask, prefix, dtype, device);
    logits = lm->forwardCached(embeds, positions, mask, cache);
  } else {
    logits = lm->forwardEmbeds(embeds, keyMask, positions, prefix).select(1, T - 1);
  }
  for (int step = 0; step < o.maxNewTokens; ++step) {
    auto next = pickNextTokens(logits.to(torch::kCPU), o, generator).to(device);  // (B)
    next = next.masked_fill(alive.logical_not(), o.padId);
    produced.push_back(next);
    for (int64_t b = 0; b < B; ++b) {
      if (!alive[b].item<bool>()) continue;
      ++out.lengths[static_cast<size_t>(b)];
      const int64_t id = next[b].item<int64_t>();
      for (int64_t stop : o.stopIds)
        if (id == stop) {
          out.stopped[static_cast<size_t>(b)] = true;
          alive[b] = false;
        }
    }
    if (!alive.any().item<bool>() || step + 1 == o.maxNewTokens) break;
    // The new token: its embedding, the next position, visible to itself and every real key.
    const auto nextEmbeds = lm->embed(next.unsqueeze(1));  // (B, 1, D)
    const auto nextPositions = positions.select(1, positions.size(1) - 1).unsqueeze(1) + 1;
    positions = torch::cat({positions, nextPositions}, 1);
    keyMask = torch::cat({keyMask, torch::ones({B, 1}, keyMask.options())}, 1);
    if (o.useCache) {  // the cache holds the past: only the new token goes in
      const int64_t S = keyMask.size(1);
      auto mask = torch::zeros({B, 1, 1, S}, torch::TensorOptions().dtype(dtype).device(device))
                      .masked_fill(keyMask.view({B, 1, 1, S}) == 0, maskedValue(dtype));
      logits = lm->forwardCached(nextEmbeds, nextPositions, mask, cache);
    } else {  // the reference path keeps and recomputes the whole sequence
      embeds = torch::cat({embeds, nextEmbeds}, 1);
      logits = lm->forwardEmbeds(embeds, keyMask, positions, prefix).select(1, embeds.size(1) - 1);
    }
  }
  out.ids = torch::stack(produced, /*dim=*/1);  // (B, steps)
  return out;
}

}  // namespace pivot
