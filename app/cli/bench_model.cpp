// `pivot bench model`: what one gradient map and one SFT step cost on a real-size model (random
// weights from a LLaVA config, e.g. llava-interleave-qwen-0.5b's shape), on this machine.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.h"
#include "io/hf_llava.h"
#include "model/generate.h"
#include "training/batches.h"
#include "peak_memory.h"
#include "torch_compat.h"
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
      "vocab %d), %s, %d threads\n",
      static_cast<double>(parameters) / 1e6, config.vision.num_hidden_layers,
      config.vision.hidden_size, config.vision.image_size, config.imageTokens(),
      config.text.num_hidden_layers, config.text.hidden_size, config.text.vocab_size,
      args.dtype == "bf16" ? "bf16 autocast over float32 weights" : "float32",
      torch::get_num_threads());
  std::printf("  built in %.1f s, %.0f MB resident\n", buildSeconds, peakRssMb());

  const ConversationBatcher batcher(config, folder.string(), args.chatFormat, readRgb8);
  const MllmInputs in = batcher.photoQuestion(args.image, question(args.questionTokens),
                                              "The nearest object is a red cup.", torch::kCPU);
  std::printf("  input: %lld tokens (%d image tokens), photo %s\n",
              static_cast<long long>(in.inputIds.size(1)), config.imageTokens(),
              args.image.c_str());

  model->eval();
  AttributionOptions gradmap;  // the paper's map: gradient of the SFT loss at the visual tokens
  resetPeakRss();
  t0 = Clock::now();
  const bool bf16 = args.dtype == "bf16";
  torch::Tensor mapsTensor;
  {
    AutocastScope autocast(bf16, torch::kCPU);
    mapsTensor = explain(model, in, gradmap).maps;
  }
  const double mapSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("  gradient map (forward + backward): %.1f s, peak %.0f MB; map %lld x %lld\n",
              mapSeconds, peakRssMb(), static_cast<long long>(mapsTensor.size(1)),
              static_cast<long long>(mapsTensor.size(2)));

  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-5));
  std::vector<torch::Tensor> parameterList = model->parameters();
  resetPeakRss();
  t0 = Clock::now();
  StepOutput out;
  {
    AutocastScope autocast(bf16, torch::kCPU);  // forward only, as the trainer does
    out = sftStepOn(model, in);
  }
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

namespace pivot::cli {

int cmdBenchLoad(const LoadBenchArgs& args) {
  using Clock = std::chrono::steady_clock;
  const MllmConfig config = llavaConfigFromHf(readJsonFile(args.config), args.config);
  const bool keep = !args.folder.empty();
  const fs::path folder =
      keep ? fs::path(args.folder)
           : fs::temp_directory_path() / ("pivot-bench-load-" + std::to_string(::getpid()));
  HfExportOptions options;
  options.dtype = storedDtypeFromName(args.dtype);
  // Generated in a child process, so that the measuring process starts with a clean heap (memory
  // freed after generating would otherwise be reused by the load and hide its cost). The parent
  // has not touched torch's thread pools yet, so forking is safe.
  const pid_t child = ::fork();
  if (child == 0) {
    try {
      torch::manual_seed(1);
      Mllm model(config);
      saveHfLlava(model, folder.string(), options);
      ::_exit(0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pivot bench load: %s\n", e.what());
      ::_exit(1);
    }
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    throw std::runtime_error("pivot bench load: generating the checkpoint in " + folder.string() +
                             " failed");
  int64_t fileBytes = 0;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.path().extension() == ".safetensors") {
      fileBytes += static_cast<int64_t>(entry.file_size());
      // Out of the page cache, so that the figure includes reading the disk.
      const int fd = ::open(entry.path().c_str(), O_RDONLY);
      if (fd >= 0) {
        ::fdatasync(fd);
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        ::close(fd);
      }
    }

  resetPeakRss();
  const double before = peakRssMb();
  auto t0 = Clock::now();
  const HfLlava loaded = loadHfLlava(folder.string());
  const double loadSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const double peak = peakRssMb() - before;
  int64_t parameterBytes = 0;
  for (const auto& p : loaded.model->parameters()) parameterBytes += p.numel() * p.element_size();
  const double parameterMb = static_cast<double>(parameterBytes) / (1 << 20);
  std::printf(
      "load bench: %s, %zu file(s), %.0f MB of %s weights on disk (evicted from the page "
      "cache first)\n",
      args.config.c_str(), loaded.report.files.size(), static_cast<double>(fileBytes) / (1 << 20),
      args.dtype.c_str());
  std::printf(
      "  loaded: %.0f MB of float32 parameters in %.1f s (%.0f MB/s of checkpoint, "
      "building and initialising the model included)\n",
      parameterMb, loadSeconds, static_cast<double>(fileBytes) / (1 << 20) / loadSeconds);
  std::printf(
      "  peak resident memory while loading: %.0f MB = %.2fx the loaded parameters "
      "(goal <= 1.3x; %.0f MB resident before)\n",
      peak, peak / parameterMb, before);
  if (!keep) fs::remove_all(folder);
  return 0;
}

}  // namespace pivot::cli

namespace pivot::cli {

int cmdBenchGenerate(const GenerateBenchArgs& args) {
  using Clock = std::chrono::steady_clock;
  const TrainConfig cfg = makeConfig(args.preset, Stage::Instruct, {});
  torch::manual_seed(1);
  Mllm model(cfg.model);
  const ShapesWorld world(cfg.world);
  const WordTokenizer tok = WordTokenizer::shapesWorld();
  std::vector<Sample> samples;
  for (int i = 0; i < args.batch; ++i) samples.push_back(world.sample(Split::Val, i));
  std::vector<const Sample*> rows;
  for (const auto& s : samples) rows.push_back(&s);
  const MllmInputs prompt = promptBatch(rows, tok, cfg.model.imageTokens(), torch::kCPU);
  GenerationOptions options;
  options.maxNewTokens = args.tokens;  // no stop token: every row decodes the whole budget
  auto timed = [&](bool cache) {
    options.useCache = cache;
    (void)generate(model, prompt, options);  // warm-up
    const auto t0 = Clock::now();
    const Generation g = generate(model, prompt, options);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    return std::make_pair(g, static_cast<double>(g.ids.numel()) / s);
  };
  const auto [cached, cachedRate] = timed(true);
  const auto [recomputed, recomputedRate] = timed(false);
  std::printf(
      "generate bench: preset %s (LM %d x %d, prompt %lld tokens incl. %d image tokens), batch %d, "
      "%d new tokens, greedy, %d threads\n",
      args.preset.c_str(), cfg.model.text.num_hidden_layers, cfg.model.text.hidden_size,
      static_cast<long long>(prompt.inputIds.size(1)), cfg.model.imageTokens(), args.batch,
      args.tokens, torch::get_num_threads());
  std::printf(
      "  key/value cache: %.0f tokens/s; recomputing every step: %.0f tokens/s; ratio %.1fx "
      "(goal >= 4x); same tokens: %s\n",
      cachedRate, recomputedRate, cachedRate / recomputedRate,
      torch::equal(cached.ids, recomputed.ids) ? "yes" : "NO");
  return 0;
}

}  // namespace pivot::cli
