// `pivot generate`: a model answers a ShapesWorld sample or a photo with a typed question, greedy
// or sampled (model/generate.h), with the run's own tokenizer and template.
#include <filesystem>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "io/hf_llava.h"
#include "model/generate.h"
#include "training/batches.h"
#include "training/real_data.h"
#include "training/run_checkpoint.h"
#include "visualization/overlay.h"

namespace pivot::cli {

int cmdGenerate(const std::string& workspace, const GenerateArgs& a) {
  if (a.checkpoint.empty() == a.model.empty())
    throw std::runtime_error("give either --checkpoint RUN[@STEP] or --model DIR");
  if ((a.sample < 0) == a.image.empty())
    throw std::runtime_error("give either --sample N or --image FILE with --question");
  if (!a.image.empty() && a.question.empty()) throw std::runtime_error("--image needs --question");
  if (a.samples < 1 || a.maxNewTokens < 1)
    throw std::runtime_error("--samples and --max-new-tokens must be at least 1");
  // Sampling would otherwise fail deep in torch (a negative temperature flips the distribution,
  // top-p 0 keeps no token).
  const auto shown = [](double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  if (!(a.temperature >= 0))
    throw std::runtime_error("--temperature must be 0 (greedy) or positive, got " +
                             shown(a.temperature));
  if (!(a.topP > 0 && a.topP <= 1))
    throw std::runtime_error("--top-p must be in (0, 1], got " + shown(a.topP));
  if (a.topK < 0) throw std::runtime_error("--top-k must be 0 (all) or positive");
  LoadedCheckpoint m =
      a.model.empty() ? loadRunCheckpoint(workspace, a.checkpoint) : loadModelFolder(a.model);
  const auto device = m.model->parameters().front().device();
  GenerationOptions options;
  options.maxNewTokens = a.maxNewTokens;
  options.temperature = a.temperature;
  options.topK = a.topK;
  options.topP = a.topP;

  MllmInputs prompt;
  std::function<std::string(const std::vector<int64_t>&)> decode;
  std::optional<ConversationBatcher> batcher;
  const WordTokenizer words = WordTokenizer::shapesWorld();
  Sample sample;
  if (m.config.realModel()) {
    if (a.image.empty())
      throw std::runtime_error(m.label() + " is a real model: give --image and --question");
    batcher.emplace(m.config.model, m.config.model_dir, m.config.chat_format, readRgb8);
    prompt = batcher->photoPrompt(a.image, a.question, device);
    options.stopIds = batcher->stopIds();
    options.suppressIds = {m.config.model.image_token_id};
    decode = [&](const std::vector<int64_t>& ids) {
      return batcher->tokenizer().decode(ids, /*skipSpecialTokens=*/true);
    };
  } else {
    if (a.sample >= 0) {
      sample = ShapesWorld(m.config.world).sample(splitFromName(a.split), a.sample);
    } else {
      const int size = m.config.model.vision.image_size;
      const auto image = loadImage(a.image, size);
      sample.scene.size = size;
      sample.scene.rgb = image.rgb;
      sample.question = a.question;
    }
    prompt = promptBatch({&sample}, words, m.config.model.imageTokens(), device);
    options.stopIds = {WordTokenizer::kImEnd};
    options.suppressIds = WordTokenizer::neverGenerated();
    decode = [&](const std::vector<int64_t>& ids) { return words.decode(ids, true); };
  }
  // RoPE computes any position, but past the trained context the answers are not to be trusted.
  const int64_t positions = prompt.inputIds.size(1) + a.maxNewTokens;
  if (positions > m.config.model.text.max_position_embeddings)
    std::cerr << "note: the prompt (" << prompt.inputIds.size(1) << " tokens) and --max-new-tokens "
              << a.maxNewTokens << " reach position " << positions << ", past the model's "
              << m.config.model.text.max_position_embeddings << " (max_position_embeddings)\n";
  std::cout << m.label() << "\nQ: " << (a.image.empty() ? sample.question : a.question) << "\n";
  if (a.sample >= 0 && !sample.answer.empty())
    std::cout << "(reference answer: " << sample.answer << ")\n";
  for (int k = 0; k < a.samples; ++k) {
    options.seed = a.seed + static_cast<uint64_t>(k);
    const Generation g = generate(m.model, prompt, options);
    const auto row = g.ids[0].narrow(0, 0, g.lengths[0]).contiguous();
    const std::vector<int64_t> ids(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
    std::cout << "A" << (a.samples > 1 ? std::to_string(k + 1) : "") << ": " << decode(ids)
              << (g.stopped[0] ? "" : "  [no stop token within --max-new-tokens]") << "\n";
  }
  return 0;
}

}  // namespace pivot::cli
