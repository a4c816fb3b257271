// The run store: one SQLite database (WAL mode) per workspace, the single source of truth for runs,
// their configs, metrics, checkpoints, evaluations and exported artifacts. One writer per process
// (the trainer, in batched transactions); readers open their own RunStore on the same file.
// Paths inside the workspace are stored relative to it and handed out absolute, so a workspace can
// be moved or copied. Every SQLite result is checked: a damaged database is an error naming it.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/vocabulary.h"

struct sqlite3;

namespace pivot {

// The process that trains a run (see workspace.h for the liveness rules).
struct RunOwner {
  std::string host;
  int64_t pid = 0;
  std::string start;     // "<boot id>/<process start ticks>": a recycled pid is not the owner
  double heartbeat = 0;  // unix seconds of the owner's last sign of life
};

struct RunInfo {
  int64_t id = 0;
  std::string name;
  std::string preset;
  std::string stage;
  RunStatus status = RunStatus::Created;
  std::optional<int64_t> parentId;
  std::string configJson;
  std::string gitCommit;
  std::string message;                  // last status message (e.g. why it failed)
  std::string tags;                     // comma-separated labels
  double createdAt = 0, updatedAt = 0;  // unix seconds
  RunOwner owner;                       // who trains (or last trained) it
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

// One of GRPO's logged completions (TRL's log_completions table): prompt `prompt` of the step's
// sample, its completion `generation` of G, each reward function's value, the weighted reward and
// the group-relative advantage.
struct CompletionRow {
  int64_t step = 0;
  int64_t prompt = 0, generation = 0;
  std::string sample;     // where the prompt came from, e.g. "train:1234" (ShapesWorld split:index)
  std::string question;   // the prompt's question
  std::string reference;  // the answer the accuracy reward checks against
  std::string completion;
  std::string rewardsJson;  // {"accuracy": 1, "format": 1, ...}
  double reward = 0, advantage = 0;
};

// A study (`pivot experiment`): its spec, status, report and every run it trained or reused (a
// run reused by several experiments belongs to each).
struct ExperimentInfo {
  int64_t id = 0;
  std::string name;  // defaults to "experiment-<id>"
  std::string preset;
  RunStatus status = RunStatus::Created;
  std::string specJson;
  std::string message;                  // last status message
  std::string reportPath;               // its report folder once written, else empty
  double createdAt = 0, updatedAt = 0;  // unix seconds
  RunOwner owner;                       // the `pivot experiment` process
  std::vector<int64_t> runIds;          // ascending
};

struct ArtifactInfo {
  std::string kind;  // e.g. "export", "report"
  std::string path;
  double createdAt = 0;
};

class RunStore {
 public:
  static constexpr int kSchemaVersion = 5;
  enum class Access { ReadWrite, ReadOnly };

  // ReadWrite creates or migrates; ReadOnly never writes (a read-only workspace can be listed).
  // Throws naming the file.
  explicit RunStore(const std::string& path, Access access = Access::ReadWrite);
  ~RunStore();
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;

  int schemaVersion() const;
  const std::string& path() const { return m_path; }
  const std::string& workspaceRoot() const { return m_root; }  // absolute folder of the file

  int64_t createRun(const RunInfo& info);  // returns the new id; name defaults to "<stage>-<id>"
  void setStatus(int64_t runId, RunStatus status, const std::string& message = "");
  void rename(int64_t runId, const std::string& name);
  void setTags(int64_t runId, const std::string& tags);
  void deleteRun(int64_t runId);  // rows only; deleteRunWithFiles (workspace.h) removes the folder
  void claimRun(int64_t runId, const RunOwner& owner);  // records the training process
  void heartbeat(int64_t runId);                        // the owner is alive now

  // One transaction for the whole batch. A point for an existing (run, key, step) replaces it,
  // so a resumed run that repeats steps keeps one value per step.
  void appendMetrics(int64_t runId, const std::vector<MetricPoint>& points);
  void deleteMetricsAfter(int64_t runId, int64_t step);
  void addCheckpoint(int64_t runId, int64_t step, const std::string& path);
  void deleteCheckpoint(int64_t runId, int64_t step);  // the row; the caller removes the folder
  void addEvaluation(int64_t runId, const std::vector<EvaluationRow>& rows);
  void addCompletions(int64_t runId, const std::vector<CompletionRow>& rows);  // one transaction
  void addArtifact(int64_t runId, const std::string& kind, const std::string& path);

  int64_t createExperiment(const ExperimentInfo& info);  // returns the new id
  void setExperimentStatus(int64_t experimentId, RunStatus status, const std::string& message = "");
  void claimExperiment(int64_t experimentId, const RunOwner& owner);
  void setExperimentReport(int64_t experimentId, const std::string& path);
  void addExperimentRun(int64_t experimentId, int64_t runId);  // once; again is a no-op
  std::vector<ExperimentInfo> experiments() const;             // oldest first
  std::optional<ExperimentInfo> experiment(int64_t experimentId) const;

  std::vector<RunInfo> runs() const;
  std::optional<RunInfo> run(int64_t runId) const;
  RunInfo findRun(const std::string& idOrName) const;  // throws "no run 'X' in <file>"
  std::vector<MetricPoint> metrics(int64_t runId, const std::string& key = "") const;
  std::vector<std::string> metricKeys(int64_t runId) const;
  std::vector<MetricPoint> metricsAfter(int64_t runId,
                                        int64_t step) const;  // all keys, step > given
  std::optional<MetricPoint> lastMetric(int64_t runId, const std::string& key) const;
  std::vector<CheckpointInfo> checkpoints(int64_t runId) const;
  std::vector<EvaluationRow> evaluations(int64_t runId) const;
  std::vector<int64_t> completionSteps(int64_t runId) const;  // steps with logged completions
  std::vector<CompletionRow> completions(int64_t runId, int64_t step) const;
  std::vector<ArtifactInfo> artifacts(int64_t runId) const;  // oldest first

  // SQLite's integrity and foreign-key checks: empty when the database is sound, else one line
  // per problem found.
  std::vector<std::string> integrityProblems() const;
  // The first damage `PRAGMA quick_check` finds, or "" (a cheaper pass than integrity_check, for
  // commands about to write: damage SQLite does not report on reads would take new rows with it).
  std::string firstDamage() const;

  // A stored path: relative to the workspace when inside it, absolute otherwise; and back.
  std::string toStored(const std::string& path) const;
  std::string fromStored(const std::string& stored) const;

 private:
  void open(Access access, bool immutable);
  void exec(const std::string& sql) const;
  void writeStatus(const char* table, int64_t id, RunStatus status, const std::string& message);
  void writeOwner(const char* table, int64_t id, const RunOwner& owner);
  void migrate();
  void useWriteAheadLog();
  void relativisePaths();     // schema 2 -> 3: paths as given become workspace-relative
  void dropExperimentTags();  // schema 4 -> 5: members' "exp-<id>" tags became experiment_runs

  struct Closer {
    void operator()(sqlite3* db) const;
  };
  std::unique_ptr<sqlite3, Closer> m_db;
  std::string m_path, m_root;
  bool m_readOnly = false;
};

double unixNow();

}  // namespace pivot
