#include "training/checkpoint_keeper.h"

#include <algorithm>
#include <filesystem>

namespace fs = std::filesystem;

namespace pivot {

CheckpointKeeper::CheckpointKeeper(RunStore& store, int64_t runId, const TrainConfig& cfg)
    : m_store(store),
      m_runId(runId),
      m_cfg(cfg),
      m_snapshots(snapshotSteps(cfg)),
      m_lastSave(std::chrono::steady_clock::now()) {}

bool CheckpointKeeper::due(int64_t done) const {
  if (done >= m_cfg.steps) return false;
  if (isKept(done)) return true;
  return m_cfg.checkpoint_minutes > 0 &&
         std::chrono::steady_clock::now() - m_lastSave >=
             std::chrono::duration<double>(60.0 * m_cfg.checkpoint_minutes);
}

std::string CheckpointKeeper::save(int64_t done, const std::function<std::string(int64_t)>& write) {
  const std::string path = write(done);
  m_store.addCheckpoint(m_runId, done, path);
  m_lastSave = std::chrono::steady_clock::now();
  if (m_previous && m_previous->first != done) {
    std::error_code ec;
    if (isKept(m_previous->first)) {
      fs::remove(fs::path(m_previous->second) / "optimizer.pt", ec);
    } else {
      m_store.deleteCheckpoint(m_runId, m_previous->first);
      fs::remove_all(m_previous->second, ec);
    }
  }
  m_previous = {done, path};
  return path;
}

bool CheckpointKeeper::isKept(int64_t step) const {
  if (m_cfg.checkpoint_every > 0 && step % m_cfg.checkpoint_every == 0) return true;
  return std::binary_search(m_snapshots.begin(), m_snapshots.end(), static_cast<int>(step));
}

}  // namespace pivot
