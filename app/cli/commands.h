// The `pivot` command's sub-commands. Each returns the process exit code; errors are thrown as
// std::runtime_error and main() turns them into one line and exit code 2.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace pivot::cli {

struct TrainArgs {
  std::string preset = "tiny";
  std::string stage = "dpo";
  std::string from;      // parent run (id or name)
  std::string resume;    // run to continue
  std::string name;
  std::vector<std::string> sets;  // key=value overrides
  bool quiet = false;
};

std::string defaultWorkspace();
int cmdTrain(const std::string& workspace, const TrainArgs& args);
int cmdRuns(const std::string& workspace);
int cmdMetrics(const std::string& workspace, const std::string& run, bool csv, const std::string& key);
int cmdExport(const std::string& workspace, const std::string& run, const std::string& outDir);
int cmdDemo(const std::string& workspace, const std::string& preset, const std::vector<std::string>& sets);
int cmdBench(const std::string& preset, int steps, const std::string& python);

}  // namespace pivot::cli
