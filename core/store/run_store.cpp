#include "store/run_store.h"

#include <sqlite3.h>

#include <chrono>
#include <stdexcept>

namespace pivot {
namespace {

// Each migration takes the schema from version i to i + 1. Never edit one that has shipped.
const char* const kMigrations[] = {
    R"sql(
    CREATE TABLE runs(
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      preset TEXT NOT NULL DEFAULT '',
      stage TEXT NOT NULL DEFAULT '',
      status TEXT NOT NULL DEFAULT 'created',
      parent_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
      config_json TEXT NOT NULL DEFAULT '{}',
      git_commit TEXT NOT NULL DEFAULT '',
      message TEXT NOT NULL DEFAULT '',
      created_at REAL NOT NULL,
      updated_at REAL NOT NULL);
    CREATE TABLE metrics(
      run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      key TEXT NOT NULL,
      step INTEGER NOT NULL,
      value REAL NOT NULL,
      wall_time REAL NOT NULL,
      PRIMARY KEY(run_id, key, step)) WITHOUT ROWID;
    CREATE TABLE checkpoints(
      run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      step INTEGER NOT NULL,
      path TEXT NOT NULL,
      created_at REAL NOT NULL,
      PRIMARY KEY(run_id, step));
    CREATE TABLE evaluations(
      id INTEGER PRIMARY KEY,
      run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      step INTEGER NOT NULL,
      name TEXT NOT NULL,
      key TEXT NOT NULL,
      value REAL NOT NULL,
      created_at REAL NOT NULL);
    CREATE TABLE artifacts(
      id INTEGER PRIMARY KEY,
      run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
      kind TEXT NOT NULL,
      path TEXT NOT NULL,
      created_at REAL NOT NULL);
    )sql",
    // 1 -> 2: free-form tags per run (the runs browser's "tag" action).
    "ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '';",
};

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

Stmt prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK)
    throw std::runtime_error(std::string("run store: ") + sqlite3_errmsg(db) + " in: " + sql);
  return Stmt(raw);
}

void step(sqlite3* db, sqlite3_stmt* s) {
  const int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    throw std::runtime_error(std::string("run store: ") + sqlite3_errmsg(db));
}

void bindText(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

std::string columnText(sqlite3_stmt* s, int i) {
  const auto* t = sqlite3_column_text(s, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

RunInfo readRun(sqlite3_stmt* s) {
  RunInfo r;
  r.id = sqlite3_column_int64(s, 0);
  r.name = columnText(s, 1);
  r.preset = columnText(s, 2);
  r.stage = columnText(s, 3);
  r.status = columnText(s, 4);
  if (sqlite3_column_type(s, 5) != SQLITE_NULL) r.parentId = sqlite3_column_int64(s, 5);
  r.configJson = columnText(s, 6);
  r.gitCommit = columnText(s, 7);
  r.message = columnText(s, 8);
  r.createdAt = sqlite3_column_double(s, 9);
  r.updatedAt = sqlite3_column_double(s, 10);
  r.tags = columnText(s, 11);
  return r;
}

constexpr const char* kRunColumns =
    "SELECT id, name, preset, stage, status, parent_id, config_json, git_commit, message, "
    "created_at, updated_at, tags FROM runs";

}  // namespace

double unixNow() {
  using namespace std::chrono;
  return duration_cast<duration<double>>(system_clock::now().time_since_epoch()).count();
}

void RunStore::Closer::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

RunStore::RunStore(const std::string& path) : m_path(path) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                 nullptr);
  m_db.reset(raw);
  if (rc != SQLITE_OK)
    throw std::runtime_error(path + ": cannot open run store: " + (raw ? sqlite3_errmsg(raw) : "out of memory"));
  sqlite3_busy_timeout(m_db.get(), 10000);  // readers and the writer wait on each other briefly
  try {
    exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
    migrate();
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

RunStore::~RunStore() = default;

void RunStore::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(m_db.get(), sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error("run store: " + msg);
  }
}

int RunStore::schemaVersion() const {
  auto s = prepare(m_db.get(), "PRAGMA user_version");
  step(m_db.get(), s.get());
  return sqlite3_column_int(s.get(), 0);
}

void RunStore::migrate() {
  const int have = schemaVersion();
  if (have > kSchemaVersion)
    throw std::runtime_error("schema version " + std::to_string(have) +
                             " is newer than this program understands (" +
                             std::to_string(kSchemaVersion) + ")");
  for (int v = have; v < kSchemaVersion; ++v) {
    exec("BEGIN IMMEDIATE");
    try {
      exec(kMigrations[v]);
      exec("PRAGMA user_version = " + std::to_string(v + 1));
      exec("COMMIT");
    } catch (...) {
      exec("ROLLBACK");
      throw;
    }
  }
}

int64_t RunStore::createRun(const RunInfo& info) {
  auto s = prepare(m_db.get(),
                   "INSERT INTO runs(name, preset, stage, status, parent_id, config_json, git_commit, "
                   "message, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?)");
  const double now = unixNow();
  bindText(s.get(), 1, info.name);
  bindText(s.get(), 2, info.preset);
  bindText(s.get(), 3, info.stage);
  bindText(s.get(), 4, info.status);
  if (info.parentId) sqlite3_bind_int64(s.get(), 5, *info.parentId);
  else sqlite3_bind_null(s.get(), 5);
  bindText(s.get(), 6, info.configJson.empty() ? "{}" : info.configJson);
  bindText(s.get(), 7, info.gitCommit);
  bindText(s.get(), 8, info.message);
  sqlite3_bind_double(s.get(), 9, now);
  sqlite3_bind_double(s.get(), 10, now);
  step(m_db.get(), s.get());
  const int64_t id = sqlite3_last_insert_rowid(m_db.get());
  if (info.name.empty()) rename(id, (info.stage.empty() ? "run" : info.stage) + "-" + std::to_string(id));
  return id;
}

void RunStore::setStatus(int64_t runId, const std::string& status, const std::string& message) {
  auto s = prepare(m_db.get(), "UPDATE runs SET status = ?, message = ?, updated_at = ? WHERE id = ?");
  bindText(s.get(), 1, status);
  bindText(s.get(), 2, message);
  sqlite3_bind_double(s.get(), 3, unixNow());
  sqlite3_bind_int64(s.get(), 4, runId);
  step(m_db.get(), s.get());
}

void RunStore::rename(int64_t runId, const std::string& name) {
  auto s = prepare(m_db.get(), "UPDATE runs SET name = ? WHERE id = ?");
  bindText(s.get(), 1, name);
  sqlite3_bind_int64(s.get(), 2, runId);
  step(m_db.get(), s.get());
}

void RunStore::setTags(int64_t runId, const std::string& tags) {
  auto s = prepare(m_db.get(), "UPDATE runs SET tags = ? WHERE id = ?");
  bindText(s.get(), 1, tags);
  sqlite3_bind_int64(s.get(), 2, runId);
  step(m_db.get(), s.get());
}

void RunStore::deleteRun(int64_t runId) {
  auto s = prepare(m_db.get(), "DELETE FROM runs WHERE id = ?");
  sqlite3_bind_int64(s.get(), 1, runId);
  step(m_db.get(), s.get());
}

void RunStore::appendMetrics(int64_t runId, const std::vector<MetricPoint>& points) {
  if (points.empty()) return;
  exec("BEGIN IMMEDIATE");
  try {
    auto s = prepare(m_db.get(),
                     "INSERT OR REPLACE INTO metrics(run_id, key, step, value, wall_time) VALUES(?,?,?,?,?)");
    for (const auto& p : points) {
      sqlite3_reset(s.get());
      sqlite3_bind_int64(s.get(), 1, runId);
      bindText(s.get(), 2, p.key);
      sqlite3_bind_int64(s.get(), 3, p.step);
      sqlite3_bind_double(s.get(), 4, p.value);
      sqlite3_bind_double(s.get(), 5, p.wallTime);
      step(m_db.get(), s.get());
    }
    auto touch = prepare(m_db.get(), "UPDATE runs SET updated_at = ? WHERE id = ?");
    sqlite3_bind_double(touch.get(), 1, unixNow());
    sqlite3_bind_int64(touch.get(), 2, runId);
    step(m_db.get(), touch.get());
    exec("COMMIT");
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
}

void RunStore::deleteMetricsAfter(int64_t runId, int64_t afterStep) {
  auto s = prepare(m_db.get(), "DELETE FROM metrics WHERE run_id = ? AND step > ?");
  sqlite3_bind_int64(s.get(), 1, runId);
  sqlite3_bind_int64(s.get(), 2, afterStep);
  step(m_db.get(), s.get());
}

void RunStore::addCheckpoint(int64_t runId, int64_t stepNo, const std::string& path) {
  auto s = prepare(m_db.get(),
                   "INSERT OR REPLACE INTO checkpoints(run_id, step, path, created_at) VALUES(?,?,?,?)");
  sqlite3_bind_int64(s.get(), 1, runId);
  sqlite3_bind_int64(s.get(), 2, stepNo);
  bindText(s.get(), 3, path);
  sqlite3_bind_double(s.get(), 4, unixNow());
  step(m_db.get(), s.get());
}

void RunStore::addEvaluation(int64_t runId, const std::vector<EvaluationRow>& rows) {
  exec("BEGIN IMMEDIATE");
  try {
    auto s = prepare(m_db.get(),
                     "INSERT INTO evaluations(run_id, step, name, key, value, created_at) VALUES(?,?,?,?,?,?)");
    for (const auto& r : rows) {
      sqlite3_reset(s.get());
      sqlite3_bind_int64(s.get(), 1, runId);
      sqlite3_bind_int64(s.get(), 2, r.step);
      bindText(s.get(), 3, r.name);
      bindText(s.get(), 4, r.key);
      sqlite3_bind_double(s.get(), 5, r.value);
      sqlite3_bind_double(s.get(), 6, unixNow());
      step(m_db.get(), s.get());
    }
    exec("COMMIT");
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
}

void RunStore::addArtifact(int64_t runId, const std::string& kind, const std::string& path) {
  auto s = prepare(m_db.get(), "INSERT INTO artifacts(run_id, kind, path, created_at) VALUES(?,?,?,?)");
  sqlite3_bind_int64(s.get(), 1, runId);
  bindText(s.get(), 2, kind);
  bindText(s.get(), 3, path);
  sqlite3_bind_double(s.get(), 4, unixNow());
  step(m_db.get(), s.get());
}

std::vector<RunInfo> RunStore::runs() const {
  auto s = prepare(m_db.get(), (std::string(kRunColumns) + " ORDER BY id").c_str());
  std::vector<RunInfo> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(readRun(s.get()));
  return out;
}

std::optional<RunInfo> RunStore::run(int64_t runId) const {
  auto s = prepare(m_db.get(), (std::string(kRunColumns) + " WHERE id = ?").c_str());
  sqlite3_bind_int64(s.get(), 1, runId);
  if (sqlite3_step(s.get()) == SQLITE_ROW) return readRun(s.get());
  return std::nullopt;
}

RunInfo RunStore::findRun(const std::string& idOrName) const {
  auto s = prepare(m_db.get(), (std::string(kRunColumns) + " WHERE name = ? OR CAST(id AS TEXT) = ? ORDER BY id DESC").c_str());
  bindText(s.get(), 1, idOrName);
  bindText(s.get(), 2, idOrName);
  if (sqlite3_step(s.get()) == SQLITE_ROW) return readRun(s.get());
  throw std::runtime_error("no run '" + idOrName + "' in " + m_path);
}

std::vector<MetricPoint> RunStore::metrics(int64_t runId, const std::string& key) const {
  auto s = prepare(m_db.get(), key.empty()
                                   ? "SELECT step, key, value, wall_time FROM metrics WHERE run_id = ? ORDER BY step, key"
                                   : "SELECT step, key, value, wall_time FROM metrics WHERE run_id = ? AND key = ? ORDER BY step");
  sqlite3_bind_int64(s.get(), 1, runId);
  if (!key.empty()) bindText(s.get(), 2, key);
  std::vector<MetricPoint> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(s.get(), 0), columnText(s.get(), 1),
                   sqlite3_column_double(s.get(), 2), sqlite3_column_double(s.get(), 3)});
  return out;
}

std::vector<MetricPoint> RunStore::metricsAfter(int64_t runId, int64_t afterStep) const {
  auto s = prepare(m_db.get(), "SELECT step, key, value, wall_time FROM metrics WHERE run_id = ? AND step > ? ORDER BY step, key");
  sqlite3_bind_int64(s.get(), 1, runId);
  sqlite3_bind_int64(s.get(), 2, afterStep);
  std::vector<MetricPoint> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(s.get(), 0), columnText(s.get(), 1),
                   sqlite3_column_double(s.get(), 2), sqlite3_column_double(s.get(), 3)});
  return out;
}

std::optional<MetricPoint> RunStore::lastMetric(int64_t runId, const std::string& key) const {
  auto s = prepare(m_db.get(), "SELECT step, value, wall_time FROM metrics WHERE run_id = ? AND key = ? ORDER BY step DESC LIMIT 1");
  sqlite3_bind_int64(s.get(), 1, runId);
  bindText(s.get(), 2, key);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  return MetricPoint{sqlite3_column_int64(s.get(), 0), key, sqlite3_column_double(s.get(), 1), sqlite3_column_double(s.get(), 2)};
}

std::vector<std::string> RunStore::metricKeys(int64_t runId) const {
  auto s = prepare(m_db.get(), "SELECT DISTINCT key FROM metrics WHERE run_id = ? ORDER BY key");
  sqlite3_bind_int64(s.get(), 1, runId);
  std::vector<std::string> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(columnText(s.get(), 0));
  return out;
}

std::vector<CheckpointInfo> RunStore::checkpoints(int64_t runId) const {
  auto s = prepare(m_db.get(), "SELECT step, path, created_at FROM checkpoints WHERE run_id = ? ORDER BY step");
  sqlite3_bind_int64(s.get(), 1, runId);
  std::vector<CheckpointInfo> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(s.get(), 0), columnText(s.get(), 1), sqlite3_column_double(s.get(), 2)});
  return out;
}

std::vector<ArtifactInfo> RunStore::artifacts(int64_t runId) const {
  auto s = prepare(m_db.get(), "SELECT kind, path, created_at FROM artifacts WHERE run_id = ? ORDER BY id");
  sqlite3_bind_int64(s.get(), 1, runId);
  std::vector<ArtifactInfo> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({columnText(s.get(), 0), columnText(s.get(), 1), sqlite3_column_double(s.get(), 2)});
  return out;
}

std::vector<EvaluationRow> RunStore::evaluations(int64_t runId) const {
  auto s = prepare(m_db.get(), "SELECT step, name, key, value FROM evaluations WHERE run_id = ? ORDER BY id");
  sqlite3_bind_int64(s.get(), 1, runId);
  std::vector<EvaluationRow> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(s.get(), 0), columnText(s.get(), 1), columnText(s.get(), 2),
                   sqlite3_column_double(s.get(), 3)});
  return out;
}

}  // namespace pivot
