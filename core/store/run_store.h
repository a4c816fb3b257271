// The run store: one SQLite database (WAL mode) per workspace, the single source of truth for runs,
// their configs, metrics, checkpoints, evaluations and exported artifacts. One writer per process
// (the trainer, in batched transactions); readers open their own RunStore on the same file.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace pivot {

struct RunInfo {
  int64_t id = 0;
  std::string name;
  std::string preset;
  std::string stage;
  std::string status = "created";  // created | running | paused | stopped | finished | failed
  std::optional<int64_t> parentId;
  std::string configJson;
  std::string gitCommit;
  std::string message;  // last status message (e.g. why it failed)
  std::string tags;     // comma-separated labels
  double createdAt = 0, updatedAt = 0;  // unix seconds
};

struct MetricPoint {
  int64_t step = 0;
  std::string key;
  double value = 0;
  double wallTime = 0;  // unix seconds
};

struct CheckpointInfo {
  int64_t step = 0;
  std::string path;
  double createdAt = 0;
};

struct EvaluationRow {
  int64_t step = 0;
  std::string name;  // e.g. "vqa/val"
  std::string key;   // e.g. "accuracy/colour"
  double value = 0;
};

struct ArtifactInfo {
  std::string kind;  // e.g. "export", "report"
  std::string path;
  double createdAt = 0;
};

class RunStore {
 public:
  static constexpr int kSchemaVersion = 2;

  explicit RunStore(const std::string& path);  // creates or migrates; throws naming the file
  ~RunStore();
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;

  int schemaVersion() const;
  const std::string& path() const { return m_path; }

  int64_t createRun(const RunInfo& info);  // returns the new id; name defaults to "<stage>-<id>"
  void setStatus(int64_t runId, const std::string& status, const std::string& message = "");
  void rename(int64_t runId, const std::string& name);
  void setTags(int64_t runId, const std::string& tags);
  void deleteRun(int64_t runId);  // rows only; the caller removes files

  // One transaction for the whole batch. A point for an existing (run, key, step) replaces it,
  // so a resumed run that repeats steps keeps one value per step.
  void appendMetrics(int64_t runId, const std::vector<MetricPoint>& points);
  void deleteMetricsAfter(int64_t runId, int64_t step);
  void addCheckpoint(int64_t runId, int64_t step, const std::string& path);
  void addEvaluation(int64_t runId, const std::vector<EvaluationRow>& rows);
  void addArtifact(int64_t runId, const std::string& kind, const std::string& path);

  std::vector<RunInfo> runs() const;
  std::optional<RunInfo> run(int64_t runId) const;
  RunInfo findRun(const std::string& idOrName) const;  // throws "no run 'X' in <file>"
  std::vector<MetricPoint> metrics(int64_t runId, const std::string& key = "") const;
  std::vector<std::string> metricKeys(int64_t runId) const;
  std::vector<MetricPoint> metricsAfter(int64_t runId, int64_t step) const;  // all keys, step > given
  std::optional<MetricPoint> lastMetric(int64_t runId, const std::string& key) const;
  std::vector<CheckpointInfo> checkpoints(int64_t runId) const;
  std::vector<EvaluationRow> evaluations(int64_t runId) const;
  std::vector<ArtifactInfo> artifacts(int64_t runId) const;  // oldest first

 private:
  void exec(const std::string& sql) const;
  void migrate();

  struct Closer {
    void operator()(sqlite3* db) const;
  };
  std::unique_ptr<sqlite3, Closer> m_db;
  std::string m_path;
};

double unixNow();

}  // namespace pivot
