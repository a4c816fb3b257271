// pivot-gui-bench: replot time of one curve panel holding 8 runs x 1,000,000 points (target under
// 33 ms, one frame at 30 Hz), and the window's event-loop latency while a tiny run trains (target
// p99 under 50 ms). A benchmark, not a test: it prints measurements, it does not pass or fail.
#include <QApplication>
#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QTimer>
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "curve_grid.h"
#include "curve_panel.h"
#include "main_window.h"

using namespace pivot;

namespace {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(std::min<double>(v.size() - 1, p * v.size()))];
}

void replotBenchmark() {
  CurveGrid grid;
  grid.resize(1400, 900);
  grid.show();
  const int runs = 8, points = 1000000;
  for (int r = 1; r <= runs; ++r) {
    std::vector<MetricPoint> pts;
    pts.reserve(points);
    for (int i = 1; i <= points; ++i)
      pts.push_back(
          {i, "loss", std::exp(-i * 3e-6) + 0.05 * std::sin(i * 0.37 * r), 1.7e9 + i * 0.1});
    grid.appendMetrics(r, QString("run-%1").arg(r), 32, pts);
  }
  QElapsedTimer clock;
  clock.start();
  grid.replotNow();  // first layout, smoothing of 8M points, downsampling
  std::printf("first draw (layout + EMA of 8M points + downsampling): %.1f ms\n",
              clock.nsecsElapsed() / 1e6);
  CurvePanel* panel = grid.panels().front();
  std::vector<double> full, zoom;
  for (int i = 0; i < 10; ++i) {  // new data arrived: rebuild the panel's graphs, replot
    grid.appendMetrics(1 + i % runs, QString("run-%1").arg(1 + i % runs), 32,
                       {{points + 1 + i, "loss", 0.5, 1.8e9}});
    clock.restart();
    grid.replotNow();
    panel->replotImmediately();
    full.push_back(clock.nsecsElapsed() / 1e6);
  }
  for (int i = 0; i < 10; ++i) {  // zoom: re-downsample the visible range
    clock.restart();
    panel->setXRange(1000.0 * i, 1000.0 * i + 400000.0);
    panel->replotImmediately();
    zoom.push_back(clock.nsecsElapsed() / 1e6);
  }
  std::printf(
      "replot of one panel, %d runs x %d points, after new data: median %.1f ms, max %.1f ms "
      "(target < 33 ms)\n",
      runs, points, percentile(full, 0.5), percentile(full, 1.0));
  std::printf(
      "replot of one panel on zoom: median %.1f ms, max %.1f ms; %d points drawn after "
      "downsampling\n",
      percentile(zoom, 0.5), percentile(zoom, 1.0), panel->drawnPointCount());
}

void latencyBenchmark() {
  QTemporaryDir dir;
  MainWindow window(dir.path());
  window.resize(1500, 950);
  window.show();
  LaunchRequest request;
  request.preset = "tiny";
  request.stage = "instruct";
  request.overrides = {"steps=300"};
  window.startRun(request);
  std::vector<double> late;
  QElapsedTimer clock;
  clock.start();
  QTimer probe;
  probe.setTimerType(Qt::PreciseTimer);
  qint64 last = clock.nsecsElapsed();
  QObject::connect(&probe, &QTimer::timeout, [&] {
    const qint64 now = clock.nsecsElapsed();
    if (window.isTraining()) late.push_back(std::max(0.0, (now - last) / 1e6 - 10.0));
    last = now;
  });
  probe.start(10);
  QEventLoop loop;
  QObject::connect(&window, &MainWindow::jobEnded, &loop, &QEventLoop::quit);
  loop.exec();
  std::printf(
      "event-loop latency while training (%zu probes every 10 ms): p50 %.1f ms, p99 %.1f ms, max "
      "%.1f ms (target p99 < 50 ms)\n",
      late.size(), percentile(late, 0.5), percentile(late, 0.99), percentile(late, 1.0));
}

}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setOrganizationName("PIVOT-bench");
  replotBenchmark();
  latencyBenchmark();
  return 0;
}
