#include "study/explain_sample.h"

#include <optional>
#include <stdexcept>

#include "text/word_tokenizer.h"
#include "training/batches.h"
#include "training/real_data.h"
#include "training/run_checkpoint.h"
#include "visualization/localization.h"
#include "visualization/overlay.h"

namespace pivot {

Sample sampleFor(const LoadedCheckpoint& m, const ExplainSubject& subject) {
  const int size = m.config.model.vision.image_size;
  if (subject.fromWorld) {
    if (m.config.realModel())
      throw std::runtime_error(m.label() +
                               " is a real model: choose a photo with a question and answer "
                               "(ShapesWorld samples are the miniature's)");
    WorldConfig world = subject.world;
    world.image_size = size;
    return ShapesWorld(world).sample(subject.split, subject.index);
  }
  Sample sample;
  sample.scene.size = size;
  sample.scene.rgb = loadImage(subject.imageFile, size).rgb;
  sample.question = subject.question;
  sample.answer = subject.answer;
  if (!m.config.realModel()) {  // the miniature's words: "What colour?" reads "what colour ?"
    const WordTokenizer words = WordTokenizer::shapesWorld();
    sample.question = words.normalise(sample.question);
    sample.answer = words.normalise(sample.answer);
  }
  return sample;
}

namespace {

// The sample's chosen answer (or, with `rejected`, its rejected one) as `m` reads it.
MllmInputs answerInputs(const LoadedCheckpoint& m, const Sample& sample,
                        const std::string& imageFile, const ConversationBatcher* batcher,
                        bool rejected = false) {
  const auto device = m.model->parameters().front().device();
  if (m.config.realModel()) {  // its own tokenizer, chat template and SigLIP processor
    std::optional<ConversationBatcher> own;
    if (!batcher)
      batcher = &own.emplace(m.config.model, m.config.model_dir, m.config.chat_format, readRgb8);
    return batcher->photoQuestion(imageFile, sample.question,
                                  rejected ? sample.rejected : sample.answer, device);
  }
  return buildBatch({{&sample, rejected ? Response::Rejected : Response::Chosen}},
                    WordTokenizer::shapesWorld(), m.config.model.vision.numPatches(), device);
}

}  // namespace

SampleMap explainSample(LoadedCheckpoint& m, const Sample& sample, const std::string& imageFile,
                        const AttributionOptions& options, const ConversationBatcher* batcher) {
  if (options.target == AttributionTarget::DpoLoss && sample.rejected.empty())
    throw std::runtime_error(
        "the DPO target needs a rejected answer (ShapesWorld samples have one)");
  const MllmInputs in = answerInputs(m, sample, imageFile, batcher);
  std::optional<MllmInputs> rejected;
  if (!sample.rejected.empty() && !m.config.realModel())
    rejected = answerInputs(m, sample, imageFile, batcher, /*rejected=*/true);
  const auto result = explain(m.model, in, options, rejected ? &*rejected : nullptr);
  SampleMap out;
  out.map = mapValues(result.maps, 0);
  out.gridH = static_cast<int>(result.maps.size(1));
  out.gridW = static_cast<int>(result.maps.size(2));
  out.warnings = result.warnings;
  if (!sample.targets.empty()) {
    const int size = sample.scene.size;
    const auto fraction = cellMaskFraction(targetMask(sample.scene.instanceMask, sample.targets),
                                           size, size, out.gridH, out.gridW);
    out.scored = true;
    out.massInside = massInside(out.map, fraction);
    out.pointingHit = pointingHit(out.map, fraction);
  }
  return out;
}

TokenSampleMaps explainSampleTokens(LoadedCheckpoint& m, const Sample& sample,
                                    const std::string& imageFile, const AttributionOptions& options,
                                    const ConversationBatcher* batcher) {
  std::optional<ConversationBatcher> own;
  if (m.config.realModel() && !batcher)
    batcher = &own.emplace(m.config.model, m.config.model_dir, m.config.chat_format, readRgb8);
  const TokenMaps maps =
      explainPerToken(m.model, answerInputs(m, sample, imageFile, batcher), options);
  TokenSampleMaps out;
  out.gridH = static_cast<int>(maps.maps.size(1));
  out.gridW = static_cast<int>(maps.maps.size(2));
  out.warnings = maps.warnings;
  const WordTokenizer words = WordTokenizer::shapesWorld();
  for (size_t k = 0; k < maps.tokenIds.size(); ++k) {
    const std::vector<int64_t> id = {maps.tokenIds[k]};
    out.tokens.push_back(batcher ? batcher->tokenizer().decode(id, false) : words.decode(id));
    out.logProbs.push_back(maps.logProbs[static_cast<int64_t>(k)].item<double>());
    out.maps.push_back(mapValues(maps.maps, static_cast<int64_t>(k)));
  }
  return out;
}

}  // namespace pivot
