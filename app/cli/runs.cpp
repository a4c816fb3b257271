// `pivot runs` and `pivot metrics`: the workspace's runs, and one run's logged values.
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "commands.h"
#include "store/workspace.h"

namespace fs = std::filesystem;

namespace pivot::cli {

namespace {

// Columns as wide as their longest cell: long names never run into the next column.
void printColumns(const std::vector<std::vector<std::string>>& table) {
  std::vector<size_t> width(table.front().size(), 0);
  for (const auto& row : table)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  for (const auto& row : table) {
    for (size_t c = 0; c < row.size(); ++c)
      std::cout << std::left << std::setw(static_cast<int>(c + 1 < row.size() ? width[c] + 2 : 0))
                << row[c];
    std::cout << "\n";
  }
}

std::string localTime(double unixSeconds) {
  std::time_t t = static_cast<std::time_t>(unixSeconds);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", std::localtime(&t));
  return when;
}

}  // namespace

// The runs, then the experiments with how many runs each trained or reused. Status is what a person
// should see: a dead owner's "running" run or experiment is "crashed".
int cmdRuns(const std::string& workspace) {
  auto store = openExisting(workspace);
  std::vector<std::vector<std::string>> table = {
      {"id", "name", "preset", "stage", "status", "parent", "steps", "last loss", "created"}};
  for (const auto& r : store->runs()) {
    const auto loss = store->lastMetric(r.id, "loss");
    std::ostringstream lossText;
    if (loss) lossText << std::setprecision(6) << loss->value;
    table.push_back({std::to_string(r.id), r.name, r.preset, r.stage, name(effectiveStatus(r)),
                     r.parentId ? std::to_string(*r.parentId) : "-",
                     loss ? std::to_string(loss->step) : "0", loss ? lossText.str() : "-",
                     localTime(r.createdAt)});
  }
  printColumns(table);
  const auto experiments = store->experiments();
  if (experiments.empty()) return 0;
  std::vector<std::vector<std::string>> studies = {
      {"experiment", "name", "preset", "status", "runs", "created", "report"}};
  for (const auto& e : experiments)
    studies.push_back({std::to_string(e.id), e.name, e.preset, name(effectiveStatus(e)),
                       std::to_string(e.runIds.size()), localTime(e.createdAt),
                       e.reportPath.empty() ? "-" : e.reportPath});
  std::cout << "\n";
  printColumns(studies);
  return 0;
}

int cmdMetrics(const std::string& workspace, const std::string& runName, bool csv,
               const std::string& key) {
  auto store = openExisting(workspace);
  const auto run = store->findRun(runName);
  const auto points = store->metrics(run.id, key);
  if (points.empty())
    throw std::runtime_error("run '" + runName + "' has no metrics" +
                             (key.empty() ? "" : " named '" + key + "'"));
  std::vector<std::string> keys =
      key.empty() ? store->metricKeys(run.id) : std::vector<std::string>{key};
  std::map<int64_t, std::map<std::string, double>> rows;
  for (const auto& p : points) rows[p.step][p.key] = p.value;
  std::cout << std::setprecision(9);
  if (csv) {
    std::cout << "step";
    for (const auto& k : keys) std::cout << ',' << k;
    std::cout << '\n';
    for (const auto& [step, values] : rows) {
      std::cout << step;
      for (const auto& k : keys) {
        std::cout << ',';
        if (auto it = values.find(k); it != values.end()) std::cout << it->second;
      }
      std::cout << '\n';
    }
    return 0;
  }
  std::cout << run.name << " (" << run.stage << ", " << name(run.status) << "), " << rows.size()
            << " steps; last values:\n";
  for (const auto& k : keys) {
    for (auto it = rows.rbegin(); it != rows.rend(); ++it)
      if (auto v = it->second.find(k); v != it->second.end()) {
        std::cout << "  " << std::left << std::setw(28) << k << v->second << "  (step " << it->first
                  << ")\n";
        break;
      }
  }
  for (const auto& e : store->evaluations(run.id))
    std::cout << "  " << std::left << std::setw(28) << (e.name + " " + e.key) << e.value << "\n";
  return 0;
}

}  // namespace pivot::cli
