#include "commands.h"
#include "launch.h"
#include "progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/train_config.h"
#include "io/checkpoint.h"
#include "io/hf_llava.h"
#include "io/safetensors.h"
#include "store/run_store.h"
#include "stop_signals.h"
#include "torch_compat.h"
#include "visualization/overlay.h"
#include "store/workspace.h"
#include "text/word_tokenizer.h"
#include "training/run_checkpoint.h"
#include "training/distributed.h"
#include "training/trainer.h"

namespace fs = std::filesystem;

namespace pivot::cli {
namespace {

// Opens an existing workspace's store; never creates one (errors write nothing). Reading commands
// open it read-only, so a read-only workspace can be listed.
std::unique_ptr<RunStore> openExisting(const std::string& workspace,
                                       RunStore::Access access = RunStore::Access::ReadOnly) {
  const auto path = storePath(workspace);
  if (!fs::exists(path)) throw std::runtime_error("workspace " + workspace + " has no runs.sqlite");
  return std::make_unique<RunStore>(path, access);
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

std::string defaultWorkspace() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg)
    return (fs::path(xdg) / "pivot-workbench").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".local/share/pivot-workbench").string();
  return "pivot-workspace";
}

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

int cmdRuns(const std::string& workspace) {
  auto store = openExisting(workspace);
  // Columns as wide as their longest cell: long names and the experiment stage never run into the
  // next column. Status is what a person should see: a dead owner's "running" run is "crashed".
  std::vector<std::vector<std::string>> table = {
      {"id", "name", "preset", "stage", "status", "parent", "steps", "last loss", "created"}};
  for (const auto& r : store->runs()) {
    const auto loss = store->lastMetric(r.id, "loss");
    std::time_t created = static_cast<std::time_t>(r.createdAt);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", std::localtime(&created));
    std::ostringstream lossText;
    if (loss) lossText << std::setprecision(6) << loss->value;
    table.push_back({std::to_string(r.id), r.name, r.preset, r.stage, name(effectiveStatus(r)),
                     r.parentId ? std::to_string(*r.parentId) : "-",
                     loss ? std::to_string(loss->step) : "0", loss ? lossText.str() : "-", when});
  }
  std::vector<size_t> width(table.front().size(), 0);
  for (const auto& row : table)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  for (const auto& row : table) {
    for (size_t c = 0; c < row.size(); ++c)
      std::cout << std::left << std::setw(static_cast<int>(c + 1 < row.size() ? width[c] + 2 : 0))
                << row[c];
    std::cout << "\n";
  }
  return 0;
}

int cmdMetrics(const std::string& workspace, const std::string& runName, bool csv,
               const std::string& key) {
  auto store = openExisting(workspace);
  const auto run = store->findRun(runName);
  const auto points = store->metrics(run.id, key);
  if (points.empty())
    throw std::runtime_error("run '" + runName + "' has no metrics" +
                             (key.empty() ? "" : " named '" + key + "'"));
  std::vector<std::string> keys =
      key.empty() ? store->metricKeys(run.id) : std::vector<std::string>{key};
  std::map<int64_t, std::map<std::string, double>> rows;
  for (const auto& p : points) rows[p.step][p.key] = p.value;
  std::cout << std::setprecision(9);
  if (csv) {
    std::cout << "step";
    for (const auto& k : keys) std::cout << ',' << k;
    std::cout << '\n';
    for (const auto& [step, values] : rows) {
      std::cout << step;
      for (const auto& k : keys) {
        std::cout << ',';
        if (auto it = values.find(k); it != values.end()) std::cout << it->second;
      }
      std::cout << '\n';
    }
    return 0;
  }
  std::cout << run.name << " (" << run.stage << ", " << name(run.status) << "), " << rows.size()
            << " steps; last values:\n";
  for (const auto& k : keys) {
    for (auto it = rows.rbegin(); it != rows.rend(); ++it)
      if (auto v = it->second.find(k); v != it->second.end()) {
        std::cout << "  " << std::left << std::setw(28) << k << v->second << "  (step " << it->first
                  << ")\n";
        break;
      }
  }
  for (const auto& e : store->evaluations(run.id))
    std::cout << "  " << std::left << std::setw(28) << (e.name + " " + e.key) << e.value << "\n";
  return 0;
}

namespace {

// `pivot export --format hf`: a LLaVA folder transformers loads, and the encoder on its own.
int exportHf(const std::string& workspace, const ExportArgs& args) {
  auto store = openExisting(workspace);
  const auto run = store->findRun(args.run);
  const auto ref = resolveCheckpoint(*store, args.run);
  auto loaded = loadCheckpointFolder(ref.path, "cpu");
  HfExportOptions options;
  options.dtype = storedDtypeFromName(args.dtype);
  if (args.shardMb <= 0) throw std::runtime_error("--shard-mb must be positive");
  options.shardBytes = int64_t{args.shardMb} << 20;
  saveHfLlava(loaded.model, args.out, options);
  saveSiglipVision(loaded.model, (fs::path(args.out) / "vision_encoder").string(), options.dtype);
  // The tokenizer travels with the weights, so the export is a complete model: a real model's
  // run carries its folder's files, a ShapesWorld run its word vocabulary as a WordLevel one.
  if (loaded.config.realModel()) {
    for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
      if (fs::exists(fs::path(loaded.config.model_dir) / file))
        fs::copy_file(fs::path(loaded.config.model_dir) / file, fs::path(args.out) / file,
                      fs::copy_options::overwrite_existing);
  } else {
    const WordTokenizer words = WordTokenizer::shapesWorld();
    std::ofstream(fs::path(args.out) / "tokenizer.json") << words.hfTokenizerJson();
    std::ofstream(fs::path(args.out) / "tokenizer_config.json") << words.hfTokenizerConfigJson();
  }
  try {
    RunStore(storePath(workspace))
        .addArtifact(run.id, "export-hf", fs::absolute(args.out).string());
  } catch (const std::exception& e) {
    std::cerr << "warning: the export is not recorded in the run store: " << e.what() << "\n";
  }
  std::cout << "exported run " << run.name << " (step " << ref.step << ") to " << args.out
            << " as a Hugging Face LLaVA folder (" << args.dtype << ") and vision_encoder/\n";
  if (loaded.model->config.prefix_bidirectional)
    std::cout << "note: this model lets image and question tokens attend both ways "
                 "(prefix_bidirectional); pivot loads the export that way, transformers' LLaVA "
                 "attends causally and will compute different outputs\n";
  return 0;
}

}  // namespace

int cmdExport(const std::string& workspace, const ExportArgs& args) {
  if (args.format == "hf") return exportHf(workspace, args);
  const std::string& runName = args.run;
  const std::string& outDir = args.out;
  auto store = openExisting(workspace);
  const auto run = store->findRun(runName);
  const auto ref = resolveCheckpoint(*store, runName);  // the last checkpoint whose files exist
  const std::string ckpt = ref.path;
  auto weights = readCheckpointWeights(ckpt);  // validates the file before anything is written
  fs::create_directories(outDir);
  fs::copy_file(fs::path(ckpt) / "model.safetensors", fs::path(outDir) / "model.safetensors",
                fs::copy_options::overwrite_existing);
  fs::copy_file(fs::path(ckpt) / "config.json", fs::path(outDir) / "config.json",
                fs::copy_options::overwrite_existing);
  // The vision encoder alone, under SiglipVisionModel's names, with its own config.json.
  const std::string encoderDir = (fs::path(outDir) / "vision_encoder").string();
  fs::create_directories(encoderDir);
  TensorMap encoder;
  const std::string prefix = "vision_tower.";
  for (const auto& [name, t] : weights)
    if (name.rfind(prefix, 0) == 0) encoder["vision_model." + name.substr(prefix.size())] = t;
  saveSafetensors((fs::path(encoderDir) / "model.safetensors").string(), encoder,
                  {{"format", "pt"}});
  auto config = readCheckpointConfig(ckpt);
  nlohmann::json visionConfig = config.at("vision_config");
  visionConfig["architectures"] = {"SiglipVisionModel"};
  std::ofstream(fs::path(encoderDir) / "config.json") << visionConfig.dump(2) << "\n";
  {
    std::ofstream csv(fs::path(outDir) / "metrics.csv");
    auto* old = std::cout.rdbuf(csv.rdbuf());
    cmdMetrics(workspace, std::to_string(run.id), true, "");
    std::cout.rdbuf(old);
  }
  try {
    RunStore(storePath(workspace)).addArtifact(run.id, "export", fs::absolute(outDir).string());
  } catch (const std::exception& e) {  // a read-only workspace: the export itself is done
    std::cerr << "warning: the export is not recorded in the run store: " << e.what() << "\n";
  }
  std::cout << "exported run " << run.name << " (step " << ref.step << ") to " << outDir
            << ": model.safetensors, config.json, vision_encoder/, metrics.csv\n";
  return 0;
}

}  // namespace pivot::cli
