// `pivot bench`: one stage-2 SFT step and one DPO step of a preset's model, timed in C++ (the
// trainer's own step functions, training/steps.h, from samples to the optimiser step) and in Python
// (bench/reference_step.py, the same model in PyTorch, from prepared tensors) within the same run,
// same threads, same batch; prints milliseconds per step, the C++/Python ratio and peak memory.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <fstream>
#include <thread>
#include <unistd.h>

#include "commands.h"
#include "config/train_config.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "training/batches.h"
#include "model/attention.h"
#include "model/linear.h"
#include "torch_compat.h"
#include "training/losses.h"
#include "training/steps.h"
#include "visualization/attribution.h"

namespace fs = std::filesystem;

namespace pivot::cli {
namespace {

double peakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// Mean milliseconds of `steps` calls of `fn` after two warm-up calls.
template <typename Fn>
double timeSteps(int steps, Fn fn) {
  fn();
  fn();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
         steps;
}

}  // namespace

int cmdBench(const std::string& preset, int steps, const std::string& python) {
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  TrainConfig cfg = presetConfig(preset, Stage::Dpo);
  const ShapesWorld world(cfg.world);
  const WordTokenizer tok = WordTokenizer::shapesWorld();
  std::vector<Sample> samples;
  for (int i = 0; i < cfg.batch_size; ++i) samples.push_back(world.sample(Split::Train, i));
  std::vector<BatchRow> rows;
  for (const auto& s : samples) rows.push_back({&s, Response::Chosen});
  for (const auto& s : samples) rows.push_back({&s, Response::Rejected});
  auto pairs = buildBatch(rows, tok, cfg.model.vision.numPatches(), torch::kCPU);
  const int64_t B = cfg.batch_size;
  const auto allPixels = pairs.pixels;          // the Python reference encodes every row's image
  pairs.pixels = pairs.pixels.narrow(0, 0, B);  // C++ encodes each pair's image once
  MllmInputs chosen{pairs.pixels.narrow(0, 0, B),        pairs.inputIds.narrow(0, 0, B),
                    pairs.attentionMask.narrow(0, 0, B), pairs.labels.narrow(0, 0, B),
                    pairs.prefixLen.narrow(0, 0, B),     pairs.logitsFrom};

  Mllm policy(cfg.model), reference(cfg.model);
  loadStateDict(*reference, stateDict(*policy), {""}, "policy");
  for (auto& p : reference->parameters()) p.set_requires_grad(false);
  reference->eval();
  torch::optim::AdamW opt(policy->parameters(), torch::optim::AdamWOptions(1e-5).weight_decay(0));
  const auto trainable = policy->parameters();

  // The trainer's own step functions (training/steps.h), batch building from the samples included.
  const DpoSettings dpo;  // beta 0.1, sigmoid, as the reference script
  const double sftMs = timeSteps(steps, [&] {
    applyUpdate(sftStep(policy, samples, Response::Chosen, tok, torch::kCPU).loss, opt, trainable,
                1.0);
  });
  const double dpoMs = timeSteps(steps, [&] {
    applyUpdate(dpoStep(policy, reference, samples, dpo, tok, torch::kCPU).loss, opt, trainable,
                1.0);
  });
  // GRPO through the trainer's own method (training/grpo.h): batch_size completions a step
  // (batch_size / G prompts), sampling, rewards, the reference's KL and the update; no Python
  // reference (TRL's GRPOTrainer needs a GPU-sized setup), so timed alone.
  TrainConfig grpoCfg = presetConfig(preset, Stage::Grpo);
  ContrastiveHeads noHeads{nullptr};
  const TrainingMethod grpo =
      methodForRun(grpoCfg, policy, reference, noHeads, world, nullptr, tok, torch::kCPU);
  int64_t grpoStep = 0;
  std::vector<int64_t> prompts;
  for (int64_t i = 0; i < grpo.samplesPerStep; ++i) prompts.push_back(i);
  const double grpoMs = timeSteps(
      steps, [&] { applyUpdate(grpo.step(grpoStep++, prompts).loss, opt, trainable, 1.0); });
  // Attribution: one gradmap (target 30 ms) and a batch of 64 in one pass (not a loop of 64).
  AttributionOptions mapOptions;
  const MllmInputs one{chosen.pixels.narrow(0, 0, 1),        chosen.inputIds.narrow(0, 0, 1),
                       chosen.attentionMask.narrow(0, 0, 1), chosen.labels.narrow(0, 0, 1),
                       chosen.prefixLen.narrow(0, 0, 1),     chosen.logitsFrom};
  std::vector<BatchRow> many;
  for (int i = 0; i < 64; ++i)
    many.push_back({&samples[static_cast<size_t>(i % B)], Response::Chosen});
  const auto batch64 = buildBatch(many, tok, cfg.model.vision.numPatches(), torch::kCPU);
  const double mapMs = timeSteps(steps, [&] { explain(policy, one, mapOptions); });
  const double map64Ms =
      timeSteps(std::max(1, steps / 2), [&] { explain(policy, batch64, mapOptions); });
  // The same map with LibTorch's own kernels for the products (the reference for oneDNN's).
  const bool oneDnn = usingOneDnn();
  useOneDnn(false);
  const double mapTorchMs = timeSteps(steps, [&] { explain(policy, one, mapOptions); });
  const double map64TorchMs =
      timeSteps(std::max(1, steps / 2), [&] { explain(policy, batch64, mapOptions); });
  useOneDnn(oneDnn);
  const double cppPeak = peakRssMiB();

  // The Python reference gets the same batch and config through a temporary folder.
  const fs::path tmp = fs::temp_directory_path() / ("pivot-bench-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  saveSafetensors((tmp / "batch.safetensors").string(), {{"pixels", allPixels},
                                                         {"input_ids", pairs.inputIds},
                                                         {"attention_mask", pairs.attentionMask},
                                                         {"labels", pairs.labels},
                                                         {"prefix_len", pairs.prefixLen}});
  std::ofstream(tmp / "config.json") << toJson(cfg.model).dump(2);
  const std::string script = std::string(PIVOT_SOURCE_DIR) + "/bench/reference_step.py";
  const std::string cmd = python + " " + script + " " + tmp.string() + " " + std::to_string(steps) +
                          " " + std::to_string(threads) + " 2>&1";
  std::string output;
  if (FILE* pipe = popen(cmd.c_str(), "r")) {
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
    pclose(pipe);
  }
  fs::remove_all(tmp);
  nlohmann::json py;
  try {
    py = nlohmann::json::parse(output.substr(output.rfind('{')));
  } catch (...) {
    std::cout << "python reference failed (" << cmd << "):\n" << output << "\n";
  }

  const int64_t params = [&] {
    int64_t n = 0;
    for (auto& p : policy->parameters()) n += p.numel();
    return n;
  }();
  std::cout << std::fixed << std::setprecision(1) << "pivot bench: preset " << preset << ", "
            << params << " parameters, batch " << B << " (DPO: " << B << " pairs), " << threads
            << " threads, attention on " << cpuAttentionLibrary() << "\n"
            << std::left << std::setw(14) << "step" << std::setw(12) << "C++ ms" << std::setw(12)
            << "Python ms"
            << "ratio C++/Python (target <= 0.8)\n";
  auto row = [&](const char* name, double cpp, const char* key) {
    std::cout << std::setw(14) << name << std::setw(12) << cpp;
    if (py.contains(key))
      std::cout << std::setw(12) << py[key].get<double>() << std::setprecision(2)
                << cpp / py[key].get<double>();
    else
      std::cout << std::setw(12) << "-"
                << "-";
    std::cout << std::setprecision(1) << "\n";
  };
  row("SFT", sftMs, "sft_ms");
  row("DPO", dpoMs, "dpo_ms");
  std::cout << std::setw(14) << "GRPO" << std::setw(12) << grpoMs << std::setw(12) << "-"
            << "- (" << grpoCfg.batch_size << " completions: " << grpo.samplesPerStep
            << " prompts x " << grpoCfg.num_generations << ", sampling included)\n";
  std::cout << "gradmap: one sample " << mapMs << " ms (goal <= 8 ms), a batch of 64 " << map64Ms
            << " ms (" << map64Ms / 64 << " ms per map)";
  if (oneDnn)
    std::cout << std::setprecision(2) << "; with LibTorch's kernels " << mapTorchMs << " and "
              << map64TorchMs << " ms (oneDNN/LibTorch " << mapMs / mapTorchMs << " and "
              << map64Ms / map64TorchMs << ")" << std::setprecision(1);
  std::cout << "\n";
  std::cout << "peak memory: C++ " << cppPeak << " MiB";
  if (py.contains("peak_rss_mib"))
    std::cout << ", Python " << py["peak_rss_mib"].get<double>() << " MiB";
  std::cout << "\n";
  return 0;
}

}  // namespace pivot::cli
