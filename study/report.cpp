#include "study/report.h"

#include <torch/version.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>
#include <thread>

#include "metrics/curve_math.h"
#include "model/attention.h"
#include "model/linear.h"
#include "results/encoder_style.h"
#include "store/run_store.h"
#include "study/experiment.h"
#include "study/explain_sample.h"
#include "study/localise.h"
#include "training/run_checkpoint.h"
#include "training/trainer.h"
#include "visualization/attribution.h"
#include "visualization/charts.h"
#include "visualization/overlay.h"

namespace fs = std::filesystem;

namespace pivot {
namespace {

RgbImage sceneImage(const Scene& s) {
  RgbImage im;
  im.width = im.height = s.size;
  im.rgb = s.rgb;
  return im;
}

// The PNG for a quick look, the PDF (vector: text as text, only the maps as images) for a paper.
void saveBoth(const Drawing& figure, const std::string& stem) {
  saveDrawing(figure, stem + ".png");
  saveDrawing(figure, stem + ".pdf");
}

BarChart barsOf(const std::vector<ResultRow>& rows, const std::string& sweep,
                const std::vector<std::string>& encoders,
                const std::vector<std::pair<std::string, std::string>>& groups,
                const std::string& title, const std::string& yLabel) {
  BarChart c;
  const bool nested = distinctBases(rows) > 1;
  c.title = title + (nested ? " (points: each base's mean)" : "");
  c.yLabel = yLabel;
  for (const auto& e : encoders)
    c.series.push_back(encoderTitle(e)), c.colours.push_back(encoderColour(e));
  for (const auto& [probe, metric] : groups) {
    BarGroup g;
    g.label = probe.rfind("linear/", 0) == 0      ? probe.substr(7)
              : metric.rfind("accuracy/", 0) == 0 ? metric.substr(9)
                                                  : metric;
    if (g.label == "accuracy") g.label = "overall";
    for (const auto& e : encoders) {
      const auto s = cellSummary(rows, sweep, e, probe, metric);
      g.values.push_back(s.n ? s.mean : NAN);
      g.errors.push_back(s.std);
      if (nested) g.points.push_back(cellBaseMeans(rows, sweep, e, probe, metric));
    }
    c.groups.push_back(g);
  }
  return c;
}

// The bar charts of every swept value: probes, VQA, the swap test, the transplant, localisation.
void writeBarCharts(const std::string& figs, const std::vector<ResultRow>& rows) {
  const auto pm = distinctProbeMetrics(rows);
  for (const auto& sweep : distinctSweeps(rows)) {
    const std::string suffix = sweep.empty() ? "" : "_" + sweep;
    const std::string where = sweep.empty() ? "" : " (" + sweep + ")";
    std::vector<std::pair<std::string, std::string>> linear, vqa,
        seg = {{"segmentation", "macro_recall"}, {"segmentation", "miou"}},
        loc = {{"localisation", "mass_inside"}, {"localisation", "pointing_game"}};
    for (const auto& [p, m] : pm) {
      if (probeFamily(p) == "linear") linear.push_back({p, m});
      if (p == "vqa" && m.rfind("accuracy", 0) == 0) vqa.push_back({p, m});
    }
    // One bar chart per measurement family; none for a family the study did not measure (a
    // study without transplants has no transplant_vqa rows).
    const auto bars = [&](const std::string& family,
                          const std::vector<std::pair<std::string, std::string>>& groups,
                          const std::string& title, const std::string& yLabel,
                          const std::string& file) {
      const auto encoders = encodersOf(rows, family);
      if (encoders.empty()) return;
      saveBoth(drawBarChart(barsOf(rows, sweep, encoders, groups, title + where, yLabel)),
               figs + "/" + file + suffix);
    };
    bars("linear", linear, "Linear probe accuracy by encoder", "top-1", "probe_accuracy");
    bars("segmentation", seg, "Segmentation probe", "patch-level", "segmentation");
    bars("vqa", vqa, "VQA by question category", "top-1", "vqa_by_category");
    // The swap test and the transplant ask the VQA questions of other MLLMs.
    auto swap = vqa, transplant = vqa;
    for (auto& g : swap) g.first = "swap_vqa";
    for (auto& g : transplant) g.first = "transplant_vqa";
    bars("swap_vqa", swap, "Swap test: encoder under the stage-1 projector and LM", "top-1",
         "swap_vqa");
    bars("transplant_vqa", transplant, "PIVOT transplant: fresh MLLM around the frozen encoder",
         "top-1", "transplant_vqa");
    auto locChart = barsOf(rows, sweep, encodersOf(rows, "localisation"), loc,
                           "Gradient-map localisation" + where, "share");
    const auto baseline = cellSummary(rows, sweep, "stage1", "localisation", "uniform_baseline");
    if (baseline.n) {
      locChart.referenceLines.push_back(baseline.mean);
      locChart.referenceLabels.push_back("uniform map (mass_inside by chance)");
    }
    saveBoth(drawBarChart(locChart, 640, 420), figs + "/localisation" + suffix);
  }
}

void writeFigures(const std::string& dir, const std::string& workspace, const StudyRuns& runs,
                  const std::vector<ResultRow>& rows, ExperimentProgress& progress) {
  const std::string figs = (fs::path(dir) / "figures").string();
  fs::create_directories(figs);
  writeBarCharts(figs, rows);

  // Training curves of the stage-2 runs of base 1, seed 1 (first swept value).
  const StudyRuns::Base& first = runs.bases.begin()->second;
  RunStore store(storePath(workspace));
  const std::string firstSweep = distinctSweeps(rows).front();
  std::vector<Drawing> curves;
  for (const std::string key : {"loss", "logps/chosen", "rewards/margins", "rewards/accuracies",
                                "reward", "frac_reward_zero_std", "kl"}) {
    LineChart chart;
    chart.title = std::string(key) + " (EMA 0.6)";
    chart.xLabel = "step";
    auto arms = studyMethods();
    arms.push_back(kMixedArm);
    for (const std::string& arm : arms) {
      auto it = first.stageTwo.find({firstSweep, 1, arm});
      if (it == first.stageTwo.end()) continue;
      LineSeries s;
      s.label = encoderTitle(arm);
      s.colour = encoderColour(arm);
      // TensorBoard's debiased EMA (weight 0.6), as the window's curves show them by default.
      std::vector<double> values;
      for (const auto& p : store.metrics(it->second, key)) {
        s.x.push_back(static_cast<double>(p.step));
        values.push_back(p.value);
      }
      s.y = debiasedEma(values, 0.6);
      if (!s.x.empty()) chart.series.push_back(s);
    }
    if (!chart.series.empty()) curves.push_back(drawLineChart(chart));
  }
  if (!curves.empty()) saveBoth(tileDrawings(curves, 2), figs + "/stage2_curves");

  // Gradient-map panels: image | stage 1 | SFT | DPO | GRPO | MPO (the arms the study ran) on
  // held-out questions about an object.
  std::vector<LoadedCheckpoint> models = {
      loadRunCheckpoint(workspace, std::to_string(first.stage1))};
  std::vector<std::string> titles = {"stage 1"};
  for (const std::string& arm : studyMethods()) {
    const auto it = first.stageTwo.find({firstSweep, 1, arm});
    if (it == first.stageTwo.end()) continue;
    models.push_back(loadRunCheckpoint(workspace, std::to_string(it->second)));
    titles.push_back(encoderTitle(arm));
  }
  if (models.size() < 3) return;
  const ShapesWorld world(models.front().config.world);
  std::vector<Drawing> rowsOut;
  OverlayStyle style;
  style.panelSize = 192;
  style.colourBar = true;
  for (const auto& item : shapesWorldTargets(world, Split::Val, 6)) {  // questions about an object
    const Sample& s = item.sample;
    std::vector<FigurePanel> panels;
    for (size_t k = 0; k < models.size(); ++k) {
      const SampleMap result = explainSample(models[k], s, "", AttributionOptions{});
      char score[48];
      std::snprintf(score, sizeof score, "  mass %.2f %s", result.massInside,
                    result.pointingHit ? "hit" : "miss");
      panels.push_back({titles[k] + score, result.map, result.gridH, result.gridW});
    }
    rowsOut.push_back(drawFigure(sceneImage(s.scene), s.question, panels, s.answer, s.rejected,
                                 style,
                                 "gradmap of the SFT loss; colours span each map's own range"));
  }
  if (!rowsOut.empty()) saveBoth(tileDrawings(rowsOut, 1), figs + "/gradmap_triptychs");
  progress.onMessage("figures: " + figs);
}

// Where the numbers were computed: CPU kernels round differently from machine to machine and
// training amplifies it, so two reports can only be compared knowing this.
std::string machineMarkdown(const std::string& threads) {
  std::string cpu = "unknown";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  std::string blas = "not stated by this LibTorch";
  std::istringstream config(torch::show_config());
  for (std::string line; std::getline(config, line);)
    if (line.find("BLAS_INFO=") != std::string::npos) {
      blas = line.substr(line.find("BLAS_INFO=") + 10);
      blas = blas.substr(0, blas.find(','));
    }
  // The kernels OpenBLAS runs round differently: a machine that pins them says so.
  for (const char* pin : {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"})
    if (const char* value = std::getenv(pin)) blas += std::string(", ") + pin + "=" + value;
  std::ostringstream md;
  md << "## Machine\n\n- CPU: " << cpu << " (" << std::thread::hardware_concurrency()
     << " logical cores)\n- threads: " << threads << "\n- LibTorch " << TORCH_VERSION
     << ", BLAS: " << blas << ", linear layers: " << cpuGemmLibrary()
     << ", attention: " << cpuAttentionLibrary()
     << "\n- CUDA: " << (torch::cuda::is_available() ? "available" : "not available") << "\n";
  return md.str();
}

// The study's training time, from the wall times its runs logged with their losses: each run's
// gaps between consecutive steps summed, a gap over five minutes (a stop, then a resume) left out.
// Measurements, and whatever ran on the machine beside the study, are not counted out.
std::string trainingTimeMarkdown(const std::string& workspace, const StudyRuns& runs) {
  std::set<int64_t> ids;
  for (const auto& [b, base] : runs.bases) {
    ids.insert({base.original, base.stage1});
    for (const auto& [key, id] : base.stageTwo) ids.insert(id);
    for (const auto& [key, id] : base.transplants) ids.insert(id);
  }
  for (const auto& c : runs.tuning) ids.insert(c.run);
  ids.erase(0);
  RunStore store(storePath(workspace));
  // The runs the report names, and the stages between them (stage 1a, a transplant's alignment):
  // their parents.
  for (const int64_t id : std::set<int64_t>(ids))
    if (const auto run = store.run(id); run && run->parentId) ids.insert(*run->parentId);
  double seconds = 0;
  for (const int64_t id : ids) {
    const auto points = store.metrics(id, "loss");
    for (size_t i = 1; i < points.size(); ++i) {
      const double gap = points[i].wallTime - points[i - 1].wallTime;
      if (gap > 0 && gap <= 300) seconds += gap;
    }
  }
  std::ostringstream md;
  md << "- training time: " << std::fixed << std::setprecision(2) << seconds / 3600
     << " h summed over the study's " << ids.size()
     << " runs (the gaps between their logged steps, pauses over 5 minutes left out; stages "
        "side by side each counted; measurements not included)\n";
  return md.str();
}

std::string fixed(double v, int precision = 3) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

std::string formatP(double p) { return p < 0.001 ? "<0.001" : fixed(p, 3); }

// The confirmatory section: every primary endpoint's arm - SFT with its p and Holm-adjusted p, and
// arm - stage 1 beside it.
std::string primaryMarkdown(const std::vector<ResultRow>& rows) {
  const auto tests = primaryTests(rows);
  if (tests.empty()) return "";
  int family = 0;
  for (const auto& t : tests) family += t.vsSft.defined;
  std::ostringstream md;
  md << "\n## Primary endpoints\n\nDeclared before any result was seen:";
  for (const auto& [probe, metric] : primaryEndpoints()) md << " " << probe << " " << metric << ";";
  md << " everything after this section is exploratory (unadjusted intervals). Arm − SFT: a "
        "two-sided t-test of the mean difference ("
     << (distinctBases(rows) > 1 ? "over the bases' mean differences, K − 1 degrees of freedom"
                                 : "over the seeds of one base: it does not cover the variance "
                                   "between stage-0/1 chains, so it is not confirmatory")
     << "), Holm-adjusted over the " << family
     << " arm − SFT tests of this table (endpoints × arms × swept values); bold: Holm p < 0.05. "
        "Arm − stage 1: the same nested difference against each base's stage-1 encoder (for the "
        "swap test, stage 1's own localisation). Detectable: the smallest true arm − SFT "
        "difference this design finds with 80% power at two-sided 0.05 (before Holm), from the "
        "spread of the bases' mean differences; and how many bases would halve it.\n\n"
        "| swept | endpoint | arm | arm − SFT [95% CI] | p | Holm p | arm − stage 1 [95% CI] | "
        "detectable | bases to halve it |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& t : tests) {
    md << "| " << (t.sweep.empty() ? "—" : t.sweep) << " | " << t.probe << " " << t.metric << " | "
       << encoderTitle(t.arm) << " | ";
    if (t.vsSft.defined)
      md << formatDifference(t.vsSft) << " | " << formatP(t.vsSft.p) << " | "
         << (t.holmP < 0.05 ? "**" + formatP(t.holmP) + "**" : formatP(t.holmP)) << " | ";
    else
      md << (t.arm == "sft" ? "(the baseline)" : formatDifference(t.vsSft)) << " | | | ";
    md << formatDifference(t.vsStage1) << " |";
    if (t.vsSft.overBases && t.vsSft.n >= 2) {
      const double sd = summarise(t.vsSft.perBase).std;
      const double detectable = minimumDetectableDifference(sd, t.vsSft.n);
      md << " " << fixed(detectable) << " | " << unitsToDetect(sd, detectable / 2) << " |\n";
    } else {
      md << " | |\n";
    }
  }
  return md.str();
}

// Stage 1 base by base: the chain, not the stage-2 seed, decides most numbers, so a reader sees
// how competent (and how different) each base's starting point was.
std::string stageOneByBase(const std::vector<ResultRow>& rows) {
  const std::vector<std::pair<std::string, std::string>> columns = {
      {"vqa", "accuracy"},
      {"vqa", "accuracy/shape"},
      {"vqa", "accuracy/relation"},
      {"localisation", "mass_inside"},
      {"segmentation", "macro_recall"},
      {"linear/shape", "test_accuracy"}};
  std::map<int, std::map<std::pair<std::string, std::string>, double>> byBase;
  for (const auto& r : rows)
    if (r.encoder == "stage1") byBase[r.base][{r.probe, r.metric}] = r.value;
  if (byBase.size() < 2) return "";
  std::ostringstream md;
  md << "\n## Stage 1, base by base\n\n| base |";
  for (const auto& [probe, metric] : columns) md << " " << probe << " " << metric << " |";
  md << "\n|---|";
  for (size_t i = 0; i < columns.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& [base, values] : byBase) {
    md << "| " << base << " |";
    for (const auto& c : columns) {
      const auto it = values.find(c);
      md << " " << (it == values.end() ? "" : fixed(it->second)) << " |";
    }
    md << "\n";
  }
  return md.str();
}

// How each arm's training went, from the metrics its runs logged: the mean of the first and of the
// last tenth of the steps, averaged over the arm's runs (every base and seed). GRPO's reward and
// frac_reward_zero_std (groups whose completions all scored alike teach nothing) say whether it
// learned at all.
std::string trainingMarkdown(const std::string& workspace, const StudyRuns& runs) {
  // GRPO's sampled accuracy and entropy beside its reward: a policy that only sharpens on the
  // answers it already gives shows falling entropy and a flat accuracy.
  const std::vector<std::string> keys = {"loss",
                                         "rewards/accuracies",
                                         "logps/chosen",
                                         "reward",
                                         "rewards/accuracy/mean",
                                         "frac_reward_zero_std",
                                         "entropy",
                                         "kl"};
  // (sweep, arm, key) -> per run (start, end)
  std::map<std::tuple<std::string, std::string, std::string>,
           std::vector<std::pair<double, double>>>
      ends;
  RunStore store(storePath(workspace));
  for (const auto& [b, base] : runs.bases)
    for (const auto& [key, runId] : base.stageTwo)
      for (const auto& k : keys) {
        const auto points = store.metrics(runId, k);
        if (points.size() < 2) continue;
        const size_t tenth = std::max<size_t>(1, points.size() / 10);
        double first = 0, last = 0;
        for (size_t i = 0; i < tenth; ++i) {
          first += points[i].value / static_cast<double>(tenth);
          last += points[points.size() - 1 - i].value / static_cast<double>(tenth);
        }
        ends[{std::get<0>(key), std::get<2>(key), k}].push_back({first, last});
      }
  if (ends.empty()) return "";
  std::ostringstream md;
  md << "\n## Stage-2 training\n\nEach arm's logged metrics: the mean of the first and of the last "
        "tenth of its steps, averaged over its runs.\n\n"
        "| swept | arm | metric | first tenth | last tenth | runs |\n|---|---|---|---|---|---|\n";
  for (const auto& [id, values] : ends) {
    double first = 0, last = 0;
    for (const auto& [f, l] : values) {
      first += f / static_cast<double>(values.size());
      last += l / static_cast<double>(values.size());
    }
    md << "| " << (std::get<0>(id).empty() ? "—" : std::get<0>(id)) << " | "
       << encoderTitle(std::get<1>(id)) << " | " << std::get<2>(id) << " | " << fixed(first)
       << " | " << fixed(last) << " | " << values.size() << " |\n";
  }
  return md.str();
}

}  // namespace

std::string tuningMarkdown(const std::vector<TuningCandidate>& candidates) {
  if (candidates.empty()) return "";
  std::ostringstream md;
  md << "\n## Tuning\n\nEach arm had the same budget: one stage-2 run per learning-rate scale (LM "
        "and "
        "encoder rates together) on base 1, seed 1, scored by the arm's own objective on "
     << "validation items that no endpoint reads (index " << kTuningFirstItem
     << " on, against the base's stage-1 model; lower is better). Every base then trained the "
        "chosen scale (**bold**). The endpoints played no part in the choice.\n\n"
        "| swept | arm | lr x | LM rate | encoder rate | held-out objective | value | run |\n"
        "|---|---|---|---|---|---|---|---|\n";
  for (const auto& c : candidates) {
    const std::string mark = c.chosen ? "**" : "";
    md << "| " << (c.sweep.empty() ? "—" : c.sweep) << " | " << encoderTitle(c.arm) << " | " << mark
       << c.lrScale << mark << " | " << c.lr << " | " << c.visionLr << " | " << c.objective << " | "
       << mark << fixed(c.value, 4) << mark << " | " << c.run << " |\n";
  }
  return md.str();
}

std::string reportMarkdown(const std::vector<ResultRow>& rows, const std::string& title,
                           const std::string& designNotes) {
  std::ostringstream md;
  md << "# " << title << "\n\n";
  // What an interval covers, first: the statistics differ with the design.
  const int bases = distinctBases(rows);
  if (bases > 1)
    md << "Nested design: " << bases
       << " bases (independently seeded stage-0/1 chains), the stage-2 seeds within each. Mean ± "
          "standard deviation over every base and seed (the original and stage-1 encoders: over "
          "bases). Each method − SFT: per base the mean of the differences paired by seed, then "
          "the mean over bases with a 95% Student-t interval over the base means (so it covers "
          "the variance between stage-0/1 chains), and in how many bases the method is ahead.\n";
  else
    md << "One base: every stage-2 seed starts from the same stage-0/1 chain. Mean ± standard "
          "deviation over seeds (the original and stage-1 encoders are trained once). Each method "
          "− SFT: paired over seeds, with a 95% Student-t interval; it covers the stage-2 seeds "
          "only, "
          "not the variance between stage-0/1 chains (`--bases K` measures that).\n";
  if (!designNotes.empty()) md << "\n" << designNotes << "\n";
  md << primaryMarkdown(rows) << stageOneByBase(rows);
  // Stage 1 first: is it competent enough for stage-2 comparisons to mean anything?
  md << "\n## Stage-1 model, held-out VQA by question category\n\n| metric | value |\n|---|---|\n";
  for (const auto& [p, m] : distinctProbeMetrics(rows))
    if (p == "vqa") {
      const auto cell = cellSummary(rows, "", "stage1", p, m);
      if (cell.n) md << "| " << m << " | " << formatSummary(cell) << " |\n";
    }
  md << "\n## Exploratory measurements\n\nEvery table below, primary endpoints included, with "
        "unadjusted 95% intervals: descriptions, not tests.\n";
  for (const auto& sweep : distinctSweeps(rows)) {
    if (!sweep.empty()) md << "\n## Swept value: " << sweep << "\n";
    for (const auto& t : summaryTables(rows, sweep)) {
      md << "\n### " << t.title << "\n\n| probe | metric |";
      for (const auto& e : t.encoders) md << " " << encoderTitle(e) << " |";
      const auto arms = t.armsVsSft();
      for (const auto& arm : arms) md << " " << encoderTitle(arm) << " − SFT [95% CI] |";
      md << "\n|---|---|";
      for (size_t i = 0; i < t.encoders.size() + arms.size(); ++i) md << "---|";
      md << "\n";
      for (const auto& line : t.lines) {
        md << "| " << line.probe << " | " << line.metric << " |";
        for (const auto& c : line.cells) md << " " << formatSummary(c) << " |";
        for (const auto& [arm, d] : line.minusSft) md << " " << formatDifference(d) << " |";
        md << "\n";
      }
    }
  }
  return md.str();
}

std::string replicatesMarkdown(const std::vector<std::vector<ResultRow>>& replicates,
                               const std::vector<std::string>& names) {
  std::ostringstream md;
  md << "## Replicates and their heterogeneity\n\nPooled from " << replicates.size()
     << " replicates of one study (the same command; each replicate's bases follow the previous "
        "one's in results.csv):";
  for (size_t i = 0; i < replicates.size(); ++i)
    md << (i ? ";" : "") << " " << (i < names.size() ? names[i] : std::to_string(i + 1)) << " ("
       << distinctBases(replicates[i]) << " bases)";
  md << ". Before the pooled intervals below are read: each replicate's arm − SFT on the primary "
        "endpoints, and a one-way ANOVA of the bases' mean differences grouped by replicate "
        "(p < 0.05: the replicates disagree, and the pooled interval averages over that).\n\n"
        "| swept | endpoint | arm |";
  for (size_t i = 0; i < replicates.size(); ++i) md << " replicate " << i + 1 << " |";
  md << " heterogeneity F (df) | p |\n|---|---|---|";
  for (size_t i = 0; i < replicates.size(); ++i) md << "---|";
  md << "---|---|\n";
  for (const auto& c : replicateChecks(replicates)) {
    md << "| " << (c.sweep.empty() ? "—" : c.sweep) << " | " << c.probe << " " << c.metric << " | "
       << encoderTitle(c.arm) << " |";
    for (const auto& d : c.perReplicate) md << " " << formatDifference(d) << " |";
    const auto& h = c.heterogeneity;
    if (h.dfBetween > 0)
      md << " " << fixed(h.f, 2) << " (" << h.dfBetween << ", " << h.dfWithin << ") | "
         << formatP(h.p) << " |\n";
    else
      md << " | |\n";
  }
  return md.str();
}

void writePooledReport(const std::vector<std::string>& replicateDirs, const std::string& out) {
  if (replicateDirs.size() < 2) throw std::runtime_error("pool needs at least two report folders");
  std::vector<std::vector<ResultRow>> replicates;
  for (const auto& dir : replicateDirs) {
    if (!fs::exists(dir)) throw std::runtime_error(dir + ": no such report folder or results.csv");
    const fs::path csv = fs::is_directory(dir) ? fs::path(dir) / "results.csv" : fs::path(dir);
    if (!fs::exists(csv)) throw std::runtime_error(csv.string() + ": no such file");
    replicates.push_back(readResultsCsv(csv.string()));
    if (replicates.back().empty()) throw std::runtime_error(csv.string() + ": no result rows");
  }
  const auto pooled = pooledRows(replicates);
  fs::create_directories(out);
  writeResultsCsv((fs::path(out) / "results.csv").string(), pooled);
  std::ofstream md(fs::path(out) / "report.md");
  md << reportMarkdown(pooled, "PIVOT Workbench pooled report",
                       replicatesMarkdown(replicates, replicateDirs));
  if (!md) throw std::runtime_error((fs::path(out) / "report.md").string() + ": cannot write");
}

void writeReport(const std::string& dir, const std::string& workspace, const StudyRuns& runs,
                 const std::vector<ResultRow>& rows, const std::string& threads,
                 const std::string& designNotes, ExperimentProgress& progress) {
  fs::create_directories(dir);
  writeResultsCsv((fs::path(dir) / "results.csv").string(), rows);
  std::ostringstream md;
  md << reportMarkdown(rows, "PIVOT Workbench experiment report",
                       designNotes + tuningMarkdown(runs.tuning));
  md << trainingMarkdown(workspace, runs);
  md << "\n## Runs\n";
  for (const auto& [b, base] : runs.bases) {
    if (runs.bases.size() > 1) md << "\n### Base " << b << "\n";
    md << "\n- stage 0 (original encoder): run " << base.original
       << "\n- stage 1b (shared start of stage 2): run " << base.stage1 << "\n";
    for (const auto& [key, id] : base.stageTwo)
      md << "- stage 2 " << std::get<2>(key)
         << (std::get<0>(key).empty() ? "" : " " + std::get<0>(key)) << " seed " << std::get<1>(key)
         << ": run " << id << "\n";
    for (const auto& [key, id] : base.transplants)
      md << "- transplant of " << std::get<2>(key)
         << (std::get<0>(key).empty() ? "" : " " + std::get<0>(key)) << " seed " << std::get<1>(key)
         << ": run " << id << "\n";
  }
  md << "\n" << machineMarkdown(threads) << trainingTimeMarkdown(workspace, runs);
  if (!runs.tuning.empty()) {
    std::ofstream csv(fs::path(dir) / "tuning.csv");
    csv << "sweep,arm,lr_scale,lr,vision_lr,objective,value,run,chosen\n";
    csv.precision(17);
    for (const auto& c : runs.tuning)
      csv << c.sweep << "," << c.arm << "," << c.lrScale << "," << c.lr << "," << c.visionLr
          << ",\"" << c.objective << "\"," << c.value << "," << c.run << "," << (c.chosen ? 1 : 0)
          << "\n";
  }
  md << "\nFigures (PNG and PDF) are in figures/; every number above is in results.csv (the "
        "tuning's in tuning.csv); the exact "
        "configuration of the experiment is spec.json, of every stage its run's config.\n";
  std::ofstream(fs::path(dir) / "report.md") << md.str();
  if (!renderingAvailable()) {
    progress.onMessage(
        "this build has no OpenCV: report.md and results.csv written, figures skipped");
    return;
  }
  writeFigures(dir, workspace, runs, rows, progress);
}

}  // namespace pivot
