// Where per-step metrics go. The trainer reports to a sink; the run store, a progress line and the
// GUI's buffer are sinks. The null sink drops everything.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pivot {

using Scalars =
    std::vector<std::pair<std::string, double>>;  // TRL names: loss, rewards/margins, ...

class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void onRunStarted(int64_t runId, const std::string& name, int64_t batchSize,
                            const std::string& device) {
    (void)runId, (void)name, (void)batchSize, (void)device;
  }
  virtual void onStep(int64_t step, int64_t totalSteps, const Scalars& scalars) = 0;
  virtual void onMessage(const std::string& message) { (void)message; }
};

class NullSink final : public MetricSink {
 public:
  void onStep(int64_t, int64_t, const Scalars&) override {}
};

// An elapsed time or ETA as h:mm:ss, as the command's progress lines and the window's status bar
// show it (negative counts as zero).
inline std::string formatDuration(double seconds) {
  const int s = seconds > 0 ? static_cast<int>(seconds) : 0;
  const auto twoDigits = [](int v) { return std::string(v < 10 ? "0" : "") + std::to_string(v); };
  return std::to_string(s / 3600) + ":" + twoDigits((s / 60) % 60) + ":" + twoDigits(s % 60);
}

}  // namespace pivot
