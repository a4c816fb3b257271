// The study layer: the results table (CSV round trip, errors naming file and line), the statistics
// of report.md against hand-computed values, and the tiny experiment end to end: every stage runs,
// the report is complete, and an interrupted experiment resumes without training finished stages.
#include <QRegularExpression>
#include <QtTest/QtTest>

#include <QProcess>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "results/results_table.h"
#include "store/run_store.h"
#include "study/experiment.h"
#include "study/measurements.h"
#include "study/report.h"
#include "study/task_graph.h"
#include "data/shapes_world.h"
#include "training/batches.h"
#include "training/run_checkpoint.h"
#include "training/steps.h"
#include "training/trainer.h"

using namespace pivot;
namespace fs = std::filesystem;

namespace {

// Counts stages; throws from the step sink once stage `failAtStage` trains, as a crash would.
// The runner calls it from one thread at a time.
class Recorder final : public ExperimentProgress {
 public:
  int failAtStage = -1;
  int trainedStages = 0, reusedStages = 0;
  std::vector<std::string> messages;
  void onStage(int, int, const std::string&, bool reused) override {
    reused ? ++reusedStages : ++trainedStages;
  }
  void onMessage(const std::string& message) override { messages.push_back(message); }
  std::unique_ptr<MetricSink> stepSink(int index, const std::string&) override {
    auto sink = std::make_unique<CrashSink>();
    sink->armed = index == failAtStage;
    return sink;
  }

 private:
  struct CrashSink final : MetricSink {
    bool armed = false;
    void onStep(int64_t step, int64_t, const Scalars&) override {
      if (armed && step == 3) throw std::runtime_error("simulated crash");
    }
  };
};

}  // namespace

class TestExperiment : public QObject {
  Q_OBJECT
  QTemporaryDir m_dir;

 private Q_SLOTS:
  void resultsCsvRoundTrip() {
    std::vector<ResultRow> rows = {
        {"vision_lr=1e-4", 2, "dpo", "linear/shape", "test_accuracy", 0.123456789012345678},
        {"", 0, "original", "segmentation", "miou", -1.5e-7},
        {"a=\"q\",b", 1, "sft", "vqa", "accuracy/colour", 1.0, 3}};
    const std::string path = m_dir.filePath("results.csv").toStdString();
    writeResultsCsv(path, rows);
    const auto back = readResultsCsv(path);
    QCOMPARE(back.size(), rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      QCOMPARE(back[i].base, rows[i].base);
      QCOMPARE(back[i].sweep, rows[i].sweep);
      QCOMPARE(back[i].seed, rows[i].seed);
      QCOMPARE(back[i].encoder, rows[i].encoder);
      QCOMPARE(back[i].probe, rows[i].probe);
      QCOMPARE(back[i].metric, rows[i].metric);
      QCOMPARE(back[i].value, rows[i].value);  // 17 significant digits: exact
    }
    // A file written before bases existed reads as base 1.
    std::ofstream(path) << kResultsHeaderWithoutBase << "\n,2,dpo,vqa,accuracy,0.25\n";
    const auto old = readResultsCsv(path);
    QCOMPARE(old.size(), size_t{1});
    QCOMPARE(old[0].base, 1);
    QCOMPARE(old[0].seed, 2);
    QCOMPARE(old[0].value, 0.25);
  }

  void malformedResultsNameFileAndLine() {
    const std::string path = m_dir.filePath("bad.csv").toStdString();
    std::ofstream(path) << kResultsHeader
                        << "\n1,,1,sft,vqa,accuracy,0.5\n1,,x,sft,vqa,accuracy,0.5\n";
    try {
      readResultsCsv(path);
      QFAIL("no error");
    } catch (const std::runtime_error& e) {
      QCOMPARE(QString(e.what()), QString::fromStdString(path + ":3: seed 'x' is not an integer"));
    }
    std::ofstream(path) << kResultsHeader << "\n1,,1,sft,vqa,0.5\n";
    try {
      readResultsCsv(path);
      QFAIL("no error");
    } catch (const std::runtime_error& e) {
      QCOMPARE(QString(e.what()), QString::fromStdString(path + ":2: expected 7 fields, found 6"));
    }
    std::ofstream(path) << kResultsHeader << "\n0,,1,sft,vqa,accuracy,0.5\n";
    try {
      readResultsCsv(path);
      QFAIL("no error");
    } catch (const std::runtime_error& e) {
      QCOMPARE(QString(e.what()),
               QString::fromStdString(path + ":2: base '0' is not a positive integer"));
    }
  }

  void statisticsMatchHandComputedValues() {
    const auto s =
        summarise({1.0, 2.0, 4.0});  // mean 7/3, var ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3
    QVERIFY(std::abs(s.mean - 7.0 / 3) < 1e-12);
    QVERIFY(std::abs(s.std - std::sqrt(7.0 / 3)) < 1e-12);
    QCOMPARE(summarise({5.0}).std, 0.0);
    // Differences 1, 2, 3: mean 2, sd 1, half-width t(2) / sqrt(3) = 4.303 / 1.732 = 2.4843.
    const auto d = pairedDifference({1, 2, 3}, {0, 0, 0});
    QVERIFY(d.defined);
    QVERIFY(std::abs(d.mean - 2) < 1e-12);
    QVERIFY(std::abs(d.high - d.mean - 4.303 / std::sqrt(3.0)) < 1e-9);
    QVERIFY(std::abs(d.mean - d.low - 4.303 / std::sqrt(3.0)) < 1e-9);
    QVERIFY(!pairedDifference({1}, {0}).defined);
    QCOMPARE(studentT975(1), 12.706);

    // The nested design: 3 bases x 3 seeds. DPO - SFT per (base, seed): base 1 +0.10 +0.11 +0.12,
    // base 2 -0.05 -0.04 -0.03, base 3 +0.02 +0.03 +0.04. Within base 1 alone the seed interval
    // excludes zero: 0.11 +- t(2) 0.01 / sqrt(3) = [0.0852, 0.1348]. Over bases the means are
    // 0.11, -0.04, 0.03: mean 0.1 / 3, sd 0.0750555, half-width t(2) sd / sqrt(3) = 0.186463:
    // [-0.15313, 0.21980], which does not; DPO ahead in 2 of 3 bases.
    std::vector<CellValue> dpo, sft;
    const double diffs[3][3] = {{0.10, 0.11, 0.12}, {-0.05, -0.04, -0.03}, {0.02, 0.03, 0.04}};
    for (int base = 1; base <= 3; ++base)
      for (int seed = 1; seed <= 3; ++seed) {
        const double sftValue = 0.5 + 0.01 * base - 0.02 * seed;  // arbitrary, cancels
        sft.push_back({base, seed, sftValue});
        dpo.push_back({base, seed, sftValue + diffs[base - 1][seed - 1]});
      }
    std::vector<CellValue> firstBaseDpo(dpo.begin(), dpo.begin() + 3),
        firstBaseSft(sft.begin(), sft.begin() + 3);
    const auto within = nestedDifference(firstBaseDpo, firstBaseSft);
    QVERIFY(!within.overBases && within.defined && within.n == 3);
    QVERIFY(std::abs(within.low - (0.11 - 4.303 * 0.01 / std::sqrt(3.0))) < 1e-9);
    QVERIFY(within.low > 0);  // "significant" on one base
    const auto between = nestedDifference(dpo, sft);
    QVERIFY(between.overBases && between.defined);
    QCOMPARE(between.n, 3);
    QCOMPARE(between.basesAbove, 2);
    QCOMPARE(between.perBase.size(), size_t{3});
    QVERIFY(std::abs(between.mean - 0.1 / 3) < 1e-12);
    const double sd = std::sqrt(
        (std::pow(0.11 - 0.1 / 3, 2) + std::pow(-0.04 - 0.1 / 3, 2) + std::pow(0.03 - 0.1 / 3, 2)) /
        2);
    QVERIFY(std::abs(sd - 0.0750555) < 1e-6);
    QVERIFY(std::abs(between.high - (0.1 / 3 + 4.303 * sd / std::sqrt(3.0))) < 1e-9);
    QVERIFY(std::abs(between.low - (-0.15313)) < 1e-4 && between.low < 0 && between.high > 0);
    QVERIFY2(QString::fromStdString(formatDifference(between))
                 .endsWith("(ahead in 2/3 bases, sign p 1.00)"),
             formatDifference(between).c_str());
    // t = mean / (sd / sqrt 3) with 2 degrees of freedom, where P(|T| > t) = 1 - t / sqrt(2 + t^2).
    const double t = (0.1 / 3) / (sd / std::sqrt(3.0));
    QVERIFY(std::abs(between.p - (1 - t / std::sqrt(2 + t * t))) < 1e-9);
    QCOMPARE(between.basesBelow, 1);
    // A tie is a tie, not a loss: base means +0.1, 0, -0.2 (ahead 1, tied 1, behind 1).
    const auto tied = nestedDifference({{1, 1, 0.6}, {2, 1, 0.5}, {3, 1, 0.3}},
                                       {{1, 1, 0.5}, {2, 1, 0.5}, {3, 1, 0.5}});
    QCOMPARE(tied.basesAbove, 1);
    QCOMPARE(tied.basesBelow, 1);
    QVERIFY2(QString::fromStdString(formatDifference(tied))
                 .endsWith("(ahead in 1, tied in 1 of 3 bases, sign p 1.00)"),
             formatDifference(tied).c_str());
    // Against a model trained once per base (stage 1): each arm value minus its base's value.
    const auto fromBase =
        differenceFromBase({{1, 1, 0.6}, {1, 2, 0.8}, {2, 1, 0.4}}, {{1, 0, 0.5}, {2, 0, 0.1}});
    QVERIFY(fromBase.overBases);
    QVERIFY(std::abs(fromBase.perBase[0] - 0.2) < 1e-12);  // (0.1 + 0.3) / 2
    QVERIFY(std::abs(fromBase.perBase[1] - 0.3) < 1e-12);
    // Seeds are paired within a base only: a seed missing from one arm drops that pair alone.
    sft.erase(sft.begin() + 4);  // base 2, seed 2
    const auto partial = nestedDifference(dpo, sft);
    QVERIFY(std::abs(partial.perBase[1] - (-0.04)) < 1e-12);  // (-0.05 - 0.03) / 2
    QVERIFY(std::abs(studentT975(200) - 1.972) < 0.002);
  }

  // Student's t, the sign test and Holm against values computed by hand.
  void testsMatchHandComputedValues() {
    QVERIFY(std::abs(studentTTwoSidedP(1, 1) - 0.5) < 1e-12);  // Cauchy: P(|T| > 1) = 1/2
    QVERIFY(std::abs(studentTTwoSidedP(-2, 2) - (1 - 2 / std::sqrt(6.0))) < 1e-12);
    QVERIFY(std::abs(studentTTwoSidedP(0, 7) - 1) < 1e-12);
    for (int df : {1, 2, 4, 9, 30})  // the table's 97.5% quantiles give p = 0.05
      QVERIFY2(std::abs(studentTTwoSidedP(studentT975(df), df) - 0.05) < 2e-4,
               qPrintable(QString::number(df)));
    QVERIFY(std::abs(studentTTwoSidedP(1.96, 100000) - 0.0500) < 1e-3);  // the normal limit
    QVERIFY(std::abs(studentTQuantile(0.05, 4) - 2.776) < 1e-3);  // the printed tables' values
    QVERIFY(std::abs(studentTQuantile(0.4, 9) - 0.883) < 1e-3);   // one-sided 80% on 9 df
    // 10 bases of sd 1: (2.262 + 0.883) / sqrt 10 = 0.9946. Halving it takes 34 bases, fewer than
    // 4x as the quantiles shrink: (2.0345 + 0.8530) / sqrt 34 = 0.4952 <= 0.4973, while 33 give
    // (2.0369 + 0.8531) / sqrt 33 = 0.5031.
    QVERIFY(std::abs(minimumDetectableDifference(1, 10) - 3.145 / std::sqrt(10.0)) < 1e-3);
    const int halve = unitsToDetect(1, minimumDetectableDifference(1, 10) / 2);
    QVERIFY(minimumDetectableDifference(1, halve) <= minimumDetectableDifference(1, 10) / 2);
    QVERIFY(minimumDetectableDifference(1, halve - 1) > minimumDetectableDifference(1, 10) / 2);
    QCOMPARE(halve, 34);
    QCOMPARE(signTestP(8, 0), 2.0 / 256);                        // 2 P(X = 0), n = 8
    QVERIFY(std::abs(signTestP(1, 7) - 2 * 9.0 / 256) < 1e-15);  // 2 (1 + 8) / 2^8
    QCOMPARE(signTestP(2, 1), 1.0);                              // 2 (1 + 3) / 8, capped
    QCOMPARE(signTestP(0, 0), 1.0);
    // p 0.01, 0.04, 0.03, 0.005 (m = 4): sorted 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06,
    // 0.04 x 1 = 0.04 -> 0.06 (the running maximum keeps the order).
    const auto holm = holmAdjusted({0.01, 0.04, 0.03, 0.005});
    const std::vector<double> want = {0.03, 0.06, 0.06, 0.02};
    for (size_t i = 0; i < want.size(); ++i) QVERIFY(std::abs(holm[i] - want[i]) < 1e-12);
    QCOMPARE(holmAdjusted({0.6, 0.01}), (std::vector<double>{0.6, 0.02}));
    QCOMPARE(holmAdjusted({0.5, 0.6}), (std::vector<double>{1.0, 1.0}));  // 2 x 0.5, then the max
  }

  // The confirmatory section of report.md, by hand: three bases, one seed; segmentation recall
  // (primary) stage 1 0.30, SFT 0.31, DPO SFT + 0.02, 0.01, 0.03. DPO - SFT: mean 0.02, sd 0.01,
  // t = 0.02 / (0.01 / sqrt 3) = 3.464 on 2 df, p = 1 - t / sqrt(2 + t^2) = 0.074, the only test
  // of the family, so Holm leaves it. DPO - stage 1: 0.03, 0.02, 0.04. A baseline that no encoder
  // changes gets no difference.
  void reportDeclaresPrimaryEndpoints() {
    std::vector<ResultRow> rows;
    const double dpoAhead[] = {0.02, 0.01, 0.03};
    for (int base = 1; base <= 3; ++base) {
      rows.push_back({"", 0, "stage1", "segmentation", "macro_recall", 0.30, base});
      rows.push_back({"", 1, "sft", "segmentation", "macro_recall", 0.31, base});
      rows.push_back(
          {"", 1, "dpo", "segmentation", "macro_recall", 0.31 + dpoAhead[base - 1], base});
      for (const char* e : {"sft", "dpo"})
        rows.push_back({"", 1, e, "localisation", "uniform_baseline", 0.3, base});
      rows.push_back({"", 0, "stage1", "localisation", "uniform_baseline", 0.3, base});
    }
    const std::string md = reportMarkdown(rows, "t", "dose notes here");
    const auto has = [&](const std::string& text) {
      QVERIFY2(md.find(text) != std::string::npos, (text + "\n---\n" + md).c_str());
    };
    has("dose notes here");
    has("## Primary endpoints");
    has("Holm-adjusted over the 1 arm − SFT tests");
    has("| — | segmentation macro_recall | DPO | +0.020 [");
    has("(ahead in 3/3 bases, sign p 0.25) | 0.074 | 0.074 | +0.030 [");
    has("| — | segmentation macro_recall | SFT | (the baseline) | | | +0.010 [0.010, 0.010] (ahead "
        "in 3/3 bases, sign p 0.25) |");
    // Detectable with 80% power: (t(2) 4.303 + t80(2) 1.061) x 0.01 / sqrt 3 = 0.031.
    has("(ahead in 3/3 bases, sign p 0.25) | 0.074 | 0.074 | +0.030 [0.005, 0.055] (ahead in 3/3 "
        "bases, sign p 0.25) | 0.031 |");
    has("## Stage 1, base by base");
    has("## Exploratory measurements");
    has("| localisation | uniform_baseline | 0.300 ± 0.000 | 0.300 ± 0.000 | 0.300 ± 0.000 |  |");
    QVERIFY(md.find("## Primary endpoints") < md.find("## Exploratory measurements"));
  }

  // Replicates pooled: the ANOVA against the t-test it equals for two groups; bases renumbered;
  // the pooled report shows each replicate and the heterogeneity before the pooled numbers.
  void replicatesArePooledAfterAHeterogeneityCheck() {
    // {1, 2, 3} and {4, 5, 6}: means 2 and 5, between SS 13.5 (1 df), within SS 4 (4 df): F 13.5,
    // the square of the pooled-variance t = 3 / sqrt(2/3) = 3.674 on 4 df.
    const auto anova = oneWayAnova({{1, 2, 3}, {4, 5, 6}});
    QVERIFY(std::abs(anova.f - 13.5) < 1e-12);
    QCOMPARE(anova.dfBetween, 1);
    QCOMPARE(anova.dfWithin, 4);
    QVERIFY(std::abs(anova.p - studentTTwoSidedP(std::sqrt(13.5), 4)) < 1e-9);
    QCOMPARE(oneWayAnova({{1, 2}, {}}).p, 1.0);  // one group: nothing to compare

    const auto replicate = [](double dpoAhead) {
      std::vector<ResultRow> rows;
      for (int base = 1; base <= 3; ++base) {
        rows.push_back({"", 1, "sft", "segmentation", "macro_recall", 0.3, base});
        rows.push_back(
            {"", 1, "dpo", "segmentation", "macro_recall", 0.3 + dpoAhead + 0.01 * base, base});
      }
      return rows;
    };
    const auto pooled = pooledRows({replicate(0.0), replicate(0.1)});
    QCOMPARE(distinctBases(pooled), 6);
    QCOMPARE(pooled.back().base, 6);
    const auto checks = replicateChecks({replicate(0.0), replicate(0.1)});
    QCOMPARE(checks.size(), size_t{1});
    QVERIFY(std::abs(checks[0].perReplicate[1].mean - checks[0].perReplicate[0].mean - 0.1) < 1e-9);
    // Base means 0.01, 0.02, 0.03 and 0.11, 0.12, 0.13: F = 0.015 / 0.0001 = 150 on (1, 4).
    QVERIFY(std::abs(checks[0].heterogeneity.f - 150) < 1e-6);

    const QString dir = m_dir.filePath("pool");
    for (int i : {1, 2}) {
      QDir().mkpath(dir + QString("/r%1").arg(i));
      writeResultsCsv((dir + QString("/r%1/results.csv").arg(i)).toStdString(),
                      replicate(i == 1 ? 0.0 : 0.1));
    }
    const std::string out = (dir + "/pooled").toStdString();
    writePooledReport({(dir + "/r1").toStdString(), (dir + "/r2").toStdString()}, out);
    std::ifstream in(fs::path(out) / "report.md");
    const std::string md((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    QVERIFY2(md.find("## Replicates and their heterogeneity") < md.find("## Primary endpoints"),
             md.c_str());
    QVERIFY2(md.find("| 150.00 (1, 4) | <0.001 |") != std::string::npos, md.c_str());
    QCOMPARE(readResultsCsv(out + "/results.csv").size(), size_t{12});
    try {
      writePooledReport({(dir + "/r1").toStdString()}, out);
      QFAIL("one replicate was pooled");
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find("at least two") != std::string::npos, e.what());
    }
    try {
      writePooledReport({(dir + "/r1").toStdString(), (dir + "/none").toStdString()}, out);
      QFAIL("a missing folder was pooled");
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find("pool/none: no such report folder or results.csv") !=
                   std::string::npos,
               e.what());
    }
  }

  void reportTableShowsMeanStdAndDifference() {
    std::vector<ResultRow> rows = {{"", 0, "original", "linear/shape", "test_accuracy", 0.5},
                                   {"", 1, "sft", "linear/shape", "test_accuracy", 0.6},
                                   {"", 2, "sft", "linear/shape", "test_accuracy", 0.8},
                                   {"", 1, "dpo", "linear/shape", "test_accuracy", 0.7},
                                   {"", 2, "dpo", "linear/shape", "test_accuracy", 0.8}};
    const QString md = QString::fromStdString(reportMarkdown(rows, "t"));
    // SFT 0.7 +- 0.141; DPO 0.75 +- 0.071; DPO - SFT: 0.1, 0.0 -> mean 0.05, sd 0.0707,
    // half-width 12.706 * 0.0707 / sqrt(2) = 0.635.
    QVERIFY2(md.contains("| linear/shape | test_accuracy | 0.500 | 0.700 ± 0.141 | 0.750 ± 0.071 | "
                         "+0.050 [-0.585, 0.685] |"),
             qPrintable(md));
  }

  // --arms: the methods compared with SFT, checked before anything runs.
  void armsAreCheckedBeforeAnythingRuns() {
    ExperimentSpec spec;
    spec.workspace = m_dir.filePath("arms").toStdString();
    const auto refused = [&](const std::string& arms, const std::string& why) {
      ExperimentSpec s = spec;
      parseArms(s, arms);
      try {
        resolvedSpec(s);
        QFAIL(("--arms " + arms + " was accepted").c_str());
      } catch (const std::runtime_error& e) {
        QVERIFY2(std::string(e.what()).find(why) != std::string::npos, e.what());
      }
    };
    refused("dpo,grpo", "--arms must include sft");
    refused("sft,ppo", "unknown arm 'ppo' (expected sft, dpo, grpo or mpo)");
    refused("sft,dpo,dpo", "--arms lists dpo twice");
    refused("sft", "a method besides sft");
    parseArms(spec, "sft, dpo,grpo,mpo");
    QCOMPARE(resolvedSpec(spec).arms, (std::vector<std::string>{"sft", "dpo", "grpo", "mpo"}));
    const auto badTuning = [&](std::vector<double> scales, const std::string& why) {
      ExperimentSpec s = spec;
      s.tuneLrScales = std::move(scales);
      try {
        resolvedSpec(s);
        QFAIL("a bad --tune-lr was accepted");
      } catch (const std::runtime_error& e) {
        QVERIFY2(std::string(e.what()).find(why) != std::string::npos, e.what());
      }
    };
    badTuning({0.5}, "--tune-lr: give two or more scales");
    badTuning({1, 3, 1}, "--tune-lr: 1 is listed twice");
    badTuning({1, -2}, "--tune-lr: every scale must be a positive number, got -2");
    QVERIFY(!fs::exists(spec.workspace));  // nothing written
  }

  // Seeds are nested in bases, not crossed with them: seed 1 of base 2 sees another data order
  // than seed 1 of base 1, and base 2 is measured on other evaluation items.
  void basesDrawTheirOwnDataAndItems() {
    ExperimentSpec spec;
    spec.preset = "mini";
    spec.bases = 2;
    spec.arms = {"sft", "dpo"};
    spec.mixedSftWeight = 0.2;
    spec.workspace = m_dir.filePath("nested").toStdString();
    spec = resolvedSpec(spec);
    for (const char* arm : {"sft", "dpo", "dpo+sft"}) {
      const auto one = stageTwoConfig(spec, arm, "", 1, 1);
      const auto two = stageTwoConfig(spec, arm, "", 1, 2);
      QCOMPARE(one.seed, uint64_t{1});  // base 1 as one-base experiments trained it
      QCOMPARE(two.seed, uint64_t{1001});
      DataOrder first(one.seed, one.dataset_size), second(two.seed, two.dataset_size);
      QVERIFY(first.indicesForStep(0, one.batch_size) != second.indicesForStep(0, two.batch_size));
    }
    QCOMPARE(stageTwoConfig(spec, "dpo+sft", "", 1, 1).sft_weight, 0.2);
    QCOMPARE(baseFirstItem(1), int64_t{0});
    QVERIFY(baseFirstItem(2) >= spec.probeTrain + spec.vqaSamples);  // no item shared
    const ShapesWorld world(stageTwoConfig(spec, "sft", "", 1, 1).world);
    for (Split split : {Split::Train, Split::Val, Split::Test})
      QVERIFY(world.sample(split, 0).scene.rgb != world.sample(split, baseFirstItem(2)).scene.rgb);
    try {
      (void)stageTwoConfig(spec, "grpo", "", 1, 1);
      QFAIL("an arm the spec lacks was configured");
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find("no arm 'grpo'") != std::string::npos, e.what());
    }
  }

  // Encoder displacement: an encoder against itself moved nowhere (weight change 0, CKA 1 at every
  // layer); against a re-initialised one its weights changed by about their size and its deeper
  // tokens are far from alike.
  void displacementOfAnEncoderFromItselfAndFromAFreshOne() {
    const TrainConfig cfg = makeConfig("tiny", Stage::Sft, {});
    torch::manual_seed(1);
    Mllm trained(cfg.model), fresh(cfg.model);
    MeasureSettings settings;
    settings.probeTest = 64;
    const auto self =
        displacementRows(trained, trained, cfg.world, settings, resultKey("", 1, "sft"));
    const int layers = cfg.model.vision.num_hidden_layers;
    QCOMPARE(static_cast<int>(self.size()), 2 * (layers + 1) + 1);  // per hidden state x 2, all
    for (const auto& r : self) {
      QCOMPARE(r.probe, std::string("displacement"));
      QVERIFY2(std::abs(r.value - (r.metric.rfind("cka/", 0) == 0 ? 1.0 : 0.0)) < 1e-9,
               r.metric.c_str());
    }
    const auto byMetric = [&](Mllm& reference) {
      std::map<std::string, double> out;
      for (const auto& r :
           displacementRows(trained, reference, cfg.world, settings, resultKey("", 1, "sft")))
        out[r.metric] = r.value;
      return out;
    };
    // A copy nudged by 1% of each tensor's spread: weights change by about 1%, tokens stay alike.
    Mllm nudged(cfg.model);
    {
      torch::NoGradGuard noGrad;
      const auto source = trained->vision_tower->parameters();
      const auto target = nudged->vision_tower->parameters();
      for (size_t i = 0; i < source.size(); ++i)
        target[i].copy_(source[i] + 0.01 * source[i].std() * torch::randn_like(source[i]));
    }
    const auto near = byMetric(nudged), far = byMetric(fresh);
    QVERIFY(std::abs(near.at("weight_change/all") - 0.01) < 0.005);
    QVERIFY(far.at("weight_change/all") > 0.9);  // independent draws: about sqrt(2) of their size
    for (int k = 0; k <= layers; ++k) {
      const std::string cka = "cka/layer_" + std::to_string(k);
      QVERIFY2(near.at(cka) > 0.99, qPrintable(QString::number(near.at(cka))));
      // Two random towers of the same images still agree on the images' own dominant directions
      // (about 0.8 here), but far below an encoder with itself.
      QVERIFY2(far.at(cka) < 0.9, qPrintable(QString::number(far.at(cka))));
    }
  }

  // --sweep dose=preset,paper: "paper" sets stage 2's rates to the paper's ratios to stage 1b
  // (mini's stage 1b: LM 1e-3, encoder 5e-4) and its pool to a third of the samples it draws.
  void doseFollowsThePapersProportions() {
    ExperimentSpec spec;
    spec.preset = "mini";
    spec.arms = {"sft", "dpo", "grpo"};
    spec.workspace = m_dir.filePath("dose").toStdString();
    parseSweep(spec, "dose=preset,paper");
    spec = resolvedSpec(spec);
    const auto sft = stageTwoConfig(spec, "sft", "dose=paper", 1, 1);
    QCOMPARE(sft.lr, 0.5 * 1e-3);
    QCOMPARE(sft.vision_lr, 2.5 * 5e-4);
    QCOMPARE(sft.dataset_size, int64_t{300 * 32 / 3});  // 3 passes in 300 steps of 32
    const auto dpo = stageTwoConfig(spec, "dpo", "dose=paper", 1, 1);
    QCOMPARE(dpo.lr, 0.1 * 1e-3);
    QCOMPARE(dpo.vision_lr, 0.5 * 5e-4);
    QCOMPARE(sft.lr / dpo.lr, 5.0);  // the paper's SFT : DPO 5 : 1
    const auto grpo = stageTwoConfig(spec, "grpo", "dose=paper", 1, 1);
    // prompts, not completions: mini's GRPO samples 256 completions a step, 32 prompts x 8
    QCOMPARE(grpo.dataset_size, int64_t{300 * (256 / 8) / 3});
    const auto preset = stageTwoConfig(spec, "sft", "dose=preset", 1, 1);
    QCOMPARE(toJson(preset), toJson(stageTwoConfig(spec, "sft", "", 1, 1)));
    QVERIFY(doseDescription(spec).find("sft trains the LM at 0.0005 (0.5x)") != std::string::npos);

    ExperimentSpec bad = spec;
    parseSweep(bad, "dose=paper,double");
    try {
      resolvedSpec(bad);
      QFAIL("an unknown dose was accepted");
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find("--sweep dose=double: unknown dose 'double' (expected "
                                          "preset or paper)") != std::string::npos,
               e.what());
    }
  }

  // The task graph starts first the ready task that most tasks wait for: a chain (B -> C -> D)
  // before a lone task A, lowest index among equals; on two workers every task still runs once.
  void taskGraphStartsTheLongestChainFirst() {
    for (const int workers : {1, 2}) {
      std::mutex mutex;
      std::vector<std::string> order;
      const auto record = [&](const std::string& name) {
        return [&, name](int) {
          std::lock_guard<std::mutex> lock(mutex);
          order.push_back(name);
        };
      };
      const std::vector<Task> tasks = {
          {{}, record("A")}, {{}, record("B")}, {{1}, record("C")}, {{2}, record("D")}};
      TaskGraphOptions options;
      options.workers = workers;
      QVERIFY(runTaskGraph(tasks, options));
      if (workers == 1)
        QCOMPARE(order, (std::vector<std::string>{"B", "C", "A", "D"}));
      else
        QCOMPARE(std::set<std::string>(order.begin(), order.end()).size(), size_t(4));
      QCOMPARE(order.size(), size_t(4));
    }
  }

  // A lone critical chain (a base's stages 0 and 1) runs with every core and nothing beside it,
  // though other tasks are ready; what waits for it then runs side by side, a core each. Two
  // chains ready at once share the cores instead.
  void taskGraphGivesALoneChainEveryCore() {
    struct Ran {
      std::string name;
      int threads;
      int besideIt;  // tasks running when it started
    };
    std::mutex mutex;
    std::vector<Ran> ran;
    int running = 0;
    const auto record = [&](const std::string& name) {
      return [&, name](int threads) {
        {
          std::lock_guard<std::mutex> lock(mutex);
          ran.push_back({name, threads, running++});
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        std::lock_guard<std::mutex> lock(mutex);
        --running;
      };
    };
    TaskGraphOptions options;
    options.workers = 2;
    options.cores = 2;
    // A -> B critical; C ready from the start; D after B.
    std::vector<Task> tasks = {
        {{}, record("A"), true}, {{0}, record("B"), true}, {{}, record("C")}, {{1}, record("D")}};
    QVERIFY(runTaskGraph(tasks, options));
    QCOMPARE(ran.size(), size_t(4));
    QCOMPARE(ran[0].name, std::string("A"));
    QCOMPARE(ran[1].name, std::string("B"));
    for (int i : {0, 1}) {
      QCOMPARE(ran[static_cast<size_t>(i)].threads, 2);
      QCOMPARE(ran[static_cast<size_t>(i)].besideIt, 0);
    }
    for (int i : {2, 3}) QCOMPARE(ran[static_cast<size_t>(i)].threads, 1);
    QCOMPARE(ran[2].besideIt + ran[3].besideIt, 1);  // C and D side by side

    ran.clear();
    tasks = {{{}, record("X"), true}, {{}, record("Y"), true}};
    QVERIFY(runTaskGraph(tasks, options));
    QCOMPARE(ran.size(), size_t(2));
    QCOMPARE(ran[0].threads, 1);
    QCOMPARE(ran[1].threads, 1);
    QCOMPARE(ran[0].besideIt + ran[1].besideIt, 1);
  }

  void tinyExperimentEndToEndAndResume() {
    ExperimentSpec spec;
    spec.preset = "tiny";
    spec.seeds = 2;
    spec.segmentationSeeds = 2;
    spec.workspace = m_dir.filePath("ws").toStdString();

    spec.jobs = 1;  // one stage at a time: which stages a crash interrupts is then exact

    // An experiment that crashes inside its fifth stage (DPO, seed 1).
    Recorder crashing;
    crashing.failAtStage = 5;
    QVERIFY_THROWS_EXCEPTION(std::runtime_error, runExperiment(spec, crashing));
    QCOMPARE(crashing.trainedStages, 5);

    // Run again: the four finished stages are reused, the crashed one is resumed, the rest run.
    Recorder again;
    const auto outcome = runExperiment(spec, again);
    QCOMPARE(again.reusedStages, 4);
    QCOMPARE(outcome.stagesReused, 4);
    // stage 0/1a/1b; SFT, DPO, GRPO (the default arms) x 2 seeds; transplants of the original
    // encoder and the three arms' x 2 seeds, align + instruct each
    const int total = 3 + 3 * 2 + 4 * 2 * 2;
    QCOMPARE(again.trainedStages + again.reusedStages, total);

    RunStore store(storePath(spec.workspace));
    const auto experiments = store.experiments();
    QCOMPARE(experiments.size(), size_t(1));
    QCOMPARE(std::string(name(experiments[0].status)), std::string("finished"));
    QCOMPARE(fs::path(experiments[0].reportPath).lexically_normal(),
             fs::absolute(outcome.reportDir).lexically_normal());
    std::map<std::string, int> byStage;
    for (const auto& r : store.runs()) {
      QCOMPARE(std::string(name(r.status)), std::string("finished"));
      QVERIFY2(std::count(experiments[0].runIds.begin(), experiments[0].runIds.end(), r.id) == 1,
               r.name.c_str());
      ++byStage[r.stage];
    }
    QCOMPARE(experiments[0].runIds.size(), store.runs().size());
    QCOMPARE(byStage["pretrain"], 1);
    QCOMPARE(byStage["align"], 1 + 2 * 4);  // stage 1a + a transplant per seed and encoder
    QCOMPARE(byStage["instruct"], 1 + 2 * 4);
    QCOMPARE(byStage["sft"], 2);
    QCOMPARE(byStage["dpo"], 2);  // the crashed DPO run was resumed, not duplicated
    QCOMPARE(byStage["grpo"], 2);

    // The report folder.
    for (const char* f : {"results.csv", "report.md", "spec.json", "figures/probe_accuracy.png",
                          "figures/probe_accuracy.pdf", "figures/segmentation.png",
                          "figures/vqa_by_category.pdf", "figures/transplant_vqa.png",
                          "figures/gradmap_triptychs.png", "figures/stage2_curves.pdf"})
      QVERIFY2(fs::file_size(fs::path(outcome.reportDir) / f) > 200, f);
    const auto rows = readResultsCsv((fs::path(outcome.reportDir) / "results.csv").string());
    std::set<std::tuple<int, std::string, std::string>> cells;  // (seed, encoder, probe)
    for (const auto& r : rows) {
      QVERIFY2(std::isfinite(r.value), (r.encoder + " " + r.probe + " " + r.metric).c_str());
      cells.insert({r.seed, r.encoder, r.probe});
    }
    for (const char* probe :
         {"linear/shape", "linear/colour", "linear/conjunction", "linear/count", "segmentation"}) {
      QVERIFY(cells.count({0, "original", probe}));
      QVERIFY(cells.count({0, "stage1", probe}));
      for (int seed : {1, 2})
        for (const char* enc : {"sft", "dpo", "grpo"})
          QVERIFY2(cells.count({seed, enc, probe}), probe);
    }
    for (int seed : {1, 2}) {
      for (const char* enc : {"sft", "dpo", "grpo"})
        for (const char* probe : {"vqa", "swap_vqa", "localisation", "swap_localisation",
                                  "grounding", "swap_grounding", "transplant_vqa"})
          QVERIFY2(cells.count({seed, enc, probe}), probe);
      QVERIFY(cells.count({seed, "original", "transplant_vqa"}));
    }
    // The grounding score (issue 29): flip rates are shares, the score their difference.
    for (const auto& r : rows) {
      if (r.probe != "grounding") continue;
      if (r.metric == "flip_rate_target" || r.metric == "flip_rate_distractor")
        QVERIFY2(r.value >= 0 && r.value <= 1, r.metric.c_str());
      if (r.metric == "items") QVERIFY(r.value >= 1);
    }
    // `pivot localize` reproduces the report's localisation number for the same checkpoint and
    // samples (one sample rule, one implementation: study/localise.h).
    {
      int64_t sftSeed1 = 0;
      for (const auto& r : store.runs())
        if (r.stage == "sft" && nlohmann::json::parse(r.configJson).at("seed") == 1)
          sftSeed1 = r.id;
      QVERIFY(sftSeed1 > 0);
      double reported = -1, reportedPointing = -1;
      for (const auto& r : rows)
        if (r.seed == 1 && r.encoder == "sft" && r.probe == "localisation") {
          if (r.metric == "mass_inside") reported = r.value;
          if (r.metric == "pointing_game") reportedPointing = r.value;
        }
      QVERIFY(reported >= 0);
      QProcess cli;
      cli.start(PIVOT_BINARY_DIR "/app/pivot",
                {"--workspace", QString::fromStdString(spec.workspace), "localize", "--checkpoint",
                 QString::number(sftSeed1), "--samples",
                 QString::number(resolvedSpec(spec).localisationSamples)});
      QVERIFY(cli.waitForFinished(300000));
      const QString out = QString::fromUtf8(cli.readAllStandardOutput());
      QVERIFY2(cli.exitCode() == 0, qPrintable(out + cli.readAllStandardError()));
      // Compared as numbers at the printed precision: printf and QString round a tie such as
      // 36/64 = 0.5625 differently.
      const auto printed = [&](const QString& label) {
        const QRegularExpression re(QRegularExpression::escape(label) + " +(-?[0-9.]+)");
        const auto m = re.match(out);
        return m.hasMatch() ? m.captured(1).toDouble() : -1.0;
      };
      QVERIFY2(std::fabs(printed("mass inside target") - reported) <= 0.0005 + 1e-9,
               qPrintable(out + QString::number(reported)));
      QVERIFY2(std::fabs(printed("pointing game") - reportedPointing) <= 0.0005 + 1e-9,
               qPrintable(out + QString::number(reportedPointing)));
      QVERIFY2(out.contains(
                   QString("%1 samples with a target").arg(resolvedSpec(spec).localisationSamples)),
               qPrintable(out));
    }

    std::ifstream md(fs::path(outcome.reportDir) / "report.md");
    const std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
    QVERIFY(text.find("accuracy/shape") != std::string::npos);  // stage 1 per category
    QVERIFY(text.find("DPO − SFT") != std::string::npos);
    QVERIFY(text.find("GRPO − SFT") != std::string::npos);  // one difference column per arm

    // A third run trains nothing.
    Recorder third;
    runExperiment(spec, third);
    QCOMPARE(third.trainedStages, 0);
  }

  // Two stages at a time (study/task_graph.h) give the numbers of one at a time, threads fixed: the
  // runs seed their initial weights under one lock, measurements are joined in a fixed order. A
  // crash in one stage stops its sibling with a checkpoint; rerunning resumes both, duplicating
  // nothing.
  void sideBySideStagesGiveTheSameResults() {
    ExperimentSpec spec;
    spec.preset = "tiny";
    spec.seeds = 1;
    spec.arms = {"sft", "dpo"};
    spec.segmentationSeeds = 1;
    spec.sets = {"threads=1"};
    spec.jobs = 1;
    spec.workspace = m_dir.filePath("one-at-a-time").toStdString();
    Recorder serial;
    const auto one = runExperiment(spec, serial);

    spec.jobs = 2;
    spec.workspace = m_dir.filePath("side-by-side").toStdString();
    Recorder crashing;
    crashing.failAtStage = 5;  // DPO seed 1, trained beside SFT seed 1 (stage 4)
    QVERIFY_THROWS_EXCEPTION(std::runtime_error, runExperiment(spec, crashing));
    {
      RunStore store(storePath(spec.workspace));
      const auto sft = store.runs();
      bool siblingStopped = false;
      for (const auto& r : sft)
        if (r.stage == "sft")
          siblingStopped = r.status == RunStatus::Stopped || r.status == RunStatus::Finished;
      QVERIFY(siblingStopped);
    }
    Recorder again;
    const auto two = runExperiment(spec, again);
    // Stage 0, 1a, 1b and what else finished before the crash (the original encoder's transplant
    // can run beside stage 1) are reused, the two stage-2 runs resumed.
    QCOMPARE(again.reusedStages + again.trainedStages, 3 + 2 + 3 * 2);
    QVERIFY(again.reusedStages >= 3);
    RunStore store(storePath(spec.workspace));
    std::map<std::string, int> byStage;
    for (const auto& r : store.runs()) ++byStage[r.stage];
    QCOMPARE(byStage["sft"], 1);
    QCOMPARE(byStage["dpo"], 1);
    QCOMPARE(byStage["align"], 1 + 3);  // stage 1a and three transplants

    QCOMPARE(two.rows.size(), one.rows.size());
    for (size_t i = 0; i < one.rows.size(); ++i) {
      const auto& a = one.rows[i];
      const auto& b = two.rows[i];
      const std::string what = a.encoder + " " + a.probe + " " + a.metric;
      QVERIFY2(a.encoder == b.encoder && a.probe == b.probe && a.metric == b.metric, what.c_str());
      QVERIFY2(a.value == b.value,
               (what + ": " + std::to_string(a.value) + " vs " + std::to_string(b.value)).c_str());
    }
  }

  // --bases 2 on the same workspace: base 1 is the chain above, reused stage for stage; base 2 is
  // a second, independently seeded stage-0/1 chain with its own seeds, transplants and rows; the
  // report's intervals are over the bases, and say so.
  void secondBaseNestsItsOwnSeeds() {
    ExperimentSpec spec;
    spec.preset = "tiny";
    spec.bases = 2;
    spec.seeds = 2;
    spec.segmentationSeeds = 2;
    spec.workspace = m_dir.filePath("ws").toStdString();
    Recorder recorder;
    const auto outcome = runExperiment(spec, recorder);
    const int perBase = 3 + 3 * 2 + 4 * 2 * 2;
    QCOMPARE(recorder.reusedStages, perBase);  // base 1: every stage of the one-base experiment
    QCOMPARE(recorder.trainedStages, perBase);

    RunStore store(storePath(spec.workspace));
    std::set<uint64_t> pretrainSeeds;
    for (const auto& r : store.runs())
      if (r.stage == "pretrain")
        pretrainSeeds.insert(nlohmann::json::parse(r.configJson).at("seed").get<uint64_t>());
    QCOMPARE(pretrainSeeds.size(), size_t{2});  // the preset's seed and seed + 1000
    QVERIFY(pretrainSeeds.count(*pretrainSeeds.begin() + 1000));
    std::set<uint64_t> sftSeeds;  // stage-2 seeds nested in bases: 1, 2 and 1001, 1002
    for (const auto& r : store.runs())
      if (r.stage == "sft")
        sftSeeds.insert(nlohmann::json::parse(r.configJson).at("seed").get<uint64_t>());
    QCOMPARE(sftSeeds, (std::set<uint64_t>{1, 2, 1001, 1002}));

    const auto rows = readResultsCsv((fs::path(outcome.reportDir) / "results.csv").string());
    std::set<std::tuple<int, int, std::string, std::string>> cells;  // base, seed, encoder, probe
    for (const auto& r : rows) cells.insert({r.base, r.seed, r.encoder, r.probe});
    for (int base : {1, 2}) {
      QVERIFY(cells.count({base, 0, "original", "linear/shape"}));
      QVERIFY(cells.count({base, 0, "stage1", "vqa"}));
      for (int seed : {1, 2}) {
        for (const char* enc : {"sft", "dpo"})
          for (const char* probe : {"linear/conjunction", "segmentation", "vqa", "swap_vqa",
                                    "localisation", "swap_localisation", "transplant_vqa"})
            QVERIFY2(cells.count({base, seed, enc, probe}), probe);
        QVERIFY(cells.count({base, seed, "original", "transplant_vqa"}));
      }
    }
    std::ifstream md(fs::path(outcome.reportDir) / "report.md");
    const std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
    QVERIFY(text.find("Nested design: 2 bases") != std::string::npos);
    QVERIFY(text.find("bases)") != std::string::npos);  // "(DPO ahead in k/2 bases)"
    QVERIFY(text.find("### Base 2") != std::string::npos);
    // Where it ran: two reports can only be compared knowing the machine.
    QVERIFY(text.find("## Machine") != std::string::npos &&
            text.find("- CPU: ") != std::string::npos && text.find("BLAS: ") != std::string::npos);

    Recorder again;
    runExperiment(spec, again);
    QCOMPARE(again.trainedStages, 0);
  }

  // --tune-lr: each arm trains once per scale on base 1, seed 1, and the study trains the scale
  // with the lowest held-out objective, the arm's own loss on validation items that no measurement
  // reads. On the workspace above, the scale-1 candidates are the one-base study's seed-1 runs.
  void armsAreTunedOnTheirOwnObjective() {
    ExperimentSpec spec;
    spec.preset = "tiny";
    spec.seeds = 1;
    spec.segmentationSeeds = 2;
    spec.arms = {"sft", "dpo"};
    spec.transplants = false;
    spec.tuneLrScales = {0.1, 1};
    spec.workspace = m_dir.filePath("ws").toStdString();
    Recorder recorder;
    const auto outcome = runExperiment(spec, recorder);
    // stages 0, 1a, 1b; 2 arms x 2 candidates; 2 arms' chosen runs (the same runs as a candidate)
    QCOMPARE(recorder.trainedStages + recorder.reusedStages, 3 + 2 * 2 + 2);
    QCOMPARE(recorder.trainedStages, 2);  // the scale-0.1 candidates

    std::ifstream csv(fs::path(outcome.reportDir) / "tuning.csv");
    std::string line;
    std::getline(csv, line);
    QCOMPARE(line, std::string("sweep,arm,lr_scale,lr,vision_lr,objective,value,run,chosen"));
    std::map<std::string, std::vector<std::tuple<double, double, int64_t, bool>>> byArm;
    while (std::getline(csv, line)) {
      const auto quote = line.find('"'), close = line.find('"', quote + 1);
      std::stringstream head(line.substr(0, quote)), tail(line.substr(close + 2));
      std::string sweep, arm, scale, value, run, chosen;
      std::getline(head, sweep, ',');
      std::getline(head, arm, ',');
      std::getline(head, scale, ',');
      std::getline(tail, value, ',');
      std::getline(tail, run, ',');
      std::getline(tail, chosen, ',');
      byArm[arm].push_back({std::stod(scale), std::stod(value), std::stoll(run), chosen == "1"});
    }
    QCOMPARE(byArm.size(), size_t{2});
    RunStore store(storePath(spec.workspace));
    const ExperimentSpec resolved = resolvedSpec(spec);
    for (const auto& [arm, candidates] : byArm) {
      QCOMPARE(candidates.size(), size_t{2});
      const auto best = std::min_element(
          candidates.begin(), candidates.end(),
          [](const auto& a, const auto& b) { return std::get<1>(a) < std::get<1>(b); });
      QVERIFY2(std::get<3>(*best), arm.c_str());  // the lowest objective is the chosen one
      QCOMPARE(std::count_if(candidates.begin(), candidates.end(),
                             [](const auto& c) { return std::get<3>(c); }),
               1L);
      // The recorded objective, recomputed from the run's checkpoint.
      const auto& [scale, value, run, chosen] = candidates.front();
      const TrainConfig cfg = stageTwoConfig(resolved, arm, "", 1, 1, scale);
      QCOMPARE(nlohmann::json::parse(store.run(run)->configJson).at("lr").get<double>(), cfg.lr);
      auto policy = loadRunCheckpoint(spec.workspace, std::to_string(run), "cpu");
      auto reference =
          loadRunCheckpoint(spec.workspace, std::to_string(*store.run(run)->parentId), "cpu");
      const ShapesWorld world(reference.config.world);
      std::vector<Sample> samples;
      for (int i = 0; i < resolved.vqaSamples; ++i)
        samples.push_back(world.sample(Split::Val, kTuningFirstItem + i));
      const double again = heldOutObjective(cfg, policy.model, reference.model, samples,
                                            WordTokenizer::shapesWorld(), torch::kCPU);
      QVERIFY2(std::abs(again - value) < 1e-6,
               qPrintable(QString("%1 vs %2").arg(again).arg(value)));
    }
    std::ifstream md(fs::path(outcome.reportDir) / "report.md");
    const std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
    QVERIFY(text.find("## Tuning") != std::string::npos);
    // No transplants, no transplant figure (an empty chart said nothing); the others are drawn.
    QVERIFY(!fs::exists(fs::path(outcome.reportDir) / "figures" / "transplant_vqa.png"));
    QVERIFY(fs::exists(fs::path(outcome.reportDir) / "figures" / "swap_vqa.png"));
    // stages 0, 1a, 1b and the four candidates (the two chosen runs are two of them)
    const auto time = text.find("- training time: ");
    QVERIFY(time != std::string::npos);
    QVERIFY2(text.find(" h summed over the study's 7 runs", time) != std::string::npos,
             text.substr(time, 200).c_str());
    for (const auto& [arm, candidates] : byArm)
      for (const auto& [scale, value, run, chosen] : candidates)
        if (chosen)
          QVERIFY2(text.find("- stage 2 " + arm + " seed 1: run " + std::to_string(run)) !=
                       std::string::npos,
                   arm.c_str());
  }
};

QTEST_MAIN(TestExperiment)
#include "test_experiment.moc"
