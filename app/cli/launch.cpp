#include "launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <thread>

#include "config/parse_number.h"
#include "training/distributed.h"

namespace pivot::cli {
namespace {

std::vector<pid_t> g_workers;  // read by the signal handler
volatile sig_atomic_t g_signals = 0;

void forwardSignal(int sig) {
  ++g_signals;
  for (pid_t pid : g_workers)
    if (pid > 0) kill(pid, sig);
}

// A port nobody listens on now (the OS picks it); rank 0's store binds it a moment later.
int freeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("--nproc: no socket for the rendezvous port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error("--nproc: no free loopback port for the rendezvous");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::string describeExit(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "ended";
}

bool isStopCode(int status) {
  return WIFEXITED(status) &&
         (WEXITSTATUS(status) == 128 + SIGINT || WEXITSTATUS(status) == 128 + SIGTERM);
}

}  // namespace

std::vector<std::string> withoutNproc(int argc, char** argv, int& nproc) {
  nproc = 1;
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    std::string value;
    if (a == "--nproc") {
      if (i + 1 >= argc) throw std::runtime_error("--nproc needs a number of processes");
      value = argv[++i];
    } else if (a.rfind("--nproc=", 0) == 0) {
      value = a.substr(8);
    } else {
      out.push_back(a);
      continue;
    }
    const auto n = parseInteger(value);
    if (!n || *n < 1 || *n > 256)
      throw std::runtime_error("--nproc '" + value + "': expected a number of processes, 1..256");
    nproc = static_cast<int>(*n);
  }
  return out;
}

int launchWorkers(int nproc, const std::vector<std::string>& args) {
  const int port = freeLoopbackPort();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::string threads = std::to_string(std::max(1, cores / nproc));
  std::cout << "pivot: " << nproc << " data-parallel processes on this machine, " << threads
            << " thread" << (threads == "1" ? "" : "s") << " each, rendezvous 127.0.0.1:" << port
            << "\n"
            << std::flush;

  struct sigaction forward = {};
  forward.sa_handler = forwardSignal;
  sigemptyset(&forward.sa_mask);
  sigaction(SIGINT, &forward, nullptr);
  sigaction(SIGTERM, &forward, nullptr);

  g_workers.assign(static_cast<size_t>(nproc), 0);
  const pid_t launcher = getpid();
  for (int rank = 0; rank < nproc; ++rank) {
    std::vector<std::string> argvText = args;
    argvText[0] = "pivot";
    if (rank > 0) argvText.push_back("--quiet");
    const pid_t pid = fork();
    if (pid < 0)
      throw std::runtime_error("--nproc: could not start worker " + std::to_string(rank));
    if (pid == 0) {
      // A launcher killed outright (SIGKILL forwards nothing) must not leave workers training
      // the workspace: its death sends them SIGTERM, which stops a run with a checkpoint.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != launcher) _exit(128 + SIGTERM);  // it died before the line above
      // The launcher's output may be a pipe that closes with it (`| tee`, a GUI): a write must
      // not kill a worker mid-step (SIGPIPE) before it stops with its checkpoint. Kept over exec.
      signal(SIGPIPE, SIG_IGN);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv("OMP_NUM_THREADS", threads.c_str(), 0);  // a user's own setting wins
      setenv("OPENBLAS_NUM_THREADS", threads.c_str(), 0);
      std::vector<char*> cargs;
      for (auto& a : argvText) cargs.push_back(a.data());
      cargs.push_back(nullptr);
      execv("/proc/self/exe", cargs.data());
      std::perror("pivot: exec worker");
      _exit(127);
    }
    g_workers[static_cast<size_t>(rank)] = pid;
  }

  // Wait for every worker. After the first failure the others get the collective timeout (plus a
  // margin) to notice and exit on their own, then SIGTERM, then SIGKILL.
  const auto timeout =
      distributedEnvFromEnvironment([](const char* n) { return std::getenv(n); }).timeout;
  std::vector<int> status(static_cast<size_t>(nproc), 0);
  int running = nproc, firstFailure = -1;
  std::chrono::steady_clock::time_point deadline{};
  bool terminated = false;
  while (running > 0) {
    int st = 0;
    const pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid > 0) {
      for (int r = 0; r < nproc; ++r)
        if (g_workers[static_cast<size_t>(r)] == pid) {
          g_workers[static_cast<size_t>(r)] = 0;
          status[static_cast<size_t>(r)] = st;
          --running;
          const bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
          if (!ok && !isStopCode(st)) {
            std::cerr << "pivot: rank " << r << " (pid " << pid << ") " << describeExit(st) << "\n";
            if (firstFailure < 0) {
              firstFailure = r;
              deadline = std::chrono::steady_clock::now() + timeout + std::chrono::seconds(5);
            }
          }
        }
      continue;
    }
    if (firstFailure >= 0 && std::chrono::steady_clock::now() > deadline) {
      for (int r = 0; r < nproc; ++r)
        if (const pid_t p = g_workers[static_cast<size_t>(r)]; p > 0) {
          std::cerr << "pivot: rank " << r << " (pid " << p << ") did not exit after rank "
                    << firstFailure << " failed; " << (terminated ? "killing" : "terminating")
                    << " it\n";
          kill(p, terminated ? SIGKILL : SIGTERM);
        }
      terminated = true;
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const int rank0 = status[0];
  if (firstFailure < 0) {
    for (int st : status)
      if (isStopCode(st)) return WEXITSTATUS(st);
    return 0;
  }
  if (WIFEXITED(rank0) && WEXITSTATUS(rank0) != 0) return WEXITSTATUS(rank0);
  return 1;
}

ProcessGroup* workerGroup(bool cuda) {
  static std::unique_ptr<ProcessGroup> group;
  static bool checked = false;
  if (!checked) {
    checked = true;
    const DistributedEnv env = distributedEnvFromEnvironment();
    if (env.active()) group = std::make_unique<ProcessGroup>(env, cuda);
  }
  return group.get();
}

}  // namespace pivot::cli
