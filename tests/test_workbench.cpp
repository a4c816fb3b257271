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
#include <QTableWidget>
#include <QTemporaryDir>

#include "curve_panel.h"
#include "main_window.h"
#include "store/run_store.h"
#include "training/trainer.h"

using namespace pivot;

class TestWorkbench : public QObject {
  Q_OBJECT
  QTemporaryDir m_dir;

 private Q_SLOTS:
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
    QVERIFY2(panel->validationMessage().contains("bad value for 'lr'"), qPrintable(panel->validationMessage()));
    lr->selectAll();
    QTest::keyClicks(lr, "0.001");
    QVERIFY(panel->startButton()->isEnabled());
    QVERIFY(panel->validationMessage().isEmpty());
  }

  void startPauseResumeStopFromThePanel() {
    const QString ws = m_dir.filePath("live");
    // A workspace preset (found by the window) keeps the align stage that runs first short, so the
    // test does not depend on how busy the machine is.
    QDir().mkpath(ws + "/presets");
    QFile preset(ws + "/presets/fast.json");
    QVERIFY(preset.open(QIODevice::WriteOnly));
    preset.write(R"({"preset": "tiny", "steps": 30, "batch_size": 8})");
    preset.close();
    MainWindow w(ws);
    w.resize(1400, 900);
    w.show();
    auto* panel = w.launchPanel();
    QVERIFY(panel->presetBox()->findText(QFileInfo(preset).absoluteFilePath()) >= 0);
    panel->selectPreset(QFileInfo(preset).absoluteFilePath(), "instruct");
    for (auto [key, value] : {std::pair{"steps", "400"}, {"batch_size", "8"}}) {
      panel->field(key)->selectAll();
      QTest::keyClicks(panel->field(key), value);
    }
    QSignalSpy ended(&w, &MainWindow::jobEnded);
    QTest::mouseClick(panel->startButton(), Qt::LeftButton);
    QVERIFY(w.isTraining());
    // Curves fill while the run trains (align first: no parent was chosen).
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->visiblePanelCount() >= 3, 60000);
    QTRY_VERIFY_WITH_TIMEOUT(!w.curves()->runs().empty() && w.curves()->runs().begin()->second.series.count("loss") &&
                                 w.curves()->runs().begin()->second.series.at("loss").steps.size() > 5, 60000);
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->panels().front()->drawnPointCount() > 0, 10000);

    // Wait for the instruct stage, then pause: no new steps arrive while paused.
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->runs().size() == 2, 120000);
    const int64_t instructRun = w.curves()->runs().rbegin()->first;
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->lastStep(instructRun) > 3, 60000);
    QTest::mouseClick(panel->pauseButton(), Qt::LeftButton);
    QCOMPARE(panel->state(), LaunchPanel::State::Paused);
    QTest::qWait(600);
    const int64_t pausedAt = w.curves()->lastStep(instructRun);
    QTest::qWait(800);
    QCOMPARE(w.curves()->lastStep(instructRun), pausedAt);
    QTRY_VERIFY_WITH_TIMEOUT(RunStore(storePath(ws.toStdString())).run(instructRun)->status == "paused", 5000);

    QTest::mouseClick(panel->resumeButton(), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(w.curves()->lastStep(instructRun) > pausedAt, 30000);

    QTest::mouseClick(panel->stopButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, 30000);
    QVERIFY(!w.isTraining());
    QCOMPARE(panel->state(), LaunchPanel::State::Idle);
    RunStore store(storePath(ws.toStdString()));
    QCOMPARE(store.run(instructRun)->status, std::string("stopped"));
    QVERIFY(!store.checkpoints(instructRun).empty());  // resumable
    // The runs browser lists both runs; the curves keep both after the job ended.
    w.pollNow();
    QTRY_COMPARE_WITH_TIMEOUT(w.runsBrowser()->rowCount(), 2, 5000);
    QTest::qWait(300);
    QCOMPARE(w.curves()->runs().size(), size_t(2));
    QVERIFY(w.curves()->visiblePanelCount() >= 3);
    // Selecting both runs compares their hyper-parameters, differences first-class.
    w.runsBrowser()->selectRuns({1, 2});
    auto* params = w.runsBrowser()->parameterTable();
    QCOMPARE(params->columnCount(), 3);
    QStringList differing;
    for (int r = 0; r < params->rowCount(); ++r) differing << params->item(r, 0)->text();
    QVERIFY2(differing.contains("stage") && differing.contains("vision_lr") && differing.contains("steps"),
             qPrintable(differing.join(',')));
    QVERIFY(!differing.contains("model.text_config.hidden_size"));  // equal values hidden
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR"))
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-after-stop.png");

    // Inspect: the maps of both runs' checkpoints for one sample, computed off the GUI thread.
    w.showInspect();
    auto* inspect = w.inspectView();
    inspect->setSample(1, 0);
    inspect->setCheckedRuns({1, 2});
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
    if (qEnvironmentVariableIsSet("PIVOT_SCREENSHOT_DIR")) {
      QTest::qWait(300);  // new panels show on the next event-loop turn
      w.grab().save(qEnvironmentVariable("PIVOT_SCREENSHOT_DIR") + "/workbench-inspect.png");
    }
  }

  void closingDuringARunAsksThenStopsCleanly() {
    const QString ws = m_dir.filePath("close");
    MainWindow w(ws);
    w.show();
    LaunchRequest request;
    request.preset = "tiny";
    request.stage = "align";
    request.overrides = {"steps=100000"};
    w.startRun(request);
    QTRY_VERIFY_WITH_TIMEOUT(!w.curves()->runs().empty() && w.curves()->lastStep(w.curves()->runs().begin()->first) > 2, 30000);
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
    QCOMPARE(run.status, std::string("stopped"));
    QCOMPARE(store.checkpoints(run.id).size(), size_t(1));  // resumable from where it stopped
  }
};

QTEST_MAIN(TestWorkbench)
#include "test_workbench.moc"
