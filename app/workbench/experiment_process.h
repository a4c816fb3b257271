// `pivot experiment --progress jsonl` as a child process of the window: its machine-readable
// progress (one JSON object a line, app/cli/experiment.cpp) becomes signals; the human text is
// never scraped. Stop sends SIGTERM, which the command turns into a stop with a checkpoint (exit
// code 143); running the same experiment again resumes it.
#pragma once
#include <map>
#include <QObject>
#include <QProcess>
#include <QString>
#include <optional>

namespace pivot {

class ExperimentProcess : public QObject {
  Q_OBJECT
 public:
  // One line of the command's progress.
  struct Event {
    enum class Kind { Stage, Step, Message, Done } kind = Kind::Message;
    int index = 0, total = 0;  // stage: k of N; step: step of total
    QString what;              // the stage's description
    bool reused = false;       // stage: a finished identical run was found
    double loss = 0;           // step
    QString text;              // message; done: the report's path
  };
  // nullopt for a line that is not a progress event (never thrown away silently: see lastLines).
  static std::optional<Event> parseLine(const QByteArray& line);

  explicit ExperimentProcess(QObject* parent = nullptr);
  ~ExperimentProcess() override;  // stops a running experiment

  void start(const QString& program, const QStringList& arguments);  // adds --progress jsonl
  void stop();         // SIGTERM: the stage in progress stops with a checkpoint
  void stopAndWait();  // stop, then wait for the checkpoint (a kill after 10 s)
  bool isRunning() const { return m_process.state() != QProcess::NotRunning; }

 Q_SIGNALS:
  void stageStarted(int index, int total, const QString& what, bool reused);
  void progressed(const QString& text);  // a step or a message, for a status line
  // ok: finished with its report; stopped: by stop() (resumable); otherwise message says why.
  void ended(bool ok, bool stopped, const QString& message, const QString& report);

 private:
  void readEvents();
  QProcess m_process;
  QByteArray m_pending;  // a partial line
  QString m_report, m_errors;
  bool m_stopRequested = false;  // stop() sent SIGTERM
  // The stages training now (two side by side by default) and each one's last step, so the status
  // line shows them all instead of whichever reported last.
  std::map<QString, QString> m_training;
};

}  // namespace pivot
