// `pivot bench model`: what one gradient map and one SFT step cost on a real-size model (random
// weights from a LLaVA config, e.g. llava-interleave-qwen-0.5b's shape), on this machine.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.h"
#include "io/hf_llava.h"
#include "peak_memory.h"
#include "training/real_data.h"
#include "training/steps.h"
#include "visualization/attribution.h"
#include "visualization/overlay.h"

namespace pivot::cli {
namespace {

namespace fs = std::filesystem;

// A question of about `tokens` tokens.
std::string question(int tokens) {
  std::string q = "Look at the photo carefully and tell me";
  for (int k = 0; static_cast<int>(q.size()) < tokens * 5; ++k)
    q += k % 2 ? " which object is nearest" : " what colour it has";
  return q + "?";
}

}  // namespace

int cmdBenchModel(const ModelBenchArgs& args) {
  using Clock = std::chrono::steady_clock;
  const MllmConfig config = llavaConfigFromHf(readJsonFile(args.config), args.config);
  torch::set_num_threads(args.threads > 0
                             ? args.threads
                             : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  // The batcher reads a folder: the tokenizer's files and a SigLIP processor for the image size.
  const fs::path folder =
      fs::temp_directory_path() / ("pivot-bench-model-" + std::to_string(::getpid()));
  fs::create_directories(folder);
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(args.tokenizer) / file, folder / file,
                  fs::copy_options::overwrite_existing);
  std::ofstream(folder / "preprocessor_config.json")
      << nlohmann::json(
             {{"image_processor_type", "SiglipImageProcessor"},
              {"size", {{"height", config.vision.image_size}, {"width", config.vision.image_size}}},
              {"resample", 3}})
             .dump();
  torch::manual_seed(1);
  resetPeakRss();
  auto t0 = Clock::now();
  Mllm model(config);
  const double buildSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  std::printf(
      "model bench: %.0f M parameters (vision %d x %d, %d px -> %d tokens; LM %d x %d, "
      "vocab %d), float32, %d threads\n",
      static_cast<double>(parameters) / 1e6, config.vision.num_hidden_layers,
      config.vision.hidden_size, config.vision.image_size, config.imageTokens(),
      config.text.num_hidden_layers, config.text.hidden_size, config.text.vocab_size,
      torch::get_num_threads());
  std::printf("  built in %.1f s, %.0f MB resident\n", buildSeconds, peakRssMb());

  const ConversationBatcher batcher(config, folder.string(), args.chatFormat, readRgb8);
  DatasetRecord record;
  record.images = {args.image};
  ChatMessage user, assistant;
  user.role = "user";
  user.parts.push_back({ContentPart::Kind::Text, "<image>\n" + question(args.questionTokens)});
  assistant.role = "assistant";
  assistant.parts.push_back({ContentPart::Kind::Text, "The nearest object is a red cup."});
  record.conversation = {user};
  record.chosen = {assistant};
  const MllmInputs in = batcher.sft({record}, torch::kCPU);
  std::printf("  input: %lld tokens (%d image tokens), photo %s\n",
              static_cast<long long>(in.inputIds.size(1)), config.imageTokens(),
              args.image.c_str());

  model->eval();
  AttributionOptions gradmap;  // the paper's map: gradient of the SFT loss at the visual tokens
  resetPeakRss();
  t0 = Clock::now();
  const auto maps = explain(model, in, gradmap);
  const double mapSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("  gradient map (forward + backward): %.1f s, peak %.0f MB; map %lld x %lld\n",
              mapSeconds, peakRssMb(), static_cast<long long>(maps.maps.size(1)),
              static_cast<long long>(maps.maps.size(2)));

  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-5));
  std::vector<torch::Tensor> parameterList = model->parameters();
  resetPeakRss();
  t0 = Clock::now();
  const StepOutput out = sftStepOn(model, in);
  const double gradNorm = applyUpdate(out.loss, optimizer, parameterList, 1.0);
  const double stepSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf(
      "  SFT step at batch 1 (forward, backward, AdamW): %.1f s, peak %.0f MB; loss %.3f, "
      "grad norm %.3g\n",
      stepSeconds, peakRssMb(), out.loss.item<double>(), gradNorm);
  fs::remove_all(folder);
  return 0;
}

}  // namespace pivot::cli
