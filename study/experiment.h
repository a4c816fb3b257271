// `pivot experiment`: the paper's study in miniature, as one resumable chain of runs.
//
//   per base (an independently seeded chain; --bases K, default 1):
//   stage 0 encoder pre-training -> 1a align -> 1b instruct
//   -> per swept value and seed, one run per arm (--arms, default sft,dpo,grpo; mpo too) [and
//      DPO+SFT]: the same stage-1 model, the same samples, the same seeds
//   -> per seed and encoder (original and every arm's): the PIVOT transplant, a fresh MLLM
//      around the frozen encoder: projector-only alignment, then projector + LM instruction tuning
//   -> measurements of every encoder and MLLM (study/measurements.h) -> report (study/report.h)
//
// Every stage is a run in the workspace's run store with its parent. A stage whose configuration
// and parent match a finished run is reused instead of trained; one that matches an unfinished run
// (a crash, a stop) is resumed from its last checkpoint.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/experiment_spec.h"
#include "results/results_table.h"
#include "training/metric_sink.h"

namespace pivot {

// Thrown when a stop was requested: the stage in progress kept a checkpoint and the experiment is
// marked "stopped"; running the same experiment again resumes it.
struct ExperimentStopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// checkedSpec (config/experiment_spec.h), then the workspace and the device the stages name, and
// the number of stages side by side.
ExperimentSpec resolvedSpec(const ExperimentSpec& spec);

// What the runner reports while it works.
struct ExperimentProgress {
  virtual ~ExperimentProgress() = default;
  // A stage starts (or is reused: reused = true); index counts from 1 up to total.
  virtual void onStage(int index, int total, const std::string& what, bool reused) = 0;
  virtual void onMessage(const std::string& message) = 0;
  // Per-step progress of a trained stage; stages running side by side each get their own. The
  // runner calls every method here from one thread at a time.
  virtual std::unique_ptr<MetricSink> stepSink(int index, const std::string& what) = 0;
};

struct ExperimentOutcome {
  int64_t experimentId = 0;  // its row in the run store's experiments table
  std::string reportDir;
  int stagesTrained = 0, stagesReused = 0;
  std::vector<ResultRow> rows;
};

// Runs (or resumes) the whole study and writes the report. Throws on bad configuration before
// anything is written, or when a stage fails (naming it; finished stages stay reusable).
ExperimentOutcome runExperiment(const ExperimentSpec& spec, ExperimentProgress& progress);

}  // namespace pivot
