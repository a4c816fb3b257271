#include "study/counterfactual.h"

#include <algorithm>
#include <stdexcept>

#include "model/generate.h"
#include "text/word_tokenizer.h"
#include "training/batches.h"
#include "training/run_checkpoint.h"

namespace pivot {

std::vector<std::string> greedyAnswers(Mllm& model, const std::vector<const Sample*>& samples) {
  const WordTokenizer words = WordTokenizer::shapesWorld();
  const auto device = model->parameters().front().device();
  GenerationOptions greedy;
  greedy.maxNewTokens = 8;
  greedy.stopIds = {WordTokenizer::kImEnd};
  greedy.suppressIds = WordTokenizer::neverGenerated();
  std::vector<std::string> answers;
  for (size_t start = 0; start < samples.size(); start += 64) {
    const std::vector<const Sample*> batch(
        samples.begin() + static_cast<long>(start),
        samples.begin() + static_cast<long>(std::min(samples.size(), start + 64)));
    const Generation g =
        generate(model, promptBatch(batch, words, model->config.imageTokens(), device), greedy);
    const auto ids = g.ids.to(torch::kCPU).contiguous();
    for (size_t b = 0; b < batch.size(); ++b) {
      const auto row = ids[static_cast<int64_t>(b)].narrow(0, 0, g.lengths[b]).contiguous();
      answers.push_back(words.decode(
          std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel()),
          true));
    }
  }
  return answers;
}

SampleReading readSample(LoadedCheckpoint& m, const Sample& sample,
                         const AttributionOptions& options) {
  if (m.config.realModel())
    throw std::runtime_error(m.label() +
                             " is a real model: counterfactual scenes are ShapesWorld's");
  const WordTokenizer words = WordTokenizer::shapesWorld();
  const auto device = m.model->parameters().front().device();
  SampleReading out;
  out.answer = greedyAnswers(m.model, {&sample}).front();
  {
    torch::NoGradGuard noGrad;
    const auto in = buildBatch({{&sample, Response::Chosen}}, words,
                               m.config.model.vision.numPatches(), device);
    out.referenceLogProb =
        sequenceLogProbs(m.model->forward(in), in.targetLabels())[0].item<double>();
  }
  out.map = explainSample(m, sample, "", options);
  return out;
}

}  // namespace pivot
