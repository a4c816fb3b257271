// SIGINT and SIGTERM as the window's Stop: the first asks the run to stop within one step with a
// checkpoint (status "stopped", resumable); a second one exits at once.
#pragma once
#include <atomic>

namespace pivot::cli {

// Installs the handlers (once) and returns the flag the trainer polls.
const std::atomic<bool>& installStopSignals();

// The signal that asked to stop (SIGINT or SIGTERM), 0 when none did.
int stopSignal();

// The exit code after a requested stop: 128 + the signal, as a shell reports a killed command.
inline int stoppedExitCode() { return 128 + stopSignal(); }

}  // namespace pivot::cli
