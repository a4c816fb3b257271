#include "child_exit.h"

#include <QStringList>
#include <csignal>

namespace pivot {

ChildExit childExit(int code, QProcess::ExitStatus status, const QString& stderrTail,
                    bool stopRequested) {
  ChildExit e;
  e.ok = status == QProcess::NormalExit && code == 0;
  if (e.ok) return e;
  const bool onSignal =
      status == QProcess::NormalExit && (code == 128 + SIGTERM || code == 128 + SIGINT);
  e.stopped = onSignal || stopRequested;
  for (const auto& line : stderrTail.split('\n', Qt::SkipEmptyParts))
    if (line.startsWith("pivot: ")) e.error = line.mid(7);  // the command's one-line error
  if (e.error.isEmpty())
    e.error = status == QProcess::CrashExit ? QString("crashed (no error line)")
                                            : QString("exit code %1").arg(code);
  return e;
}

}  // namespace pivot
