// The window offscreen, driven like a user: start a tiny run from the launch panel, wait until the
// curves hold points, pause, resume, stop; validation as you type; the runs browser sees the run.
#include <QtTest/QtTest>

#include <QComboBox>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QMessageBox>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QMenuBar>
#include <QStackedWidget>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTreeView>
#include <QProcess>
#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "background_priority.h"
#include "child_exit.h"
#include "curve_panel.h"
#include "main_window.h"
#include "store/run_store.h"
#include "store/workspace.h"
#include "results/results_table.h"
#include "store/run_store.h"
#include "config/train_config.h"
#include "training/trainer.h"

using namespace pivot;

namespace {

QByteArray readAll(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

// A preset in the workspace's presets/ folder (found by the window); returns its absolute path.
QString writeWorkspacePreset(const QString& ws, const QString& name, const char* json) {
  QDir().mkpath(ws + "/presets");
  const QString path = QFileInfo(ws + "/presets/" + name + ".json").absoluteFilePath();
  QFile f(path);
  if (f.open(QIODevice::WriteOnly)) f.write(json);
  return path;
}

void writeAll(const QString& path, const QByteArray& bytes) {
  QFile f(path);
  QVERIFY(f.open(QIODevice::WriteOnly));
  f.write(bytes);
}

// The stage a row of the runs tree shows ("experiment" for an experiment's own row).
QString stageAt(const QAbstractItemModel* tree, const QModelIndex& index) {
  return tree->index(index.row(), RunsTree::StageColumn, index.parent()).data().toString();
}

}  // namespace

class TestWorkbench : public QObject {
  Q_OBJECT
  QTemporaryDir m_dir;

 private Q_SLOTS:
  // Background work yields the CPU to the window's thread: a thread that lowers its priority
  // does so for itself (and what it starts), never for the window; a child process starts lower.
  void backgroundWorkRunsBelowTheWindow() {
    const int window = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
    int worker = window, inherited = window;
    std::thread([&] {
      lowerThisThreadsPriority();
      worker = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
      std::thread([&] {
        inherited = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
      }).join();
    }).join();
    QCOMPARE(worker, std::max(window, kBackgroundNice));
    QCOMPARE(inherited, worker);  // OpenMP's workers, made by the training thread, inherit it
    QCOMPARE(::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid))), window);
    QProcess child;
    lowerChildPriority(child);
    child.start("/bin/sh", {"-c", "cut -d' ' -f19 /proc/self/stat"});  // field 19: nice
    QVERIFY(child.waitForFinished(10000));
    QCOMPARE(child.readAllStandardOutput().trimmed().toInt(), std::max(window, kBackgroundNice));
  }

  void initTestCase() {
    QCoreApplication::setOrganizationName("PIVOT-tests");  // keep the user's settings out of it
    QSettings().clear();
  }

  void validationAsYouType() {
    MainWindow w(m_dir.filePath("validate"));
    auto* panel = w.launchPanel();
    QVERIFY(panel->startButton()->isEnabled());
    auto* lr = panel->field("lr");
    lr->selectAll();
    QTest::keyClicks(lr, "fast");
    QVERIFY(!panel->startButton()->isEnabled());
    QVERIFY2(panel->validationMessage().contains("bad value for 'lr'"),
             qPrintable(panel->validationMessage()));
    lr->selectAll();
    QTest::keyClicks(lr, "0.001");
    QVERIFY(panel->startButton()->isEnabled());
    QVERIFY(panel->validationMessage().isEmpty());
    // The experiment group: bases nest the seeds (`pivot experiment --bases K`).
    panel->basesBox()->setValue(3);
    const QStringList args = panel->experimentRequest()->arguments();
    QVERIFY2(args.join(' ').contains("--seeds 3 --bases 3"), qPrintable(args.join(' ')));
    // Each arm's tuning budget (`--tune-lr`), checked as `pivot experiment` checks it.
    QTest::keyClicks(panel->tuneLrEdit(), "0.3");
    QVERIFY(!panel->experimentButton()->isEnabled());
    QVERIFY2(panel->experimentMessage().contains("two or more scales"),
             qPrintable(panel->experimentMessage()));
    QTest::keyClicks(panel->tuneLrEdit(), ",1,0.3");
    QVERIFY2(panel->experimentMessage().contains("Tune learning rates: 0.3 is listed twice"),
             qPrintable(panel->experimentMessage()));
    QTest::keyClicks(panel->tuneLrEdit(), "x");  // the command line's own parser and message
    QVERIFY2(panel->experimentMessage().contains("Tune learning rates: '0.3x' is not a number"),
             qPrintable(panel->experimentMessage()));
    panel->tuneLrEdit()->clear();
    QTest::keyClicks(panel->tuneLrEdit(), "0.3, 1,3");
    QVERIFY(panel->experimentButton()->isEnabled());
    QVERIFY2(panel->experimentRequest()->arguments().join(' ').endsWith("--tune-lr 0.3,1,3"),
             qPrintable(panel->experimentRequest()->arguments().join(' ')));
  }

  // A new workspace: every view says what fills it instead of showing an empty box; the menu bar
  // reaches the panels' buttons and the tabs by keyboard.
  void emptyStatesAndMenus() {
    MainWindow w(m_dir.filePath("empty"));
    w.resize(1280, 720);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    w.pollNow();
    QTRY_VERIFY_WITH_TIMEOUT(w.runsBrowser()->emptyStateShown(), 5000);
    QVERIFY2(w.curves()->emptyStateText().startsWith("No run shown."),
             qPrintable(w.curves()->emptyStateText()));
    QCOMPARE(w.inspectView()->panelCount(), 0);
    QVERIFY2(w.inspectView()->emptyStateText().startsWith("No run has a checkpoint yet"),
             qPrintable(w.inspectView()->emptyStateText()));
    QVERIFY(!w.encodersView()->resultsShown());
    QVERIFY2(w.encodersView()->message().startsWith("No experiment yet"),
             qPrintable(w.encodersView()->message()));
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR"))
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-empty-1280.png");
    // A laptop screen holds the whole window: nothing forces it past 1280x720.
    QCOMPARE(w.size(), QSize(1280, 720));
    QVERIFY2(
        w.minimumSizeHint().width() <= 1280 && w.minimumSizeHint().height() <= 720,
        qPrintable(
            QString("%1x%2").arg(w.minimumSizeHint().width()).arg(w.minimumSizeHint().height())));
    // GRPO's form is taller than the screen: it scrolls, and Start stays in view below it.
    auto* launch = w.findChild<LaunchPanel*>();
    launch->stageBox()->setCurrentIndex(launch->stageBox()->findData("grpo"));
    QTest::qWait(50);
    const QRect start(launch->startButton()->mapTo(&w, QPoint(0, 0)),
                      launch->startButton()->size());
    QVERIFY2(launch->startButton()->isVisible() && w.rect().contains(start),
             qPrintable(QString("Start at %1,%2").arg(start.x()).arg(start.y())));

    // Menus: File, Run, View, Help; the tabs by Ctrl+1..4, samples by Ctrl+] and Ctrl+[.
    QStringList menus;
    for (auto* action : w.menuBar()->actions()) menus << action->text().remove('&');
    QCOMPARE(menus, (QStringList{"File", "Run", "View", "Help"}));
    QTest::keyClick(&w, Qt::Key_3, Qt::ControlModifier);
    QCOMPARE(w.centralWidget()->findChild<QStackedWidget*>()->currentWidget(),
             static_cast<QWidget*>(w.encodersView()));
    QTest::keyClick(&w, Qt::Key_1, Qt::ControlModifier);
    QCOMPARE(w.centralWidget()->findChild<QStackedWidget*>()->currentWidget(),
             static_cast<QWidget*>(w.curves()));
    const int index = w.inspectView()->sampleIndex();
    QTest::keyClick(&w, Qt::Key_BracketRight, Qt::ControlModifier);
    QCOMPARE(w.inspectView()->sampleIndex(), index + 1);
    QCOMPARE(w.centralWidget()->findChild<QStackedWidget*>()->currentWidget(),
             static_cast<QWidget*>(w.inspectView()));
    QTest::keyClick(&w, Qt::Key_BracketLeft, Qt::ControlModifier);
    QCOMPARE(w.inspectView()->sampleIndex(), index);
    const QString shortcuts = w.shortcutsText();
    for (const char* line :
         {"Ctrl+R\tStart", "Ctrl+P\tPause", "Ctrl+.\tStop", "Ctrl+E\tExport", "Ctrl+F\tFind run"})
      QVERIFY2(shortcuts.contains(line), qPrintable(shortcuts));
  }

  // Values typed into the form survive a change of stage where the new stage has the key; the
  // others follow the preset; a new preset or "Preset values" brings back the preset's.
  void typedValuesSurviveAStageChange() {
    MainWindow w(m_dir.filePath("typed"));
    auto* panel = w.launchPanel();
    panel->selectPreset("tiny", "dpo");
    const auto presetValue = [](const char* stage, const char* key) {
      return QString::fromStdString(
          toJson(presetConfig("tiny", stageFromName(stage))).at(key).dump());
    };
    for (auto [key, value] : {std::pair{"steps", "17"}, {"beta", "0.25"}}) {
      panel->field(key)->selectAll();
      QTest::keyClicks(panel->field(key), value);
    }
    QCOMPARE(panel->typedKeys().size(), 2);
    panel->stageBox()->setCurrentIndex(panel->stageBox()->findData("grpo"));
    QCOMPARE(panel->field("steps")->text(), QString("17"));   // typed: kept
    QCOMPARE(panel->field("beta")->text(), QString("0.25"));  // GRPO's KL beta: the key applies
    QVERIFY(panel->fieldShown("beta"));
    QCOMPARE(panel->field("lr")->text().toDouble(), presetValue("grpo", "lr").toDouble());
    panel->stageBox()->setCurrentIndex(panel->stageBox()->findData("sft"));
    QVERIFY(!panel->fieldShown("beta"));  // hidden, not sent, but not forgotten
    QVERIFY(!panel->request()->overrides.join(' ').contains("beta="));
    QVERIFY(panel->request()->overrides.contains("steps=17"));
    panel->stageBox()->setCurrentIndex(panel->stageBox()->findData("dpo"));
    QCOMPARE(panel->field("beta")->text(), QString("0.25"));
    QTest::mouseClick(panel->presetValuesButton(), Qt::LeftButton);
    QVERIFY(panel->typedKeys().isEmpty());
    QCOMPARE(panel->field("steps")->text(), presetValue("dpo", "steps"));
    QCOMPARE(panel->field("beta")->text().toDouble(), presetValue("dpo", "beta").toDouble());

    // The experiment's share of the machine: stages at a time and threads per stage.
    QVERIFY(!panel->experimentRequest()->arguments().contains("--jobs"));
    panel->jobsBox()->setValue(1);
    panel->threadsBox()->setValue(1);
    QVERIFY2(panel->experimentRequest()->arguments().join(' ').endsWith("--jobs 1 --set threads=1"),
             qPrintable(panel->experimentRequest()->arguments().join(' ')));
  }

  // A real model from the launch panel: a LLaVA folder (random weights, the Qwen2.5 tokenizer) and
  // a LLaVA data file instead of a preset's miniature; the fields are checked as you type, and the
  // run trains through the same worker, store and curves.
  void realModelFromTheLaunchPanel() {
    const QString dir = m_dir.filePath("real"), model = dir + "/model", ws = dir + "/ws";
    QVERIFY(QDir().mkpath(dir + "/img"));
    auto config = nlohmann::json::parse(
        readAll(PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny/config.json").toStdString());
    config["text_config"]["vocab_size"] = 151665;
    config["image_token_index"] = 151655;
    writeAll(dir + "/config.json", QByteArray::fromStdString(config.dump()));
    QProcess init;
    init.start(PIVOT_BINARY_DIR "/app/pivot",
               {"model", "init", dir + "/config.json", "--out", model, "--tokenizer",
                PIVOT_SOURCE_DIR "/tests/data/qwen2.5-tokenizer"});
    QVERIFY(init.waitForFinished(60000) && init.exitCode() == 0);
    nlohmann::json records = nlohmann::json::array();
    for (const char* colour : {"red", "blue"}) {
      QImage image(32, 32, QImage::Format_RGB888);
      image.fill(QColor(colour));
      QVERIFY(image.save(dir + "/img/" + colour + ".png"));
      records.push_back({{"image", std::string("img/") + colour + ".png"},
                         {"conversations",
                          {{{"from", "human"}, {"value", "<image>\nWhat colour is it?"}},
                           {{"from", "gpt"}, {"value", std::string("It is ") + colour + "."}}}}});
    }
    writeAll(dir + "/llava.json", QByteArray::fromStdString(records.dump()));

    MainWindow w(ws);
    w.resize(1400, 900);
    w.show();
    auto* panel = w.launchPanel();
    panel->sourceBox()->setCurrentIndex(panel->sourceBox()->findData("hf"));
    QVERIFY(panel->modelFolderEdit()->isVisible());
    QVERIFY(!panel->startButton()->isEnabled());
    QVERIFY2(panel->validationMessage().contains("Model folder: choose"),
             qPrintable(panel->validationMessage()));
    QTest::keyClicks(panel->modelFolderEdit(), dir + "/img");  // not a model folder
    QVERIFY2(panel->validationMessage().contains("has no config.json"),
             qPrintable(panel->validationMessage()));
    panel->modelFolderEdit()->setText(model);
    QVERIFY2(panel->validationMessage().contains("Data file: choose"),
             qPrintable(panel->validationMessage()));
    QTest::keyClicks(panel->dataFileEdit(), dir + "/llava.json");
    panel->stageBox()->setCurrentIndex(panel->stageBox()->findData("pretrain"));
    QVERIFY(!panel->startButton()->isEnabled());  // stage 0 is ShapesWorld's
    panel->stageBox()->setCurrentIndex(panel->stageBox()->findData("sft"));
    for (auto [key, value] : {std::pair{"steps", "3"}, {"batch_size", "2"}}) {
      panel->field(key)->selectAll();
      QTest::keyClicks(panel->field(key), value);
    }
    QVERIFY2(panel->startButton()->isEnabled(), qPrintable(panel->validationMessage()));
    QSignalSpy ended(&w, &MainWindow::jobEnded);
    QTest::mouseClick(panel->startButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, 120000);
    QVERIFY2(ended.at(0).at(0).toBool(), qPrintable(ended.at(0).at(1).toString()));
    RunStore store(storePath(ws.toStdString()));
    const auto runs = store.runs();
    QCOMPARE(runs.size(), size_t(1));  // a real model runs no earlier stages
    const auto cfg = trainConfigFromJson(nlohmann::json::parse(runs[0].configJson));
    QCOMPARE(QString::fromStdString(cfg.model_dir), QFileInfo(model).absoluteFilePath());
    QCOMPARE(store.metrics(runs[0].id, "loss").size(), size_t(3));
    w.pollNow();
    QTRY_VERIFY_WITH_TIMEOUT(!w.curves()->runs().empty(), 5000);
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR")) {
      QTest::qWait(300);
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-real-model.png");
    }

    // Inspect: the gradient map of the real run on a photo with a typed question, read with the
    // model's own tokenizer, chat template and processor; a ShapesWorld sample is refused by name.
    w.showInspect();
    auto* inspect = w.inspectView();
    inspect->setCheckedRuns({runs[0].id});
    inspect->setSample(1, 0);
    QTRY_COMPARE_WITH_TIMEOUT(inspect->cache().size(), 1, 60000);
    QVERIFY2(inspect->cache().begin()->error.contains("is a real model: choose a photo"),
             qPrintable(inspect->cache().begin()->error));
    inspect->setPhoto(dir + "/img/red.png", "What colour is it?", "It is red.");
    QTRY_COMPARE_WITH_TIMEOUT(inspect->cache().size(), 2, 60000);
    for (const auto& o : inspect->cache())
      if (!o.error.contains("is a real model")) {
        QVERIFY2(o.error.isEmpty(), qPrintable(o.error));
        QVERIFY(!o.overlay.isNull());
      }
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR")) {
      QTest::qWait(300);
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-real-inspect.png");
    }
  }

  void startPauseResumeStopFromThePanel() {
    const QString ws = m_dir.filePath("live");
    // A workspace preset (found by the window) keeps the align stage that runs first short, so the
    // test does not depend on how busy the machine is.
    const QString preset =
        writeWorkspacePreset(ws, "fast", R"({"preset": "tiny", "steps": 30, "batch_size": 8})");
    MainWindow w(ws);
    w.resize(1400, 900);
    w.show();
    auto* panel = w.launchPanel();
    QVERIFY(panel->presetBox()->findText(preset) >= 0);
    panel->selectPreset(preset, "instruct");
    for (auto [key, value] : {std::pair{"steps", "400"}, {"batch_size", "8"}}) {
      panel->field(key)->selectAll();
      QTest::keyClicks(panel->field(key), value);
    }
    QSignalSpy ended(&w, &MainWindow::jobEnded);
    QTest::mouseClick(panel->startButton(), Qt::LeftButton);
    QVERIFY(w.isTraining());
    // Curves fill while the run trains (align first: no parent was chosen).
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->visiblePanelCount() >= 3, 60000);
    QTRY_VERIFY_WITH_TIMEOUT(
        !w.curves()->runs().empty() && w.curves()->runs().begin()->second.series.count("loss") &&
            w.curves()->runs().begin()->second.series.at("loss").steps.size() > 5,
        60000);
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->panels().front()->drawnPointCount() > 0, 10000);
    // Stage 0's loss is SigLIP's: drawn in its own panel (the grid's first), on its own axis.
    QCOMPARE(w.curves()->runs().begin()->second.stage, QString("pretrain"));
    QCOMPARE(w.curves()->panels().front()->title(), QString("loss: SigLIP (pretrain)"));

    // Wait for the instruct stage (after stage 0 and align), then pause: no new steps arrive while
    // paused.
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->runs().size() == 3, 120000);
    const int64_t instructRun = w.curves()->runs().rbegin()->first;
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->lastStep(instructRun) > 3, 60000);
    QTest::mouseClick(panel->pauseButton(), Qt::LeftButton);
    QCOMPARE(panel->state(), LaunchPanel::State::Paused);
    // The step in flight finishes first (slow on a loaded machine); the trainer marks the run
    // paused when it actually waits, and from then on no step arrives.
    QTRY_VERIFY_WITH_TIMEOUT(
        RunStore(storePath(ws.toStdString())).run(instructRun)->status == RunStatus::Paused, 30000);
    QTest::qWait(300);  // the live buffer drains every 40 ms
    const int64_t pausedAt = w.curves()->lastStep(instructRun);
    QTest::qWait(800);
    QCOMPARE(w.curves()->lastStep(instructRun), pausedAt);

    QTest::mouseClick(panel->resumeButton(), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->lastStep(instructRun) > pausedAt, 30000);

    QTest::mouseClick(panel->stopButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, 30000);
    QVERIFY(!w.isTraining());
    QCOMPARE(panel->state(), LaunchPanel::State::Idle);
    RunStore store(storePath(ws.toStdString()));
    QCOMPARE(std::string(name(store.run(instructRun)->status)), std::string("stopped"));
    QVERIFY(!store.checkpoints(instructRun).empty());  // resumable
    // The runs browser lists the three runs; the curves keep them after the job ended.
    w.pollNow();
    QTRY_COMPARE_WITH_TIMEOUT(w.runsBrowser()->rowCount(), 3, 5000);
    QTest::qWait(300);
    QCOMPARE(w.curves()->runs().size(), size_t(3));
    QVERIFY(w.curves()->visiblePanelCount() >= 3);
    // The tree shows the chain: stage 0 -> align -> instruct.
    auto* tree = w.runsBrowser()->treeModel();
    QCOMPARE(tree->rowCount(), 1);
    const auto stage0 = tree->index(0, 0);
    const auto align = tree->index(0, 0, stage0);
    QCOMPARE(stageAt(tree, stage0), QString("pretrain"));
    QCOMPARE(stageAt(tree, align), QString("align"));
    QCOMPARE(stageAt(tree, tree->index(0, 0, align)), QString("instruct"));
    // Selecting align and instruct compares their hyper-parameters, differences first-class.
    w.runsBrowser()->selectRuns({2, 3});
    auto* params = w.runsBrowser()->parameterTable();
    QCOMPARE(params->columnCount(), 3);
    QStringList differing;
    for (int r = 0; r < params->rowCount(); ++r) differing << params->item(r, 0)->text();
    QVERIFY2(differing.contains("stage") && differing.contains("vision_lr") &&
                 differing.contains("steps"),
             qPrintable(differing.join(',')));
    QVERIFY(!differing.contains("model.text_config.hidden_size"));  // equal values hidden
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR"))
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-after-stop.png");

    // Inspect: the maps of both runs' checkpoints for one sample, computed off the GUI thread.
    w.showInspect();
    auto* inspect = w.inspectView();
    inspect->setSample(1, 0);
    inspect->setCheckedRuns({2, 3});
    QCOMPARE(inspect->panelCount(), 2);
    QTRY_COMPARE_WITH_TIMEOUT(inspect->cache().size(), 2, 30000);
    for (const auto& o : inspect->cache()) {
      QVERIFY2(o.error.isEmpty(), qPrintable(o.error));
      QVERIFY(!o.overlay.isNull());
    }
    QCOMPARE(inspect->pendingCount(), 0);
    inspect->setMethod("rollout");  // a new method: new maps, the old ones stay cached
    QTRY_COMPARE_WITH_TIMEOUT(inspect->cache().size(), 4, 30000);
    inspect->setMethod("gradmap");  // back: served from the cache at once
    QCOMPARE(inspect->pendingCount(), 0);
    // The figure as a file: vector PDF and SVG (text as text, only the image and the two maps as
    // pictures, the colour bar a gradient), PNG at 300 dpi; each says run, step and method.
    const auto figure = inspect->figure();
    QCOMPARE(figure.panels.size(), size_t(2));
    QCOMPARE(figure.colourScale.size(), 256);
    QVERIFY(figure.method.startsWith("gradmap · target sft"));
    const QString pdf = m_dir.filePath("inspect.pdf"), svg = m_dir.filePath("inspect.svg"),
                  png = m_dir.filePath("inspect.png");
    for (const auto& file : {pdf, svg, png})
      QVERIFY2(inspect->exportFigure(file), qPrintable(file));
    QVERIFY(!inspect->exportFigure(m_dir.filePath("inspect.gif")));
    const QByteArray pdfBytes = readAll(pdf);
    QVERIFY(pdfBytes.startsWith("%PDF"));
    QCOMPARE(pdfBytes.count("/Subtype /Image"), 3);  // the sample and two maps, nothing else
    QVERIFY(pdfBytes.contains("/FontDescriptor"));   // text as text
    QVERIFY(pdfBytes.contains("/ShadingType"));      // the colour bar, a vector gradient
    const QByteArray svgBytes = readAll(svg);
    QCOMPARE(svgBytes.count("<image"), 3);
    QVERIFY(svgBytes.contains(
        QString("%1 @ step %2").arg(figure.panels[0].run).arg(figure.panels[0].step).toUtf8()));
    QVERIFY(svgBytes.contains("linearGradient"));
    const QImage raster(png);
    QCOMPARE(raster.width(), qRound(mapFigureSize(figure).width() * 300 / 72));
    // One's own photo with a question in everyday spelling: normalised, then read (issue 30); a
    // word outside the miniature's vocabulary is refused naming the words it knows.
    inspect->setPhoto(png, "What colour is the Circle?", "Red");
    const auto photoMaps = [&](const QString& question) {
      QList<ExplainOutcome> found;
      for (const auto& key : inspect->cache().keys())
        if (key.contains(question)) found << inspect->cache().value(key);
      return found;
    };
    QTRY_COMPARE_WITH_TIMEOUT(photoMaps("What colour is the Circle?").size(), 2, 30000);
    for (const auto& o : photoMaps("What colour is the Circle?"))
      QVERIFY2(o.error.isEmpty() && !o.overlay.isNull(), qPrintable(o.error));
    inspect->setPhoto(png, "What hue is the circle?", "red");
    QTRY_COMPARE_WITH_TIMEOUT(photoMaps("What hue is the circle?").size(), 2, 30000);
    const QString refused = photoMaps("What hue is the circle?").front().error;
    QVERIFY2(refused.contains("unknown word 'hue'") && refused.contains("known words: a, above"),
             qPrintable(refused));
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR"))
      for (const char* name : {"/inspect-figure.png", "/inspect-figure.pdf"})
        inspect->exportFigure(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + name, 150);
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR")) {
      QTest::qWait(300);  // new panels show on the next event-loop turn
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-inspect.png");
    }
  }

  // Start runs the whole chain and says where in it it is; starting the same chain again reuses
  // the finished stage 0 (no new pretrain run) and trains only the stage asked for.
  void startReusesAnIdenticalFinishedChain() {
    const QString ws = m_dir.filePath("chain");
    const QString preset =
        writeWorkspacePreset(ws, "chain", R"({"preset": "tiny", "steps": 150, "batch_size": 8})");
    MainWindow w(ws);
    w.show();
    auto* panel = w.launchPanel();
    panel->selectPreset(preset, "align");
    QSignalSpy stages(&w, &MainWindow::chainStageStarted);
    QSignalSpy ended(&w, &MainWindow::jobEnded);
    QTest::mouseClick(panel->startButton(), Qt::LeftButton);
    // Stage 0 trains first: the status bar names its place and the chain's time left.
    QTRY_VERIFY_WITH_TIMEOUT(w.stepText().startsWith("stage 1 of 2 · run 1 · pretrain · step "),
                             60000);
    QTRY_VERIFY_WITH_TIMEOUT(w.etaText().contains(" · chain ≈"), 10000);
    QTRY_VERIFY_WITH_TIMEOUT(w.stepText().startsWith("stage 2 of 2 · run 2 · align · step "),
                             120000);
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, 120000);
    QCOMPARE(ended.at(0).at(0).toBool(), true);
    QCOMPARE(stages.count(), 2);
    QCOMPARE(stages.at(0).at(3).toLongLong(), 0);  // nothing to reuse the first time
    QCOMPARE(stages.at(1).at(1).toInt(), 2);

    stages.clear();
    QTest::mouseClick(panel->startButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 2, 120000);
    QCOMPARE(ended.at(1).at(0).toBool(), true);
    QCOMPARE(stages.count(), 2);
    QCOMPARE(stages.at(0).at(2).toString(), QString("pretrain"));
    QCOMPARE(stages.at(0).at(3).toLongLong(), 1);  // stage 0 reused: run 1
    QCOMPARE(stages.at(1).at(3).toLongLong(), 0);  // the stage asked for always trains
    RunStore store(storePath(ws.toStdString()));
    const auto runs = store.runs();
    QCOMPARE(runs.size(), size_t(3));  // pretrain once, align twice
    int pretrains = 0;
    for (const auto& r : runs) {
      if (r.stage == "pretrain") ++pretrains;
      if (r.stage == "align") QCOMPARE(r.parentId.value_or(0), int64_t(1));
    }
    QCOMPARE(pretrains, 1);
  }

  // A data-parallel run from the window: Processes 2 runs `pivot train --nproc 2` as a child
  // process; it shows as one run whose curves fill from the store; Stop ends it with a checkpoint.
  void dataParallelRunFromThePanel() {
    const QString ws = m_dir.filePath("ddp");
    const QString preset = writeWorkspacePreset(
        ws, "fast", R"({"preset": "tiny", "steps": 20, "batch_size": 8, "eval_samples": 0})");
    MainWindow w(ws);
    w.resize(1400, 900);
    w.show();
    auto* panel = w.launchPanel();
    // The shipped presets come from beside the executables (build/share/...), not the sources.
    QStringList listed;
    for (int i = 0; i < panel->presetBox()->count(); ++i) listed << panel->presetBox()->itemText(i);
    QVERIFY2(listed.filter("share/pivot-workbench/presets/tiny-random-rejected.json").size() == 1,
             qPrintable(listed.join(", ")));
    QVERIFY(listed.filter(PIVOT_SOURCE_DIR "/resources").isEmpty());
    panel->selectPreset(preset, "align");
    panel->field("steps")->selectAll();
    QTest::keyClicks(panel->field("steps"), "50000");
    panel->processesBox()->setValue(3);  // 8 samples do not split over 3: refused as you type
    QVERIFY(!panel->startButton()->isEnabled());
    panel->processesBox()->setValue(2);
    QVERIFY(panel->startButton()->isEnabled());
    QSignalSpy ended(&w, &MainWindow::jobEnded);
    QTest::mouseClick(panel->startButton(), Qt::LeftButton);
    QVERIFY(w.isTraining());
    QVERIFY(!panel->pauseButton()->isEnabled());  // a child process stops, it does not pause
    // Stage 0 then align, each one run trained by two processes.
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->runs().size() == 2, 120000);
    const int64_t alignRun = w.curves()->runs().rbegin()->first;
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->lastStep(alignRun) > 20, 60000);
    {
      RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
      QCOMPARE(store.runs().size(), size_t(2));  // one run per stage, not one per process
      QVERIFY(QString::fromStdString(store.run(alignRun)->message).contains("2 processes (gloo)"));
    }
    // The child's own progress events name its run and place in the chain (no guessing from the
    // store's newest run).
    QTRY_VERIFY2_WITH_TIMEOUT(
        w.stepText().startsWith(QString("stage 2 of 2 · run %1 · step ").arg(alignRun)),
        qPrintable(w.stepText()), 10000);
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->visiblePanelCount() >= 2, 10000);
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->panels().front()->drawnPointCount() > 0, 10000);
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR")) {
      QTest::qWait(300);
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-ddp.png");
    }
    QTest::mouseClick(panel->stopButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, 60000);
    QVERIFY(!w.isTraining());
    QVERIFY2(ended.at(0).at(1).toString().startsWith("stopped: "),
             qPrintable(ended.at(0).at(1).toString()));
    RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
    QCOMPARE(std::string(name(store.run(alignRun)->status)), std::string("stopped"));
    QVERIFY(!store.checkpoints(alignRun).empty());
  }

  // The Encoders view on a hand-made results table: tables, bars with error bars, exports; a bad
  // file is named with its line and loses nothing.
  // GRPO in the window: the Rewards panel family (the reward with its ± std band, per function,
  // KL, lengths, clip ratios) beside a DPO run's panels, and the Completions view: each logged
  // prompt's image, its completions with rewards and coloured advantages, opened in Inspect.
  void grpoRewardsAndCompletions() {
    const std::string ws = m_dir.filePath("grpo").toStdString();
    TrainOptions opt;
    opt.workspace = ws;
    TrainConfig instruct = presetConfig("tiny", Stage::Instruct);
    for (const char* s : {"steps=20", "batch_size=8", "eval_samples=0", "threads=2"})
      applyOverride(instruct, s);
    const auto parent = train(instruct, opt);
    QCOMPARE(std::string(name(parent.status)), std::string("finished"));
    opt.parentRunId = parent.runId;
    TrainConfig grpo = presetConfig("tiny", Stage::Grpo);
    for (const char* s : {"steps=12", "batch_size=16", "num_generations=4", "eval_samples=0",
                          "threads=2", "log_completions_steps=5"})
      applyOverride(grpo, s);
    const auto g = train(grpo, opt);
    QCOMPARE(std::string(name(g.status)), std::string("finished"));
    TrainConfig dpo = presetConfig("tiny", Stage::Dpo);
    for (const char* s : {"steps=6", "batch_size=8", "eval_samples=0", "threads=2"})
      applyOverride(dpo, s);
    const auto d = train(dpo, opt);

    MainWindow w(QString::fromStdString(ws));
    w.resize(1500, 950);
    w.show();
    w.pollNow();
    QTRY_COMPARE_WITH_TIMEOUT(w.runsBrowser()->rowCount(), 3, 10000);
    w.runsBrowser()->selectRuns({g.runId, d.runId});  // two methods overlaid
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->runs().size() == 2 &&
                                 w.curves()->lastStep(g.runId) == 12 &&
                                 w.curves()->lastStep(d.runId) == 6,
                             20000);
    w.curves()->replotNow();
    CurvePanel* reward = nullptr;
    for (auto* p : w.curves()->panels())
      if (p->keys().front() == "reward") reward = p;
    QVERIFY(reward && !reward->isHidden());
    QCOMPARE(reward->bandCount(), 1);     // GRPO's ± reward_std; the DPO run has no reward
    for (auto* p : w.curves()->panels())  // the title names the lines this run has
      if (p->keys().front() == "rewards/accuracy/mean")
        QCOMPARE(p->shownTitle(),
                 QString::fromUtf8("rewards per function: accuracy —, format - -"));
    w.curves()->setPanelFamily(PanelFamily::Rewards);
    for (auto* p : w.curves()->panels())
      if (!p->isHidden()) QVERIFY2(!p->keys().contains("rewards/margins"), qPrintable(p->title()));
    const int rewardPanels = w.curves()->visiblePanelCount();
    QVERIFY2(rewardPanels >= 6, qPrintable(QString::number(rewardPanels)));
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR")) {
      QTest::qWait(300);
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-grpo-rewards.png");
    }
    w.curves()->setPanelFamily(PanelFamily::Preference);
    QVERIFY(w.curves()->visiblePanelCount() >= 3);  // the DPO run's
    w.curves()->setPanelFamily(PanelFamily::All);

    // The launch panel offers GRPO with its own settings (and only those), checked as you type.
    auto* panel = w.launchPanel();
    panel->stageBox()->setCurrentIndex(panel->stageBox()->findData("grpo"));
    QVERIFY(panel->fieldShown("num_generations") && panel->fieldShown("grpo_loss_type"));
    QVERIFY(!panel->fieldShown("loss_type") && !panel->fieldShown("sft_weight"));
    const QStringList sent = panel->request()->overrides;
    QVERIFY2(sent.contains("num_generations=8") && sent.contains("grpo_loss_type=dapo") &&
                 sent.contains("reward_funcs=accuracy,format") &&
                 !sent.join(' ').contains("loss_type=sigmoid"),
             qPrintable(sent.join(' ')));
    auto* generations = panel->field("num_generations");
    generations->selectAll();
    QTest::keyClicks(generations, "5");
    QVERIFY2(panel->validationMessage().contains("multiple of num_generations"),
             qPrintable(panel->validationMessage()));
    QVERIFY(!panel->startButton()->isEnabled());
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR"))
      panel->grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/launch-grpo.png");
    panel->stageBox()->setCurrentIndex(panel->stageBox()->findData("mpo"));
    QCOMPARE(panel->field("loss_type")->text(), QString("sigmoid,bco_pair,sft"));
    QCOMPARE(panel->field("loss_weights")->text(), QString("0.8,0.2,1"));
    QVERIFY(panel->startButton()->isEnabled());

    auto* view = w.completionsView();
    QTRY_COMPARE_WITH_TIMEOUT(view->runBox()->count(), 1, 10000);  // the GRPO run only
    QCOMPARE(view->stepBox()->count(), 3);                         // steps 1, 5, 10
    view->stepBox()->setCurrentIndex(0);
    QCOMPARE(view->promptCount(), 4);
    QCOMPARE(view->table()->rowCount(), 16);  // 4 prompts x 4 completions
    const int columns = view->table()->columnCount();
    QCOMPARE(view->table()->horizontalHeaderItem(columns - 1)->text(), QString("advantage"));
    // On a laptop screen the reward and advantage columns stay in view (prompt and completion
    // wrap).
    w.resize(1280, 720);
    w.showCompletions();
    QTest::qWait(50);
    auto* table = view->table();
    QVERIFY2(table->columnViewportPosition(columns - 1) + table->columnWidth(columns - 1) <=
                 table->viewport()->width(),
             qPrintable(QString("advantage ends at %1 of %2")
                            .arg(table->columnViewportPosition(columns - 1) +
                                 table->columnWidth(columns - 1))
                            .arg(table->viewport()->width())));
    QCOMPARE(view->table()->horizontalHeaderItem(3)->text(), QString("accuracy"));
    QVERIFY(!view->table()->item(0, 0)->data(Qt::DecorationRole).value<QPixmap>().isNull());
    RunStore store(storePath(ws));
    const auto rows = store.completions(g.runId, 1);
    for (int i = 0; i < 16; ++i) {
      const auto& text = rows[static_cast<size_t>(i)].completion;
      QCOMPARE(view->table()->item(i, 2)->text(),
               text.empty() ? QString("(empty: stopped at once)") : QString::fromStdString(text));
      const QColor shade = view->table()->item(i, columns - 1)->background().color();
      const double a = rows[static_cast<size_t>(i)].advantage;
      if (a > 0.1) QVERIFY(shade.green() > shade.red());  // above the group's mean: green
      if (a < -0.1) QVERIFY(shade.red() > shade.green());
    }
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR")) {
      w.showCompletions();
      QTest::qWait(300);
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-completions.png");
    }
    // Issue 30: the step's completions export as a table (every row, values at full precision)
    // and as a vector figure (the completions as text, only the prompts' pictures as images).
    const QString csv = m_dir.filePath("completions.csv"), pdf = m_dir.filePath("completions.pdf");
    QVERIFY(view->exportCompletions(csv));
    QFile csvFile(csv);
    QVERIFY(csvFile.open(QIODevice::ReadOnly));
    const QStringList lines = QString::fromUtf8(csvFile.readAll()).split('\n', Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), 17);  // header and 16 completions
    QVERIFY2(lines[0].startsWith("step,prompt,generation,sample,question,reference,completion,"
                                 "reward/accuracy"),
             qPrintable(lines[0]));
    QVERIFY2(lines[1].endsWith("," + QString::number(rows[0].advantage, 'g', 17)),
             qPrintable(lines[1]));
    QVERIFY(view->exportCompletions(pdf));
    QFile pdfFile(pdf);
    QVERIFY(pdfFile.open(QIODevice::ReadOnly));
    const QByteArray pdfBytes = pdfFile.readAll();
    QVERIFY(pdfBytes.startsWith("%PDF-"));
    QVERIFY(pdfBytes.contains("/FontDescriptor"));   // text as text, not painted pixels
    QCOMPARE(pdfBytes.count("/Subtype /Image"), 4);  // the 4 prompts' pictures
    QVERIFY(view->exportCompletions(m_dir.filePath("completions.svg")));
    QVERIFY(!view->exportCompletions(m_dir.filePath("completions.txt")));
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR"))
      view->exportCompletions(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/completions.pdf");
    view->table()->selectRow(5);  // prompt 2
    QSignalSpy inspected(view, &CompletionsView::inspectRequested);
    QTest::mouseClick(view->findChild<QPushButton*>("completionsInspectButton"), Qt::LeftButton);
    QCOMPARE(inspected.size(), 1);
    QCOMPARE(inspected.at(0).at(0).toLongLong(), static_cast<qlonglong>(g.runId));
    QCOMPARE(inspected.at(0).at(2).toLongLong(),
             QString::fromStdString(rows[4].sample).section(':', 1).toLongLong());
    // Inspect shows that sample (train split) under the run's checkpoints, maps computed.
    const QString wanted = QString(":0:%1|").arg(inspected.at(0).at(2).toLongLong());
    const auto computed = [&] {
      for (const auto& key : w.inspectView()->cache().keys())
        if (key.contains(wanted)) return true;
      return false;
    };
    QTRY_VERIFY_WITH_TIMEOUT(computed(), 60000);
  }

  void encodersViewShowsTablesChartsAndExports() {
    const QString dir = m_dir.filePath("report");
    QDir().mkpath(dir);
    std::vector<ResultRow> rows;
    for (const char* probe : {"linear/shape", "linear/colour"}) {
      rows.push_back({"", 0, "original", probe, "test_accuracy", 0.5});
      rows.push_back({"", 0, "stage1", probe, "test_accuracy", 0.55});
      for (int seed : {1, 2, 3}) {
        rows.push_back({"", seed, "sft", probe, "test_accuracy", 0.6 + 0.01 * seed});
        rows.push_back({"", seed, "dpo", probe, "test_accuracy", 0.7 + 0.01 * seed});
        rows.push_back({"", seed, "grpo", probe, "test_accuracy", 0.65 + 0.01 * seed});
      }
    }
    for (int seed : {1, 2, 3}) {
      rows.push_back({"", seed, "sft", "vqa", "accuracy/shape", 0.4});
      rows.push_back({"", seed, "dpo", "vqa", "accuracy/shape", 0.3 + 0.01 * seed});
    }
    writeResultsCsv((dir + "/results.csv").toStdString(), rows);
    EncodersView view;
    view.resize(1200, 500);
    view.show();
    QVERIFY(view.loadReport(dir));
    QCOMPARE(view.familyBox()->count(), 2);  // linear probes, VQA
    QCOMPARE(view.table()->rowCount(), 2);
    // probe, metric, five encoders, then one difference to SFT per arm (DPO, GRPO)
    QCOMPARE(view.table()->columnCount(), 2 + 5 + 2);
    QCOMPARE(view.table()->horizontalHeaderItem(8)->text(), QString("GRPO − SFT [95% CI]"));
    QCOMPARE(view.table()->item(0, 4)->text(), QString("0.620 ± 0.010"));  // SFT, shape
    // DPO - SFT = 0.1 on every seed: a zero-width interval that excludes 0, yet not bold: one
    // base's interval covers its stage-2 seeds alone.
    QCOMPARE(view.table()->item(0, 7)->text(), QString("+0.100 [0.100, 0.100]"));
    QVERIFY(!view.table()->item(0, 7)->font().bold());
    QCOMPARE(view.table()->item(0, 0)->text(), QString("linear/shape (primary)"));
    QCOMPARE(view.table()->item(1, 0)->text(), QString("linear/colour"));
    QCOMPARE(view.table()->item(0, 8)->text(), QString("+0.050 [0.050, 0.050]"));
    QCOMPARE(view.barSeriesCount(), 5);
    QCOMPARE(view.errorBarSeriesCount(), 5);
    view.familyBox()->setCurrentIndex(1);
    QCOMPARE(view.barSeriesCount(), 2);  // VQA: only SFT and DPO have values
    for (const QString ext : {"png", "pdf", "svg", "csv"}) {
      const QString file = m_dir.filePath("encoders." + ext);
      QVERIFY(ext == "csv" ? view.exportCsv(file) : view.exportChart(file));
      QVERIFY2(QFileInfo(file).size() > 100, qPrintable(file));
    }
    QFile csv(m_dir.filePath("encoders.csv"));
    QVERIFY(csv.open(QIODevice::ReadOnly));
    QVERIFY(csv.readLine().startsWith("probe,metric,sft_mean,sft_std,sft_n,dpo_mean"));
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR")) {
      view.familyBox()->setCurrentIndex(0);
      view.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/encoders-fixture.png");
    }
    QFile bad(dir + "/results.csv");
    QVERIFY(bad.open(QIODevice::Append));
    bad.write("1,,1,sft,vqa,accuracy,lots\n");
    bad.close();
    QVERIFY(!view.loadReport(dir));
    QVERIFY2(view.message().contains("results.csv:" + QString::number(rows.size() + 2) +
                                     ": value 'lots' is not a number"),
             qPrintable(view.message()));

    // A second base (another stage-0/1 chain): each base's mean is a point on its bar, and DPO -
    // SFT is over the two bases (0.1 in base 1, 0.05 in base 2), saying how many DPO wins.
    for (auto row : std::vector<ResultRow>(rows)) {
      row.base = 2;
      if (row.encoder == "dpo") row.value -= 0.05;
      if (row.encoder == "grpo") row.value -= 0.02;
      rows.push_back(row);
    }
    writeResultsCsv((dir + "/results.csv").toStdString(), rows);
    QVERIFY(view.loadReport(dir));
    view.familyBox()->setCurrentIndex(0);
    QCOMPARE(view.basePointCount(), 2 * 5 * 2);  // 2 probes x 5 encoders x 2 bases
    QVERIFY2(view.table()->item(0, 7)->text().startsWith("+0.075 [") &&
                 view.table()->item(0, 7)->text().endsWith("(ahead in 2/2 bases, sign p 0.50)"),
             qPrintable(view.table()->item(0, 7)->text()));
    QVERIFY(!view.table()->item(0, 7)->font().bold());  // t = 3 on 1 df: p 0.20
    // A third base like the first: DPO - SFT 0.1, 0.05, 0.1, t = 5 on 2 df, p = 1 - 5 / sqrt 27
    // = 0.0377; GRPO - SFT 0.05, 0.03, 0.05, t = 6.5, p = 1 - 6.5 / sqrt 44.25 = 0.0229. Holm
    // over the two primary tests: 0.0229 x 2 = 0.0457, then max(0.0457, 0.0377 x 1). The
    // primary shape line is bold; colour, with the same numbers, is exploratory and is not.
    for (auto row : std::vector<ResultRow>(rows))
      if (row.base == 1) {
        row.base = 3;
        rows.push_back(row);
      }
    writeResultsCsv((dir + "/results.csv").toStdString(), rows);
    QVERIFY(view.loadReport(dir));
    view.familyBox()->setCurrentIndex(0);
    QVERIFY(view.table()->item(0, 7)->font().bold());
    QVERIFY2(view.table()->item(0, 7)->toolTip() == "Holm-adjusted p 0.046",
             qPrintable(view.table()->item(0, 7)->toolTip()));
    QVERIFY(!view.table()->item(1, 7)->font().bold());
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR"))
      view.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/encoders-bases.png");
  }

  // The displacement family as a heat map: hidden states up, encoders across, CKA with stage 1;
  // another family brings the bars (and their legend) back, without the cell labels.
  void encodersViewDrawsDisplacementAsAHeatMap() {
    std::vector<ResultRow> rows;
    const std::map<std::string, double> moved = {{"original", 0.3}, {"sft", 0.01}, {"dpo", 0.02}};
    for (const auto& [encoder, amount] : moved) {
      const int seed = encoder == "original" ? 0 : 1;
      for (int layer = 0; layer <= 2; ++layer) {
        const std::string at = "layer_" + std::to_string(layer);
        rows.push_back({"", seed, encoder, "displacement", "cka/" + at, 1 - amount * layer});
        rows.push_back({"", seed, encoder, "displacement", "weight_change/" + at, amount});
      }
      rows.push_back({"", seed, encoder, "linear/shape", "test_accuracy", 0.5 + amount});
    }
    EncodersView view;
    view.resize(1000, 600);
    view.show();
    view.setResults(rows, "displacement");
    const int displacement = view.familyBox()->findData("displacement");
    QVERIFY(displacement >= 0);
    view.familyBox()->setCurrentIndex(displacement);
    QCOMPARE(view.heatMapSize(), QSize(3, 3));  // original, SFT, DPO x embeddings, layers 1-2
    QCOMPARE(view.cellLabelCount(), 9);         // each cell's value written in it
    QCOMPARE(view.barSeriesCount(), 0);
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR"))
      view.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/encoders-displacement.png");
    view.familyBox()->setCurrentIndex(view.familyBox()->findData("linear"));
    QCOMPARE(view.heatMapSize(), QSize(0, 0));
    QCOMPARE(view.barSeriesCount(), 3);
    QVERIFY(view.legendShown());
    QCOMPARE(view.cellLabelCount(), 0);  // the cell labels went with their map
  }

  // The whole study from the launch panel: the window runs `pivot experiment`, the runs browser
  // shows its chain as a tree, and the Encoders view shows its report.
  void experimentFromTheLaunchPanel() {
    const QString ws = m_dir.filePath("experiment");
    const QString preset = writeWorkspacePreset(
        ws, "quick", R"({"preset": "tiny", "steps": 6, "batch_size": 8, "eval_samples": 16})");
    MainWindow w(ws);
    w.resize(1400, 900);
    w.show();
    auto* panel = w.launchPanel();
    panel->selectPreset(preset, "dpo");
    panel->seedsBox()->setValue(1);
    QTest::keyClicks(panel->sweepEdit(), "vision_lr");  // incomplete: refused, and says why
    QVERIFY(!panel->experimentButton()->isEnabled());
    QVERIFY2(
        panel->experimentMessage().contains("Sweep: bad value 'vision_lr' (expected key=v1,v2"),
        qPrintable(panel->experimentMessage()));
    panel->sweepEdit()->clear();
    QTest::keyClicks(panel->sweepEdit(), " ");
    QVERIFY(panel->experimentButton()->isEnabled());
    QSignalSpy ended(&w, &MainWindow::experimentEnded);
    QTest::mouseClick(panel->experimentButton(), Qt::LeftButton);
    QVERIFY(w.isExperimentRunning());
    QVERIFY(!panel->experimentButton()->isEnabled());
    QVERIFY(w.runsBrowser()->tree()->isVisible());  // the chain grows in the Tree tab
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, 400000);
    QVERIFY2(ended.front().at(0).toBool(), qPrintable(ended.front().at(1).toString()));
    QVERIFY2(ended.front().at(1).toString().endsWith("report.md"),
             qPrintable(ended.front().at(1).toString()));
    w.pollNow();
    QTRY_COMPARE_WITH_TIMEOUT(w.encodersView()->experimentBox()->count(), 1, 10000);
    QTRY_VERIFY_WITH_TIMEOUT(w.encodersView()->table()->rowCount() >= 4, 10000);
    QVERIFY(w.encodersView()->barSeriesCount() >= 4);  // original, stage 1, SFT, DPO
    // Tree: the experiment, then stage 0 -> align -> instruct -> SFT / DPO -> their transplants.
    auto* tree = w.runsBrowser()->treeModel();
    QModelIndex experiment;
    for (int i = 0; i < tree->rowCount(); ++i)
      if (stageAt(tree, tree->index(i, 0)) == "experiment") experiment = tree->index(i, 0);
    QVERIFY(experiment.isValid());
    QCOMPARE(tree->rowCount(experiment), 1);
    const auto stage0 = tree->index(0, 0, experiment);
    QCOMPARE(stageAt(tree, stage0), QString("pretrain"));
    // Stage 0's children: stage 1a and the original encoder's transplants (trained side by side,
    // so in either order); stage 1a is the align with an instruct child that has stage-2 children.
    QModelIndex instruct;
    for (int i = 0; i < tree->rowCount(stage0); ++i) {
      const auto align = tree->index(i, 0, stage0);
      if (stageAt(tree, align) == "align" && tree->rowCount(align) > 0 &&
          tree->rowCount(tree->index(0, 0, align)) > 0)
        instruct = tree->index(0, 0, align);
    }
    QVERIFY(instruct.isValid());
    QCOMPARE(stageAt(tree, instruct), QString("instruct"));
    QStringList stageTwo;
    for (int i = 0; i < tree->rowCount(instruct); ++i)
      stageTwo << stageAt(tree, tree->index(i, 0, instruct));
    QVERIFY2(stageTwo.contains("sft") && stageTwo.contains("dpo"), qPrintable(stageTwo.join(',')));
    // The experiment's row in the tree opens its report in the Encoders view.
    w.showInspect();
    Q_EMIT w.runsBrowser()->tree()->activated(experiment);
    QVERIFY(w.encodersView()->isVisible());
    QCOMPARE(w.encodersView()->experimentBox()->currentData().toLongLong(),
             qlonglong(tree->experimentAt(experiment)));
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR")) {
      QTest::qWait(300);
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-encoders.png");
      w.runsBrowser()->grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/runs-tree.png");
    }
  }

  // The window reads `pivot experiment --progress jsonl`, one JSON object a line.
  void experimentProgressIsMachineReadable() {
    auto stage = ExperimentProcess::parseLine(
        R"({"event":"stage","index":3,"total":11,"what":"stage 1b: instruct","reused":true,"elapsed_s":8.5})");
    QVERIFY(stage);
    QVERIFY(stage->kind == ExperimentProcess::Event::Kind::Stage);
    QCOMPARE(stage->index, 3);
    QCOMPARE(stage->total, 11);
    QCOMPARE(stage->what, QString("stage 1b: instruct"));
    QVERIFY(stage->reused);
    auto step = ExperimentProcess::parseLine(
        R"({"event":"step","what":"stage 0","step":40,"total":400,"loss":1.5})");
    QVERIFY(step && step->kind == ExperimentProcess::Event::Kind::Step);
    QCOMPARE(step->index, 40);
    QCOMPARE(step->loss, 1.5);
    auto done = ExperimentProcess::parseLine(
        R"({"event":"done","experiment":1,"report":"/w/r/report.md"})");
    QVERIFY(done && done->kind == ExperimentProcess::Event::Kind::Done);
    QCOMPARE(done->text, QString("/w/r/report.md"));
    QVERIFY(!ExperimentProcess::parseLine("[1/11 0:00:00] stage 0: encoder pre-training"));
    QVERIFY(!ExperimentProcess::parseLine(R"({"event":"party"})"));
  }

  // Stop experiment: SIGTERM, which the command turns into a stop with a checkpoint; the window
  // says "stopped" (not "failed") and the run store has the stage stopped, resumable.
  // One rule for how the window's `pivot` children ended (issue 26: the train and experiment
  // children had two, which disagreed on a kill).
  void childExitReadsTheErrorLineAndStops() {
    QCOMPARE(childExit(0, QProcess::NormalExit, "", false).ok, true);
    const auto failed =
        childExit(2, QProcess::NormalExit, "warning: x\npivot: a.json: line 3: bad value\n", false);
    QVERIFY(!failed.ok && !failed.stopped);
    QCOMPARE(failed.error, QString("a.json: line 3: bad value"));
    QVERIFY(childExit(143, QProcess::NormalExit, "", false).stopped);  // SIGTERM, handled
    QVERIFY(childExit(130, QProcess::NormalExit, "", false).stopped);  // SIGINT
    const auto killed = childExit(9, QProcess::CrashExit, "", true);   // after the grace period
    QVERIFY(!killed.ok && killed.stopped);
    const auto crashed = childExit(11, QProcess::CrashExit, "", false);  // nobody asked it to
    QVERIFY(!crashed.stopped);
    QCOMPARE(crashed.error, QString("crashed (no error line)"));
    QCOMPARE(childExit(3, QProcess::NormalExit, "", false).error, QString("exit code 3"));
  }

  void stoppingAnExperimentKeepsACheckpoint() {
    const QString ws = m_dir.filePath("experiment-stop");
    const QString preset =
        writeWorkspacePreset(ws, "long", R"({"preset": "tiny", "steps": 100000, "batch_size": 8})");
    MainWindow w(ws);
    w.show();
    auto* panel = w.launchPanel();
    panel->selectPreset(preset, "dpo");
    panel->seedsBox()->setValue(1);
    QSignalSpy ended(&w, &MainWindow::experimentEnded);
    QTest::mouseClick(panel->experimentButton(), Qt::LeftButton);
    QVERIFY(w.isExperimentRunning());
    QTRY_VERIFY_WITH_TIMEOUT(panel->experimentMessage().contains("[1/"),
                             60000);  // from a stage event
    const std::string store = storePath(ws.toStdString());
    QTRY_VERIFY_WITH_TIMEOUT(
        [&] {
          if (!QFileInfo::exists(QString::fromStdString(store))) return false;
          RunStore s(store, RunStore::Access::ReadOnly);
          const auto runs = s.runs();
          return !runs.empty() && s.lastMetric(runs[0].id, "loss").has_value();
        }(),
        60000);
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR")) {
      QTest::qWait(1500);  // a step event or two in the status line
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") +
                    "/workbench-experiment-running.png");
    }
    QTest::mouseClick(panel->stopExperimentButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, 60000);
    QVERIFY(!ended.front().at(0).toBool());
    QVERIFY2(ended.front().at(1).toString().contains("stopped"),
             qPrintable(ended.front().at(1).toString()));
    RunStore s(store, RunStore::Access::ReadOnly);
    const auto experiments = s.experiments();
    QCOMPARE(experiments.size(), size_t(1));
    QCOMPARE(std::string(name(experiments[0].status)), std::string("stopped"));
    const auto runs = s.runs();
    QCOMPARE(runs[0].stage, std::string("pretrain"));
    QCOMPARE(std::string(name(runs[0].status)), std::string("stopped"));
    QCOMPARE(experiments[0].runIds, std::vector<int64_t>{runs[0].id});
    QVERIFY(!lastUsableCheckpoint(s, runs[0].id, /*resumable=*/true).empty());
  }

  void closingDuringARunAsksThenStopsCleanly() {
    const QString ws = m_dir.filePath("close");
    MainWindow w(ws);
    w.show();
    LaunchRequest request;
    request.preset = "tiny";
    request.stage = "pretrain";
    request.overrides = {"steps=100000"};
    w.startRun(request);
    QTRY_VERIFY_WITH_TIMEOUT(
        !w.curves()->runs().empty() && w.curves()->lastStep(w.curves()->runs().begin()->first) > 2,
        30000);
    // First answer No: the window stays and the run goes on; then Yes: it stops and closes.
    auto answer = [](QMessageBox::StandardButton button) {
      QTimer::singleShot(200, [button] {
        auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget());
        if (box) box->button(button)->click();
      });
    };
    answer(QMessageBox::No);
    QVERIFY(!w.close());
    QVERIFY(w.isTraining());
    answer(QMessageBox::Yes);
    QVERIFY(w.close());
    QVERIFY(!w.isTraining());
    RunStore store(storePath(ws.toStdString()));
    const auto run = store.runs().front();
    QCOMPARE(std::string(name(run.status)), std::string("stopped"));
    QCOMPARE(store.checkpoints(run.id).size(), size_t(1));  // resumable from where it stopped
  }
};

QTEST_MAIN(TestWorkbench)
#include "test_workbench.moc"
