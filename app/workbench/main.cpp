// pivot-workbench: the PIVOT Workbench window.
//   pivot-workbench [--workspace DIR] [--start PRESET[:STAGE]] [--screenshot FILE]
//   [--quit-when-done]
#include <malloc.h>

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QScreen>
#include <QStandardPaths>
#include <QTimer>
#include <cstdio>

#include "main_window.h"

int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, 64 << 20);  // see app/cli/main.cpp
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  QApplication app(argc, argv);
  QApplication::setOrganizationName("PIVOT");
  QApplication::setApplicationName("Workbench");
  QCommandLineParser parser;
  parser.setApplicationDescription("PIVOT Workbench: SFT vs DPO and the vision encoder, live.");
  parser.addHelpOption();
  const QString defaultWorkspace =
      QStandardPaths::writableLocation(QStandardPaths::GenericDataLocation) + "/pivot-workbench";
  QCommandLineOption workspace("workspace", "Folder holding runs.sqlite and checkpoints/.", "DIR",
                               defaultWorkspace);
  QCommandLineOption start("start",
                           "Start a run at once: PRESET[:STAGE] (e.g. tiny:dpo); earlier stages "
                           "run first (an identical finished one is reused).",
                           "PRESET[:STAGE]");
  QCommandLineOption screenshot(
      "screenshot", "Save a screenshot of the window when the started job ends.", "FILE");
  QCommandLineOption quitWhenDone("quit-when-done", "Quit when the started job ends.");
  QCommandLineOption screenshotDuring("screenshot-during",
                                      "Save a screenshot SECONDS after the start.", "FILE:SECONDS");
  QCommandLineOption size("size", "The window's size, e.g. 1280x720 (a laptop screen).", "WxH",
                          "1500x950");
  QCommandLineOption tab("tab", "The tab shown first: curves, inspect, encoders or completions.",
                         "NAME", "curves");
  parser.addOptions({workspace, start, screenshot, quitWhenDone, screenshotDuring, size, tab});
  parser.process(app);
  const QStringList wh = parser.value(size).split('x');
  const int width = wh.value(0).toInt(), height = wh.value(1).toInt();
  if (wh.size() != 2 || width < 320 || height < 240) {
    std::fprintf(stderr, "pivot-workbench: --size: '%s' is not WIDTHxHEIGHT (at least 320x240)\n",
                 qPrintable(parser.value(size)));
    return 2;
  }
  const QStringList tabs = {"curves", "inspect", "encoders", "completions"};
  if (!tabs.contains(parser.value(tab))) {
    std::fprintf(stderr, "pivot-workbench: --tab: '%s' is not one of %s\n",
                 qPrintable(parser.value(tab)), qPrintable(tabs.join(", ")));
    return 2;
  }

  pivot::MainWindow window(QDir(parser.value(workspace)).absolutePath());
  window.resize(width, height);
  window.show();
  if (parser.value(tab) == "inspect") window.showInspect();
  if (parser.value(tab) == "encoders") window.showEncoders();
  if (parser.value(tab) == "completions") window.showCompletions();
  if (parser.isSet(start)) {
    const auto parts = parser.value(start).split(':');
    pivot::LaunchRequest request;
    request.preset = parts.value(0, "tiny");
    request.stage = parts.value(1, "dpo");
    window.launchPanel()->selectPreset(request.preset, request.stage);
    if (auto form = window.launchPanel()->request()) {
      request.overrides = form->overrides;
    } else {
      std::fprintf(stderr, "pivot-workbench: %s\n",
                   qPrintable(window.launchPanel()->validationMessage()));
      return 2;
    }
    QTimer::singleShot(0, &window, [&window, request] { window.startRun(request); });
    if (parser.isSet(screenshotDuring)) {
      const auto spec = parser.value(screenshotDuring).split(':');
      QTimer::singleShot(static_cast<int>(spec.value(1, "10").toDouble() * 1000), &window,
                         [&window, file = spec.value(0)] { window.grab().save(file); });
    }
    QObject::connect(
        &window, &pivot::MainWindow::jobEnded, &window, [&](bool ok, const QString& message) {
          std::printf("pivot-workbench: job %s (%s); runs in %s\n", ok ? "finished" : "ended",
                      qPrintable(message), qPrintable(window.workspace() + "/runs.sqlite"));
          std::fflush(stdout);
          QTimer::singleShot(1600, &window, [&] {  // let the last poll and replot land
            if (parser.isSet(screenshot)) window.grab().save(parser.value(screenshot));
            if (parser.isSet(quitWhenDone)) QApplication::quit();
          });
        });
  } else if (parser.isSet(screenshot)) {  // the window as it opens, e.g. over an existing workspace
    QTimer::singleShot(2500, &window, [&] {
      window.grab().save(parser.value(screenshot));
      if (parser.isSet(quitWhenDone)) QApplication::quit();
    });
  }
  return QApplication::exec();
}
