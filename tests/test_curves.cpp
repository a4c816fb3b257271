// Curve maths and the curve grid: TensorBoard's EMA against hand-computed values, a downsampler
// that keeps every extreme, panels that hide without data, CSV export that round-trips.
#include <QtTest/QtTest>

#include <QFile>
#include <QImageReader>
#include <QTemporaryDir>
#include <array>
#include <cmath>
#include <random>

#include "curve_grid.h"
#include "metrics/curve_math.h"
#include "curve_panel.h"
#include <qcustomplot.h>

using namespace pivot;

namespace {

const QString kCrossEntropyPanel = "loss: next-token cross-entropy (align, instruct, SFT)";

CurvePanel* panelTitled(const CurveGrid& grid, const QString& title) {
  for (auto* p : grid.panels())
    if (p->title() == title) return p;
  return nullptr;
}

}  // namespace

class TestCurves : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void emaMatchesHandComputedValues() {
    // w = 0.5: last = 0.5, 1.25, 2.125; debias by 1 - 0.5^n = 0.5, 0.75, 0.875.
    const auto s = debiasedEma({1, 2, 3}, 0.5);
    QCOMPARE(s.size(), size_t(3));
    QVERIFY(std::abs(s[0] - 1.0) < 1e-12);
    QVERIFY(std::abs(s[1] - 1.25 / 0.75) < 1e-12);
    QVERIFY(std::abs(s[2] - 2.125 / 0.875) < 1e-12);
    QCOMPARE(debiasedEma({4, 4, 4}, 0.9),
             (std::vector<double>{4, 4, 4}));  // constant stays constant
    QCOMPARE(debiasedEma({1, 2, 3}, 0.0), (std::vector<double>{1, 2, 3}));  // no smoothing
    const auto withNan = debiasedEma({1, NAN, 3}, 0.5);
    QVERIFY(std::isnan(withNan[1]));                                   // passes through...
    QVERIFY(std::abs(withNan[2] - (0.5 * 0.5 + 1.5) / 0.75) < 1e-12);  // ...and is skipped
  }

  void incrementalSmoothingEqualsFullRecompute() {
    MetricSeries s;
    std::vector<double> all;
    for (int chunk = 0; chunk < 5; ++chunk) {
      for (int i = 0; i < 7; ++i) {
        const double v = chunk == 0 ? 2.0 : std::sin(chunk * 7 + i);  // constant at first, then not
        s.steps.push_back(static_cast<double>(all.size()));
        s.values.push_back(v);
        s.walls.push_back(0);
        all.push_back(v);
      }
      const auto& inc = s.smoothed(0.8);
      const auto full = debiasedEma(all, 0.8);
      QCOMPARE(inc.size(), full.size());
      for (size_t i = 0; i < full.size(); ++i) QVERIFY(std::abs(inc[i] - full[i]) < 1e-12);
    }
    const auto& other = s.smoothed(0.3);  // a new weight recomputes
    QVERIFY(std::abs(other.back() - debiasedEma(all, 0.3).back()) < 1e-12);
  }

  void downsamplerKeepsEveryExtreme() {
    std::mt19937 rng(3);
    std::normal_distribution<double> noise;
    const size_t n = 1000000;
    std::vector<double> xs(n), ys(n);
    for (size_t i = 0; i < n; ++i) {
      xs[i] = static_cast<double>(i);
      ys[i] = std::sin(i * 1e-4) + 0.1 * noise(rng);
    }
    ys[123457] = 50;  // isolated spikes must survive
    ys[777777] = -50;
    const int columns = 400;
    const auto d = downsampleMinMaxLast(xs, ys, 0, static_cast<double>(n - 1), columns);
    QVERIFY(d.x.size() <= size_t(4 * columns + 2));
    QVERIFY(std::is_sorted(d.x.begin(), d.x.end()));
    auto has = [&](double x) { return std::binary_search(d.x.begin(), d.x.end(), x); };
    QVERIFY(has(123457));
    QVERIFY(has(777777));
    QVERIFY(has(static_cast<double>(n - 1)));  // the last point
    // In every pixel column, the column's min and max are kept.
    const double width = (n - 1.0) / columns;
    for (int c = 0; c < columns; c += 37) {
      const size_t a = static_cast<size_t>(std::ceil(c * width)),
                   b = static_cast<size_t>(std::ceil((c + 1) * width));
      const auto [mn, mx] = std::minmax_element(ys.begin() + static_cast<long>(a),
                                                ys.begin() + static_cast<long>(std::min(b, n)));
      QVERIFY2(has(static_cast<double>(mn - ys.begin())),
               qPrintable(QString("column %1 min").arg(c)));
      QVERIFY2(has(static_cast<double>(mx - ys.begin())),
               qPrintable(QString("column %1 max").arg(c)));
    }
    // Block extremes give the same result, reading far fewer points.
    BlockExtremes blocks;
    blocks.update(ys);
    const auto fast = downsampleMinMaxLast(xs, ys, 0, static_cast<double>(n - 1), columns, &blocks);
    QCOMPARE(fast.x, d.x);
    QCOMPARE(fast.y, d.y);
    const auto fastZoom = downsampleMinMaxLast(xs, ys, 5000.5, 600000.25, columns, &blocks);
    const auto slowZoom = downsampleMinMaxLast(xs, ys, 5000.5, 600000.25, columns);
    QCOMPARE(fastZoom.x, slowZoom.x);
    // With NaNs (a diverged step, whole blocks of them) the blocks pick the very same points.
    std::vector<double> gappy = ys;
    for (size_t i = 0; i < n; i += 997) gappy[i] = NAN;
    for (size_t i = 64000; i < 64200; ++i) gappy[i] = NAN;
    BlockExtremes gappyBlocks;
    gappyBlocks.update(gappy);
    for (const int cols : {columns, 37, 3000})
      QCOMPARE(downsampleMinMaxLast(xs, gappy, 0, static_cast<double>(n - 1), cols, &gappyBlocks).x,
               downsampleMinMaxLast(xs, gappy, 0, static_cast<double>(n - 1), cols).x);
    ys.push_back(-99);  // appended data: update() extends the summary
    xs.push_back(static_cast<double>(n));
    blocks.update(ys);
    QCOMPARE(downsampleMinMaxLast(xs, ys, 0, static_cast<double>(n), columns, &blocks).y,
             downsampleMinMaxLast(xs, ys, 0, static_cast<double>(n), columns).y);
    // Zoomed in: the visible slice plus one neighbour on each side, nothing else.
    const auto zoom = downsampleMinMaxLast(xs, ys, 1000, 1100, columns);
    QCOMPARE(zoom.x.front(), 999.0);
    QCOMPARE(zoom.x.back(), 1101.0);
    QCOMPARE(zoom.x.size(), size_t(103));
  }

  void panelsWithoutDataStayHidden() {
    CurveGrid grid;
    grid.resize(1000, 800);
    grid.show();
    grid.appendMetrics(1, "sft-1", 32,
                       {{1, "loss", 2.0, 100}, {2, "loss", 1.5, 101}, {1, "grad_norm", 0.4, 100}});
    grid.setRunStage(1, "sft");  // its loss in the cross-entropy panel only
    grid.replotNow();
    QCOMPARE(grid.visiblePanelCount(), 2);
    grid.appendMetrics(2, "dpo-2", 32,
                       {{1, "rewards/margins", 0.1, 100}, {1, "rewards/chosen", -0.1, 100}});
    grid.replotNow();
    QCOMPARE(grid.visiblePanelCount(), 4);
    QVERIFY(panelTitled(grid, kCrossEntropyPanel)->drawnPointCount() > 0);
    grid.removeRun(2);
    grid.replotNow();
    QCOMPARE(grid.visiblePanelCount(), 2);
  }

  // GRPO logs accuracy per question category; the panel draws each one some run logs (the six of
  // ShapesWorld, and any other category a dataset names), each in its own pen, named in the title.
  void everyLoggedCategoryIsDrawn() {
    CurveGrid grid;
    grid.resize(1000, 800);
    grid.show();
    std::vector<MetricPoint> points;
    const QStringList categories = {"colour",    "shape",    "count", "position",
                                    "existence", "relation", "charts"};
    for (int step = 1; step <= 3; ++step)
      for (const auto& c : categories)
        points.push_back({step, ("accuracy/" + c).toStdString(), 0.1 * step, 100.0 + step});
    grid.appendMetrics(1, "grpo-1", 32, points);
    grid.replotNow();
    CurvePanel* panel = nullptr;
    for (auto* p : grid.panels())
      if (p->title() == "accuracy by category") panel = p;
    QVERIFY(panel && !panel->isHidden());
    QCOMPARE(panel->plot()->graphCount(), 2 * categories.size());  // raw and smoothed each
    QSet<QString> pens;
    for (int i = 0; i < panel->plot()->graphCount(); ++i) {
      const QPen pen = panel->plot()->graph(i)->pen();
      pens.insert(QString("%1/%2").arg(int(pen.style())).arg(pen.dashPattern().size()));
    }
    QCOMPARE(pens.size(), 6);  // six pens, then the seventh category repeats the first
    for (const auto& c : categories)
      QVERIFY2(panel->shownTitle().contains(c + " "), qPrintable(panel->shownTitle()));
    // A later point of a category only this panel draws replots it.
    QVERIFY(panel->drawsKey("accuracy/charts") && !panel->drawsKey("rewards/accuracies"));
  }

  // A constant series gets an axis around its value: all zero reads -1..1, not ±1e-9.
  void constantSeriesGetASaneAxis() {
    CurveGrid grid;
    grid.resize(1000, 800);
    grid.show();
    grid.appendMetrics(1, "r", 8, {{1, "grad_norm", 0, 0}, {2, "grad_norm", 0, 0}});
    grid.appendMetrics(1, "r", 8, {{1, "loss", 2.5, 0}, {2, "loss", 2.5, 0}});
    grid.replotNow();
    int checked = 0;
    for (auto* p : grid.panels()) {
      const auto range = p->plot()->yAxis->range();
      if (p->title() == "grad_norm") {
        QCOMPARE(range.lower, -1.0);
        QCOMPARE(range.upper, 1.0);
        ++checked;
      }
      if (p->title() == kCrossEntropyPanel) {
        QCOMPARE(range.lower, 2.25);
        QCOMPARE(range.upper, 2.75);
        ++checked;
      }
    }
    QCOMPARE(checked, 2);
  }

  // Issue 30: "loss" is SigLIP's in pretrain, cross-entropy in align/instruct/SFT, DPO's in DPO;
  // each objective gets its own panel (and axis), and a run is drawn only in its stage's.
  void eachLossObjectiveHasItsOwnAxis() {
    CurveGrid grid;
    grid.resize(1000, 800);
    grid.show();
    grid.appendMetrics(1, "pretrain-1", 8, {{1, "loss", 7.0, 0}, {2, "loss", 6.0, 0}});
    grid.appendMetrics(2, "instruct-2", 8, {{1, "loss", 2.0, 0}, {2, "loss", 1.0, 0}});
    grid.appendMetrics(3, "dpo-3", 8, {{1, "loss", 0.69, 0}, {2, "loss", 0.6, 0}});
    grid.setRunStage(1, "pretrain");
    grid.setRunStage(2, "instruct");
    grid.setRunStage(3, "dpo");
    grid.replotNow();
    const auto legend = [&](const QString& title) {
      CurvePanel* p = panelTitled(grid, title);
      QStringList names;
      if (!p || p->isHidden()) return names;
      for (int i = 0; i < p->plot()->legend->itemCount(); ++i)
        names << static_cast<QCPPlottableLegendItem*>(p->plot()->legend->item(i))
                     ->plottable()
                     ->name();
      return names;
    };
    QCOMPARE(legend("loss: SigLIP (pretrain)"), QStringList{"pretrain-1"});
    QCOMPARE(legend(kCrossEntropyPanel), QStringList{"instruct-2"});
    QCOMPARE(legend("loss: DPO"), QStringList{"dpo-3"});
    QVERIFY(panelTitled(grid, "loss: GRPO")->isHidden());  // no GRPO run: no empty panel
    // The DPO axis spans DPO's values only, not SigLIP's 7.
    QVERIFY(panelTitled(grid, "loss: DPO")->plot()->yAxis->range().upper < 1.0);
  }

  // The hover value snaps to the nearest logged point: "step 2", never "step 1.73".
  void hoverSnapsToTheNearestPoint() {
    CurveGrid grid;
    grid.resize(1000, 800);
    grid.show();
    grid.appendMetrics(1, "sft-1", 8, {{1, "loss", 3, 0}, {2, "loss", 2, 0}, {5, "loss", 1, 0}});
    grid.setSmoothing(0);
    grid.replotNow();
    CurvePanel* loss = panelTitled(grid, kCrossEntropyPanel);
    QVERIFY(loss);
    QVERIFY2(loss->hoverText(1.73).startsWith("<b>" + kCrossEntropyPanel +
                                              "</b>, step 2<br>sft-1: 2 (raw 2)"),
             qPrintable(loss->hoverText(1.73)));
    QVERIFY2(loss->hoverText(4.2).contains("step 5<br>sft-1: 1 (raw 1)"),
             qPrintable(loss->hoverText(4.2)));
  }

  // Run colours stay legible on white (WCAG's 3:1 contrast for graphics) and apart from each
  // other for normal, deuteranope and protanope vision (Machado et al. 2009, severity 1; CIELAB
  // distance), and a run keeps its colour.
  void runColoursAreLegibleAndDistinguishable() {
    const auto linear = [](double c) {
      c /= 255;
      return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
    };
    using Vec = std::array<double, 3>;
    const auto rgbLinear = [&](const QColor& c) {
      return Vec{linear(c.red()), linear(c.green()), linear(c.blue())};
    };
    const auto luminance = [](const Vec& l) {
      return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2];
    };
    const auto lab = [](const Vec& l) {
      const double x = (0.4124 * l[0] + 0.3576 * l[1] + 0.1805 * l[2]) / 0.95047;
      const double y = 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2];
      const double z = (0.0193 * l[0] + 0.1192 * l[1] + 0.9505 * l[2]) / 1.08883;
      const auto f = [](double t) { return t > 0.008856 ? std::cbrt(t) : 7.787 * t + 16.0 / 116; };
      return Vec{116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))};
    };
    const double deutan[3][3] = {{0.367322, 0.860646, -0.227968},
                                 {0.280085, 0.672501, 0.047413},
                                 {-0.011820, 0.042940, 0.968881}};
    const double protan[3][3] = {{0.152286, 1.052583, -0.204868},
                                 {0.114503, 0.786281, 0.099216},
                                 {-0.003882, -0.048116, 1.051998}};
    const auto seen = [](const Vec& l, const double(*m)[3]) {
      if (!m) return l;
      Vec out{};
      for (int i = 0; i < 3; ++i)
        out[i] = std::clamp(m[i][0] * l[0] + m[i][1] * l[1] + m[i][2] * l[2], 0.0, 1.0);
      return out;
    };
    const auto& palette = runPalette();
    QCOMPARE(palette.size(), size_t(8));
    for (const auto& c : palette) {
      const double contrast = 1.05 / (luminance(rgbLinear(c)) + 0.05);
      QVERIFY2(contrast >= 3.0, qPrintable(c.name() + QString(" %1:1").arg(contrast)));
    }
    double closest = 1e9;
    for (const double(*vision)[3] : {static_cast<const double(*)[3]>(nullptr), deutan, protan})
      for (size_t a = 0; a < palette.size(); ++a)
        for (size_t b = a + 1; b < palette.size(); ++b) {
          const Vec la = lab(seen(rgbLinear(palette[a]), vision));
          const Vec lb = lab(seen(rgbLinear(palette[b]), vision));
          closest = std::min(closest, std::hypot(la[0] - lb[0], la[1] - lb[1], la[2] - lb[2]));
        }
    QVERIFY2(closest >= 15, qPrintable(QString("closest pair: %1").arg(closest)));
    QCOMPARE(runColour(3), palette[2]);
    QCOMPARE(runColour(11), palette[2].darker(140));  // the second round, darker
    QCOMPARE(runColour(19), palette[2]);
  }

  // A legend inside each panel names every line by run (and key where a panel has several), never
  // the faint raw copies or the bands; the legend box hides it in every panel.
  void legendsNameTheRunsInsideThePlots() {
    CurveGrid grid;
    grid.resize(1000, 800);
    grid.show();
    grid.appendMetrics(1, "sft-1", 8, {{1, "loss", 3, 0}, {2, "loss", 2, 0}});
    grid.appendMetrics(
        2, "dpo-2", 8,
        {{1, "loss", 2, 0}, {1, "rewards/chosen", 0.1, 0}, {1, "rewards/rejected", -0.1, 0}});
    grid.replotNow();
    CurvePanel *loss = nullptr, *rewards = nullptr;
    for (auto* p : grid.panels()) {
      if (p->title() == kCrossEntropyPanel) loss = p;
      if (p->title() == "rewards") rewards = p;
    }
    QVERIFY(loss && rewards);
    QVERIFY(loss->plot()->legend->visible());
    QCOMPARE(loss->plot()->legend->itemCount(), 2);
    QStringList names;
    for (int i = 0; i < rewards->plot()->legend->itemCount(); ++i)
      names << static_cast<QCPPlottableLegendItem*>(rewards->plot()->legend->item(i))
                   ->plottable()
                   ->name();
    QCOMPARE(names, (QStringList{"dpo-2 · chosen", "dpo-2 · rejected"}));
    grid.setLegendShown(false);
    QVERIFY(!loss->plot()->legend->visible() && !rewards->plot()->legend->visible());
    grid.replotNow();
    QVERIFY(!loss->plot()->legend->visible());
  }

  void repeatedStepsReplaceOldValues() {
    CurveGrid grid;
    grid.appendMetrics(1, "r", 8, {{1, "loss", 3, 0}, {2, "loss", 2, 0}, {3, "loss", 1, 0}});
    grid.appendMetrics(1, "r", 8, {{2, "loss", 5, 0}});  // a resumed run repeats step 2
    const auto& s = grid.runs().at(1).series.at("loss");
    QCOMPARE(s.steps, (std::vector<double>{1, 2}));
    QCOMPARE(s.values, (std::vector<double>{3, 5}));
    QCOMPARE(grid.lastStep(1), int64_t(2));
  }

  void csvExportRoundTrips() {
    QTemporaryDir dir;
    CurveGrid grid;
    std::vector<MetricPoint> points;
    for (int i = 1; i <= 50; ++i)
      points.push_back({i, "loss", 1.0 / (i + 0.123456789), 1700000000.0 + i * 0.25});
    grid.appendMetrics(4, "run, with \"quotes\"", 16, points);
    grid.appendMetrics(5, "other", 16, {{1, "rewards/margins", -0.5, 1700000001.5}});
    const QString file = dir.filePath("m.csv");
    QVERIFY(grid.exportCsv(file));
    QFile f(file);
    QVERIFY(f.open(QIODevice::ReadOnly | QIODevice::Text));
    const auto lines = QString::fromUtf8(f.readAll()).trimmed().split('\n');
    QCOMPARE(lines.front(), QString("run_id,run,key,step,wall_time,value"));
    QCOMPARE(lines.size(), 1 + 50 + 1);
    int lossRows = 0;
    for (const auto& line : lines.mid(1)) {
      // The quoted run name holds a comma: split the last four fields from the right.
      const auto fields = line.split(',');
      const int n = fields.size();
      const double value = fields[n - 1].toDouble(), wall = fields[n - 2].toDouble();
      const int step = fields[n - 3].toInt();
      const QString key = fields[n - 4];
      if (key == "loss") {
        QCOMPARE(fields[0].toInt(), 4);
        QVERIFY(line.contains("\"run, with \"\"quotes\"\"\""));
        QCOMPARE(value, 1.0 / (step + 0.123456789));  // exact: 17 significant digits
        QCOMPARE(wall, 1700000000.0 + step * 0.25);
        ++lossRows;
      } else {
        QCOMPARE(key, QString("rewards/margins"));
        QCOMPARE(value, -0.5);
      }
    }
    QCOMPARE(lossRows, 50);
  }

  void gridExportsPngPdfSvg() {
    QTemporaryDir dir;
    CurveGrid grid;
    grid.resize(1000, 700);
    grid.show();
    grid.appendMetrics(
        1, "a", 8,
        {{1, "loss", 2, 0}, {2, "loss", 1, 1}, {1, "grad_norm", 1, 0}, {2, "grad_norm", 2, 1}});
    grid.setRunStage(1, "instruct");
    QVERIFY(grid.exportGrid(dir.filePath("g.png"), 192));
    QVERIFY(grid.exportGrid(dir.filePath("g.pdf")));
    QVERIFY(grid.exportGrid(dir.filePath("g.svg")));
    QImageReader png(dir.filePath("g.png"));
    QCOMPARE(png.size(), QSize(2 * 520 * 2, 320 * 2));  // two panels side by side at 2x (192 dpi)
    QFile pdf(dir.filePath("g.pdf"));
    QVERIFY(pdf.open(QIODevice::ReadOnly) && pdf.read(5) == "%PDF-");
    QFile svg(dir.filePath("g.svg"));
    QVERIFY(svg.open(QIODevice::ReadOnly) && svg.readAll().contains("<svg"));
  }
};

QTEST_MAIN(TestCurves)
#include "test_curves.moc"
