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

#include "config/train_config.h"
#include "results/results_table.h"
#include "training/metric_sink.h"

namespace pivot {

struct ExperimentSpec {
  std::string preset = "tiny";  // tiny | mini | a preset .json file
  int bases = 1;  // independent stage-0/1 chains; base b > 1 seeds them with seed + 1000 (b - 1)
  int seeds = 3;  // stage 2 and after run once per seed (1..seeds) on every base
  std::vector<std::string> sets;  // key=value overrides for every stage
  // A stage-2 key swept over sweepValues (e.g. vision_lr), or "dose" over preset | paper
  // (doseDescription).
  std::string sweepKey;
  std::vector<std::string> sweepValues;
  // The stage-2 methods compared, each run from the same stage-1 model (sft is the baseline every
  // difference is taken to, so it is always one of them).
  std::vector<std::string> arms = {"sft", "dpo", "grpo"};
  double mixedSftWeight = 0;  // > 0: one more arm, DPO with this SFT weight
  // Tuning (--tune-lr): on base 1, seed 1, each arm trains once with its rates (LM and encoder)
  // times each of these; every base then trains the scale whose held-out objective, the arm's own
  // loss (heldOutObjective) on validation items no measurement reads, was lowest. Empty: none.
  std::vector<double> tuneLrScales;
  bool transplants =
      true;  // false: no PIVOT transplant stages (a dose study that does not need them)
  std::string transplantProjector =
      "new";                     // new | one_plus_one (the original encoder always gets a new one)
  int transplantAlignSteps = 0;  // 0: a third of the preset's stage-1a steps
  int transplantInstructSteps = 0;                  // 0: an eighth of the preset's stage-1b steps
  int probeTrain = 0, probeVal = 0, probeTest = 0;  // 0: the preset's default
  int segmentationSeeds = 6;
  int localisationSamples = 0;  // 0: the preset's default
  int vqaSamples = 0;           // held-out questions per VQA measurement; 0: the preset's default
  // Stages (and measurements) run side by side when neither needs the other's result, each with
  // cores / jobs CPU threads (study/task_graph.h); 0: two from two cores up. The numbers do not
  // depend on it beyond the threads' rounding (`threads=N` in `sets` fixes the threads too).
  int jobs = 0;
  std::string workspace;
  std::string out;  // report folder; empty: <workspace>/experiments/<id>
  const std::atomic<bool>* stopRequested = nullptr;  // a signal or the window's Stop: the stage in
                                                     // progress stops with a checkpoint
};

// Thrown when a stop was requested: the stage in progress kept a checkpoint and the experiment is
// marked "stopped"; running the same experiment again resumes it.
struct ExperimentStopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads "--sweep key=v1,v2,..." into the spec; throws naming the key or the value.
void parseSweep(ExperimentSpec& spec, const std::string& text);
// Reads "--arms sft,dpo,grpo,mpo" into the spec; throws naming an unknown arm.
void parseArms(ExperimentSpec& spec, const std::string& text);
// Fills the preset-dependent zeros and validates every stage's configuration before anything runs.
ExperimentSpec resolvedSpec(const ExperimentSpec& spec);

// Replication: base b (1..K) is its own draw of everything random. Its stage-0/1 chain, its
// stage-2 runs and its transplants add baseSeedOffset(b) to their seeds, and its measurements read
// the evaluation items from index baseFirstItem(b) of each split. Base 1 adds nothing.
uint64_t baseSeedOffset(int base);
int64_t baseFirstItem(int base);
// What --sweep dose=preset,paper trains, with the ratios and the rates they give for this spec.
std::string doseDescription(const ExperimentSpec& spec);
// The configuration of stage-2 arm `arm` ("sft", "dpo+sft", ...) for one swept value ("" or
// "key=value"), seed and base, its learning rates times `lrScale` (a tuning candidate, or the
// chosen one), as the experiment trains it; throws for an arm the spec lacks.
TrainConfig stageTwoConfig(const ExperimentSpec& spec, const std::string& arm,
                           const std::string& sweep, int seed, int base, double lrScale = 1.0);
// The first validation item the tuning objective reads: beyond every base's measurement items.
constexpr int64_t kTuningFirstItem = 1000000000;

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
