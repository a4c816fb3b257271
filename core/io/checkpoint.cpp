#include "io/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "io/state_dict.h"
#include "model/model_config.h"

namespace fs = std::filesystem;

namespace pivot {

std::string checkpointDirName(int64_t step) {
  std::ostringstream name;
  name << "step-" << std::setw(7) << std::setfill('0') << step;
  return name.str();
}

std::string writeCheckpoint(const std::string& runDir, int64_t step, torch::nn::Module& model,
                            const nlohmann::json& config, torch::optim::Optimizer* optimizer,
                            const nlohmann::json& trainerState) {
  const fs::path finalDir = fs::path(runDir) / checkpointDirName(step);
  const fs::path tmpDir = fs::path(runDir) / (".tmp-" + checkpointDirName(step));
  fs::remove_all(tmpDir);
  fs::create_directories(tmpDir);
  try {
    saveSafetensors((tmpDir / "model.safetensors").string(), stateDict(model),
                    {{"format", "pt"}, {"producer", "pivot-workbench"}});
    auto writeJson = [](const fs::path& p, const nlohmann::json& j) {
      std::ofstream out(p);
      out << j.dump(2) << '\n';
      out.flush();
      if (!out) throw std::runtime_error(p.string() + ": write failed (disk full?)");
    };
    writeJson(tmpDir / "config.json", config);
    writeJson(tmpDir / "trainer_state.json", trainerState);
    if (optimizer) {
      try {
        torch::save(*optimizer, (tmpDir / "optimizer.pt").string());
      } catch (const c10::Error& e) {
        throw std::runtime_error((tmpDir / "optimizer.pt").string() +
                                 ": write failed (disk full?): " + e.what_without_backtrace());
      }
    }
  } catch (...) {
    std::error_code ec;  // a failed write leaves nothing behind; the previous checkpoint stays
    fs::remove_all(tmpDir, ec);
    throw;
  }
  fs::remove_all(finalDir);  // a re-run of the same step replaces the old folder
  fs::rename(tmpDir, finalDir);
  return finalDir.string();
}

TensorMap readCheckpointWeights(const std::string& dir) {
  return loadSafetensors((fs::path(dir) / "model.safetensors").string());
}

nlohmann::json readCheckpointConfig(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  auto config = readJsonFile(path);
  if (!config.is_object())
    throw std::runtime_error(path + ": a checkpoint's config is a JSON object, not " +
                             std::string(config.type_name()));
  return config;
}

nlohmann::json readTrainerState(const std::string& dir) {
  return readJsonFile((fs::path(dir) / "trainer_state.json").string());
}

void readOptimizerState(const std::string& dir, torch::optim::Optimizer& optimizer) {
  const auto path = (fs::path(dir) / "optimizer.pt").string();
  if (!fs::exists(path)) throw std::runtime_error(path + ": missing optimizer state");
  torch::load(optimizer, path);
}

}  // namespace pivot
