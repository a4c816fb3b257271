// Checkpoint folders: model.safetensors (HF names), config.json, optimizer.pt, trainer_state.json.
// Written into a temporary folder that is renamed into place, so a crash never leaves half of one.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

#include "io/safetensors.h"

namespace pivot {

// Writes <runDir>/step-NNNNNNN and returns its path. optimizer may be null.
std::string writeCheckpoint(const std::string& runDir, int64_t step, torch::nn::Module& model,
                            const nlohmann::json& config, torch::optim::Optimizer* optimizer,
                            const nlohmann::json& trainerState);

std::string checkpointDirName(int64_t step);
TensorMap readCheckpointWeights(const std::string& dir);  // throws naming the file
// config.json of a checkpoint folder; throws "<dir>/config.json: ..." for one that cannot be
// read or is not a JSON object.
nlohmann::json readCheckpointConfig(const std::string& dir);
nlohmann::json readTrainerState(const std::string& dir);
void readOptimizerState(const std::string& dir, torch::optim::Optimizer& optimizer);

}  // namespace pivot
