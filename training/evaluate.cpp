#include "training/evaluate.h"

#include <array>

#include "training/batches.h"

namespace pivot {

Scalars evaluateVqa(Mllm& model, const ShapesWorld& world, const WordTokenizer& tok, Split split,
                    int numSamples, torch::Device device, int batchSize, int64_t first) {
  torch::NoGradGuard noGrad;
  const bool wasTraining = model->is_training();
  model->eval();
  const int imageTokens = model->config.vision.numPatches();
  std::array<int64_t, kNumCategories> correct{}, total{};
  double logpSum = 0, pairwiseHits = 0;
  for (int start = 0; start < numSamples; start += batchSize) {
    const int n = std::min(batchSize, numSamples - start);
    std::vector<Sample> samples;
    for (int i = 0; i < n; ++i) samples.push_back(world.sample(split, first + start + i));
    std::vector<BatchRow> rows;
    for (const auto& s : samples) rows.push_back({&s, Response::Chosen});
    for (const auto& s : samples) rows.push_back({&s, Response::Rejected});
    auto in = buildBatch(rows, tok, imageTokens, device);
    in.pixels = in.pixels.narrow(0, 0, n);  // chosen and rejected rows share their image
    auto logits = model->forward(in);       // (2n, T, V)
    auto labels = in.targetLabels();
    auto seq = sequenceLogProbs(logits, labels).to(torch::kCPU);  // (2n)
    auto firstPos =
        (in.prefixLen - 1 - in.logitsFrom).view({-1, 1, 1});  // predicts response token 0
    auto firstLogits = logits.gather(1, firstPos.expand({-1, 1, logits.size(2)})).squeeze(1);
    auto predicted = firstLogits.argmax(/*dim=*/-1).to(torch::kCPU);  // (2n)
    auto target = labels.gather(1, firstPos.view({-1, 1})).squeeze(1).to(torch::kCPU);
    for (int i = 0; i < n; ++i) {
      const int c = static_cast<int>(samples[static_cast<size_t>(i)].category);
      ++total[static_cast<size_t>(c)];
      if (predicted[i].item<int64_t>() == target[i].item<int64_t>())
        ++correct[static_cast<size_t>(c)];
      logpSum += seq[i].item<double>();
      if (seq[i].item<double>() > seq[n + i].item<double>()) pairwiseHits += 1;
    }
  }
  if (wasTraining) model->train();
  Scalars out;
  int64_t allCorrect = 0, all = 0;
  for (int c = 0; c < kNumCategories; ++c) {
    allCorrect += correct[static_cast<size_t>(c)];
    all += total[static_cast<size_t>(c)];
  }
  const double denom = std::max<int64_t>(1, all);
  out.emplace_back("vqa/accuracy", static_cast<double>(allCorrect) / denom);
  for (int c = 0; c < kNumCategories; ++c)
    if (total[static_cast<size_t>(c)] > 0)
      out.emplace_back(
          std::string("vqa/accuracy/") + categoryName(static_cast<Category>(c)),
          static_cast<double>(correct[static_cast<size_t>(c)]) / total[static_cast<size_t>(c)]);
  out.emplace_back("vqa/logps_chosen", logpSum / denom);
  out.emplace_back("vqa/pairwise_accuracy", pairwiseHits / denom);
  out.emplace_back("vqa/samples", static_cast<double>(all));
  return out;
}

}  // namespace pivot
