#include "background_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <QProcess>

namespace pivot {

void lowerThisThreadsPriority() {
  // On Linux a nice value belongs to a thread: PRIO_PROCESS with a thread id sets that thread's.
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  if (::getpriority(PRIO_PROCESS, tid) < kBackgroundNice)
    ::setpriority(PRIO_PROCESS, tid, kBackgroundNice);  // best effort: a failure changes nothing
}

void lowerChildPriority(QProcess& process) {
  process.setChildProcessModifier([] {
    if (::getpriority(PRIO_PROCESS, 0) < kBackgroundNice)
      ::setpriority(PRIO_PROCESS, 0, kBackgroundNice);  // in the child, before exec
  });
}

}  // namespace pivot
