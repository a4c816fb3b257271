#include "training/run_checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/hf_llava.h"
#include "io/state_dict.h"
#include "store/run_store.h"
#include "store/workspace.h"
#include "torch_compat.h"
#include "training/trainer.h"

namespace pivot {

LoadedCheckpoint loadCheckpointFolder(const std::string& path, const std::string& device) {
  LoadedCheckpoint out;
  const auto cfg = readCheckpointConfig(path);
  try {  // a bad field is named with its file
    out.config = cfg.contains("pivot_train_config") ? trainConfigFromJson(cfg["pivot_train_config"])
                                                    : TrainConfig{};
    out.config.model = mllmConfigFromJson(cfg);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(path + "/config.json: " + e.what());
  }
  out.model = Mllm(out.config.model);
  loadStateDict(*out.model, readCheckpointWeights(path), {""}, path + "/model.safetensors");
  out.model->to(pickDevice(device));
  out.model->eval();
  out.path = path;
  if (std::filesystem::exists(path + "/trainer_state.json"))
    out.step = readTrainerState(path).value("step", int64_t{0});
  return out;
}

CheckpointRef resolveCheckpoint(const RunStore& store, const std::string& spec) {
  const auto at = spec.rfind('@');
  const std::string runName = at == std::string::npos ? spec : spec.substr(0, at);
  const auto run = store.findRun(runName);
  const auto cps = store.checkpoints(run.id);
  const CheckpointInfo* chosen = nullptr;
  if (at == std::string::npos) {
    const std::string usable = lastUsableCheckpoint(store, run.id);  // its folder exists
    for (const auto& c : cps)
      if (c.path == usable) chosen = &c;
    if (!chosen) throw std::runtime_error("run '" + runName + "' has no checkpoint");
  } else {
    const std::string stepText = spec.substr(at + 1);
    std::string have;
    for (const auto& c : cps) {
      have += (have.empty() ? "" : ", ") + std::to_string(c.step);
      if (std::to_string(c.step) == stepText) chosen = &c;
    }
    if (!chosen)
      throw std::runtime_error("run '" + runName + "' has no checkpoint at step '" + stepText +
                               "' (have: " + have + ")");
  }
  return {run.id, chosen->step, run.name, chosen->path};
}

nlohmann::json checkpointConfig(const TrainConfig& config) {
  nlohmann::json j = toJson(config.model);  // HF-style llava config at the top level
  j["pivot_train_config"] = toJson(config);
  return j;
}

LoadedCheckpoint loadRunCheckpoint(const std::string& workspace, const std::string& spec,
                                   const std::string& device) {
  if (!std::filesystem::exists(storePath(workspace)))
    throw std::runtime_error("workspace " + workspace + " has no runs.sqlite");
  // Reading only: a read-only workspace can be explained and probed.
  const auto ref =
      resolveCheckpoint(RunStore(storePath(workspace), RunStore::Access::ReadOnly), spec);
  LoadedCheckpoint out = loadCheckpointFolder(ref.path, device);
  out.runId = ref.runId;
  out.step = ref.step;
  out.runName = ref.runName;
  return out;
}

LoadedCheckpoint loadModelFolder(const std::string& dir) {
  HfLlava folder = loadHfLlava(dir);
  LoadedCheckpoint m;
  m.model = folder.model;
  m.config.model = folder.config;
  m.config.model_dir = dir;
  m.runName = std::filesystem::path(dir).filename().string();
  return m;
}

}  // namespace pivot
