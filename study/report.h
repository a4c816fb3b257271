// The report folder of an experiment: results.csv (one row per base x swept value x seed x encoder
// x probe x metric), report.md (the design, the primary endpoints with Holm-adjusted tests and
// arm - stage 1, stage 1 base by base and per category, how each arm's training went, then every
// measurement as exploratory tables: mean +- std, arm - SFT with a 95% interval), and figures/ as
// PNG and PDF: probe accuracy bars, segmentation recall bars, VQA by category and transplant VQA
// (error bars: std over seeds), gradient-map triptychs (image | stage 1 | SFT | DPO), and the
// training curves of the stage-2 runs.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "results/results_table.h"

namespace pivot {

struct ExperimentProgress;

// One learning-rate candidate of an arm's tuning (ExperimentSpec::tuneLrScales): its run on base 1,
// seed 1, and its held-out objective (the arm's own loss; lower is better).
struct TuningCandidate {
  std::string sweep, arm;
  double lrScale = 1, lr = 0, visionLr = 0;
  int64_t run = 0;
  std::string objective;  // what was measured, e.g. "DPO loss (sigmoid)"
  double value = 0;
  bool chosen = false;
};

// The run ids of one experiment: per base (an independently seeded stage-0/1 chain) its chain.
struct StudyRuns {
  using Key = std::tuple<std::string, int, std::string>;  // sweep, seed, encoder
  struct Base {
    int64_t original = 0;                // stage 0: the pre-trained ("off-the-shelf") encoder
    int64_t stage1 = 0;                  // stage 1b: the MLLM both stage-2 arms start from
    std::map<Key, int64_t> stageTwo;     // the stage-2 runs (sft, dpo, dpo+sft)
    std::map<Key, int64_t> transplants;  // the transplant's instruct run, per encoder
  };
  std::map<int, Base> bases;            // 1..K
  std::vector<TuningCandidate> tuning;  // empty: the arms were not tuned
};

// `threads` says how the stages used the CPU (the Machine section), e.g. "2 stages side by side, 1
// each (a lone stage-0/1 chain, or a stage with nothing beside it: 2)"; `designNotes` (may be
// empty) what the design section adds, such as what each dose trains.
void writeReport(const std::string& dir, const std::string& workspace, const StudyRuns& runs,
                 const std::vector<ResultRow>& rows, const std::string& threads,
                 const std::string& designNotes, ExperimentProgress& progress);

// The Tuning section: every candidate of every arm, its rates, objective and run, the chosen one
// marked ("" without candidates).
std::string tuningMarkdown(const std::vector<TuningCandidate>& candidates);

// report.md's measurement sections alone (tested): the design, the primary endpoints, stage 1 by
// base and category, one exploratory table per probe family with encoders as columns.
std::string reportMarkdown(const std::vector<ResultRow>& rows, const std::string& title,
                           const std::string& designNotes = "");

// Replicates of one study pooled: each replicate's arm - SFT on every primary endpoint and the
// one-way ANOVA of their bases' mean differences (heterogeneity), before the pooled report that
// reportMarkdown writes from pooledRows. `names` label the replicates (their folders).
std::string replicatesMarkdown(const std::vector<std::vector<ResultRow>>& replicates,
                               const std::vector<std::string>& names);
// `pivot pool`: reads <dir>/results.csv of each replicate (errors name the file and the line) and
// writes the pooled results.csv and report.md (heterogeneity first) into `out`.
void writePooledReport(const std::vector<std::string>& replicateDirs, const std::string& out);

}  // namespace pivot
