// Loading a run's model from the workspace by "RUN[@STEP]" (id or name; the last checkpoint when no
// step is given), for explanation, scoring and export.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "config/train_config.h"
#include "model/mllm.h"

namespace pivot {

struct LoadedCheckpoint {
  Mllm model{nullptr};
  TrainConfig config;
  int64_t runId = 0, step = 0;
  std::string runName, path;
  std::string label() const { return runName + " @ " + std::to_string(step); }
};

class RunStore;

struct CheckpointRef {
  int64_t runId = 0, step = 0;
  std::string runName, path;
};

// "RUN[@STEP]" (id or name) in `store`: the given step, or the last checkpoint whose folder exists.
// Throws naming the run and the step (listing the steps that exist).
CheckpointRef resolveCheckpoint(const RunStore& store, const std::string& spec);

// What a checkpoint's config.json holds: the HF-style llava config, plus the whole run config.
nlohmann::json checkpointConfig(const TrainConfig& config);

// A checkpoint folder (model.safetensors + config.json) on its own. Throws naming the file.
LoadedCheckpoint loadCheckpointFolder(const std::string& path, const std::string& device = "auto");

// A Hugging Face LLaVA folder as a checkpoint (step 0, named after the folder, model_dir set so
// that its tokenizer, template and processor come with it). Throws naming the file.
LoadedCheckpoint loadModelFolder(const std::string& dir);

// Throws naming the run, the step (listing those that exist) or the file.
LoadedCheckpoint loadRunCheckpoint(const std::string& workspace, const std::string& spec,
                                   const std::string& device = "auto");

}  // namespace pivot
