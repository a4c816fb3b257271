// `pivot train`: one stage, its earlier stages first when no --from is given (the chain's rule in
// config/train_config.h, identical finished stages reused: training/chain.h), data parallel with
// --nproc (launch.h); progress lines and how it ended, or with --progress jsonl the same as one
// JSON object a line (what the window reads):
//   {"event":"stage","index":1,"total":2,"stage":"pretrain","reused_run":1}   (0: it trains)
//   {"event":"run","run":4,"name":"align-4","stage":"align"}
//   {"event":"step","run":4,"step":40,"total":400,"loss":1.93}  (twice a second at most, the last)
//   {"event":"message","text":"starting from run pretrain-1 at step 400"}
//   {"event":"end","run":4,"stage":"align","status":"finished","message":"finished 400 steps"}
// Rank 0 of a data-parallel run speaks for it; errors are one line on stderr, as for every command.
#include <unistd.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

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

// --progress jsonl: a run's start and the trainer's messages as events, its steps carrying the run.
class JsonRunSink final : public JsonStepSink {
 public:
  explicit JsonRunSink(std::string stage)
      : JsonStepSink(nlohmann::json{{"run", 0}}), m_stage(std::move(stage)) {}
  void onRunStarted(int64_t runId, const std::string& name, int64_t, const std::string&) override {
    m_fields["run"] = runId;
    emitJson({{"event", "run"}, {"run", runId}, {"name", name}, {"stage", m_stage}});
  }
  void onMessage(const std::string& message) override {
    emitJson({{"event", "message"}, {"text", message}});
  }

 private:
  std::string m_stage;
};

// What the command says as it goes, as lines for a person or as JSON events; silent on ranks > 0.
class TrainDisplay {
 public:
  TrainDisplay(bool json, bool quiet) : m_json(json), m_quiet(quiet), m_speaks(!followerRank()) {}

  void stage(const ChainStage& s) const {
    const std::string stage = stageName(s.config->stage);
    if (!m_speaks) return;
    if (m_json)
      return emitJson({{"event", "stage"},
                       {"index", s.index},
                       {"total", s.total},
                       {"stage", stage},
                       {"reused_run", s.reusedRun.value_or(0)}});
    if (s.total > 1)
      std::cout << "stage " << s.index << " of " << s.total << ": " << stage
                << (s.reusedRun ? ": reused run " + std::to_string(*s.reusedRun) +
                                      " (an identical " + stage + " that finished)"
                                : "")
                << "\n";
  }

  // The sink of the next trained stage (kept until the stage after it starts).
  MetricSink* sink(const std::string& stage) {
    if (!m_speaks || (m_quiet && !m_json))
      m_sink = std::make_unique<NullSink>();
    else if (m_json)
      m_sink = std::make_unique<JsonRunSink>(stage);
    else
      m_sink = std::make_unique<ProgressSink>("[" + stage + "]");
    return m_sink.get();
  }

  // How a run ended; a failed run throws RunFailed (exit code 1), a stopped one RunStopped.
  void end(const std::string& stage, const TrainResult& r) const {
    if (m_speaks && m_json)
      emitJson({{"event", "end"},
                {"run", r.runId},
                {"stage", stage},
                {"status", name(r.status)},
                {"message", r.message}});
    else if (m_speaks)
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

  // The held-out scores and where the results are (people only: the store has them all).
  void results(const std::string& workspace, const TrainResult& r) const {
    if (!m_speaks || m_json) return;
    for (const auto& [k, v] : r.evaluation)
      std::cout << "  " << std::left << std::setw(34) << k << std::fixed << std::setprecision(4)
                << v << "\n";
    std::cout.unsetf(std::ios::fixed);
    if (!workspace.empty())
      std::cout << "results: " << storePath(workspace) << " (run " << r.runId << "), checkpoint "
                << r.checkpoint << "\n";
  }

 private:
  bool m_json, m_quiet, m_speaks;
  std::unique_ptr<MetricSink> m_sink;
};

// The options of one trained stage: the stop signals, real data's image decoder and the
// data-parallel group.
TrainOptions stageOptions(const TrainConfig& cfg, MetricSink* sink) {
  TrainOptions opt;
  opt.sink = sink;
  opt.stopRequested = &installStopSignals();
  opt.decodeImage = readRgb8;  // real data's images
  opt.group = workerGroup(pickDevice(cfg.device).is_cuda());
  return opt;
}

}  // namespace

int cmdTrain(const std::string& workspace, const TrainArgs& a) {
  if (!followerRank()) refuseDamagedStore(workspace);  // rank 0 alone writes the store
  TrainDisplay display(a.progress == "jsonl", a.quiet);
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
    TrainOptions opt = stageOptions(trainConfigFromJson(nlohmann::json::parse(info.configJson)),
                                    display.sink(info.stage));
    opt.workspace = workspace;
    opt.resumeRunId = info.id;
    opt.skipBad = a.skipBad;
    const auto r = train(TrainConfig{}, opt);
    display.end(info.stage, r);
    display.results("", r);
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
  ChainHooks hooks;
  hooks.onStage = [&](const ChainStage& s) { display.stage(s); };
  hooks.optionsFor = [&](const ChainStage& s) {
    TrainOptions opt = stageOptions(*s.config, display.sink(stageName(s.config->stage)));
    if (s.index == s.total) {
      opt.runName = a.name;
      opt.parentStep = parentStep;
    }
    return opt;
  };
  hooks.onTrained = [&](const ChainStage& s, const TrainResult& r) {
    display.end(stageName(s.config->stage), r);  // throws for a stage that did not finish
  };
  display.results(workspace, runChain(workspace, chain, parent, hooks).last);
  return 0;
}

}  // namespace pivot::cli
