// A chain of stages, each starting from the one before: what `pivot train` without --from, the
// window's Start and `pivot experiment` share. A stored run is "the same stage" as a config when it
// started from the same parent and its configuration matches in everything but where, how fast and
// how often it saved (device, threads, checkpoint cadence); an identical finished stage is reused
// instead of trained again, and the front end says so.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "training/trainer.h"

namespace pivot {

// Keys that say where, how fast and how often a run saved, not what it trained: device, threads,
// checkpoint_every, checkpoint_minutes, snapshots. Two runs that differ only in them are the same
// stage, and two experiments that differ only in them the same experiment.
bool isExecutionSetting(const std::string& key);

// The stored runs of one stage: an identical finished run whose newest checkpoint holds its
// weights (a child can start from it), else an identical run that stopped, failed or crashed.
struct StoredStage {
  std::optional<int64_t> finished;
  std::optional<int64_t> unfinished;
};

// Looks in the workspace's run store (nothing when it does not exist yet) for runs of `config`
// started from `parent`. Runs this version cannot read are not the stage asked for.
StoredStage findStoredStage(const std::string& workspace, const TrainConfig& config,
                            std::optional<int64_t> parent);

// One stage of a chain, as a front end announces it before it runs.
struct ChainStage {
  int index = 0;  // 1-based place in the chain
  int total = 0;
  const TrainConfig* config = nullptr;
  std::optional<int64_t> reusedRun;  // set: an identical finished run, not trained again
  int64_t stepsAfter = 0;            // steps of the stages after this one (a whole-chain ETA)
};

struct ChainHooks {
  // Before each stage, reused or not.
  std::function<void(const ChainStage&)> onStage;
  // The options a trained stage runs with (sink, stop flag, threads, ...); the chain sets
  // workspace and parentRunId. Required.
  std::function<TrainOptions(const ChainStage&)> optionsFor;
  // After each trained stage, whatever its status (a front end reports it, or throws).
  std::function<void(const ChainStage&, const TrainResult&)> onTrained;
};

struct ChainOutcome {
  TrainResult last;  // the last stage trained: the requested one unless a stage did not finish
  std::vector<int64_t> runIds;  // every stage's run, reused or trained, in chain order
  int reused = 0;
};

// Runs `chain` from `parent` (none: from scratch). Every stage but the last is reused when an
// identical finished run of it exists from the same parent; once one stage trains, the stages
// after it start from a new run and train too. The last stage, the one asked for, always trains.
// Stops at the first stage that does not finish and returns its result.
ChainOutcome runChain(const std::string& workspace, const std::vector<TrainConfig>& chain,
                      std::optional<int64_t> parent, const ChainHooks& hooks);

}  // namespace pivot
