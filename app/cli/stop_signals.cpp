#include "stop_signals.h"

#include <signal.h>
#include <unistd.h>

namespace pivot::cli {
namespace {

std::atomic<bool> g_stop{false};
volatile sig_atomic_t g_signal = 0;

void onSignal(int sig) {
  if (g_signal != 0) _exit(128 + sig);  // the second signal: now
  g_signal = sig;
  g_stop.store(true);
  static const char message[] =
      "\npivot: stopping after the current step and keeping a checkpoint (signal again to quit at "
      "once)\n";
  const ssize_t ignored = write(STDERR_FILENO, message, sizeof message - 1);
  (void)ignored;
}

}  // namespace

const std::atomic<bool>& installStopSignals() {
  static const bool installed = [] {
    struct sigaction action = {};
    action.sa_handler = onSignal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    return true;
  }();
  (void)installed;
  return g_stop;
}

int stopSignal() { return g_signal; }

}  // namespace pivot::cli
