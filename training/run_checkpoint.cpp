#include "training/run_checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "store/run_store.h"
#include "torch_compat.h"
#include "training/trainer.h"

namespace pivot {

LoadedCheckpoint loadCheckpointFolder(const std::string& path, const std::string& device) {
  LoadedCheckpoint out;
  const auto cfg = readCheckpointConfig(path);
  out.config = cfg.contains("pivot_train_config") ? trainConfigFromJson(cfg["pivot_train_config"]) : TrainConfig{};
  out.config.model = mllmConfigFromJson(cfg);
  out.model = Mllm(out.config.model);
  loadStateDict(*out.model, readCheckpointWeights(path), {""}, path + "/model.safetensors");
  out.model->to(pickDevice(device));
  out.model->eval();
  out.path = path;
  if (std::filesystem::exists(path + "/trainer_state.json")) out.step = readTrainerState(path).value("step", int64_t{0});
  return out;
}

LoadedCheckpoint loadRunCheckpoint(const std::string& workspace, const std::string& spec, const std::string& device) {
  const auto at = spec.rfind('@');
  const std::string runName = at == std::string::npos ? spec : spec.substr(0, at);
  if (!std::filesystem::exists(storePath(workspace))) throw std::runtime_error("workspace " + workspace + " has no runs.sqlite");
  RunStore store(storePath(workspace));
  const auto run = store.findRun(runName);
  const auto cps = store.checkpoints(run.id);
  if (cps.empty()) throw std::runtime_error("run '" + runName + "' has no checkpoint");
  CheckpointInfo chosen = cps.back();
  if (at != std::string::npos) {
    const std::string stepText = spec.substr(at + 1);
    bool found = false;
    std::string have;
    for (const auto& c : cps) {
      have += (have.empty() ? "" : ", ") + std::to_string(c.step);
      if (std::to_string(c.step) == stepText) { chosen = c; found = true; }
    }
    if (!found) throw std::runtime_error("run '" + runName + "' has no checkpoint at step '" + stepText + "' (have: " + have + ")");
  }
  LoadedCheckpoint out = loadCheckpointFolder(chosen.path, device);
  out.runId = run.id;
  out.step = chosen.step;
  out.runName = run.name;
  out.path = chosen.path;
  return out;
}

}  // namespace pivot
