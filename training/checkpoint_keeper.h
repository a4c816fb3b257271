// Which checkpoints a run keeps, and when it writes one: snapshots (evenly spaced, for the Inspect
// tab's step slider) and every checkpoint_every steps stay; a checkpoint written only because
// checkpoint_minutes passed since the last is replaced by the next one. Only the newest checkpoint
// keeps the optimizer state (what a resume needs): the older ones keep their weights, at a third of
// the size.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/train_config.h"
#include "store/run_store.h"

namespace pivot {

class CheckpointKeeper {
 public:
  CheckpointKeeper(RunStore& store, int64_t runId, const TrainConfig& cfg);

  // Whether step `done` (optimiser steps done) should be saved now, before the final one.
  bool due(int64_t done) const;

  // Writes the checkpoint (through `write`, which returns its folder), records it and prunes the
  // previous one. Returns the folder.
  std::string save(int64_t done, const std::function<std::string(int64_t)>& write);

  // A resumed run: its checkpoint is the "previous" one the next save prunes.
  void resumedFrom(int64_t step, const std::string& path) { m_previous = {step, path}; }

 private:
  bool isKept(int64_t step) const;

  RunStore& m_store;
  int64_t m_runId;
  const TrainConfig& m_cfg;
  std::vector<int> m_snapshots;
  std::chrono::steady_clock::time_point m_lastSave;
  std::optional<std::pair<int64_t, std::string>> m_previous;
};

}  // namespace pivot
