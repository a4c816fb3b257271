// `pivot bench ddp`: data-parallel overhead on this machine. The same global batch of a preset's
// stage-2 SFT and DPO steps, trained by `pivot train` itself (the real driver, launcher and Gloo)
// as 1 process with every core and as N processes with cores/N threads each; prints the median
// step time of each, their ratio and the share of the data-parallel step spent in the gradient
// all-reduce. Both configurations run in this one invocation, one after the other.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <thread>

#include "commands.h"
#include "store/run_store.h"
#include "store/workspace.h"

namespace fs = std::filesystem;

namespace pivot::cli {
namespace {

// Runs this executable with `args`; throws with its exit status when it fails.
void runPivot(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (FILE* null = std::fopen("/dev/null", "w")) dup2(fileno(null), STDOUT_FILENO);
    std::vector<char*> argv;
    std::vector<std::string> copy = args;
    copy.insert(copy.begin(), "pivot");
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string line;
    for (const auto& a : args) line += " " + a;
    throw std::runtime_error("bench ddp: `pivot" + line + "` failed (status " +
                             std::to_string(status) + ")");
  }
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Timing {
  double stepMs = 0, allReduceMs = 0;
};

// The median step time of the last run (the first `skip` steps are warm-up) and its all-reduce.
Timing lastRunTiming(const std::string& workspace, int64_t batch, int skip) {
  RunStore store(storePath(workspace), RunStore::Access::ReadOnly);
  const int64_t id = store.runs().back().id;
  std::vector<double> step, reduce;
  for (const auto& p : store.metrics(id, "throughput/samples_per_s"))
    if (p.step > skip) step.push_back(1000.0 * static_cast<double>(batch) / p.value);
  for (const auto& p : store.metrics(id, "ddp/allreduce_ms"))
    if (p.step > skip) reduce.push_back(p.value);
  return {median(step), median(reduce)};
}

}  // namespace

int cmdBenchDdp(const DdpBenchArgs& a) {
  if (a.nproc < 2) throw std::runtime_error("--nproc must be at least 2");
  const std::string ws =
      (fs::temp_directory_path() / ("pivot-bench-ddp-" + std::to_string(getpid()))).string();
  fs::create_directories(ws);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The stage-2 parent: a chain of one step per stage (its weights do not matter for timing).
  const std::string preset = (fs::path(ws) / "one-step.json").string();
  std::ofstream(preset) << "{\"preset\": \"" << a.preset
                        << "\", \"steps\": 1, \"eval_samples\": 0}\n";
  std::cout << "pivot bench ddp: preset " << a.preset << ", " << a.steps << " steps of SFT and DPO,"
            << " 1 process x " << cores << " threads vs " << a.nproc << " processes x "
            << std::max(1, cores / a.nproc) << " thread(s); workspace " << ws << "\n"
            << std::flush;
  runPivot({"--workspace", ws, "train", "--preset", preset, "--stage", "instruct", "--quiet"});
  std::string parent;
  {
    RunStore store(storePath(ws), RunStore::Access::ReadOnly);
    parent = std::to_string(store.runs().back().id);
  }
  std::cout << std::left << std::setw(8) << "method" << std::right << std::setw(8) << "batch"
            << std::setw(16) << "1 process ms" << std::setw(16) << "N processes ms" << std::setw(10)
            << "ratio" << std::setw(16) << "all-reduce ms" << std::setw(19) << "all-reduce share"
            << "\n";
  const int skip = std::min(3, a.steps / 4);
  for (const std::string stage : {"sft", "dpo"}) {
    const std::vector<std::string> common = {"--workspace",
                                             ws,
                                             "train",
                                             "--preset",
                                             a.preset,
                                             "--stage",
                                             stage,
                                             "--from",
                                             parent,
                                             "--set",
                                             "steps=" + std::to_string(a.steps),
                                             "--set",
                                             "snapshots=0",
                                             "--set",
                                             "eval_samples=0",
                                             "--quiet"};
    auto single = common;
    single.insert(single.end(), {"--set", "threads=" + std::to_string(cores)});
    runPivot(single);
    int64_t batch = 0;
    {
      RunStore store(storePath(ws), RunStore::Access::ReadOnly);
      batch = nlohmann::json::parse(store.runs().back().configJson).at("batch_size").get<int64_t>();
    }
    const Timing one = lastRunTiming(ws, batch, skip);
    auto parallel = common;
    parallel.insert(parallel.end(), {"--nproc", std::to_string(a.nproc)});
    runPivot(parallel);
    const Timing many = lastRunTiming(ws, batch, skip);
    std::cout << std::left << std::setw(8) << stage << std::right << std::setw(8) << batch
              << std::fixed << std::setprecision(1) << std::setw(16) << one.stepMs << std::setw(16)
              << many.stepMs << std::setprecision(3) << std::setw(10) << many.stepMs / one.stepMs
              << std::setprecision(2) << std::setw(16) << many.allReduceMs << std::setprecision(1)
              << std::setw(18) << 100.0 * many.allReduceMs / many.stepMs << "%\n"
              << std::flush;
  }
  std::cout << "ratio < 1: the data-parallel processes are faster than one process with every "
               "core; the all-reduce share is the part of a data-parallel step spent summing "
               "gradients (goal: overhead under 10 %)\n";
  if (!a.keep) fs::remove_all(ws);
  return 0;
}

}  // namespace pivot::cli
