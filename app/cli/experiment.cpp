// `pivot experiment`: the whole study (study/experiment.h) with a progress display: one line per
// stage ("[k/N] what", marked "reused" when a finished identical stage was found), the stage's own
// progress line while it trains, and where the report went.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>

#include "commands.h"
#include "progress.h"
#include "stop_signals.h"
#include "study/experiment.h"

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
  MetricSink* stepSink(const std::string& what) override {
    if (m_quiet) return &m_silent;
    m_sink = std::make_unique<ProgressSink>("  " + what);
    return m_sink.get();
  }

 private:
  std::string elapsed() const {
    return formatDuration(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count());
  }
  bool m_quiet;
  std::chrono::steady_clock::time_point m_start;
  std::unique_ptr<ProgressSink> m_sink;
  NullSink m_silent;
};

}  // namespace

int cmdExperiment(const std::string& workspace, const ExperimentArgs& a) {
  ExperimentSpec spec;
  spec.preset = a.preset;
  spec.seeds = a.seeds;
  spec.sets = a.sets;
  if (!a.sweep.empty()) parseSweep(spec, a.sweep);
  spec.mixedSftWeight = a.mixedSftWeight;
  spec.transplantProjector = a.transplantProjector;
  spec.transplantAlignSteps = a.transplantAlignSteps;
  spec.transplantInstructSteps = a.transplantInstructSteps;
  spec.segmentationSeeds = a.segSeeds;
  spec.workspace = workspace;
  spec.out = a.out;
  spec.stopRequested = &installStopSignals();
  spec = resolvedSpec(spec);  // every stage validated before anything is written
  std::cout << "PIVOT experiment: preset " << spec.preset << ", " << spec.seeds << " seed(s)"
            << (spec.sweepKey.empty() ? "" : ", sweep " + a.sweep)
            << (spec.mixedSftWeight > 0 ? ", third arm DPO+SFT" : "")
            << "\nworkspace: " << workspace << std::endl;
  ExperimentDisplay display(a.quiet);
  const auto outcome = runExperiment(spec, display);
  std::cout << "experiment " << outcome.experimentId << " done: " << outcome.stagesTrained
            << " stages trained, " << outcome.stagesReused << " reused, " << outcome.rows.size()
            << " result rows\n"
            << "report: " << std::filesystem::absolute(outcome.reportDir).string()
            << "/report.md\n";
  return 0;
}

}  // namespace pivot::cli
