#include "store/workspace.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "store/run_store.h"

namespace fs = std::filesystem;

namespace pivot {
namespace {

std::string readFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot; empty when
// there is no such process or it has exited and awaits its parent (a zombie, state Z). The command
// name (field 2) may hold spaces and parentheses, so count from the last ')'.
std::string processStartTicks(int64_t pid) {
  const std::string stat = readFirstLine("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 3 && (field == "Z" || field == "X")) return "";
    if (i == 22) return field;
  }
  return "";
}

std::string bootId() { return readFirstLine("/proc/sys/kernel/random/boot_id"); }

std::string hostName() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

}  // namespace

std::string storePath(const std::string& workspace) {
  return (fs::path(workspace) / "runs.sqlite").string();
}

std::string runDirectory(const std::string& workspace, int64_t runId) {
  return (fs::path(workspace) / "checkpoints" / ("run-" + std::to_string(runId))).string();
}

std::string lastUsableCheckpoint(const RunStore& store, int64_t runId, bool resumable) {
  const auto cps = store.checkpoints(runId);
  for (auto it = cps.rbegin(); it != cps.rend(); ++it) {
    const fs::path dir(it->path);
    if (!fs::exists(dir / "model.safetensors")) continue;
    if (resumable && (!fs::exists(dir / "optimizer.pt") || !fs::exists(dir / "trainer_state.json")))
      continue;
    return it->path;
  }
  return "";
}

std::string resumeCommand(const RunStore& store, int64_t runId) {
  std::string command = "pivot train --resume " + std::to_string(runId);
  const std::string checkpoint = lastUsableCheckpoint(store, runId, /*resumable=*/true);
  if (checkpoint.empty()) return command;
  std::ifstream in(fs::path(checkpoint) / "trainer_state.json");
  const auto state = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  const auto worldSize = state.is_object() ? state.value("world_size", 1) : 1;
  return worldSize > 1 ? command + " --nproc " + std::to_string(worldSize) : command;
}

void deleteRunWithFiles(RunStore& store, int64_t runId) {
  store.deleteRun(runId);
  std::error_code ec;
  fs::remove_all(runDirectory(store.workspaceRoot(), runId), ec);
}

std::string ownerText(const RunOwner& o) {
  std::ostringstream t;
  t << "pid " << o.pid << " on " << o.host;
  if (o.heartbeat > 0)
    t << ", last heartbeat " << static_cast<int64_t>(unixNow() - o.heartbeat) << " s ago";
  return t.str();
}

RunOwner processOwner(int64_t pid) {
  RunOwner o;
  o.host = hostName();
  o.pid = pid;
  const std::string ticks = processStartTicks(pid);
  if (!ticks.empty()) o.start = bootId() + "/" + ticks;
  return o;
}

RunOwner currentProcessOwner() { return processOwner(static_cast<int64_t>(getpid())); }

Liveness ownerLiveness(RunStatus status, const RunOwner& owner, double staleSeconds) {
  if (status != RunStatus::Running && status != RunStatus::Paused) return Liveness::NotRunning;
  if (owner.pid <= 0) return Liveness::Unknown;  // a run from before owners were recorded
  if (owner.host != hostName())
    return unixNow() - owner.heartbeat > staleSeconds ? Liveness::Dead : Liveness::Alive;
  if (kill(static_cast<pid_t>(owner.pid), 0) != 0 && errno == ESRCH) return Liveness::Dead;
  const std::string ticks = processStartTicks(owner.pid);
  return !ticks.empty() && bootId() + "/" + ticks == owner.start ? Liveness::Alive : Liveness::Dead;
}

RunStatus effectiveStatus(const RunInfo& run) {
  return runLiveness(run) == Liveness::Dead ? RunStatus::Crashed : run.status;
}

RunStatus effectiveStatus(const ExperimentInfo& experiment) {
  return ownerLiveness(experiment.status, experiment.owner) == Liveness::Dead ? RunStatus::Crashed
                                                                              : experiment.status;
}

RunLock::RunLock(const std::string& runDir, const std::string& runLabel,
                 const std::string& ownerText) {
  fs::create_directories(runDir);
  const std::string path = (fs::path(runDir) / ".lock").string();
  m_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (m_fd < 0)
    throw std::runtime_error(path + ": cannot open the run lock: " + std::strerror(errno));
  if (flock(m_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(m_fd);
    m_fd = -1;
    if (err == EWOULDBLOCK)
      throw std::runtime_error("run " + runLabel + " is being trained by another process (" +
                               ownerText + "); stop it there first");
    throw std::runtime_error(path + ": cannot lock: " + std::strerror(err));
  }
}

RunLock::~RunLock() {
  if (m_fd >= 0) ::close(m_fd);  // closing drops the flock
}

}  // namespace pivot
