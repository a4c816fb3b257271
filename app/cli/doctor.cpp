// `pivot doctor`: what is wrong with a workspace and what can still be recovered. Reads the store
// read-only unless --fix is given; --fix marks runs and experiments whose process is gone as
// "crashed" and removes temporary checkpoint folders that a crash left behind.
#include <filesystem>
#include <iostream>
#include <set>

#include "commands.h"
#include "store/run_store.h"
#include "store/workspace.h"

namespace fs = std::filesystem;

namespace pivot::cli {

int cmdDoctor(const std::string& workspace, bool fix) {
  const std::string path = storePath(workspace);
  if (!fs::exists(path)) throw std::runtime_error("workspace " + workspace + " has no runs.sqlite");
  int problems = 0, fixedProblems = 0;
  // `fixed`: --fix repaired it (a crashed run marked, a temporary folder removed).
  const auto problem = [&](const std::string& text, bool fixed = false) {
    ++problems;
    if (fixed) ++fixedProblems;
    std::cout << "  problem: " << text << (fixed ? " (fixed)" : "") << "\n";
  };
  std::cout << "workspace " << fs::absolute(workspace).string() << "\n";

  std::unique_ptr<RunStore> store;
  try {
    store = std::make_unique<RunStore>(
        path, fix ? RunStore::Access::ReadWrite : RunStore::Access::ReadOnly);
  } catch (const std::exception& e) {
    problem(std::string("the run store cannot be opened: ") + e.what());
    std::cout << "nothing in it can be read; the checkpoint folders under "
              << (fs::path(workspace) / "checkpoints").string()
              << " still hold each run's weights (model.safetensors) and configuration "
                 "(config.json), but the commands find runs through the store: restore "
                 "runs.sqlite from a copy to use them\n";
    return 1;
  }
  std::cout << "database: " << path << " (schema " << store->schemaVersion() << ")\n";
  const auto damage = store->integrityProblems();
  for (const auto& p : damage) problem("integrity check: " + p);

  std::vector<RunInfo> runs;
  try {
    runs = store->runs();
  } catch (const std::exception& e) {
    problem(std::string("the runs table cannot be read: ") + e.what());
    return 1;
  }
  int usable = 0, readable = 0;
  std::set<std::string> known;
  for (const auto& r : runs) {
    known.insert("run-" + std::to_string(r.id));
    const std::string label = "run " + std::to_string(r.id) + " (" + r.name + ")";
    if (r.status == RunStatus::Unknown) problem(label + ": " + r.message, false);
    if (effectiveStatus(r) == RunStatus::Crashed) {
      problem(label + " is marked " + name(r.status) + " but its process (pid " +
                  std::to_string(r.owner.pid) + " on " + r.owner.host + ") is gone: it crashed" +
                  (lastUsableCheckpoint(*store, r.id, true).empty()
                       ? ""
                       : "; `" + resumeCommand(*store, r.id) + "` continues it"),
              fix);
      if (fix)
        store->setStatus(
            r.id, RunStatus::Crashed,
            "its process (pid " + std::to_string(r.owner.pid) + ") ended without a status");
    }
    try {
      (void)store->metrics(r.id);
      (void)store->evaluations(r.id);
      ++readable;
    } catch (const std::exception& e) {
      problem(label + ": its metrics cannot be read fully: " + e.what());
    }
    try {
      for (const auto& c : store->checkpoints(r.id))
        if (!fs::exists(fs::path(c.path) / "model.safetensors"))
          problem(label + ": checkpoint at step " + std::to_string(c.step) +
                  " is missing its folder " + c.path);
      if (!lastUsableCheckpoint(*store, r.id).empty()) ++usable;
    } catch (const std::exception& e) {
      problem(label + ": its checkpoints cannot be read: " + e.what());
    }
  }
  std::vector<ExperimentInfo> experiments;
  try {
    experiments = store->experiments();
  } catch (const std::exception& e) {
    problem(std::string("the experiments table cannot be read: ") + e.what());
  }
  for (const auto& e : experiments) {
    const std::string label = "experiment " + std::to_string(e.id) + " (" + e.name + ")";
    if (effectiveStatus(e) == RunStatus::Crashed) {
      problem(label + " is marked " + name(e.status) + " but its process (pid " +
                  std::to_string(e.owner.pid) + " on " + e.owner.host +
                  ") is gone: it crashed; the same `pivot experiment` command resumes it",
              fix);
      if (fix)
        store->setExperimentStatus(
            e.id, RunStatus::Crashed,
            "its process (pid " + std::to_string(e.owner.pid) + ") ended without a status");
    }
    if (!e.reportPath.empty() && !fs::exists(e.reportPath))
      problem(label + ": its report folder " + e.reportPath + " is missing");
  }
  const fs::path checkpoints = fs::path(workspace) / "checkpoints";
  if (fs::exists(checkpoints)) {
    for (const auto& dir : fs::directory_iterator(checkpoints)) {
      if (!dir.is_directory()) continue;
      const std::string name = dir.path().filename().string();
      if (!known.count(name))
        problem("folder " + dir.path().string() + " belongs to no run in the store");
      for (const auto& sub : fs::directory_iterator(dir.path())) {
        if (sub.path().filename().string().rfind(".tmp-", 0) != 0) continue;
        problem("a half-written checkpoint " + sub.path().string() +
                    " was left by an interrupted write",
                fix);
        if (fix) fs::remove_all(sub.path());
      }
    }
  }
  // Damage SQLite does not see on read can drop rows silently: then nothing "reads fully".
  std::cout << runs.size() << " runs, " << experiments.size() << " experiments; "
            << (damage.empty() ? std::to_string(readable) + " with metrics that read fully"
                               : "the database is damaged, so any run's metrics may be missing "
                                 "rows even where they read")
            << "; " << usable << " with a usable checkpoint\n";
  if (problems == 0) {
    std::cout << "no problems found\n";
    return 0;
  }
  if (fix && fixedProblems == problems) {
    std::cout << problems << " problem(s), all fixed\n";
    return 0;
  }
  std::cout << problems << " problem(s)"
            << (fix ? "; " + std::to_string(fixedProblems) +
                          " fixed (crashed runs marked, "
                          "temporary folders removed), the rest need you"
                    : std::string())
            << "\n";
  return 1;
}

}  // namespace pivot::cli
