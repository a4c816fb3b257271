// An experiment's measurements as a flat table, one row per (base, swept value, seed, encoder,
// probe, metric): what results.csv holds, what report.md and the window's Encoders view summarise.
// A base is one independently seeded stage-0/1 chain; the stage-2 seeds are nested in it.
// Plain C++ (no torch, no Qt), so the widgets read it too. Its statistics are metrics/statistics.h,
// the encoders' names and colours results/encoder_style.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "metrics/statistics.h"

namespace pivot {

struct ResultRow {
  std::string sweep;  // "key=value" of the swept stage-2 setting, or "" without a sweep
  int seed = 0;  // stage-2 seed; 0 for what is trained once (the original and stage-1 encoders)
  std::string encoder;  // original | stage1 | sft | dpo | dpo+sft
  std::string
      probe;  // linear/shape, segmentation, vqa, swap_vqa, transplant_vqa, localisation, ...
  std::string metric;  // test_accuracy, macro_recall, accuracy/colour, mass_inside, ...
  double value = 0;
  int base = 1;  // the stage-0/1 chain (1..K) the row's models descend from (first in the CSV)
};

// The (sweep, seed, encoder[, base]) part of a row; probes fill in the rest.
inline ResultRow resultKey(const std::string& sweep, int seed, const std::string& encoder,
                           int base = 1) {
  ResultRow r;
  r.base = base;
  r.sweep = sweep;
  r.seed = seed;
  r.encoder = encoder;
  return r;
}

extern const char* const kResultsHeader;  // "base,sweep,seed,encoder,probe,metric,value"
// Files written before bases existed ("sweep,seed,...") read as base 1.
extern const char* const kResultsHeaderWithoutBase;

void writeResultsCsv(const std::string& path,
                     const std::vector<ResultRow>& rows);  // throws naming the file
// Throws naming the file and the line for a malformed row.
std::vector<ResultRow> readResultsCsv(const std::string& path);

// The values of one (sweep, encoder, probe, metric) cell, ordered by base and seed.
std::vector<CellValue> cellValues(const std::vector<ResultRow>& rows, const std::string& sweep,
                                  const std::string& encoder, const std::string& probe,
                                  const std::string& metric);
int distinctBases(const std::vector<ResultRow>& rows);  // how many bases the rows hold

// One table of report.md and of the window's Encoders view: a probe family's (probe, metric) lines,
// encoders as columns ("mean ± std" over seeds), and DPO - SFT paired over seeds with its interval.
struct SummaryTable {
  std::string family;  // linear | segmentation | vqa | swap_vqa | transplant_vqa | localisation
  std::string title;   // a readable caption of the family
  std::vector<std::string> encoders;  // canonical order: original, stage1, sft, dpo, grpo, mpo, ...
  std::vector<std::string> armsVsSft() const;  // the encoders with a difference column
  struct Line {
    std::string probe, metric;
    std::vector<Summary> cells;  // per encoder; n = 0 where the encoder has no value
    // Per encoder, each base's mean over its seeds (what the charts draw as points beside the
    // bar); one entry per encoder with a value when there is one base.
    std::vector<std::vector<double>> baseMeans;
    // Each RL arm (DPO, GRPO, MPO, DPO+SFT: every encoder of the table after SFT) minus SFT,
    // paired by (base, seed) and nested over bases; n = 0 where either arm is missing, and for a
    // line whose every value is the same (a baseline that no encoder changes).
    std::vector<std::pair<std::string, Difference>> minusSft;
    bool primary = false;  // a declared primary endpoint (primaryEndpoints)
    const Difference* differenceFor(const std::string& arm) const;  // nullptr when not an arm
  };
  std::vector<Line> lines;
};
std::vector<SummaryTable> summaryTables(const std::vector<ResultRow>& rows,
                                        const std::string& sweep);

// The study's declared primary endpoints, (probe, metric), fixed before any result was seen: the
// swap test's localisation mass (where the encoder alone makes the MLLM look), the segmentation
// probe's macro recall and the linear shape probe. Every other line is exploratory.
const std::vector<std::pair<std::string, std::string>>& primaryEndpoints();
bool isPrimaryEndpoint(const std::string& probe, const std::string& metric);

// One confirmatory test: an arm against SFT on a primary endpoint at one swept value.
struct PrimaryTest {
  std::string sweep, arm, probe, metric;
  Difference vsSft;     // arm - SFT, nested over bases
  Difference vsStage1;  // arm - its base's stage-1 encoder, nested the same way
  double holmP = 1;     // vsSft.p adjusted by Holm over every test returned
};
// Every (swept value, primary endpoint, arm) with values, Holm-adjusted together.
std::vector<PrimaryTest> primaryTests(const std::vector<ResultRow>& rows);

// Replicates of one study (the same command, run again: other machines round differently, so
// other chains) pooled as one: each replicate's bases follow the previous one's (1..K1, K1 + 1..).
std::vector<ResultRow> pooledRows(const std::vector<std::vector<ResultRow>>& replicates);
// Before a pooled interval is read: does arm - SFT differ between the replicates? Each replicate's
// nested difference, and a one-way ANOVA of the bases' mean differences grouped by replicate.
struct ReplicateCheck {
  std::string sweep, arm, probe, metric;
  std::vector<Difference> perReplicate;
  Anova heterogeneity;
};
std::vector<ReplicateCheck> replicateChecks(const std::vector<std::vector<ResultRow>>& replicates);
std::string probeFamily(const std::string& probe);  // "linear/shape" -> "linear"
// The encoders with a value in a probe family, in the order original, stage1, sft, dpo, grpo, mpo,
// dpo+sft.
std::vector<std::string> encodersOf(const std::vector<ResultRow>& rows, const std::string& family);

// summarise() of one cell's values (all bases and seeds).
Summary cellSummary(const std::vector<ResultRow>& rows, const std::string& sweep,
                    const std::string& encoder, const std::string& probe,
                    const std::string& metric);
// Each base's mean over its seeds for one cell, in base order: the points the charts draw beside
// a bar in a nested study (one value when there is one base).
std::vector<double> cellBaseMeans(const std::vector<ResultRow>& rows, const std::string& sweep,
                                  const std::string& encoder, const std::string& probe,
                                  const std::string& metric);

// Distinct values in first-seen order.
std::vector<std::string> distinctSweeps(const std::vector<ResultRow>& rows);
std::vector<std::string> distinctEncoders(const std::vector<ResultRow>& rows);
std::vector<std::pair<std::string, std::string>> distinctProbeMetrics(
    const std::vector<ResultRow>& rows);

}  // namespace pivot
