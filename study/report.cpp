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

#include "text/word_tokenizer.h"
#include "metrics/curve_math.h"
#include "model/attention.h"
#include "model/linear.h"
#include "results/encoder_style.h"
#include "store/run_store.h"
#include "study/experiment.h"
#include "training/batches.h"
#include "training/run_checkpoint.h"
#include "training/trainer.h"
#include "visualization/attribution.h"
#include "visualization/charts.h"

namespace fs = std::filesystem;

namespace pivot {
namespace {

RgbImage sceneImage(const Scene& s) {
  RgbImage im;
  im.width = im.height = s.size;
  im.rgb = s.rgb;
  return im;
}

void saveBoth(const RgbImage& image, const std::string& stem) {
  saveImage(image, stem + ".png");
  saveImage(image, stem + ".pdf");
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

void writeFigures(const std::string& dir, const std::string& workspace, const StudyRuns& runs,
                  const std::vector<ResultRow>& rows, ExperimentProgress& progress) {
  const std::string figs = (fs::path(dir) / "figures").string();
  fs::create_directories(figs);
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
    saveBoth(renderBarChart(barsOf(rows, sweep, encodersOf(rows, "linear"), linear,
                                   "Linear probe accuracy by encoder" + where, "top-1")),
             figs + "/probe_accuracy" + suffix);
    saveBoth(renderBarChart(barsOf(rows, sweep, encodersOf(rows, "segmentation"), seg,
                                   "Segmentation probe" + where, "patch-level")),
             figs + "/segmentation" + suffix);
    saveBoth(renderBarChart(barsOf(rows, sweep, encodersOf(rows, "vqa"), vqa,
                                   "VQA by question category" + where, "top-1")),
             figs + "/vqa_by_category" + suffix);
    auto swap = vqa;
    for (auto& g : swap) g.first = "swap_vqa";
    saveBoth(renderBarChart(barsOf(rows, sweep, encodersOf(rows, "swap_vqa"), swap,
                                   "Swap test: encoder under the stage-1 projector and LM" + where,
                                   "top-1")),
             figs + "/swap_vqa" + suffix);
    auto transplant = vqa;
    for (auto& g : transplant) g.first = "transplant_vqa";
    saveBoth(renderBarChart(barsOf(rows, sweep, encodersOf(rows, "transplant_vqa"), transplant,
                                   "PIVOT transplant: fresh MLLM around the frozen encoder" + where,
                                   "top-1")),
             figs + "/transplant_vqa" + suffix);
    auto locChart = barsOf(rows, sweep, encodersOf(rows, "localisation"), loc,
                           "Gradient-map localisation" + where, "share");
    const auto baseline = cellSummary(rows, sweep, "stage1", "localisation", "uniform_baseline");
    if (baseline.n) locChart.referenceLines.push_back(baseline.mean);
    saveBoth(renderBarChart(locChart, 640, 420), figs + "/localisation" + suffix);
  }

  // Training curves of the stage-2 runs of base 1, seed 1 (first swept value).
  const StudyRuns::Base& first = runs.bases.begin()->second;
  RunStore store(storePath(workspace));
  const std::string firstSweep = distinctSweeps(rows).front();
  std::vector<RgbImage> curves;
  for (const std::string key :
       {"loss", "logps/chosen", "rewards/margins", "rewards/accuracies", "reward", "kl"}) {
    LineChart chart;
    chart.title = std::string(key) + " (EMA 0.6)";
    chart.xLabel = "step";
    for (const std::string arm : {"sft", "dpo", "grpo", "mpo", "dpo+sft"}) {
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
    if (!chart.series.empty()) curves.push_back(renderLineChart(chart));
  }
  if (!curves.empty()) saveBoth(tileImages(curves, 2), figs + "/stage2_curves");

  // Gradient-map panels: image | stage 1 | SFT | DPO | GRPO | MPO (the arms the study ran) on
  // held-out questions about an object.
  std::vector<LoadedCheckpoint> models = {
      loadRunCheckpoint(workspace, std::to_string(first.stage1))};
  std::vector<std::string> titles = {"stage 1"};
  for (const std::string arm : {"sft", "dpo", "grpo", "mpo"}) {
    const auto it = first.stageTwo.find({firstSweep, 1, arm});
    if (it == first.stageTwo.end()) continue;
    models.push_back(loadRunCheckpoint(workspace, std::to_string(it->second)));
    titles.push_back(encoderTitle(arm));
  }
  if (models.size() < 3) return;
  const ShapesWorld world(models.front().config.world);
  const WordTokenizer tok = WordTokenizer::shapesWorld();
  std::vector<Sample> samples;
  for (int i = 0; samples.size() < 6 && i < 200; ++i) {
    auto s = world.sample(Split::Val, i);
    if (!s.targets.empty()) samples.push_back(std::move(s));
  }
  std::vector<RgbImage> rowsOut;
  OverlayStyle style;
  style.panelSize = 192;
  for (const auto& s : samples) {
    std::vector<FigurePanel> panels;
    for (size_t k = 0; k < models.size(); ++k) {
      auto& m = models[k];
      const auto in = buildBatch({{&s, Response::Chosen}}, tok, m.config.model.vision.numPatches(),
                                 m.model->parameters().front().device());
      const auto maps = explain(m.model, in, AttributionOptions{}).maps;
      FigurePanel p;
      p.title = titles[k];
      p.gridH = static_cast<int>(maps.size(1));
      p.gridW = static_cast<int>(maps.size(2));
      p.map = mapValues(maps, 0);
      panels.push_back(p);
    }
    rowsOut.push_back(
        renderFigure(sceneImage(s.scene), s.question, panels, s.answer, s.rejected, style));
  }
  if (!rowsOut.empty()) saveBoth(tileImages(rowsOut, 1), figs + "/gradmap_triptychs");
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

}  // namespace

std::string reportMarkdown(const std::vector<ResultRow>& rows, const std::string& title) {
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
  // Stage 1 first: is it competent enough for stage-2 comparisons to mean anything?
  md << "\n## Stage-1 model, held-out VQA by question category\n\n| metric | value |\n|---|---|\n";
  for (const auto& [p, m] : distinctProbeMetrics(rows))
    if (p == "vqa") {
      const auto cell = cellSummary(rows, "", "stage1", p, m);
      if (cell.n) md << "| " << m << " | " << formatSummary(cell) << " |\n";
    }
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

void writeReport(const std::string& dir, const std::string& workspace, const StudyRuns& runs,
                 const std::vector<ResultRow>& rows, const std::string& threads,
                 ExperimentProgress& progress) {
  fs::create_directories(dir);
  writeResultsCsv((fs::path(dir) / "results.csv").string(), rows);
  std::ostringstream md;
  md << reportMarkdown(rows, "PIVOT Workbench experiment report");
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
  md << "\n" << machineMarkdown(threads);
  md << "\nFigures (PNG and PDF) are in figures/; every number above is in results.csv; the exact "
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
