// pivot-gui-bench: replot time of one curve panel holding 8 runs x 1,000,000 points (goal: 16 ms
// after new data), and the window's event-loop latency (goal: p99 16 ms, max 50 ms) while a tiny
// run trains in the window, while the Inspect tab computes maps, and while `pivot experiment` runs
// as a child process. A benchmark, not a test: it prints measurements, it does not pass or fail.
#include <malloc.h>

#include <QApplication>
#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QThread>
#include <QTimer>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>

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
    grid.setRunStage(r, "sft");  // one loss panel draws them, as in the window
  }
  QElapsedTimer clock;
  clock.start();
  grid.replotNow();  // first layout, smoothing of 8M points, downsampling
  std::printf("first draw (layout + EMA of 8M points + downsampling): %.1f ms\n",
              clock.nsecsElapsed() / 1e6);
  // The panel gets its on-screen size only once the layout requests are processed: before 10fc8c6
  // this benchmark timed a panel still at Qt's default 100 x 30 px (10,000 points drawn instead of
  // 63,000), which is why its earlier figures were 5 times lower than a real panel's.
  QApplication::processEvents();
  CurvePanel* panel = nullptr;  // the panel drawing the runs' loss
  for (auto* p : grid.panels())
    if (!panel && p->keys().front() == "loss" && !p->isHidden()) panel = p;
  grid.replotNow();  // downsampled for the laid-out width
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
      "(goal <= 16 ms)\n",
      runs, points, percentile(full, 0.5), percentile(full, 1.0));
  std::printf(
      "replot of one panel on zoom: median %.1f ms, max %.1f ms; %d points drawn after "
      "downsampling, panel %d x %d px\n",
      percentile(zoom, 0.5), percentile(zoom, 1.0), panel->drawnPointCount(), panel->width(),
      panel->height());
}

// The application, timing every event it dispatches: the long ones (over 8 ms) are what makes the
// event loop late, and their receivers say which part of the window they belong to.
class TimingApplication : public QApplication {
 public:
  using QApplication::QApplication;
  bool notify(QObject* receiver, QEvent* event) override {
    if (QThread::currentThread() != thread()) return QApplication::notify(receiver, event);
    QElapsedTimer clock;
    clock.start();
    ++m_depth;
    const bool handled = QApplication::notify(receiver, event);
    --m_depth;
    const double ms = clock.nsecsElapsed() / 1e6;
    if (ms > 8 && m_depth == 0) {  // only the outermost event: nested ones are inside its time
      auto& slot = m_long[QString("%1 (event %2)")
                              .arg(receiver->metaObject()->className())
                              .arg(static_cast<int>(event->type()))];
      slot.first += 1;
      slot.second = std::max(slot.second, ms);
    }
    return handled;
  }
  // Prints and forgets the long events seen since the last call.
  void printLongEvents() {
    for (const auto& [what, stats] : m_long)
      std::printf("  GUI-thread events over 8 ms: %d x %s, longest %.1f ms\n", stats.first,
                  qPrintable(what), stats.second);
    m_long.clear();
  }

 private:
  int m_depth = 0;
  std::map<QString, std::pair<int, double>> m_long;
};

TimingApplication* timingApp() { return static_cast<TimingApplication*>(qApp); }

// Lateness of a 10 ms precise timer on the GUI thread, counted while `active` holds: what a person
// dragging or zooming a plot would feel as a stall.
class LatencyProbe {
 public:
  explicit LatencyProbe(std::function<bool()> active) : m_active(std::move(active)) {
    m_clock.start();
    m_last = m_clock.nsecsElapsed();
    m_timer.setTimerType(Qt::PreciseTimer);
    QObject::connect(&m_timer, &QTimer::timeout, [this] {
      const qint64 now = m_clock.nsecsElapsed();
      if (m_active()) m_late.push_back(std::max(0.0, (now - m_last) / 1e6 - 10.0));
      m_last = now;
    });
    m_timer.start(10);
  }
  void print(const char* what) const {
    std::printf(
        "event-loop latency %s (%zu probes every 10 ms): p50 %.1f ms, p99 %.1f ms, max %.1f ms "
        "(goal p99 <= 16 ms, max <= 50 ms)\n",
        what, m_late.size(), percentile(m_late, 0.5), percentile(m_late, 0.99),
        percentile(m_late, 1.0));
  }

 private:
  std::function<bool()> m_active;
  QElapsedTimer m_clock;
  qint64 m_last = 0;
  QTimer m_timer;
  std::vector<double> m_late;
};

// Runs the event loop until `done` holds (checked every 20 ms) or `seconds` pass. The loop sleeps
// between events as the window's own does (a processEvents() spin would keep a core busy at the
// window's priority and starve the work it measures).
void waitFor(const std::function<bool()>& done, double seconds) {
  if (done()) return;
  QEventLoop loop;
  QTimer check;
  QElapsedTimer clock;
  clock.start();
  QObject::connect(&check, &QTimer::timeout, [&] {
    if (done() || clock.elapsed() > seconds * 1000) loop.quit();
  });
  check.start(20);
  loop.exec();
}

// A tiny chain trained in the window's own training thread, the store poller running beside it;
// the replots it causes are timed too (they run on the GUI thread).
void trainingLatency(MainWindow& window) {
  std::vector<double> replots;
  const auto connection = QObject::connect(window.curves(), &CurveGrid::replotted,
                                           [&](double ms) { replots.push_back(ms); });
  LaunchRequest request;
  request.preset = "tiny";
  request.stage = "instruct";
  request.overrides = {"steps=300"};
  LatencyProbe probe([&] { return window.isTraining(); });
  window.startRun(request);
  QEventLoop loop;
  QObject::connect(&window, &MainWindow::jobEnded, &loop, &QEventLoop::quit);
  loop.exec();
  QObject::disconnect(connection);
  probe.print("while a run trains");
  timingApp()->printLongEvents();
  std::printf("  curve replots meanwhile: %zu, median %.1f ms, max %.1f ms\n", replots.size(),
              percentile(replots, 0.5), percentile(replots, 1.0));
}

// Inspect computing gradient maps of the trained runs' checkpoints for one sample after another.
void inspectLatency(MainWindow& window) {
  window.pollNow();
  waitFor([&] { return window.runsBrowser()->runs().size() >= 3; }, 10);
  QList<int64_t> ids;
  for (const auto& r : window.runsBrowser()->runs()) ids.push_back(r.info.id);
  window.showInspect();
  InspectView* inspect = window.inspectView();
  inspect->setMethod("gradmap");
  inspect->setCheckedRuns(ids);
  int requested = 0;
  LatencyProbe probe([&] { return inspect->pendingCount() > 0; });
  for (int sample = 0; sample < 40; ++sample) {
    inspect->setSample(1, sample);
    requested += inspect->pendingCount();
    waitFor([&] { return inspect->pendingCount() == 0; }, 30);
  }
  char what[96];
  std::snprintf(what, sizeof what, "while Inspect computes maps (%d maps)", requested);
  probe.print(what);
  timingApp()->printLongEvents();
}

// `pivot experiment` as the window's child process (its own cores' worth of threads), with the
// poller reading the store it writes; measured over its first `seconds`, then stopped.
void experimentLatency(MainWindow& window, double seconds) {
  ExperimentRequest request;
  request.seeds = 1;
  request.arms = {"sft", "dpo"};
  LatencyProbe probe([&] { return window.isExperimentRunning(); });
  QObject::connect(&window, &MainWindow::experimentEnded, [](bool ok, const QString& message) {
    if (!ok) std::printf("  the experiment ended: %s\n", qPrintable(message));
  });
  window.startExperiment(request);
  waitFor([&] { return !window.isExperimentRunning(); }, seconds);
  probe.print("while an experiment runs as a child process");
  timingApp()->printLongEvents();
  if (window.isExperimentRunning()) {
    Q_EMIT window.launchPanel()->stopExperimentRequested();
    waitFor([&] { return !window.isExperimentRunning(); }, 30);
  }
}

void latencyBenchmarks() {
  QTemporaryDir dir;
  MainWindow window(dir.path());
  window.resize(1500, 950);
  window.show();
  waitFor([] { return false; }, 1.0);  // the first paint of the window is not a run's doing
  trainingLatency(window);
  inspectLatency(window);
  experimentLatency(window, 60);
}

}  // namespace

int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, 64 << 20);  // as the window's main() does (app/cli/main.cpp says why)
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  TimingApplication app(argc, argv);
  QApplication::setOrganizationName("PIVOT-bench");
  replotBenchmark();
  if (std::getenv("PIVOT_REPLOT_ONLY")) return 0;  // the replot figures alone
  timingApp()->printLongEvents();                  // forget the replot benchmark's
  latencyBenchmarks();
  return 0;
}
