// The workbench window: launch panel (left), live curves (centre), runs browser (bottom), status
// bar (step, samples/s, ETA, device). Composition root of the widgets and the training worker.
#pragma once
#include <QLabel>
#include <QMainWindow>
#include <QProcess>
#include <QTimer>
#include <memory>
#include <set>

#include "completions_view.h"
#include "curve_grid.h"
#include "encoders_view.h"
#include "experiment_process.h"
#include "explain_worker.h"
#include "inspect_view.h"
#include "launch_panel.h"
#include "runs_browser.h"
#include "store_poller.h"
#include "train_process.h"
#include "training_worker.h"

namespace pivot {

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(const QString& workspace, QWidget* parent = nullptr);
  ~MainWindow() override;

  void startRun(const LaunchRequest& request);
  // Runs `pivot experiment` (the sibling executable) as a child process; its runs appear in the
  // browser as the run store fills, its report in the Encoders view when it is done.
  void startExperiment(const ExperimentRequest& request);
  bool isExperimentRunning() const { return m_experiment.isRunning(); }
  void resumeRun(int64_t runId);
  bool isTraining() const { return m_training; }
  QString stepText() const;  // the status bar's run and step
  QString etaText() const { return m_etaLabel->text(); }
  void pollNow();  // ask the run store for news at once

  CurveGrid* curves() const { return m_curves; }
  LaunchPanel* launchPanel() const { return m_launch; }
  RunsBrowser* runsBrowser() const { return m_browser; }
  InspectView* inspectView() const { return m_inspect; }
  EncodersView* encodersView() const { return m_encoders; }
  CompletionsView* completionsView() const { return m_completions; }
  void showEncoders();
  void showInspect();
  void showCompletions();
  QString shortcutsText() const;  // Help > Keyboard shortcuts: each action and its keys
  const QString& workspace() const { return m_workspace; }

 Q_SIGNALS:
  void jobEnded(bool ok, const QString& message);
  // Before each stage of a chain that Start runs: its place, and the run reused instead of
  // training it (0: it trains).
  void chainStageStarted(int index, int total, const QString& stage, qint64 reusedRun);
  void experimentEnded(bool ok, const QString& message);

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
  // The constructor's parts: widgets, docks, and the connections of each job.
  void buildViews();
  void buildDocks();
  void buildMenus();  // File, Run, View, Help: every button's action with a shortcut
  void connectTraining();
  void connectExperiment();
  void connectRunsBrowser();
  void drainLive();
  void applyPoll(const StorePoll& poll);
  void onJobEnded(bool ok, const QString& message);
  // A data-parallel run: `pivot train --nproc N` as a child process, watched through the store.
  void startProcessRun(const LaunchRequest& request);
  void connectTrainProcess();
  QString pivotCommand() const;  // beside this program, or the build tree's
  void deleteRuns(const QList<int64_t>& ids);
  void runStoreAction(const std::function<void(RunStore&)>& action);
  void saveSettings();
  void restoreSettings();
  QStringList discoverPresets() const;

  QString m_workspace;
  LiveBuffer m_live;
  std::unique_ptr<TrainingThread> m_thread;
  std::unique_ptr<ExplainThread> m_explainThread;
  InspectView* m_inspect = nullptr;
  EncodersView* m_encoders = nullptr;
  CompletionsView* m_completions = nullptr;
  ExperimentProcess m_experiment;  // `pivot experiment --progress jsonl`
  TrainProcess m_trainProcess;     // `pivot train --nproc N --progress jsonl` (data parallel)
  QString m_workerStage;           // the stage the in-process worker trains now
  QString m_processPlace;          // "stage 2 of 3 · " of the child's chain
  class QTabWidget* m_tabs = nullptr;
  CurveGrid* m_curves = nullptr;
  LaunchPanel* m_launch = nullptr;
  RunsModel* m_runs = nullptr;
  RunsBrowser* m_browser = nullptr;
  QLabel* m_stepLabel = nullptr;
  QLabel* m_speedLabel = nullptr;
  QLabel* m_etaLabel = nullptr;
  QLabel* m_deviceLabel = nullptr;
  QTimer m_drainTimer;
  std::unique_ptr<StorePoller> m_poller;
  bool m_training = false;
  bool m_closing = false;
  int64_t m_activeRun = 0;
  std::set<int64_t> m_shownRuns;  // runs whose curves are in the grid
  std::map<int64_t, double> m_batchSizes;
};

}  // namespace pivot
