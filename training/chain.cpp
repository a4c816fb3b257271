#include "training/chain.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "store/run_store.h"
#include "store/workspace.h"

namespace fs = std::filesystem;

namespace pivot {
namespace {

constexpr const char* kExecutionSettings[] = {"device", "threads", "checkpoint_every",
                                              "checkpoint_minutes", "snapshots"};

// What makes two runs the same stage: everything but where, how fast and how often it saved.
nlohmann::json comparable(nlohmann::json j) {
  for (const char* k : kExecutionSettings) j.erase(k);
  return j;
}

// Through the current reader and writer, so a run stored before a config field existed compares
// with that field's default. Null for a run this version cannot read.
nlohmann::json storedComparable(const RunInfo& run) {
  try {
    return comparable(toJson(trainConfigFromJson(nlohmann::json::parse(run.configJson))));
  } catch (const std::exception&) {
    return nullptr;
  }
}

// A child starts from a run's newest checkpoint, which must hold the weights (train()'s rule).
bool newestCheckpointIsWhole(const RunStore& store, int64_t runId) {
  const auto checkpoints = store.checkpoints(runId);
  return !checkpoints.empty() &&
         fs::exists(fs::path(checkpoints.back().path) / "model.safetensors");
}

}  // namespace

bool isExecutionSetting(const std::string& key) {
  for (const char* k : kExecutionSettings)
    if (key == k) return true;
  return false;
}

StoredStage findStoredStage(const std::string& workspace, const TrainConfig& config,
                            std::optional<int64_t> parent) {
  StoredStage found;
  if (!fs::exists(storePath(workspace))) return found;
  RunStore store(storePath(workspace), RunStore::Access::ReadOnly);  // a lookup writes nothing
  const auto want = comparable(toJson(config));
  for (const auto& r : store.runs()) {
    if (r.stage != stageName(config.stage) || r.parentId != parent) continue;
    if (storedComparable(r) != want) continue;
    if (r.status == RunStatus::Finished && newestCheckpointIsWhole(store, r.id)) {
      found.finished = r.id;
      return found;
    }
    if (r.status != RunStatus::Finished && !found.unfinished)
      found.unfinished = r.id;  // a finished run without its weights is trained again
  }
  return found;
}

ChainOutcome runChain(const std::string& workspace, const std::vector<TrainConfig>& chain,
                      std::optional<int64_t> parent, const ChainHooks& hooks) {
  if (chain.empty()) throw std::invalid_argument("runChain: an empty chain");
  ChainOutcome out;
  bool trainedOne = false;  // after a trained stage nothing stored can start from its new run
  for (size_t i = 0; i < chain.size(); ++i) {
    ChainStage stage;
    stage.index = static_cast<int>(i) + 1;
    stage.total = static_cast<int>(chain.size());
    stage.config = &chain[i];
    for (size_t j = i + 1; j < chain.size(); ++j) stage.stepsAfter += chain[j].steps;
    const bool last = i + 1 == chain.size();
    if (!last && !trainedOne)
      stage.reusedRun = findStoredStage(workspace, chain[i], parent).finished;
    if (hooks.onStage) hooks.onStage(stage);
    if (stage.reusedRun) {
      parent = *stage.reusedRun;
      out.runIds.push_back(*parent);
      ++out.reused;
      continue;
    }
    TrainOptions options = hooks.optionsFor(stage);
    options.workspace = workspace;
    options.parentRunId = parent;
    out.last = train(chain[i], options);
    trainedOne = true;
    out.runIds.push_back(out.last.runId);
    if (hooks.onTrained) hooks.onTrained(stage, out.last);
    if (out.last.status != RunStatus::Finished) return out;
    parent = out.last.runId;
  }
  return out;
}

}  // namespace pivot
