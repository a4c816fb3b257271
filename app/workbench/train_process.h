// `pivot train --nproc N --progress jsonl` as a child process of the window (a data-parallel run):
// its machine-readable progress (one JSON object a line, app/cli/train.cpp) becomes signals, so the
// window knows the child's runs by their ids instead of guessing from the store. Stop sends
// SIGTERM, which every rank turns into a stop with a checkpoint (exit code 143).
#pragma once
#include <QObject>
#include <QProcess>
#include <QString>

namespace pivot {

class TrainProcess : public QObject {
  Q_OBJECT
 public:
  explicit TrainProcess(QObject* parent = nullptr);
  ~TrainProcess() override;  // stops a running child (a checkpoint), kills it after 30 s

  void start(const QString& program, const QStringList& arguments);  // adds --progress jsonl
  void stop();  // SIGTERM: the stage in progress stops with a checkpoint
  bool isRunning() const { return m_process.state() != QProcess::NotRunning; }
  qint64 currentRun() const { return m_run; }  // the run training now (0: none yet)

  // One line of the child's progress; false for a line that is not an event.
  bool handleLine(const QByteArray& line);

 Q_SIGNALS:
  void stageStarted(int index, int total, const QString& stage, qint64 reusedRun);
  void runStarted(qint64 runId, const QString& name, const QString& stage);
  void stepped(qint64 runId, qint64 step, qint64 total, double loss);
  void message(const QString& text);
  // ok: every stage finished; stopped: by stop() (resumable); message: the child's one-line error.
  void ended(bool ok, bool stopped, const QString& message);

 private:
  void readEvents();
  QProcess m_process;
  QByteArray m_pending;  // a partial line
  QString m_errors;
  bool m_stopRequested = false;  // stop() sent SIGTERM
  qint64 m_run = 0;
};

}  // namespace pivot
