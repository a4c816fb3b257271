// `pivot train`: one stage, its earlier stages first when no --from is given (the chain's rule in
// config/train_config.h), data parallel with --nproc (launch.h); progress lines, how it ended.
#include <unistd.h>

#include <iomanip>
#include <iostream>

#include "commands.h"
#include "config/train_config.h"
#include "launch.h"
#include "progress.h"
#include "stop_signals.h"
#include "store/workspace.h"
#include "torch_compat.h"
#include "training/distributed.h"
#include "training/chain.h"
#include "training/trainer.h"
#include "visualization/overlay.h"

namespace fs = std::filesystem;

namespace pivot::cli {
namespace {

// The STEP of RUN@STEP: a step number, or one error naming the option.
int64_t parseStep(const std::string& text, const std::string& option) {
  if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos)
    throw std::runtime_error(option + ": '" + text + "' is not a step (RUN@STEP, e.g. dpo-4@20)");
  return std::stoll(text);
}

bool followerRank();

void printEvaluation(const TrainResult& r) {
  if (followerRank()) return;
  for (const auto& [k, v] : r.evaluation)
    std::cout << "  " << std::left << std::setw(34) << k << std::fixed << std::setprecision(4) << v
              << "\n";
  std::cout.unsetf(std::ios::fixed);
}

// Data-parallel ranks > 0 print nothing but errors: rank 0 speaks for the run.
bool followerRank() {
  // torchrun's variables, read by the one reader the process group uses; malformed ones fail
  // there, with their name, before anything prints.
  try {
    const DistributedEnv env = distributedEnvFromEnvironment();
    return env.active() && !env.leader();
  } catch (const std::exception&) {
    return false;
  }
}

// Prints how a run ended; a failed run throws RunFailed (exit code 1), a stopped one RunStopped.
void reportEnd(const std::string& stage, const TrainResult& r) {
  if (!followerRank())
    std::cout << stage << " run " << r.runId << ": " << name(r.status) << " (" << r.message
              << ")\n";
  if (r.status == RunStatus::Failed)
    throw RunFailed("run " + std::to_string(r.runId) + " failed: " + r.message);
  if (r.status == RunStatus::Stopped) {
    // A data-parallel run resumes on as many processes (trainer.cpp checks it).
    const int processes = distributedEnvFromEnvironment().worldSize;
    throw RunStopped("run " + std::to_string(r.runId) + " " + r.message +
                     " with a checkpoint; continue it with: pivot train --resume " +
                     std::to_string(r.runId) +
                     (processes > 1 ? " --nproc " + std::to_string(processes) : ""));
  }
}

// The options of one trained stage: its progress line (or silence), the stop signals, real data's
// image decoder and the data-parallel group.
TrainOptions stageOptions(const TrainConfig& cfg, bool quiet, MetricSink& progress,
                          MetricSink& silent) {
  TrainOptions opt;
  opt.sink = quiet ? &silent : &progress;
  opt.stopRequested = &installStopSignals();
  opt.decodeImage = readRgb8;  // real data's images
  opt.group = workerGroup(pickDevice(cfg.device).is_cuda());
  return opt;
}

}  // namespace

int cmdTrain(const std::string& workspace, const TrainArgs& a) {
  if (!followerRank()) refuseDamagedStore(workspace);  // rank 0 alone writes the store
  if (!a.resume.empty()) {
    // A resumed run continues with its own configuration and parent; anything else given with
    // --resume would be silently ignored, so it is refused.
    if (!a.optionsBesideResume.empty())
      throw std::runtime_error(
          "--resume continues a run with its own configuration; it cannot be combined with " +
          a.optionsBesideResume);
    auto store = openExisting(workspace);
    const auto info = store->findRun(a.resume);
    store.reset();
    ProgressSink progress("[" + info.stage + "]");
    NullSink silent;
    TrainOptions opt = stageOptions(trainConfigFromJson(nlohmann::json::parse(info.configJson)),
                                    a.quiet, progress, silent);
    opt.workspace = workspace;
    opt.resumeRunId = info.id;
    opt.skipBad = a.skipBad;
    auto r = train(TrainConfig{}, opt);
    reportEnd(info.stage, r);
    printEvaluation(r);
    return 0;
  }
  const Stage stage = stageFromName(a.stage);
  // A real model: its folder and data become config keys, so a resume finds them again.
  std::vector<std::string> sets = a.sets;
  if (!a.model.empty()) sets.push_back("model_dir=" + fs::absolute(a.model).string());
  if (!a.data.empty()) sets.push_back("data=" + fs::absolute(a.data).string());
  if (!a.imageRoot.empty()) sets.push_back("image_root=" + fs::absolute(a.imageRoot).string());
  if (!a.chatFormat.empty()) sets.push_back("chat_format=" + a.chatFormat);
  if (a.skipBad) sets.push_back("skip_bad=true");
  if (a.model.empty() &&
      (!a.data.empty() || !a.imageRoot.empty() || !a.chatFormat.empty() || a.skipBad))
    throw std::runtime_error("--data, --image-root, --chat-format and --skip-bad need --model");
  // Without --from the earlier stages run first, by the chain's rule: --set keys of the
  // architecture, the world and the device reach them, hyper-parameters only the requested stage.
  // Every stage is validated before anything is written.
  const auto chain = chainConfigs(a.preset, stage, sets, a.from.empty());
  (void)pickDevice(chain.back().device);  // device=cuda without CUDA
  if (a.from.empty()) checkVisionInit(workspace, chain.front().vision_init);
  std::optional<int64_t> parent, parentStep;
  if (!a.from.empty()) {  // RUN or RUN@STEP
    const auto at = a.from.rfind('@');
    const std::string runName = a.from.substr(0, at);
    auto store = openExisting(workspace);
    const auto info = store->findRun(runName);
    if (info.status != RunStatus::Finished && info.status != RunStatus::Stopped)
      throw std::runtime_error("run '" + runName + "' is " + name(info.status) + ", not finished");
    parent = info.id;
    if (at != std::string::npos) parentStep = parseStep(a.from.substr(at + 1), "--from");
  }
  // Earlier stages an identical chain already finished are reused, as `pivot experiment` does.
  std::unique_ptr<ProgressSink> progress;
  NullSink silent;
  ChainHooks hooks;
  hooks.onStage = [&](const ChainStage& s) {
    const std::string stageText = stageName(s.config->stage);
    if (!followerRank() && s.total > 1)
      std::cout << "stage " << s.index << " of " << s.total << ": " << stageText
                << (s.reusedRun ? ": reused run " + std::to_string(*s.reusedRun) +
                                      " (an identical " + stageText + " that finished)"
                                : "")
                << "\n";
  };
  hooks.optionsFor = [&](const ChainStage& s) {
    progress = std::make_unique<ProgressSink>("[" + std::string(stageName(s.config->stage)) + "]");
    TrainOptions opt = stageOptions(*s.config, a.quiet, *progress, silent);
    if (s.index == s.total) {
      opt.runName = a.name;
      opt.parentStep = parentStep;
    }
    return opt;
  };
  hooks.onTrained = [](const ChainStage& s, const TrainResult& r) {
    reportEnd(stageName(s.config->stage), r);  // throws for a stage that did not finish
  };
  const auto r = runChain(workspace, chain, parent, hooks).last;
  printEvaluation(r);
  if (!followerRank())
    std::cout << "results: " << storePath(workspace) << " (run " << r.runId << "), checkpoint "
              << r.checkpoint << "\n";
  return 0;
}

}  // namespace pivot::cli
