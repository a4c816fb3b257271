#include "train_process.h"

#include "background_priority.h"
#include "child_exit.h"

#include <QJsonDocument>
#include <QJsonObject>

namespace pivot {

TrainProcess::TrainProcess(QObject* parent) : QObject(parent) {
  connect(&m_process, &QProcess::readyReadStandardOutput, this, &TrainProcess::readEvents);
  connect(&m_process, &QProcess::readyReadStandardError, this, [this] {
    m_errors = (m_errors + QString::fromUtf8(m_process.readAllStandardError())).right(4000);
  });
  connect(&m_process, &QProcess::errorOccurred, this, [this](QProcess::ProcessError e) {
    if (e == QProcess::FailedToStart)
      Q_EMIT ended(false, false, "cannot start " + m_process.program());
  });
  connect(&m_process, &QProcess::finished, this, [this](int code, QProcess::ExitStatus status) {
    readEvents();
    m_errors += QString::fromUtf8(m_process.readAllStandardError());
    const ChildExit e = childExit(code, status, m_errors, m_stopRequested);
    m_run = 0;
    Q_EMIT ended(e.ok, e.stopped, e.ok ? QString("finished") : e.error);
  });
}

TrainProcess::~TrainProcess() {
  blockSignals(true);  // the window that listens is going away
  if (!isRunning()) return;
  stop();
  if (!m_process.waitForFinished(30000)) m_process.kill();
  m_process.waitForFinished(2000);
}

void TrainProcess::start(const QString& program, const QStringList& arguments) {
  m_pending.clear();
  m_errors.clear();
  m_stopRequested = false;
  m_run = 0;
  m_process.setProgram(program);
  m_process.setArguments(arguments + QStringList{"--progress", "jsonl"});
  lowerChildPriority(m_process);  // the window's thread first (background_priority.h)
  m_process.start();
}

void TrainProcess::stop() {
  if (!isRunning()) return;
  m_stopRequested = true;
  m_process.terminate();  // SIGTERM reaches every rank
}

bool TrainProcess::handleLine(const QByteArray& line) {
  const auto doc = QJsonDocument::fromJson(line.trimmed());
  if (!doc.isObject()) return false;
  const QJsonObject o = doc.object();
  const QString event = o.value("event").toString();
  const auto integer = [&o](const char* key) { return o.value(key).toInteger(); };
  if (event == "stage") {
    Q_EMIT stageStarted(static_cast<int>(integer("index")), static_cast<int>(integer("total")),
                        o.value("stage").toString(), integer("reused_run"));
  } else if (event == "run") {
    m_run = integer("run");
    Q_EMIT runStarted(m_run, o.value("name").toString(), o.value("stage").toString());
  } else if (event == "step") {
    Q_EMIT stepped(integer("run"), integer("step"), integer("total"), o.value("loss").toDouble());
  } else if (event == "message") {
    Q_EMIT message(o.value("text").toString());
  } else if (event != "end") {
    return false;
  }
  return true;
}

void TrainProcess::readEvents() {
  m_pending += m_process.readAllStandardOutput();
  qsizetype newline;
  while ((newline = m_pending.indexOf('\n')) >= 0) {
    const QByteArray line = m_pending.left(newline);
    m_pending.remove(0, newline + 1);
    handleLine(line);
  }
}

}  // namespace pivot
