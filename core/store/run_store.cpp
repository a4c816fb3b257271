#include "store/run_store.h"

#include <sqlite3.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace fs = std::filesystem;

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
    // 2 -> 3: the process that trains a run (liveness, the resume guard); stored paths become
    // workspace-relative (RunStore::relativisePaths runs in the same transaction).
    R"sql(
    ALTER TABLE runs ADD COLUMN owner_host TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN owner_pid INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN owner_start TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN heartbeat_at REAL NOT NULL DEFAULT 0;
    )sql",
    // 3 -> 4: GRPO's completions log (TRL's log_completions table): at a logging step, a sample of
    // prompts with each of their G completions, every reward function's value and the advantage.
    R"sql(
    CREATE TABLE completions(
      run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      step INTEGER NOT NULL,
      prompt INTEGER NOT NULL,
      generation INTEGER NOT NULL,
      sample TEXT NOT NULL,
      question TEXT NOT NULL,
      reference TEXT NOT NULL,
      completion TEXT NOT NULL,
      rewards_json TEXT NOT NULL,
      reward REAL NOT NULL,
      advantage REAL NOT NULL,
      PRIMARY KEY(run_id, step, prompt, generation));
    )sql",
    // 4 -> 5: experiments get their own tables. Until now an experiment was a run of stage
    // "experiment" (its spec as config, its report an artifact) and its members carried an
    // "exp-<id>" tag; the rows move here under the same ids (its report folder is named after
    // it), then the stand-in run goes (RunStore::dropExperimentTags cleans the tags).
    R"sql(
    CREATE TABLE experiments(
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      preset TEXT NOT NULL DEFAULT '',
      status TEXT NOT NULL DEFAULT 'created',
      spec_json TEXT NOT NULL DEFAULT '{}',
      message TEXT NOT NULL DEFAULT '',
      report_path TEXT NOT NULL DEFAULT '',
      owner_host TEXT NOT NULL DEFAULT '',
      owner_pid INTEGER NOT NULL DEFAULT 0,
      owner_start TEXT NOT NULL DEFAULT '',
      heartbeat_at REAL NOT NULL DEFAULT 0,
      created_at REAL NOT NULL,
      updated_at REAL NOT NULL);
    CREATE TABLE experiment_runs(
      experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
      run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      PRIMARY KEY(experiment_id, run_id)) WITHOUT ROWID;
    INSERT INTO experiments(id, name, preset, status, spec_json, message, owner_host, owner_pid,
                            owner_start, heartbeat_at, created_at, updated_at)
      SELECT id, name, preset, status, config_json, message, owner_host, owner_pid, owner_start,
             heartbeat_at, created_at, updated_at FROM runs WHERE stage = 'experiment';
    UPDATE experiments SET report_path = COALESCE((SELECT path FROM artifacts
      WHERE run_id = experiments.id AND kind = 'report' ORDER BY id DESC LIMIT 1), '');
    INSERT INTO experiment_runs(experiment_id, run_id)
      SELECT e.id, r.id FROM experiments e JOIN runs r
      ON r.stage != 'experiment' AND instr(',' || r.tags || ',', ',exp-' || e.id || ',') > 0;
    )sql",
};

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

std::string fileOf(sqlite3* db) {
  const char* name = sqlite3_db_filename(db, "main");
  return name && *name ? name : "run store";
}

// Every failure names the database and says how to look into it.
[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  const int code = sqlite3_errcode(db);
  std::string msg = fileOf(db) + ": " + what + ": " + sqlite3_errmsg(db);
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
    msg += " (the database is damaged; `pivot doctor` says what can still be read)";
  throw std::runtime_error(msg);
}

Stmt prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK)
    fail(db, std::string("cannot prepare '") + sql + "'");
  return Stmt(raw);
}

// One step of a statement: true while it yields rows, false when done; any other result throws.
bool next(sqlite3* db, sqlite3_stmt* s) {
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(db, "cannot read");
}

void step(sqlite3* db, sqlite3_stmt* s) {
  const int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) fail(db, "cannot write");
}

void bindText(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

std::string columnText(sqlite3_stmt* s, int i) {
  const auto* t = sqlite3_column_text(s, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

// A status this version does not know (a newer workbench wrote it) reads as Unknown, with the
// stored text in front of the message: that row is flagged where it is shown, the others read.
RunStatus statusFromColumn(const std::string& text, std::string& message) {
  for (size_t i = 0; i < runStatusNames().size(); ++i)
    if (text == runStatusNames()[i] && static_cast<RunStatus>(i) != RunStatus::Unknown)
      return static_cast<RunStatus>(i);
  message = "status '" + text + "' is unknown to this version of pivot" +
            (message.empty() ? "" : "; " + message);
  return RunStatus::Unknown;
}

RunInfo readRun(sqlite3_stmt* s) {
  RunInfo r;
  r.id = sqlite3_column_int64(s, 0);
  r.name = columnText(s, 1);
  r.preset = columnText(s, 2);
  r.stage = columnText(s, 3);
  if (sqlite3_column_type(s, 5) != SQLITE_NULL) r.parentId = sqlite3_column_int64(s, 5);
  r.configJson = columnText(s, 6);
  r.gitCommit = columnText(s, 7);
  r.message = columnText(s, 8);
  r.status = statusFromColumn(columnText(s, 4), r.message);
  r.createdAt = sqlite3_column_double(s, 9);
  r.updatedAt = sqlite3_column_double(s, 10);
  r.tags = columnText(s, 11);
  r.owner.host = columnText(s, 12);
  r.owner.pid = sqlite3_column_int64(s, 13);
  r.owner.start = columnText(s, 14);
  r.owner.heartbeat = sqlite3_column_double(s, 15);
  return r;
}

constexpr const char* kRunColumns =
    "SELECT id, name, preset, stage, status, parent_id, config_json, git_commit, message, "
    "created_at, updated_at, tags, owner_host, owner_pid, owner_start, heartbeat_at FROM runs";

// A URI for SQLite's immutable mode (a read-only folder without -wal/-shm files).
std::string immutableUri(const std::string& path) {
  std::string uri = "file:";
  for (char c : fs::absolute(path).string()) {
    if (c == '%')
      uri += "%25";
    else if (c == '?')
      uri += "%3f";
    else if (c == '#')
      uri += "%23";
    else
      uri += c;
  }
  return uri + "?immutable=1";
}

// Where the part of an old stored path that lies inside a workspace starts ("checkpoints/run-" or
// "experiments/"), or npos.
size_t workspacePartOf(const std::string& path) {
  for (const char* marker : {"checkpoints/run-", "experiments/"}) {
    const auto at = path.rfind(marker);
    if (at != std::string::npos && (at == 0 || path[at - 1] == '/')) return at;
  }
  return std::string::npos;
}

}  // namespace

double unixNow() {
  using namespace std::chrono;
  return duration_cast<duration<double>>(system_clock::now().time_since_epoch()).count();
}

void RunStore::Closer::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

RunStore::RunStore(const std::string& path, Access access)
    : m_path(path), m_root(fs::absolute(path).parent_path().lexically_normal().string()) {
  if (access == Access::ReadOnly && !fs::exists(path))
    throw std::runtime_error(path + ": no such run store");
  try {
    open(access, false);
  } catch (const std::exception&) {
    // A read-only folder where SQLite cannot create the -shm file: with no -wal file there is
    // nothing unmerged, and the database can be read as immutable.
    if (access != Access::ReadOnly ||
        (fs::exists(path + "-wal") && fs::file_size(path + "-wal") > 0))
      throw;
    open(access, true);
  }
}

void RunStore::open(Access access, bool immutable) {
  m_readOnly = access == Access::ReadOnly;
  sqlite3* raw = nullptr;
  const int flags =
      (m_readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
      SQLITE_OPEN_FULLMUTEX | (immutable ? SQLITE_OPEN_URI : 0);
  const std::string name = immutable ? immutableUri(m_path) : m_path;
  const int rc = sqlite3_open_v2(name.c_str(), &raw, flags, nullptr);
  m_db.reset(raw);
  if (rc != SQLITE_OK)
    throw std::runtime_error(
        m_path + ": cannot open run store: " + (raw ? sqlite3_errmsg(raw) : "out of memory"));
  sqlite3_busy_timeout(m_db.get(), 10000);  // readers and the writer wait on each other briefly
  try {
    if (m_readOnly) {
      const int have = schemaVersion();  // also the first read: a damaged file fails here
      if (have > kSchemaVersion)
        throw std::runtime_error("schema version " + std::to_string(have) +
                                 " is newer than this program understands (" +
                                 std::to_string(kSchemaVersion) + ")");
      if (have < kSchemaVersion) {  // an old workspace: upgrade it once (that needs write access)
        m_db.reset();
        try {
          RunStore upgrade(m_path);
        } catch (const std::exception& e) {
          throw std::runtime_error("schema version " + std::to_string(have) +
                                   " needs an upgrade to " + std::to_string(kSchemaVersion) +
                                   ", which needs write access: " + e.what());
        }
        open(access, immutable);
      }
      return;
    }
    useWriteAheadLog();
    exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
    migrate();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw std::runtime_error(what.rfind(m_path, 0) == 0 ? what : m_path + ": " + what);
  }
}

RunStore::~RunStore() = default;

// Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is locked" at
// once instead of calling the busy handler when another opener of the same new workspace holds a
// shared lock (the window's poller and a trainer starting together): retry for the busy timeout.
void RunStore::useWriteAheadLog() {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    const int rc = sqlite3_exec(m_db.get(), "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return;
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || std::chrono::steady_clock::now() > until)
      throw std::runtime_error(m_path + ": " + sqlite3_errmsg(m_db.get()));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void RunStore::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(m_db.get(), sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error(m_path + ": " + msg);
  }
}

int RunStore::schemaVersion() const {
  auto s = prepare(m_db.get(), "PRAGMA user_version");
  if (!next(m_db.get(), s.get())) return 0;
  return sqlite3_column_int(s.get(), 0);
}

void RunStore::migrate() {
  // The version is read under the write lock: two openers of a new workspace (the window's poller
  // and its trainer) must not both apply the same migration.
  while (true) {
    exec("BEGIN IMMEDIATE");
    const int have = schemaVersion();
    if (have >= kSchemaVersion) {
      exec("COMMIT");
      if (have > kSchemaVersion)
        throw std::runtime_error("schema version " + std::to_string(have) +
                                 " is newer than this program understands (" +
                                 std::to_string(kSchemaVersion) + ")");
      return;
    }
    try {
      exec(kMigrations[have]);
      if (have == 2) relativisePaths();
      if (have == 4) dropExperimentTags();
      exec("PRAGMA user_version = " + std::to_string(have + 1));
      exec("COMMIT");
    } catch (...) {
      exec("ROLLBACK");
      throw;
    }
  }
}

// Schema 2 stored paths as given: absolute, or relative to wherever the command ran. The part from
// "checkpoints/run-" (or "experiments/") on is what lies inside the workspace.
void RunStore::relativisePaths() {
  for (const char* table : {"checkpoints", "artifacts"}) {
    std::vector<std::pair<std::string, std::string>> changes;
    {
      auto s = prepare(m_db.get(), (std::string("SELECT DISTINCT path FROM ") + table).c_str());
      while (next(m_db.get(), s.get())) {
        const std::string path = columnText(s.get(), 0);
        const auto at = workspacePartOf(path);
        if (at != std::string::npos && at > 0) changes.emplace_back(path, path.substr(at));
      }
    }
    auto u = prepare(m_db.get(),
                     (std::string("UPDATE ") + table + " SET path = ? WHERE path = ?").c_str());
    for (const auto& [from, to] : changes) {
      sqlite3_reset(u.get());
      bindText(u.get(), 1, to);
      bindText(u.get(), 2, from);
      step(m_db.get(), u.get());
    }
  }
}

// Schema 4 marked an experiment's runs with an "exp-<id>" tag; experiment_runs holds that now.
// The tags go (a person's own tags stay), then the experiments' stand-in runs with their artifacts.
void RunStore::dropExperimentTags() {
  std::vector<std::pair<int64_t, std::string>> changes;
  {
    auto s = prepare(m_db.get(), "SELECT id, tags FROM runs WHERE tags LIKE '%exp-%'");
    while (next(m_db.get(), s.get())) {
      std::string kept, tag;
      std::istringstream tags(columnText(s.get(), 1));
      while (std::getline(tags, tag, ',')) {
        if (tag.rfind("exp-", 0) == 0 && experiment(std::atoll(tag.c_str() + 4))) continue;
        kept += (kept.empty() ? "" : ",") + tag;
      }
      changes.emplace_back(sqlite3_column_int64(s.get(), 0), kept);
    }
  }
  for (const auto& [id, tags] : changes) setTags(id, tags);
  exec("DELETE FROM runs WHERE stage = 'experiment'");
}

std::string RunStore::toStored(const std::string& path) const {
  const fs::path abs = fs::absolute(path).lexically_normal();
  const fs::path rel = abs.lexically_relative(m_root);
  if (rel.empty() || *rel.begin() == "..") return abs.string();
  return rel.string();
}

std::string RunStore::fromStored(const std::string& stored) const {
  if (stored.empty() || fs::path(stored).is_absolute()) return stored;
  return (fs::path(m_root) / stored).string();
}

int64_t RunStore::createRun(const RunInfo& info) {
  auto s =
      prepare(m_db.get(),
              "INSERT INTO runs(name, preset, stage, status, parent_id, config_json, git_commit, "
              "message, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?)");
  const double now = unixNow();
  bindText(s.get(), 1, info.name);
  bindText(s.get(), 2, info.preset);
  bindText(s.get(), 3, info.stage);
  bindText(s.get(), 4, name(info.status));
  if (info.parentId)
    sqlite3_bind_int64(s.get(), 5, *info.parentId);
  else
    sqlite3_bind_null(s.get(), 5);
  bindText(s.get(), 6, info.configJson.empty() ? "{}" : info.configJson);
  bindText(s.get(), 7, info.gitCommit);
  bindText(s.get(), 8, info.message);
  sqlite3_bind_double(s.get(), 9, now);
  sqlite3_bind_double(s.get(), 10, now);
  step(m_db.get(), s.get());
  const int64_t id = sqlite3_last_insert_rowid(m_db.get());
  if (info.name.empty())
    rename(id, (info.stage.empty() ? "run" : info.stage) + "-" + std::to_string(id));
  return id;
}

// Runs and experiments share the status and owner columns; `table` is one of the two.
void RunStore::writeStatus(const char* table, int64_t id, RunStatus status,
                           const std::string& message) {
  auto s = prepare(m_db.get(), (std::string("UPDATE ") + table +
                                " SET status = ?, message = ?, updated_at = ? WHERE id = ?")
                                   .c_str());
  bindText(s.get(), 1, name(status));
  bindText(s.get(), 2, message);
  sqlite3_bind_double(s.get(), 3, unixNow());
  sqlite3_bind_int64(s.get(), 4, id);
  step(m_db.get(), s.get());
}

void RunStore::writeOwner(const char* table, int64_t id, const RunOwner& owner) {
  auto s = prepare(m_db.get(), (std::string("UPDATE ") + table +
                                " SET owner_host = ?, owner_pid = ?, owner_start = ?, "
                                "heartbeat_at = ? WHERE id = ?")
                                   .c_str());
  bindText(s.get(), 1, owner.host);
  sqlite3_bind_int64(s.get(), 2, owner.pid);
  bindText(s.get(), 3, owner.start);
  sqlite3_bind_double(s.get(), 4, unixNow());
  sqlite3_bind_int64(s.get(), 5, id);
  step(m_db.get(), s.get());
}

void RunStore::setStatus(int64_t runId, RunStatus status, const std::string& message) {
  writeStatus("runs", runId, status, message);
}

void RunStore::claimRun(int64_t runId, const RunOwner& owner) { writeOwner("runs", runId, owner); }

void RunStore::heartbeat(int64_t runId) {
  auto s = prepare(m_db.get(), "UPDATE runs SET heartbeat_at = ? WHERE id = ?");
  sqlite3_bind_double(s.get(), 1, unixNow());
  sqlite3_bind_int64(s.get(), 2, runId);
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
  for (const auto& p : points)  // SQLite would store NaN as NULL; the trainer stops before this
    if (!std::isfinite(p.value))
      throw std::runtime_error(m_path + ": metric '" + p.key + "' at step " +
                               std::to_string(p.step) + " is " + std::to_string(p.value) +
                               ", not a finite number");
  exec("BEGIN IMMEDIATE");
  try {
    auto s = prepare(
        m_db.get(),
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
    auto touch =
        prepare(m_db.get(), "UPDATE runs SET updated_at = ?, heartbeat_at = ? WHERE id = ?");
    sqlite3_bind_double(touch.get(), 1, unixNow());
    sqlite3_bind_double(touch.get(), 2, unixNow());
    sqlite3_bind_int64(touch.get(), 3, runId);
    step(m_db.get(), touch.get());
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(m_db.get(), "ROLLBACK", nullptr, nullptr, nullptr);  // keep the first error
    throw;
  }
}

void RunStore::deleteMetricsAfter(int64_t runId, int64_t afterStep) {
  // A resumed run repeats the steps after its checkpoint: their metrics and completions go.
  for (const char* sql : {"DELETE FROM metrics WHERE run_id = ? AND step > ?",
                          "DELETE FROM completions WHERE run_id = ? AND step > ?"}) {
    auto s = prepare(m_db.get(), sql);
    sqlite3_bind_int64(s.get(), 1, runId);
    sqlite3_bind_int64(s.get(), 2, afterStep);
    step(m_db.get(), s.get());
  }
}

void RunStore::addCompletions(int64_t runId, const std::vector<CompletionRow>& rows) {
  exec("BEGIN IMMEDIATE");
  try {
    auto s = prepare(m_db.get(),
                     "INSERT OR REPLACE INTO completions(run_id, step, prompt, generation, sample, "
                     "question, reference, completion, rewards_json, reward, advantage) "
                     "VALUES(?,?,?,?,?,?,?,?,?,?,?)");
    for (const auto& r : rows) {
      sqlite3_reset(s.get());
      sqlite3_bind_int64(s.get(), 1, runId);
      sqlite3_bind_int64(s.get(), 2, r.step);
      sqlite3_bind_int64(s.get(), 3, r.prompt);
      sqlite3_bind_int64(s.get(), 4, r.generation);
      bindText(s.get(), 5, r.sample);
      bindText(s.get(), 6, r.question);
      bindText(s.get(), 7, r.reference);
      bindText(s.get(), 8, r.completion);
      bindText(s.get(), 9, r.rewardsJson);
      sqlite3_bind_double(s.get(), 10, r.reward);
      sqlite3_bind_double(s.get(), 11, r.advantage);
      step(m_db.get(), s.get());
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(m_db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::vector<int64_t> RunStore::completionSteps(int64_t runId) const {
  auto s =
      prepare(m_db.get(), "SELECT DISTINCT step FROM completions WHERE run_id = ? ORDER BY step");
  sqlite3_bind_int64(s.get(), 1, runId);
  std::vector<int64_t> out;
  while (next(m_db.get(), s.get())) out.push_back(sqlite3_column_int64(s.get(), 0));
  return out;
}

std::vector<CompletionRow> RunStore::completions(int64_t runId, int64_t stepNo) const {
  auto s = prepare(m_db.get(),
                   "SELECT step, prompt, generation, sample, question, reference, completion, "
                   "rewards_json, reward, advantage FROM completions WHERE run_id = ? AND step = ? "
                   "ORDER BY prompt, generation");
  sqlite3_bind_int64(s.get(), 1, runId);
  sqlite3_bind_int64(s.get(), 2, stepNo);
  std::vector<CompletionRow> out;
  while (next(m_db.get(), s.get())) {
    CompletionRow r;
    r.step = sqlite3_column_int64(s.get(), 0);
    r.prompt = sqlite3_column_int64(s.get(), 1);
    r.generation = sqlite3_column_int64(s.get(), 2);
    r.sample = columnText(s.get(), 3);
    r.question = columnText(s.get(), 4);
    r.reference = columnText(s.get(), 5);
    r.completion = columnText(s.get(), 6);
    r.rewardsJson = columnText(s.get(), 7);
    r.reward = sqlite3_column_double(s.get(), 8);
    r.advantage = sqlite3_column_double(s.get(), 9);
    out.push_back(std::move(r));
  }
  return out;
}

void RunStore::addCheckpoint(int64_t runId, int64_t stepNo, const std::string& path) {
  auto s =
      prepare(m_db.get(),
              "INSERT OR REPLACE INTO checkpoints(run_id, step, path, created_at) VALUES(?,?,?,?)");
  sqlite3_bind_int64(s.get(), 1, runId);
  sqlite3_bind_int64(s.get(), 2, stepNo);
  bindText(s.get(), 3, toStored(path));
  sqlite3_bind_double(s.get(), 4, unixNow());
  step(m_db.get(), s.get());
}

void RunStore::deleteCheckpoint(int64_t runId, int64_t stepNo) {
  auto s = prepare(m_db.get(), "DELETE FROM checkpoints WHERE run_id = ? AND step = ?");
  sqlite3_bind_int64(s.get(), 1, runId);
  sqlite3_bind_int64(s.get(), 2, stepNo);
  step(m_db.get(), s.get());
}

void RunStore::addEvaluation(int64_t runId, const std::vector<EvaluationRow>& rows) {
  exec("BEGIN IMMEDIATE");
  try {
    auto s = prepare(
        m_db.get(),
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
    sqlite3_exec(m_db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void RunStore::addArtifact(int64_t runId, const std::string& kind, const std::string& path) {
  auto s =
      prepare(m_db.get(), "INSERT INTO artifacts(run_id, kind, path, created_at) VALUES(?,?,?,?)");
  sqlite3_bind_int64(s.get(), 1, runId);
  bindText(s.get(), 2, kind);
  bindText(s.get(), 3, toStored(path));
  sqlite3_bind_double(s.get(), 4, unixNow());
  step(m_db.get(), s.get());
}

int64_t RunStore::createExperiment(const ExperimentInfo& info) {
  auto s = prepare(m_db.get(),
                   "INSERT INTO experiments(name, preset, status, spec_json, message, created_at, "
                   "updated_at) VALUES(?,?,?,?,?,?,?)");
  const double now = unixNow();
  bindText(s.get(), 1, info.name);
  bindText(s.get(), 2, info.preset);
  bindText(s.get(), 3, name(info.status));
  bindText(s.get(), 4, info.specJson.empty() ? "{}" : info.specJson);
  bindText(s.get(), 5, info.message);
  sqlite3_bind_double(s.get(), 6, now);
  sqlite3_bind_double(s.get(), 7, now);
  step(m_db.get(), s.get());
  const int64_t id = sqlite3_last_insert_rowid(m_db.get());
  if (info.name.empty()) {
    auto u = prepare(m_db.get(), "UPDATE experiments SET name = ? WHERE id = ?");
    bindText(u.get(), 1, "experiment-" + std::to_string(id));
    sqlite3_bind_int64(u.get(), 2, id);
    step(m_db.get(), u.get());
  }
  return id;
}

void RunStore::setExperimentStatus(int64_t experimentId, RunStatus status,
                                   const std::string& message) {
  writeStatus("experiments", experimentId, status, message);
}

void RunStore::claimExperiment(int64_t experimentId, const RunOwner& owner) {
  writeOwner("experiments", experimentId, owner);
}

void RunStore::setExperimentReport(int64_t experimentId, const std::string& path) {
  auto s = prepare(m_db.get(), "UPDATE experiments SET report_path = ? WHERE id = ?");
  bindText(s.get(), 1, toStored(path));
  sqlite3_bind_int64(s.get(), 2, experimentId);
  step(m_db.get(), s.get());
}

void RunStore::addExperimentRun(int64_t experimentId, int64_t runId) {
  auto s = prepare(m_db.get(),
                   "INSERT OR IGNORE INTO experiment_runs(experiment_id, run_id) VALUES(?,?)");
  sqlite3_bind_int64(s.get(), 1, experimentId);
  sqlite3_bind_int64(s.get(), 2, runId);
  step(m_db.get(), s.get());
}

std::vector<ExperimentInfo> RunStore::experiments() const {
  auto s = prepare(m_db.get(),
                   "SELECT id, name, preset, status, spec_json, message, report_path, created_at, "
                   "updated_at, owner_host, owner_pid, owner_start, heartbeat_at FROM experiments "
                   "ORDER BY id");
  std::vector<ExperimentInfo> out;
  while (next(m_db.get(), s.get())) {
    ExperimentInfo e;
    e.id = sqlite3_column_int64(s.get(), 0);
    e.name = columnText(s.get(), 1);
    e.preset = columnText(s.get(), 2);
    e.specJson = columnText(s.get(), 4);
    e.message = columnText(s.get(), 5);
    e.status = statusFromColumn(columnText(s.get(), 3), e.message);
    e.reportPath = fromStored(columnText(s.get(), 6));
    e.createdAt = sqlite3_column_double(s.get(), 7);
    e.updatedAt = sqlite3_column_double(s.get(), 8);
    e.owner.host = columnText(s.get(), 9);
    e.owner.pid = sqlite3_column_int64(s.get(), 10);
    e.owner.start = columnText(s.get(), 11);
    e.owner.heartbeat = sqlite3_column_double(s.get(), 12);
    out.push_back(std::move(e));
  }
  auto m = prepare(m_db.get(),
                   "SELECT experiment_id, run_id FROM experiment_runs ORDER BY experiment_id, "
                   "run_id");
  while (next(m_db.get(), m.get()))
    for (auto& e : out)
      if (e.id == sqlite3_column_int64(m.get(), 0))
        e.runIds.push_back(sqlite3_column_int64(m.get(), 1));
  return out;
}

std::optional<ExperimentInfo> RunStore::experiment(int64_t experimentId) const {
  for (auto& e : experiments())
    if (e.id == experimentId) return e;
  return std::nullopt;
}

std::vector<RunInfo> RunStore::runs() const {
  auto s = prepare(m_db.get(), (std::string(kRunColumns) + " ORDER BY id").c_str());
  std::vector<RunInfo> out;
  while (next(m_db.get(), s.get())) out.push_back(readRun(s.get()));
  return out;
}

std::optional<RunInfo> RunStore::run(int64_t runId) const {
  auto s = prepare(m_db.get(), (std::string(kRunColumns) + " WHERE id = ?").c_str());
  sqlite3_bind_int64(s.get(), 1, runId);
  if (next(m_db.get(), s.get())) return readRun(s.get());
  return std::nullopt;
}

RunInfo RunStore::findRun(const std::string& idOrName) const {
  auto s = prepare(m_db.get(), (std::string(kRunColumns) +
                                " WHERE name = ? OR CAST(id AS TEXT) = ? ORDER BY id DESC")
                                   .c_str());
  bindText(s.get(), 1, idOrName);
  bindText(s.get(), 2, idOrName);
  if (next(m_db.get(), s.get())) return readRun(s.get());
  throw std::runtime_error("no run '" + idOrName + "' in " + m_path);
}

std::vector<MetricPoint> RunStore::metrics(int64_t runId, const std::string& key) const {
  auto s = prepare(
      m_db.get(),
      key.empty()
          ? "SELECT step, key, value, wall_time FROM metrics WHERE run_id = ? ORDER BY step, key"
          : "SELECT step, key, value, wall_time FROM metrics WHERE run_id = ? AND key = ? ORDER BY "
            "step");
  sqlite3_bind_int64(s.get(), 1, runId);
  if (!key.empty()) bindText(s.get(), 2, key);
  std::vector<MetricPoint> out;
  while (next(m_db.get(), s.get()))
    out.push_back({sqlite3_column_int64(s.get(), 0), columnText(s.get(), 1),
                   sqlite3_column_double(s.get(), 2), sqlite3_column_double(s.get(), 3)});
  return out;
}

std::vector<MetricPoint> RunStore::metricsAfter(int64_t runId, int64_t afterStep) const {
  auto s = prepare(m_db.get(),
                   "SELECT step, key, value, wall_time FROM metrics WHERE run_id = ? AND step > ? "
                   "ORDER BY step, key");
  sqlite3_bind_int64(s.get(), 1, runId);
  sqlite3_bind_int64(s.get(), 2, afterStep);
  std::vector<MetricPoint> out;
  while (next(m_db.get(), s.get()))
    out.push_back({sqlite3_column_int64(s.get(), 0), columnText(s.get(), 1),
                   sqlite3_column_double(s.get(), 2), sqlite3_column_double(s.get(), 3)});
  return out;
}

std::optional<MetricPoint> RunStore::lastMetric(int64_t runId, const std::string& key) const {
  auto s = prepare(m_db.get(),
                   "SELECT step, value, wall_time FROM metrics WHERE run_id = ? AND key = ? ORDER "
                   "BY step DESC LIMIT 1");
  sqlite3_bind_int64(s.get(), 1, runId);
  bindText(s.get(), 2, key);
  if (!next(m_db.get(), s.get())) return std::nullopt;
  return MetricPoint{sqlite3_column_int64(s.get(), 0), key, sqlite3_column_double(s.get(), 1),
                     sqlite3_column_double(s.get(), 2)};
}

std::vector<std::string> RunStore::metricKeys(int64_t runId) const {
  auto s = prepare(m_db.get(), "SELECT DISTINCT key FROM metrics WHERE run_id = ? ORDER BY key");
  sqlite3_bind_int64(s.get(), 1, runId);
  std::vector<std::string> out;
  while (next(m_db.get(), s.get())) out.push_back(columnText(s.get(), 0));
  return out;
}

std::vector<CheckpointInfo> RunStore::checkpoints(int64_t runId) const {
  auto s = prepare(m_db.get(),
                   "SELECT step, path, created_at FROM checkpoints WHERE run_id = ? ORDER BY step");
  sqlite3_bind_int64(s.get(), 1, runId);
  std::vector<CheckpointInfo> out;
  while (next(m_db.get(), s.get()))
    out.push_back({sqlite3_column_int64(s.get(), 0), fromStored(columnText(s.get(), 1)),
                   sqlite3_column_double(s.get(), 2)});
  return out;
}

std::vector<ArtifactInfo> RunStore::artifacts(int64_t runId) const {
  auto s = prepare(m_db.get(),
                   "SELECT kind, path, created_at FROM artifacts WHERE run_id = ? ORDER BY id");
  sqlite3_bind_int64(s.get(), 1, runId);
  std::vector<ArtifactInfo> out;
  while (next(m_db.get(), s.get()))
    out.push_back({columnText(s.get(), 0), fromStored(columnText(s.get(), 1)),
                   sqlite3_column_double(s.get(), 2)});
  return out;
}

std::vector<EvaluationRow> RunStore::evaluations(int64_t runId) const {
  auto s = prepare(m_db.get(),
                   "SELECT step, name, key, value FROM evaluations WHERE run_id = ? ORDER BY id");
  sqlite3_bind_int64(s.get(), 1, runId);
  std::vector<EvaluationRow> out;
  while (next(m_db.get(), s.get()))
    out.push_back({sqlite3_column_int64(s.get(), 0), columnText(s.get(), 1), columnText(s.get(), 2),
                   sqlite3_column_double(s.get(), 3)});
  return out;
}

std::string RunStore::firstDamage() const {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(m_db.get(), "PRAGMA quick_check(1)", -1, &raw, nullptr) != SQLITE_OK)
    return std::string("quick_check: ") + sqlite3_errmsg(m_db.get());
  Stmt s(raw);
  const int rc = sqlite3_step(s.get());
  // A writer holding the database (another rank, the window) is not damage.
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return "";
  if (rc != SQLITE_ROW) return std::string("quick_check: ") + sqlite3_errmsg(m_db.get());
  const std::string line = columnText(s.get(), 0);
  return line == "ok" ? "" : line;
}

std::vector<std::string> RunStore::integrityProblems() const {
  std::vector<std::string> out;
  for (const char* pragma : {"PRAGMA integrity_check", "PRAGMA foreign_key_check"}) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(m_db.get(), pragma, -1, &raw, nullptr) != SQLITE_OK) {
      out.push_back(std::string(pragma) + ": " + sqlite3_errmsg(m_db.get()));
      continue;
    }
    Stmt s(raw);
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      std::string line;
      for (int c = 0; c < sqlite3_column_count(s.get()); ++c)
        line += (c ? " " : "") + columnText(s.get(), c);
      if (line != "ok") out.push_back(line);
    }
    if (rc != SQLITE_DONE) out.push_back(std::string(pragma) + ": " + sqlite3_errmsg(m_db.get()));
  }
  return out;
}

}  // namespace pivot
