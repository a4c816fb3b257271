#include "main_window.h"

#include "background_priority.h"

#include <QApplication>
#include <QCloseEvent>
#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QFileInfo>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QStatusBar>
#include <QScrollArea>
#include <QVBoxLayout>
#include <QTabWidget>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "training/trainer.h"

namespace pivot {
namespace {

constexpr int kDrainIntervalMs = 40;  // live curves: at most 25 updates a second

// Where a chain is, for the status bar: "stage 1 of 2: pretrain", and for a stage whose identical
// finished run is reused, " · reused run 4 (an identical pretrain finished)".
QString chainStageText(int index, int total, const QString& stage, qint64 reusedRun) {
  QString text = QString("stage %1 of %2: %3").arg(index).arg(total).arg(stage);
  if (reusedRun)
    text += QString(" · reused run %1 (an identical %2 finished)").arg(reusedRun).arg(stage);
  return text;
}

double batchSizeOf(const RunInfo& info) {
  try {
    return nlohmann::json::parse(info.configJson).value("batch_size", 1.0);
  } catch (...) {
    return 1.0;
  }
}

}  // namespace

MainWindow::MainWindow(const QString& workspace, QWidget* parent)
    : QMainWindow(parent), m_workspace(workspace) {
  setWindowTitle(QString("PIVOT Workbench — %1").arg(QDir::toNativeSeparators(workspace)));
  QDir().mkpath(workspace);
  qRegisterMetaType<pivot::ExplainJob>();
  qRegisterMetaType<pivot::ExplainOutcome>();
  buildViews();
  buildDocks();
  buildMenus();
  connectTraining();
  connectExperiment();
  connectRunsBrowser();

  // The curves of the runs shown, except the one this process trains (its points come live).
  m_poller = std::make_unique<StorePoller>(storePath(m_workspace.toStdString()), [this] {
    std::map<int64_t, int64_t> wanted;
    for (auto id : m_shownRuns)
      if (id != m_activeRun) wanted[id] = m_curves->lastStep(id);
    return wanted;
  });
  connect(m_poller.get(), &StorePoller::polled, this, &MainWindow::applyPoll);
  m_drainTimer.setInterval(kDrainIntervalMs);
  connect(&m_drainTimer, &QTimer::timeout, this, &MainWindow::drainLive);
  m_drainTimer.start();

  m_launch->setPresets(discoverPresets());
  restoreSettings();
  pollNow();
}

// The central tabs: curves, Inspect (maps computed on the explain thread), Encoders, Completions.
void MainWindow::buildViews() {
  m_runs = new RunsModel(this);  // the one model every view of runs looks at
  m_curves = new CurveGrid;
  m_inspect = new InspectView(m_runs);
  m_tabs = new QTabWidget;
  m_tabs->addTab(m_curves, "Curves");
  m_tabs->addTab(m_inspect, "Inspect");
  m_encoders = new EncodersView;
  m_tabs->addTab(m_encoders, "Encoders");
  m_completions = new CompletionsView(m_runs);
  m_completions->setStorePath(QString::fromStdString(storePath(m_workspace.toStdString())));
  m_tabs->addTab(m_completions, "Completions");
  // A GRPO prompt opens in Inspect: where that run's encoder looks on the very sample.
  connect(m_completions, &CompletionsView::inspectRequested, this,
          [this](qint64 runId, int split, qint64 index) {
            m_inspect->setCheckedRuns({runId});
            m_inspect->setSample(split, index);
            showInspect();
          });
  connect(
      m_completions, &CompletionsView::photoInspectRequested, this,
      [this](qint64 runId, const QString& image, const QString& question, const QString& answer) {
        m_inspect->setCheckedRuns({runId});
        m_inspect->setPhoto(image, question, answer);
        showInspect();
      });
  setCentralWidget(m_tabs);
  m_explainThread = std::make_unique<ExplainThread>();
  connect(m_inspect, &InspectView::explainRequested, m_explainThread->worker(), &ExplainWorker::run,
          Qt::QueuedConnection);
  connect(m_explainThread->worker(), &ExplainWorker::finished, m_inspect, &InspectView::showOutcome,
          Qt::QueuedConnection);
}

// The launch panel (scrolling), the runs browser and the status bar.
void MainWindow::buildDocks() {
  m_launch = new LaunchPanel;
  m_launch->setRunsModel(m_runs);
  auto* launchDock = new QDockWidget("Launch", this);
  launchDock->setObjectName("launchDock");
  auto* launchScroll = new QScrollArea;  // GRPO's settings make the form taller than a laptop
  launchScroll->setWidgetResizable(true);
  launchScroll->setFrameShape(QFrame::NoFrame);
  launchScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  launchScroll->setWidget(m_launch);
  launchScroll->setMinimumWidth(m_launch->sizeHint().width() + 16);
  // Start and the form's verdict stay in view below the scrolling form, on any screen.
  auto* launchBox = new QWidget;
  auto* launchLayout = new QVBoxLayout(launchBox);
  launchLayout->setContentsMargins(0, 0, 0, 4);
  launchLayout->addWidget(launchScroll, 1);
  launchLayout->addWidget(m_launch->runBar());  // reparented out of the scrolled panel
  m_launch->runBar()->layout()->setContentsMargins(8, 4, 8, 0);
  launchDock->setWidget(launchBox);
  launchDock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable);
  addDockWidget(Qt::LeftDockWidgetArea, launchDock);

  m_browser = new RunsBrowser(m_runs);
  auto* runsDock = new QDockWidget("Runs", this);
  runsDock->setObjectName("runsDock");
  runsDock->setWidget(m_browser);
  runsDock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable);
  addDockWidget(Qt::BottomDockWidgetArea, runsDock);
  // Until the user moves it (restoreSettings), the runs table takes a fifth of the height.
  resizeDocks({runsDock}, {200}, Qt::Vertical);

  m_stepLabel = new QLabel("idle");
  m_speedLabel = new QLabel;
  m_etaLabel = new QLabel;
  m_deviceLabel = new QLabel("device: chosen at start (CUDA when present, else CPU)");
  for (auto* l : {m_stepLabel, m_speedLabel, m_etaLabel}) statusBar()->addWidget(l);
  statusBar()->addPermanentWidget(m_deviceLabel);
}

// The menu bar: what the panels' buttons do, reachable by keyboard. An action on a button does what
// clicking it does (nothing while the button is disabled); the Run menu greys out what cannot run.
void MainWindow::buildMenus() {
  auto* file = menuBar()->addMenu("&File");
  auto* exportFigure = file->addAction("&Export figure…", this, [this] {
    if (m_tabs->currentWidget() == m_inspect) return m_inspect->exportFigureDialog();
    if (m_tabs->currentWidget() == m_encoders) return m_encoders->exportDialog("PDF");
    m_curves->exportGridDialog();  // Curves, and Completions' runs' curves
  });
  exportFigure->setShortcut(QKeySequence("Ctrl+E"));
  exportFigure->setToolTip(
      "The current tab's figure: the curve grid, Inspect's maps, the "
      "Encoders chart");
  file->addSeparator();
  auto* quit = file->addAction("&Quit", this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  auto* run = menuBar()->addMenu("&Run");
  const auto buttonAction = [this, run](const QString& text, QPushButton* button,
                                        const QKeySequence& keys) {
    auto* action = run->addAction(text, button, &QPushButton::click);
    action->setShortcut(keys);
    action->setShortcutContext(Qt::ApplicationShortcut);
    connect(run, &QMenu::aboutToShow, action,
            [action, button] { action->setEnabled(button->isEnabled()); });
  };
  buttonAction("&Start", m_launch->startButton(), QKeySequence("Ctrl+R"));
  buttonAction("&Pause", m_launch->pauseButton(), QKeySequence("Ctrl+P"));
  buttonAction("Res&ume", m_launch->resumeButton(), QKeySequence("Ctrl+Shift+R"));
  buttonAction("S&top (keeps a checkpoint)", m_launch->stopButton(), QKeySequence("Ctrl+."));
  run->addSeparator();
  buttonAction("Run e&xperiment", m_launch->experimentButton(), QKeySequence("Ctrl+Shift+X"));
  buttonAction("Stop experi&ment", m_launch->stopExperimentButton(), QKeySequence());

  auto* view = menuBar()->addMenu("&View");
  int number = 1;
  for (auto* page : {static_cast<QWidget*>(m_curves), static_cast<QWidget*>(m_inspect),
                     static_cast<QWidget*>(m_encoders), static_cast<QWidget*>(m_completions)}) {
    auto* action = view->addAction(m_tabs->tabText(m_tabs->indexOf(page)), this,
                                   [this, page] { m_tabs->setCurrentWidget(page); });
    action->setShortcut(QKeySequence(QString("Ctrl+%1").arg(number++)));
  }
  view->addSeparator();
  auto* next = view->addAction("&Next sample", this, [this] {
    m_inspect->stepSample(+1);
    showInspect();
  });
  next->setShortcut(QKeySequence("Ctrl+]"));
  auto* previous = view->addAction("P&revious sample", this, [this] {
    m_inspect->stepSample(-1);
    showInspect();
  });
  previous->setShortcut(QKeySequence("Ctrl+["));
  auto* find = view->addAction("&Find run…", this, [this] { m_browser->focusFilter(); });
  find->setShortcut(QKeySequence::Find);
  view->addSeparator();
  for (auto* dock : findChildren<QDockWidget*>()) view->addAction(dock->toggleViewAction());

  auto* help = menuBar()->addMenu("&Help");
  help->addAction("&Keyboard shortcuts", this, [this] {
    QMessageBox::information(this, "Keyboard shortcuts", shortcutsText());
  });
  help->addAction("&About PIVOT Workbench", this, [this] {
    QMessageBox::about(
        this, "About PIVOT Workbench",
        "PIVOT Workbench: how SFT and RL post-training (DPO, GRPO, MPO) reshape a multimodal "
        "model's vision encoder, and PIVOT's recipe for stronger encoders. Workspace: " +
            QDir::toNativeSeparators(m_workspace));
  });
}

QString MainWindow::shortcutsText() const {
  QStringList lines;
  for (auto* menu : menuBar()->findChildren<QMenu*>())
    for (auto* action : menu->actions())
      if (!action->shortcut().isEmpty())
        lines << QString("%1\t%2").arg(
            action->shortcut().toString(QKeySequence::NativeText),
            QString(action->text()).remove('&').remove(QString::fromUtf8("…")));
  return lines.join('\n');
}

// Single runs: the in-process worker (live curves through the buffer) and the panel's buttons.
void MainWindow::connectTraining() {
  m_thread = std::make_unique<TrainingThread>(m_workspace, &m_live);
  auto* worker = m_thread->worker();
  connect(worker, &TrainingWorker::runStarted, this,
          [this](qint64 id, const QString& name, double batch) {
            m_activeRun = id;
            m_batchSizes[id] = batch;
            m_shownRuns.insert(id);
            m_curves->appendMetrics(id, name, batch, {});
            m_curves->setRunStage(id, m_workerStage);  // its loss panel from the first point
            statusBar()->showMessage(QString("run %1 (%2) started").arg(id).arg(name), 4000);
            pollNow();
          });
  connect(worker, &TrainingWorker::stageStarted, this,
          [this](int index, int total, const QString& stage, qint64 reusedRun) {
            Q_EMIT chainStageStarted(index, total, stage, reusedRun);
            m_workerStage = stage;
            if (total < 2) return;
            const QString text = chainStageText(index, total, stage, reusedRun);
            m_stepLabel->setText(reusedRun ? text : text + "…");
            if (reusedRun) statusBar()->showMessage(text, 8000);
          });
  connect(worker, &TrainingWorker::runEnded, this,
          [this](qint64 id, const QString& status, const QString& message) {
            drainLive();
            statusBar()->showMessage(QString("run %1 %2: %3").arg(id).arg(status, message), 8000);
            pollNow();
          });
  connect(worker, &TrainingWorker::jobEnded, this, &MainWindow::onJobEnded);

  connect(m_launch, &LaunchPanel::startRequested, this, &MainWindow::startRun);
  connect(m_launch, &LaunchPanel::pauseRequested, this, [this] {
    m_thread->worker()->pauseFlag = true;
    m_launch->setState(LaunchPanel::State::Paused);
    m_stepLabel->setText(m_stepLabel->text() + " (paused)");
  });
  connect(m_launch, &LaunchPanel::resumeRequested, this, [this] {
    if (m_training) {
      m_thread->worker()->pauseFlag = false;
      m_launch->setState(LaunchPanel::State::Running);
      return;
    }
    const auto ids = m_browser->selectedRunIds();  // idle: continue the selected stopped run
    if (ids.size() == 1)
      resumeRun(ids.front());
    else
      statusBar()->showMessage("Select one stopped or failed run to resume", 5000);
  });
  connectTrainProcess();
  connect(m_launch, &LaunchPanel::stopRequested, this, [this] {
    if (m_trainProcess.isRunning()) {
      m_trainProcess.stop();  // SIGTERM reaches every rank: a checkpoint, then exit
      statusBar()->showMessage("stopping after the current step…");
      return;
    }
    m_thread->worker()->pauseFlag = false;
    m_thread->worker()->stopFlag = true;
    statusBar()->showMessage("stopping after the current step…");
  });
}

// `pivot experiment` as a child process, its machine-readable progress in the panel.
void MainWindow::connectExperiment() {
  connect(m_launch, &LaunchPanel::experimentRequested, this, &MainWindow::startExperiment);
  connect(m_launch, &LaunchPanel::stopExperimentRequested, this, [this] {
    m_experiment.stop();  // the stage in progress stops with a checkpoint
    statusBar()->showMessage("stopping the experiment; running it again resumes where it stopped",
                             8000);
  });
  // The experiment's machine-readable progress: stages in the panel, steps in the status line.
  connect(&m_experiment, &ExperimentProcess::stageStarted, this,
          [this](int index, int total, const QString& what, bool reused) {
            m_launch->setExperimentRunning(
                true,
                QString("[%1/%2] %3%4").arg(index).arg(total).arg(what, reused ? ": reused" : ""));
          });
  connect(&m_experiment, &ExperimentProcess::progressed, this,
          [this](const QString& text) { m_stepLabel->setText("experiment: " + text.left(240)); });
  connect(&m_experiment, &ExperimentProcess::ended, this,
          [this](bool ok, bool, const QString& message, const QString& report) {
            const QString shown = ok ? "finished: " + report : message;
            m_launch->setExperimentRunning(false, shown);
            m_stepLabel->setText("experiment " + (ok ? QString("finished") : message));
            pollNow();
            if (ok) showEncoders();
            Q_EMIT experimentEnded(ok, shown);
          });
}

// The runs browser: selection drives the curves; rename, tags, delete and resume act on the store.
void MainWindow::connectRunsBrowser() {
  connect(m_browser, &RunsBrowser::selectionChanged, this, [this](const QList<int64_t>& ids) {
    for (auto it = m_shownRuns.begin(); it != m_shownRuns.end();) {
      if (!ids.contains(*it) && *it != m_activeRun) {
        m_curves->removeRun(*it);
        it = m_shownRuns.erase(it);
      } else {
        ++it;
      }
    }
    for (auto id : ids) m_shownRuns.insert(id);
    pollNow();
  });
  connect(m_browser, &RunsBrowser::renameRequested, this, [this](int64_t id, const QString& name) {
    runStoreAction([&](RunStore& s) { s.rename(id, name.toStdString()); });
  });
  connect(m_browser, &RunsBrowser::tagsRequested, this, [this](int64_t id, const QString& tags) {
    runStoreAction([&](RunStore& s) { s.setTags(id, tags.toStdString()); });
  });
  connect(m_browser, &RunsBrowser::deleteRequested, this, &MainWindow::deleteRuns);
  connect(m_browser, &RunsBrowser::resumeRequested, this, &MainWindow::resumeRun);
  connect(m_browser, &RunsBrowser::experimentActivated, this, [this](int64_t id) {
    m_encoders->showExperiment(id);
    showEncoders();
  });
}

MainWindow::~MainWindow() {
  m_poller.reset();         // waits for a poll in flight
  m_thread.reset();         // stops a run in progress and joins the thread
  m_explainThread.reset();  // finishes the map in progress
}

QString MainWindow::stepText() const { return m_stepLabel->text(); }

void MainWindow::showInspect() { m_tabs->setCurrentWidget(m_inspect); }

void MainWindow::showCompletions() { m_tabs->setCurrentWidget(m_completions); }
void MainWindow::showEncoders() { m_tabs->setCurrentWidget(m_encoders); }

void MainWindow::startExperiment(const ExperimentRequest& request) {
  if (m_training || isExperimentRunning()) {
    statusBar()->showMessage("A run or an experiment is in progress; one at a time", 5000);
    return;
  }
  const QString pivot = pivotCommand();
  if (!QFileInfo::exists(pivot)) {
    m_launch->setExperimentRunning(false,
                                   "cannot find the pivot command beside this program: " + pivot);
    return;
  }
  m_launch->setExperimentRunning(true, "starting…");
  m_browser->showTree();  // the experiment's chain grows there
  m_experiment.start(pivot, QStringList{"--workspace", m_workspace} + request.arguments());
}

QString MainWindow::pivotCommand() const {
  // Installed side by side; in the build tree (tests) the command lives in app/.
  const QString beside = QCoreApplication::applicationDirPath() + "/pivot";
  return QFileInfo::exists(beside) ? beside : QString(PIVOT_BINARY_DIR "/app/pivot");
}

QStringList MainWindow::discoverPresets() const {
  QStringList presets{"tiny", "mini"};
  // The shipped presets live in share/pivot-workbench/presets beside bin/ (installed) or app/ and
  // tests/ (the build tree, app/CMakeLists.txt copies them); the user's own in the workspace.
  const QString shipped =
      QCoreApplication::applicationDirPath() + "/../share/pivot-workbench/presets";
  for (const QString& dir : {QDir::cleanPath(shipped), m_workspace + "/presets"})
    for (const auto& info : QDir(dir).entryInfoList({"*.json"}, QDir::Files, QDir::Name))
      presets << info.absoluteFilePath();
  return presets;
}

void MainWindow::startRun(const LaunchRequest& request) {
  if (m_training) return;
  if (isExperimentRunning()) {
    statusBar()->showMessage("An experiment is running; start single runs when it is done", 5000);
    return;
  }
  if (request.processes > 1) return startProcessRun(request);
  m_training = true;
  m_launch->setState(LaunchPanel::State::Running);
  m_stepLabel->setText("starting " + request.stage + "…");
  auto* worker = m_thread->worker();
  QMetaObject::invokeMethod(
      worker, [worker, request] { worker->start(request); }, Qt::QueuedConnection);
}

void MainWindow::resumeRun(int64_t runId) {
  if (m_training) {
    statusBar()->showMessage("A run is training; stop it before resuming another", 5000);
    return;
  }
  m_training = true;
  m_launch->setState(LaunchPanel::State::Running);
  m_stepLabel->setText(QString("resuming run %1…").arg(runId));
  auto* worker = m_thread->worker();
  QMetaObject::invokeMethod(
      worker, [worker, runId] { worker->resume(runId); }, Qt::QueuedConnection);
}

void MainWindow::startProcessRun(const LaunchRequest& request) {
  m_training = true;
  m_launch->setState(LaunchPanel::State::Running);
  m_stepLabel->setText(
      QString("starting %1 on %2 processes…").arg(request.stage).arg(request.processes));
  m_trainProcess.start(pivotCommand(),
                       QStringList{"--workspace", m_workspace} + request.trainArguments());
}

// The child's events: its runs by id (their curves come from the store), the stage and step.
void MainWindow::connectTrainProcess() {
  connect(&m_trainProcess, &TrainProcess::stageStarted, this,
          [this](int index, int total, const QString& stage, qint64 reusedRun) {
            Q_EMIT chainStageStarted(index, total, stage, reusedRun);
            if (reusedRun)
              statusBar()->showMessage(chainStageText(index, total, stage, reusedRun), 8000);
            m_processPlace = total > 1 ? QString("stage %1 of %2 · ").arg(index).arg(total) : "";
          });
  connect(&m_trainProcess, &TrainProcess::runStarted, this,
          [this](qint64 runId, const QString& name, const QString&) {
            m_shownRuns.insert(runId);
            statusBar()->showMessage(QString("run %1 (%2) started").arg(runId).arg(name), 4000);
            pollNow();
          });
  connect(&m_trainProcess, &TrainProcess::stepped, this,
          [this](qint64 runId, qint64 step, qint64 total, double loss) {
            m_stepLabel->setText(QString("%1run %2 · step %3/%4 · loss %5")
                                     .arg(m_processPlace)
                                     .arg(runId)
                                     .arg(step)
                                     .arg(total)
                                     .arg(loss, 0, 'g', 4));
          });
  connect(&m_trainProcess, &TrainProcess::ended, this,
          [this](bool ok, bool stopped, const QString& message) {
            m_processPlace.clear();
            onJobEnded(ok, ok ? "finished" : stopped ? "stopped: " + message : message);
          });
}

void MainWindow::onJobEnded(bool ok, const QString& message) {
  drainLive();
  m_training = false;
  m_activeRun = 0;
  m_launch->setState(LaunchPanel::State::Idle);
  m_stepLabel->setText(ok ? "finished" : "stopped: " + message);
  m_speedLabel->clear();
  m_etaLabel->clear();
  if (!ok && !message.startsWith("stopped") && !m_closing)
    statusBar()->showMessage("run ended: " + message, 15000);
  pollNow();
  Q_EMIT jobEnded(ok, message);
}

void MainWindow::drainLive() {
  for (auto& [runId, points] : m_live.drain()) {
    QString name = QString("run %1").arg(runId);
    for (const auto& r : m_browser->runs())
      if (r.info.id == runId) name = QString::fromStdString(r.info.name);
    if (auto it = m_curves->runs().find(runId); it != m_curves->runs().end())
      name = it->second.name;
    m_curves->appendMetrics(runId, name, m_batchSizes.count(runId) ? m_batchSizes[runId] : 1.0,
                            points);
  }
  if (!m_training) return;
  const auto s = m_live.status();
  if (s.runId == 0) return;
  const bool paused = m_launch->state() == LaunchPanel::State::Paused;
  // A chain says where in it this stage is, and how long the rest of it takes at this pace.
  const bool chain = s.chainTotal > 1;
  const QString place =
      chain ? QString("stage %1 of %2 · ").arg(s.chainIndex).arg(s.chainTotal) : QString();
  m_stepLabel->setText(QString("%1run %2 · %3 · step %4/%5%6")
                           .arg(place)
                           .arg(s.runId)
                           .arg(s.stage)
                           .arg(s.step)
                           .arg(s.totalSteps)
                           .arg(paused ? " (paused)" : ""));
  m_speedLabel->setText(QString("%1 samples/s").arg(s.samplesPerSecond, 0, 'f', 0));
  QString eta = "ETA " + QString::fromStdString(formatDuration(s.etaSeconds));
  if (chain && s.chainIndex < s.chainTotal)
    eta += " · chain ≈" + QString::fromStdString(formatDuration(s.chainEtaSeconds));
  m_etaLabel->setText(eta);
  m_etaLabel->setToolTip(chain ? "This stage's time left; the chain's assumes the later stages "
                                 "step at this stage's pace"
                               : QString());
  if (!s.device.isEmpty()) m_deviceLabel->setText("device: " + s.device);
}

void MainWindow::pollNow() {
  if (m_poller) m_poller->pollNow();
}

void MainWindow::applyPoll(const StorePoll& poll) {
  if (!poll.error.isEmpty()) {
    statusBar()->showMessage("run store: " + poll.error, 5000);
    return;
  }
  m_runs->setRuns(poll.runs, poll.experiments);
  m_encoders->setExperiments(poll.experiments);
  for (const auto& r : poll.runs) m_batchSizes[r.info.id] = batchSizeOf(r.info);
  for (const auto& [id, points] : poll.newPoints) {
    if (!m_shownRuns.count(id) || id == m_activeRun) continue;
    QString name = QString("run %1").arg(id);
    for (const auto& r : poll.runs)
      if (r.info.id == id) name = QString::fromStdString(r.info.name);
    m_curves->appendMetrics(id, name, m_batchSizes[id], points);
  }
  for (const auto& r : poll.runs)
    m_curves->setRunStage(r.info.id, QString::fromStdString(r.info.stage));
}

void MainWindow::runStoreAction(const std::function<void(RunStore&)>& action) {
  try {
    RunStore store(storePath(m_workspace.toStdString()));
    action(store);
  } catch (const std::exception& e) {
    QMessageBox::warning(this, "Run store", e.what());
  }
  pollNow();
}

void MainWindow::deleteRuns(const QList<int64_t>& ids) {
  for (auto id : ids) {
    if (id == m_activeRun) {
      QMessageBox::warning(this, "Delete runs",
                           QString("Run %1 is training; stop it first.").arg(id));
      return;
    }
  }
  runStoreAction([&](RunStore& s) {
    for (auto id : ids) {
      deleteRunWithFiles(s, id);  // rows and files go together
      m_curves->removeRun(id);
      m_shownRuns.erase(id);
    }
  });
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (isExperimentRunning()) {
    const auto answer = QMessageBox::question(
        this, "Experiment in progress",
        "An experiment is running. Stop it and quit? Running the same experiment again "
        "reuses every finished stage and resumes the one in progress.");
    if (answer != QMessageBox::Yes) {
      event->ignore();
      return;
    }
    m_experiment.stopAndWait();  // the stage in progress keeps a checkpoint
  }
  if (m_training) {
    const auto answer = QMessageBox::question(
        this, "Training in progress",
        "A run is training. Stop it (a checkpoint is kept, it can be resumed) and quit?");
    if (answer != QMessageBox::Yes) {
      event->ignore();
      return;
    }
    m_closing = true;
    m_thread->worker()->pauseFlag = false;
    m_thread->worker()->stopFlag = true;
    while (m_training) QApplication::processEvents(QEventLoop::WaitForMoreEvents, 50);
  }
  saveSettings();
  event->accept();
}

void MainWindow::saveSettings() {
  QSettings s;
  s.setValue("window/geometry", saveGeometry());
  s.setValue("window/state", saveState());
  s.setValue("curves/smoothing", m_curves->smoothing());
  s.setValue("curves/legend", m_curves->legendShown());
  s.setValue("launch/preset", m_launch->presetBox()->currentText());
  s.setValue("launch/stage", m_launch->stageBox()->currentData());
}

void MainWindow::restoreSettings() {
  QSettings s;
  restoreGeometry(s.value("window/geometry").toByteArray());
  restoreState(s.value("window/state").toByteArray());
  m_curves->setSmoothing(s.value("curves/smoothing", 0.6).toDouble());
  m_curves->setLegendShown(s.value("curves/legend", true).toBool());
  if (s.contains("launch/preset"))
    m_launch->selectPreset(s.value("launch/preset").toString(),
                           s.value("launch/stage", "dpo").toString());
}

}  // namespace pivot
