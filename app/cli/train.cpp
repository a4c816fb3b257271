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
#include "training/trainer.h"
#include "visualization/overlay.h"

namespace fs = std::filesystem;

namespace pivot::cli {
namespace {

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
  if (r.status == RunStatus::Stopped)
    throw RunStopped("run " + std::to_string(r.runId) + " " + r.message +
                     " with a checkpoint; continue it with: pivot train --resume " +
                     std::to_string(r.runId));
}

TrainResult runStage(const std::string& workspace, const TrainConfig& cfg,
                     std::optional<int64_t> parent, const std::string& name, bool quiet) {
  ProgressSink progress(std::string("[") + stageName(cfg.stage) + "]");
  NullSink silent;
  TrainOptions opt;
  opt.workspace = workspace;
  opt.parentRunId = parent;
  opt.runName = name;
  opt.sink = quiet ? static_cast<MetricSink*>(&silent) : &progress;
  opt.stopRequested = &installStopSignals();
  opt.decodeImage = readRgb8;  // real data's images
  opt.group = workerGroup(pickDevice(cfg.device).is_cuda());
  auto r = train(cfg, opt);
  reportEnd(stageName(cfg.stage), r);
  return r;
}

}  // namespace

int cmdTrain(const std::string& workspace, const TrainArgs& a) {
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
    TrainOptions opt;
    opt.workspace = workspace;
    opt.resumeRunId = info.id;
    ProgressSink progress("[" + info.stage + "]");
    NullSink silent;
    opt.sink = a.quiet ? static_cast<MetricSink*>(&silent) : &progress;
    opt.stopRequested = &installStopSignals();
    opt.decodeImage = readRgb8;
    opt.group = workerGroup(
        pickDevice(trainConfigFromJson(nlohmann::json::parse(info.configJson)).device).is_cuda());
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
  if (a.model.empty() && (!a.data.empty() || !a.imageRoot.empty() || !a.chatFormat.empty()))
    throw std::runtime_error("--data, --image-root and --chat-format need --model");
  // Without --from the earlier stages run first, by the chain's rule: --set keys of the
  // architecture, the world and the device reach them, hyper-parameters only the requested stage.
  // Every stage is validated before anything is written.
  const auto chain = chainConfigs(a.preset, stage, sets, a.from.empty());
  (void)pickDevice(chain.back().device);  // device=cuda without CUDA
  if (a.from.empty()) checkVisionInit(workspace, chain.front().vision_init);
  std::optional<int64_t> parent;
  if (!a.from.empty()) {
    auto store = openExisting(workspace);
    const auto info = store->findRun(a.from);
    if (info.status != RunStatus::Finished && info.status != RunStatus::Stopped)
      throw std::runtime_error("run '" + a.from + "' is " + name(info.status) + ", not finished");
    parent = info.id;
  }
  if (chain.size() > 1 && !followerRank())
    std::cout << "no --from given: running the earlier stages first\n";
  for (size_t i = 0; i + 1 < chain.size(); ++i)
    parent = runStage(workspace, chain[i], parent, "", a.quiet).runId;
  auto r = runStage(workspace, chain.back(), parent, a.name, a.quiet);
  printEvaluation(r);
  if (!followerRank())
    std::cout << "results: " << storePath(workspace) << " (run " << r.runId << "), checkpoint "
              << r.checkpoint << "\n";
  return 0;
}

}  // namespace pivot::cli
