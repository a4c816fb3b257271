// The `pivot` command's progress line: rewritten in place with an ETA on a terminal, a line per
// tenth of the run otherwise (logs, CI, the window's experiment launcher).
#pragma once
#include <unistd.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "training/metric_sink.h"

namespace pivot::cli {

// A progress line: rewritten in place with an ETA on a terminal, a line per tenth otherwise.
class ProgressSink final : public MetricSink {
 public:
  explicit ProgressSink(std::string label)
      : m_label(std::move(label)), m_tty(isatty(STDOUT_FILENO)) {}
  void onStep(int64_t step, int64_t total, const Scalars& scalars) override {
    const auto now = std::chrono::steady_clock::now();
    if (!m_started) {
      m_start = now;
      m_startStep = step - 1;
      m_started = true;
    }
    const bool tick = m_tty || step == total || step % std::max<int64_t>(1, total / 10) == 0;
    if (!tick) return;
    const double elapsed = std::chrono::duration<double>(now - m_start).count();
    const double perStep = elapsed / std::max<int64_t>(1, step - m_startStep);
    std::ostringstream line;
    line << m_label << " step " << step << "/" << total;
    for (const auto& [k, v] : scalars)
      if (k == "loss" || k == "rewards/margins" || k == "rewards/accuracies" ||
          k == "throughput/samples_per_s")
        line << "  " << (k == "throughput/samples_per_s" ? "samples/s" : k) << " "
             << std::setprecision(4) << v;
    line << "  ETA " << formatDuration(perStep * static_cast<double>(total - step));
    if (m_tty)
      std::cout << "\r\033[K" << line.str() << (step == total ? "\n" : "") << std::flush;
    else
      std::cout << line.str() << std::endl;
  }
  void onMessage(const std::string& message) override {
    if (m_tty && m_started) std::cout << "\n";
    std::cout << message << std::endl;
  }

 private:
  std::string m_label;
  bool m_tty;
  bool m_started = false;
  int64_t m_startStep = 0;
  std::chrono::steady_clock::time_point m_start;
};

// --progress jsonl (what the window reads): one JSON object a line on stdout.
inline void emitJson(const nlohmann::json& event) { std::cout << event.dump() << std::endl; }

// --progress jsonl's step events, at most twice a second and a stage's last step, each carrying
// `fields` (whose steps they are: the experiment's stage, or the run).
class JsonStepSink : public MetricSink {
 public:
  explicit JsonStepSink(nlohmann::json fields) : m_fields(std::move(fields)) {}
  void onStep(int64_t step, int64_t total, const Scalars& scalars) override {
    const auto now = std::chrono::steady_clock::now();
    if (step != total && now - m_last < std::chrono::milliseconds(500)) return;
    m_last = now;
    nlohmann::json event = m_fields;
    event["event"] = "step";
    event["step"] = step;
    event["total"] = total;
    for (const auto& [k, v] : scalars)
      if (k == "loss") event["loss"] = v;
    emitJson(event);
  }

 protected:
  nlohmann::json m_fields;

 private:
  std::chrono::steady_clock::time_point m_last{};
};

}  // namespace pivot::cli
