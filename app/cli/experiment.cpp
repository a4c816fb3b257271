// `pivot experiment`: the whole study (study/experiment.h) with a progress display: one line per
// stage ("[k/N] what", marked "reused" when a finished identical stage was found), the stage's own
// progress line while it trains, and where the report went. With --progress jsonl the same events
// are one JSON object a line (what the window reads):
//   {"event":"stage","index":3,"total":11,"what":"stage 1b:
//   instruct","reused":false,"elapsed_s":81.2}
//   {"event":"step","what":"stage 1b: instruct","step":40,"total":400,"loss":1.93}
//   {"event":"message","text":"measuring: ..."}
//   {"event":"done","experiment":1,"report":"/ws/experiments/experiment-1/report.md",
//    "trained":11,"reused":0}
// Errors go to stderr as one line, as for every command.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "progress.h"
#include "stop_signals.h"
#include "study/experiment.h"
#include "study/report.h"

namespace pivot::cli {
namespace {

class ExperimentDisplay final : public ExperimentProgress {
 public:
  explicit ExperimentDisplay(bool quiet)
      : m_quiet(quiet), m_start(std::chrono::steady_clock::now()) {}
  void onStage(int index, int total, const std::string& what, bool reused) override {
    std::cout << "[" << index << "/" << total << " " << elapsed() << "] " << what
              << (reused ? ": reused" : "") << std::endl;
  }
  void onMessage(const std::string& message) override {
    std::cout << "[" << elapsed() << "] " << message << std::endl;
  }
  std::unique_ptr<MetricSink> stepSink(int, const std::string& what) override {
    if (m_quiet) return std::make_unique<NullSink>();
    return std::make_unique<ProgressSink>("  " + what);
  }

 private:
  std::string elapsed() const {
    return formatDuration(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count());
  }
  bool m_quiet;
  std::chrono::steady_clock::time_point m_start;
};

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class JsonDisplay final : public ExperimentProgress {
 public:
  JsonDisplay() : m_start(std::chrono::steady_clock::now()) {}
  void onStage(int index, int total, const std::string& what, bool reused) override {
    emitJson({{"event", "stage"},
              {"index", index},
              {"total", total},
              {"what", what},
              {"reused", reused},
              {"elapsed_s", secondsSince(m_start)}});
  }
  void onMessage(const std::string& message) override {
    emitJson({{"event", "message"}, {"text", message}});
  }
  std::unique_ptr<MetricSink> stepSink(int, const std::string& what) override {
    return std::make_unique<JsonStepSink>(nlohmann::json{{"what", what}});
  }

 private:
  std::chrono::steady_clock::time_point m_start;
};

}  // namespace

int cmdPool(const std::vector<std::string>& reportDirs, const std::string& out) {
  writePooledReport(reportDirs, out);
  std::cout << "pooled " << reportDirs.size() << " replicates: " << out << "/report.md\n";
  return 0;
}

int cmdExperiment(const std::string& workspace, const ExperimentArgs& a) {
  refuseDamagedStore(workspace);
  ExperimentSpec spec = a.spec;
  if (!a.sweep.empty()) parseSweep(spec, a.sweep);
  parseArms(spec, a.arms);
  parseTuneLr(spec, a.tuneLr);
  spec.workspace = workspace;
  spec.stopRequested = &installStopSignals();
  spec = resolvedSpec(spec);  // every stage validated before anything is written
  const bool json = a.progress == "jsonl";
  if (!json)
    std::cout << "PIVOT experiment: preset " << spec.preset << ", "
              << (spec.bases > 1 ? std::to_string(spec.bases) + " bases x " : "") << spec.seeds
              << " seed(s)" << (spec.sweepKey.empty() ? "" : ", sweep " + a.sweep) << ", arms "
              << a.arms << (spec.mixedSftWeight > 0 ? ",dpo+sft" : "")
              << (spec.tuneLrScales.empty()
                      ? ""
                      : ", each tuned over " + std::to_string(spec.tuneLrScales.size()) +
                            " learning-rate scales")
              << ", " << spec.jobs << (spec.jobs > 1 ? " stages side by side" : " stage at a time")
              << "\nworkspace: " << workspace << std::endl;
  ExperimentDisplay human(a.quiet);
  JsonDisplay machine;
  const auto outcome =
      runExperiment(spec, json ? static_cast<ExperimentProgress&>(machine) : human);
  const std::string report = (std::filesystem::absolute(outcome.reportDir) / "report.md").string();
  if (json) {
    emitJson({{"event", "done"},
              {"experiment", outcome.experimentId},
              {"report", report},
              {"trained", outcome.stagesTrained},
              {"reused", outcome.stagesReused}});
    return 0;
  }
  std::cout << "experiment " << outcome.experimentId << " done: " << outcome.stagesTrained
            << " stages trained, " << outcome.stagesReused << " reused, " << outcome.rows.size()
            << " result rows\nreport: " << report << "\n";
  return 0;
}

}  // namespace pivot::cli
