#include "study/counterfactual.h"

#include <stdexcept>

#include "model/generate.h"
#include "text/word_tokenizer.h"
#include "training/batches.h"
#include "training/run_checkpoint.h"

namespace pivot {

SampleReading readSample(LoadedCheckpoint& m, const Sample& sample,
                         const AttributionOptions& options) {
  if (m.config.realModel())
    throw std::runtime_error(m.label() +
                             " is a real model: counterfactual scenes are ShapesWorld's");
  const WordTokenizer words = WordTokenizer::shapesWorld();
  const auto device = m.model->parameters().front().device();
  SampleReading out;
  GenerationOptions greedy;
  greedy.maxNewTokens = 8;
  greedy.stopIds = {WordTokenizer::kImEnd};
  greedy.suppressIds = WordTokenizer::neverGenerated();
  const Generation g = generate(
      m.model, promptBatch({&sample}, words, m.config.model.imageTokens(), device), greedy);
  const auto row = g.ids[0].narrow(0, 0, g.lengths[0]).to(torch::kCPU).contiguous();
  out.answer = words.decode(
      std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel()), true);
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
