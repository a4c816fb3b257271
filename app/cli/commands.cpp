#include "commands.h"
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
#include "io/safetensors.h"
#include "store/run_store.h"
#include "training/trainer.h"

namespace fs = std::filesystem;

namespace pivot::cli {
namespace {

// Opens an existing workspace's store; never creates one (errors write nothing).
std::unique_ptr<RunStore> openExisting(const std::string& workspace) {
  const auto path = storePath(workspace);
  if (!fs::exists(path)) throw std::runtime_error("workspace " + workspace + " has no runs.sqlite");
  return std::make_unique<RunStore>(path);
}

void printEvaluation(const TrainResult& r) {
  for (const auto& [k, v] : r.evaluation)
    std::cout << "  " << std::left << std::setw(34) << k << std::fixed << std::setprecision(4) << v << "\n";
  std::cout.unsetf(std::ios::fixed);
}

TrainResult runStage(const std::string& workspace, const TrainConfig& cfg, std::optional<int64_t> parent,
                     const std::string& name, bool quiet) {
  ProgressSink progress(std::string("[") + stageName(cfg.stage) + "]");
  NullSink silent;
  TrainOptions opt;
  opt.workspace = workspace;
  opt.parentRunId = parent;
  opt.runName = name;
  opt.sink = quiet ? static_cast<MetricSink*>(&silent) : &progress;
  auto r = train(cfg, opt);
  std::cout << stageName(cfg.stage) << " run " << r.runId << ": " << r.status << " (" << r.message << ")\n";
  if (r.status == "failed") throw std::runtime_error(r.message);
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
    auto store = openExisting(workspace);
    const auto info = store->findRun(a.resume);
    store.reset();
    TrainOptions opt;
    opt.workspace = workspace;
    opt.resumeRunId = info.id;
    ProgressSink progress("[" + info.stage + "]");
    opt.sink = &progress;
    auto r = train(TrainConfig{}, opt);
    std::cout << info.stage << " run " << r.runId << ": " << r.status << " (" << r.message << ")\n";
    printEvaluation(r);
    return r.status == "failed" ? 1 : 0;
  }
  const Stage stage = stageFromName(a.stage);
  const TrainConfig cfg = makeConfig(a.preset, stage, a.sets);  // all validation before any write
  std::optional<int64_t> parent;
  if (!a.from.empty()) {
    auto store = openExisting(workspace);
    const auto info = store->findRun(a.from);
    if (info.status != "finished" && info.status != "stopped")
      throw std::runtime_error("run '" + a.from + "' is " + info.status + ", not finished");
    parent = info.id;
  } else if (stage != Stage::Pretrain) {
    // No parent: run the stages this one builds on first, with the same preset and overrides.
    std::cout << "no --from given: running the earlier stages first\n";
    for (Stage s : prerequisiteStages(stage)) parent = runStage(workspace, makeConfig(a.preset, s, a.sets), parent, "", a.quiet).runId;
  }
  auto r = runStage(workspace, cfg, parent, a.name, a.quiet);
  printEvaluation(r);
  std::cout << "results: " << storePath(workspace) << " (run " << r.runId << "), checkpoint " << r.checkpoint << "\n";
  return 0;
}

int cmdRuns(const std::string& workspace) {
  auto store = openExisting(workspace);
  std::cout << std::left << std::setw(5) << "id" << std::setw(18) << "name" << std::setw(7) << "preset"
            << std::setw(10) << "stage" << std::setw(10) << "status" << std::setw(8) << "parent"
            << std::setw(8) << "steps" << std::setw(12) << "last loss" << "created\n";
  for (const auto& r : store->runs()) {
    const auto loss = store->metrics(r.id, "loss");
    std::time_t created = static_cast<std::time_t>(r.createdAt);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", std::localtime(&created));
    std::cout << std::setw(5) << r.id << std::setw(18) << r.name << std::setw(7) << r.preset
              << std::setw(10) << r.stage << std::setw(10) << r.status << std::setw(8)
              << (r.parentId ? std::to_string(*r.parentId) : "-") << std::setw(8)
              << (loss.empty() ? 0 : loss.back().step) << std::setw(12)
              << (loss.empty() ? std::string("-") : std::to_string(loss.back().value)) << when << "\n";
  }
  return 0;
}

int cmdMetrics(const std::string& workspace, const std::string& runName, bool csv, const std::string& key) {
  auto store = openExisting(workspace);
  const auto run = store->findRun(runName);
  const auto points = store->metrics(run.id, key);
  if (points.empty()) throw std::runtime_error("run '" + runName + "' has no metrics" + (key.empty() ? "" : " named '" + key + "'"));
  std::vector<std::string> keys = key.empty() ? store->metricKeys(run.id) : std::vector<std::string>{key};
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
  std::cout << run.name << " (" << run.stage << ", " << run.status << "), " << rows.size() << " steps; last values:\n";
  for (const auto& k : keys) {
    for (auto it = rows.rbegin(); it != rows.rend(); ++it)
      if (auto v = it->second.find(k); v != it->second.end()) {
        std::cout << "  " << std::left << std::setw(28) << k << v->second << "  (step " << it->first << ")\n";
        break;
      }
  }
  for (const auto& e : store->evaluations(run.id))
    std::cout << "  " << std::left << std::setw(28) << (e.name + " " + e.key) << e.value << "\n";
  return 0;
}

int cmdExport(const std::string& workspace, const std::string& runName, const std::string& outDir) {
  auto store = openExisting(workspace);
  const auto run = store->findRun(runName);
  const auto cps = store->checkpoints(run.id);
  if (cps.empty()) throw std::runtime_error("run '" + runName + "' has no checkpoint to export");
  const std::string ckpt = cps.back().path;
  auto weights = readCheckpointWeights(ckpt);  // validates the file before anything is written
  fs::create_directories(outDir);
  fs::copy_file(fs::path(ckpt) / "model.safetensors", fs::path(outDir) / "model.safetensors",
                fs::copy_options::overwrite_existing);
  fs::copy_file(fs::path(ckpt) / "config.json", fs::path(outDir) / "config.json", fs::copy_options::overwrite_existing);
  // The vision encoder alone, under SiglipVisionModel's names, with its own config.json.
  const std::string encoderDir = (fs::path(outDir) / "vision_encoder").string();
  fs::create_directories(encoderDir);
  TensorMap encoder;
  const std::string prefix = "vision_tower.";
  for (const auto& [name, t] : weights)
    if (name.rfind(prefix, 0) == 0) encoder["vision_model." + name.substr(prefix.size())] = t;
  saveSafetensors((fs::path(encoderDir) / "model.safetensors").string(), encoder, {{"format", "pt"}});
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
  store->addArtifact(run.id, "export", fs::absolute(outDir).string());
  std::cout << "exported run " << run.name << " (step " << cps.back().step << ") to " << outDir
            << ": model.safetensors, config.json, vision_encoder/, metrics.csv\n";
  return 0;
}

int cmdDemo(const std::string& workspace, const std::string& preset, const std::vector<std::string>& sets) {
  std::cout << "PIVOT Workbench demo: the miniature SFT-vs-DPO study on ShapesWorld (preset " << preset
            << ")\nworkspace: " << workspace << "\n";
  const auto encoder = runStage(workspace, makeConfig(preset, Stage::Pretrain, sets), std::nullopt, "", false);
  std::cout << "stage-0 encoder, held-out image-to-text retrieval:\n";
  printEvaluation(encoder);
  const auto align = runStage(workspace, makeConfig(preset, Stage::Align, sets), encoder.runId, "", false);
  const auto instruct = runStage(workspace, makeConfig(preset, Stage::Instruct, sets), align.runId, "", false);
  std::cout << "stage-1 model, held-out VQA:\n";
  printEvaluation(instruct);
  const auto sft = runStage(workspace, makeConfig(preset, Stage::Sft, sets), instruct.runId, "", false);
  const auto dpo = runStage(workspace, makeConfig(preset, Stage::Dpo, sets), instruct.runId, "", false);
  std::cout << "\nheld-out VQA after stage 2 (same stage-1 model, same samples):\n"
            << std::left << std::setw(28) << "metric" << std::setw(12) << "stage 1" << std::setw(12) << "SFT"
            << "DPO\n";
  for (size_t i = 0; i < sft.evaluation.size(); ++i) {
    std::cout << std::setw(28) << sft.evaluation[i].first << std::fixed << std::setprecision(4)
              << std::setw(12) << instruct.evaluation[i].second << std::setw(12) << sft.evaluation[i].second
              << dpo.evaluation[i].second << "\n";
  }
  std::cout.unsetf(std::ios::fixed);
  std::cout << "\nresults: " << storePath(workspace) << "\n"
            << "  runs:     build/app/pivot --workspace " << workspace << " runs\n"
            << "  curves:   build/app/pivot --workspace " << workspace << " metrics " << dpo.runId << " --csv\n"
            << "  export:   build/app/pivot --workspace " << workspace << " export " << dpo.runId << " --out DIR\n";
  return 0;
}

}  // namespace pivot::cli
