// The workspace: a folder holding runs.sqlite and checkpoints/run-<id>/step-NNNNNNN folders. Paths
// inside it are stored relative to it (so a workspace can be moved or copied); this module knows
// its layout, which checkpoint of a run is usable, who owns a live run, and the lock that keeps two
// processes from training one run. Torch-free and Qt-free: the command line, the trainer and the
// window share it.
#pragma once
#include <cstdint>
#include <string>

#include "store/run_store.h"

namespace pivot {

std::string storePath(const std::string& workspace);  // <workspace>/runs.sqlite
std::string runDirectory(const std::string& workspace,
                         int64_t runId);  // <workspace>/checkpoints/run-<id>

// The newest checkpoint of a run whose folder holds model.safetensors (what explain, export and a
// child run start from); with `resumable`, also optimizer.pt and trainer_state.json (what --resume
// needs). Empty when there is none. Paths come back absolute (the store resolves them).
std::string lastUsableCheckpoint(const RunStore& store, int64_t runId, bool resumable = false);

// The command that continues a run: `pivot train --resume <id>`, plus `--nproc N` when its last
// resumable checkpoint was written by N data-parallel processes (a resume must use as many).
std::string resumeCommand(const RunStore& store, int64_t runId);

// Deletes a run's rows and its checkpoint folder.
void deleteRunWithFiles(RunStore& store, int64_t runId);

// --- liveness -----------------------------------------------------------------------------------
// A run being trained records its owner (RunOwner: host, pid, the process's start so that a
// recycled pid or a reboot is not mistaken for the owner) and a heartbeat with every metric flush.
RunOwner currentProcessOwner();
RunOwner processOwner(int64_t pid);  // any process on this host (empty start when there is none)

// "pid 123 on host, last heartbeat 4 s ago": who a live run or experiment belongs to.
std::string ownerText(const RunOwner& owner);

enum class Liveness { NotRunning, Alive, Dead, Unknown };
// NotRunning unless the status is running or paused. On this host the pid and its start decide; on
// another host a heartbeat older than `staleSeconds` counts as dead.
Liveness ownerLiveness(RunStatus status, const RunOwner& owner, double staleSeconds = 900);
inline Liveness runLiveness(const RunInfo& run, double staleSeconds = 900) {
  return ownerLiveness(run.status, run.owner, staleSeconds);
}

// What a person should see: a running or paused run (or experiment) whose owner is gone is
// "crashed".
RunStatus effectiveStatus(const RunInfo& run);
RunStatus effectiveStatus(const ExperimentInfo& experiment);

// --- the run lock -------------------------------------------------------------------------------
// An exclusive advisory lock (flock) on <run dir>/.lock, held while a process trains the run. The
// kernel drops it when the process dies, so a crash never leaves a stale lock.
class RunLock {
 public:
  // Throws naming the run and its owner when another process holds the lock.
  RunLock(const std::string& runDir, const std::string& runLabel, const std::string& ownerText);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int m_fd = -1;
};

}  // namespace pivot
