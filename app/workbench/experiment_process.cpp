#include "experiment_process.h"

#include "background_priority.h"
#include "child_exit.h"

#include <QJsonDocument>
#include <QJsonObject>

namespace pivot {

std::optional<ExperimentProcess::Event> ExperimentProcess::parseLine(const QByteArray& line) {
  const auto doc = QJsonDocument::fromJson(line.trimmed());
  if (!doc.isObject()) return std::nullopt;
  const QJsonObject o = doc.object();
  const QString kind = o.value("event").toString();
  Event e;
  if (kind == "stage") {
    e.kind = Event::Kind::Stage;
    e.index = o.value("index").toInt();
    e.total = o.value("total").toInt();
    e.what = o.value("what").toString();
    e.reused = o.value("reused").toBool();
  } else if (kind == "step") {
    e.kind = Event::Kind::Step;
    e.index = o.value("step").toInt();
    e.total = o.value("total").toInt();
    e.what = o.value("what").toString();
    e.loss = o.value("loss").toDouble();
  } else if (kind == "message") {
    e.kind = Event::Kind::Message;
    e.text = o.value("text").toString();
  } else if (kind == "done") {
    e.kind = Event::Kind::Done;
    e.text = o.value("report").toString();
  } else {
    return std::nullopt;
  }
  return e;
}

ExperimentProcess::ExperimentProcess(QObject* parent) : QObject(parent) {
  connect(&m_process, &QProcess::readyReadStandardOutput, this, &ExperimentProcess::readEvents);
  connect(&m_process, &QProcess::readyReadStandardError, this, [this] {
    m_errors = (m_errors + QString::fromUtf8(m_process.readAllStandardError())).right(4000);
  });
  connect(&m_process, &QProcess::finished, this, [this](int code, QProcess::ExitStatus status) {
    readEvents();
    m_errors += QString::fromUtf8(m_process.readAllStandardError());
    const ChildExit e = childExit(code, status, m_errors, m_stopRequested);
    const QString message = e.ok        ? QString("finished")
                            : e.stopped ? QString("stopped; running the same experiment resumes it")
                                        : e.error;
    Q_EMIT ended(e.ok, e.stopped, message, m_report);
  });
}

ExperimentProcess::~ExperimentProcess() {
  blockSignals(true);  // the window that listens is going away
  stopAndWait();       // a later identical experiment resumes the stage in progress
}

void ExperimentProcess::stopAndWait() {
  if (!isRunning()) return;
  stop();
  if (!m_process.waitForFinished(10000)) m_process.kill();
  m_process.waitForFinished(2000);
}

void ExperimentProcess::start(const QString& program, const QStringList& arguments) {
  m_pending.clear();
  m_report.clear();
  m_errors.clear();
  m_stopRequested = false;
  m_training.clear();
  m_process.setProgram(program);
  m_process.setArguments(arguments + QStringList{"--progress", "jsonl"});
  lowerChildPriority(m_process);  // the window's thread first (background_priority.h)
  m_process.start();
}

void ExperimentProcess::stop() {
  if (!isRunning()) return;
  m_stopRequested = true;
  m_process.terminate();  // SIGTERM
}

void ExperimentProcess::readEvents() {
  m_pending += m_process.readAllStandardOutput();
  qsizetype newline;
  while ((newline = m_pending.indexOf('\n')) >= 0) {
    const QByteArray line = m_pending.left(newline);
    m_pending.remove(0, newline + 1);
    const auto event = parseLine(line);
    if (!event) continue;
    switch (event->kind) {
      case Event::Kind::Stage:
        Q_EMIT stageStarted(event->index, event->total, event->what, event->reused);
        break;
      case Event::Kind::Step: {
        if (event->index >= event->total)
          m_training.erase(event->what);  // its last step: done
        else
          m_training[event->what] = QString("step %1/%2, loss %3")
                                        .arg(event->index)
                                        .arg(event->total)
                                        .arg(event->loss, 0, 'g', 4);
        QStringList shown;
        for (const auto& [what, step] : m_training) shown << what + ": " + step;
        if (!shown.isEmpty()) Q_EMIT progressed(shown.join(" · "));
        break;
      }
      case Event::Kind::Message:
        Q_EMIT progressed(event->text);
        break;
      case Event::Kind::Done:
        m_report = event->text;
        break;
    }
  }
}

}  // namespace pivot
