// The SQLite run store: schema version, runs, batched metrics, a second connection reading while
// another writes, and clear errors; workspaces that move, old schemas, damaged files, liveness.
#include <QtTest/QtTest>
#include <mutex>

#include <sqlite3.h>

#include <QTemporaryDir>
#include <atomic>
#include <chrono>
#include <thread>

#include <QProcess>
#include <filesystem>
#include <fstream>

#include "store/run_store.h"
#include "store/workspace.h"

using namespace pivot;

namespace {
// Writes to a database behind the run store's back: what another version (older or newer) left.
bool execBehindTheStore(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  const bool ok = sqlite3_open(path.c_str(), &db) == SQLITE_OK &&
                  sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
  sqlite3_close(db);
  return ok;
}
}  // namespace

class TestRunStore : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void createsSchemaAndRuns() {
    QTemporaryDir dir;
    RunStore store(dir.filePath("runs.sqlite").toStdString());
    QCOMPARE(store.schemaVersion(), RunStore::kSchemaVersion);
    RunInfo parent;
    parent.stage = "instruct";
    parent.configJson = R"({"lr":0.001})";
    const auto p = store.createRun(parent);
    RunInfo child;
    child.name = "my-dpo";
    child.stage = "dpo";
    child.parentId = p;
    const auto c = store.createRun(child);
    QCOMPARE(store.run(p)->name, std::string("instruct-") + std::to_string(p));
    QCOMPARE(*store.run(c)->parentId, p);
    QCOMPARE(store.findRun("my-dpo").id, c);
    QCOMPARE(store.findRun(std::to_string(p)).id, p);
    store.setStatus(c, RunStatus::Failed, "loss became nan");
    QCOMPARE(std::string(name(store.run(c)->status)), std::string("failed"));
    QCOMPARE(store.run(c)->message, std::string("loss became nan"));
    try {
      store.findRun("nope");
      QFAIL("expected an error");
    } catch (const std::runtime_error& e) {
      QVERIFY(std::string(e.what()).find("no run 'nope'") != std::string::npos);
    }
    store.setTags(c, "baseline,seed1");
    QCOMPARE(store.findRun("my-dpo").tags, std::string("baseline,seed1"));
    store.addArtifact(c, "export", "/tmp/a");
    store.addArtifact(c, "report", "/tmp/b");
    const auto artifacts = store.artifacts(c);
    QCOMPARE(artifacts.size(), size_t(2));
    QCOMPARE(artifacts[1].kind, std::string("report"));  // oldest first
    QCOMPARE(artifacts[1].path, std::string("/tmp/b"));
    QVERIFY(store.artifacts(p).empty());
    store.deleteRun(p);
    QVERIFY(!store.run(c)->parentId.has_value());  // ON DELETE SET NULL
  }

  void metricsReplaceRepeatedSteps() {
    QTemporaryDir dir;
    RunStore store(dir.filePath("runs.sqlite").toStdString());
    const auto id = store.createRun(RunInfo{});
    store.appendMetrics(
        id,
        {{1, "loss", 2.0, 0}, {2, "loss", 1.5, 0}, {2, "grad_norm", 0.3, 0}, {3, "loss", 1.0, 0}});
    store.deleteMetricsAfter(id, 2);                 // a resume from step 2 drops later points...
    store.appendMetrics(id, {{3, "loss", 0.9, 0}});  // ...and repeats them
    store.appendMetrics(id, {{2, "loss", 1.4, 0}});  // a repeated step replaces, never duplicates
    auto loss = store.metrics(id, "loss");
    QCOMPARE(loss.size(), size_t(3));
    QCOMPARE(loss[1].value, 1.4);
    QCOMPARE(loss[2].value, 0.9);
    QCOMPARE(store.metricKeys(id), (std::vector<std::string>{"grad_norm", "loss"}));
  }

  void secondConnectionReadsWhileTrainingWrites() {
    QTemporaryDir dir;
    const auto path = dir.filePath("runs.sqlite").toStdString();
    RunStore writer(path);
    const auto id = writer.createRun(RunInfo{});
    // The writer keeps its connection open throughout; half-way it waits until the reader has seen
    // the first half, so the test does not depend on how the two threads are scheduled.
    std::atomic<int> phase{0};
    std::thread training([&] {
      auto writeBatches = [&](int from, int to) {
        for (int batch = from; batch < to; ++batch) {
          std::vector<MetricPoint> points;
          for (int s = 0; s < 20; ++s)
            points.push_back({batch * 20 + s + 1, "loss", 1.0 / (batch + 1), unixNow()});
          writer.appendMetrics(id, points);
        }
      };
      writeBatches(0, 25);
      phase = 1;
      while (phase.load() != 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      writeBatches(25, 50);
      phase = 3;
    });
    RunStore reader(path);
    size_t last = 0;
    bool sawHalf = false;
    for (int reads = 0; reads < 100000; ++reads) {
      const auto n = reader.metrics(id, "loss").size();
      QVERIFY(n >= last);    // never goes backwards
      QVERIFY(n % 20 == 0);  // a batch is visible whole or not at all (one transaction)
      last = n;
      if (phase.load() == 1 && n == 500) {
        sawHalf = true;
        phase = 2;
      }
      if (phase.load() == 3 && n == 1000) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    training.join();
    QVERIFY(sawHalf);
    QCOMPARE(reader.metrics(id, "loss").size(), size_t(1000));
  }

  void newerSchemaIsRefusedWithTheFileName() {
    QTemporaryDir dir;
    const auto path = dir.filePath("runs.sqlite").toStdString();
    { RunStore s(path); }
    QVERIFY(execBehindTheStore(path, "PRAGMA user_version = 99"));  // a future version wrote it
    try {
      RunStore s(path);
      QFAIL("expected an error");
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find(path) != std::string::npos &&
                   std::string(e.what()).find("newer") != std::string::npos,
               e.what());
    }
  }

  // Issue 10.2: paths inside the workspace are stored relative to it, so a copied workspace loads
  // its own checkpoints, never the original's.
  void copiedWorkspaceUsesItsOwnFiles() {
    QTemporaryDir dir;
    namespace fs = std::filesystem;
    const fs::path a = fs::path(dir.path().toStdString()) / "a",
                   b = fs::path(dir.path().toStdString()) / "b";
    fs::create_directories(a);
    int64_t id = 0;
    {
      RunStore store(storePath(a.string()));
      id = store.createRun(RunInfo{});
      store.addCheckpoint(id, 4, (a / "checkpoints/run-1/step-0000004").string());
      store.addArtifact(id, "report", (a / "experiments/experiment-1").string());
      store.addArtifact(id, "export", "/elsewhere/export");  // outside: stays absolute
    }
    fs::copy(a, b, fs::copy_options::recursive);
    fs::remove_all(a);
    RunStore moved(storePath(b.string()));
    QCOMPARE(moved.checkpoints(id).at(0).path, (b / "checkpoints/run-1/step-0000004").string());
    QCOMPARE(moved.artifacts(id).at(0).path, (b / "experiments/experiment-1").string());
    QCOMPARE(moved.artifacts(id).at(1).path, std::string("/elsewhere/export"));
  }

  // Run status is an enum with one name table; the database holds the names. Every name round
  // trips, and a status this version does not know is one error naming the run and the value.
  void runStatusNamesRoundTripAndUnknownOnesAreNamed() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("runs.sqlite").toStdString();
    int64_t id = 0;
    {
      RunStore store(path);
      RunInfo info;
      info.name = "r";
      id = store.createRun(info);
      for (const auto& n : runStatusNames()) {
        store.setStatus(id, runStatusFromName(n), "m");
        QCOMPARE(std::string(name(store.run(id)->status)), n);
      }
    }
    // A status a newer version wrote reads as unknown, its text kept in the message; the other
    // runs still read (one such row once hid the whole list).
    RunInfo other;
    other.name = "other";
    const int64_t otherId = RunStore(path).createRun(other);
    QVERIFY(execBehindTheStore(
        path, "UPDATE runs SET status = 'exploded' WHERE id = " + std::to_string(id)));
    RunStore store(path);
    const auto runs = store.runs();
    QCOMPARE(runs.size(), size_t(2));
    QCOMPARE(std::string(name(store.run(id)->status)), std::string("unknown"));
    QVERIFY2(store.run(id)->message.find("status 'exploded' is unknown") != std::string::npos,
             store.run(id)->message.c_str());
    QVERIFY2(QString::fromStdString(store.run(id)->message).endsWith("; m"),
             store.run(id)->message.c_str());
    QCOMPARE(store.run(otherId)->status, RunStatus::Created);
  }

  // Schema 2 stored paths as given (absolute, or relative to where the command ran); opening such a
  // workspace migrates them to workspace-relative ones.
  void schemaTwoPathsMigrate() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("runs.sqlite").toStdString();
    const char* v2 = R"sql(
      CREATE TABLE runs(id INTEGER PRIMARY KEY, name TEXT NOT NULL, preset TEXT NOT NULL DEFAULT '',
        stage TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'created',
        parent_id INTEGER REFERENCES runs(id) ON DELETE SET NULL, config_json TEXT NOT NULL DEFAULT '{}',
        git_commit TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
        updated_at REAL NOT NULL, tags TEXT NOT NULL DEFAULT '');
      CREATE TABLE metrics(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, key TEXT NOT NULL,
        step INTEGER NOT NULL, value REAL NOT NULL, wall_time REAL NOT NULL, PRIMARY KEY(run_id, key, step)) WITHOUT ROWID;
      CREATE TABLE checkpoints(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, step INTEGER NOT NULL,
        path TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY(run_id, step));
      CREATE TABLE evaluations(id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL, created_at REAL NOT NULL);
      CREATE TABLE artifacts(id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL, path TEXT NOT NULL, created_at REAL NOT NULL);
      INSERT INTO runs(id, name, status, created_at, updated_at) VALUES(1, 'old', 'finished', 0, 0);
      INSERT INTO checkpoints VALUES(1, 4, '/old/machine/ws/checkpoints/run-1/step-0000004', 0);
      INSERT INTO checkpoints VALUES(1, 8, 'ws/checkpoints/run-1/step-0000008', 0);
      INSERT INTO artifacts(run_id, kind, path, created_at) VALUES(1, 'report', '/old/machine/ws/experiments/experiment-1', 0);
      PRAGMA user_version = 2;
    )sql";
    QVERIFY(execBehindTheStore(path, v2));
    RunStore store(path);
    QCOMPARE(store.schemaVersion(), RunStore::kSchemaVersion);
    const std::string root = std::filesystem::path(path).parent_path().string();
    QCOMPARE(store.checkpoints(1).at(0).path, root + "/checkpoints/run-1/step-0000004");
    QCOMPARE(store.checkpoints(1).at(1).path, root + "/checkpoints/run-1/step-0000008");
    QCOMPARE(store.artifacts(1).at(0).path, root + "/experiments/experiment-1");
    QCOMPARE(store.run(1)->owner.pid, int64_t(0));  // unknown owner: never shown as crashed
    QCOMPARE(effectiveStatus(*store.run(1)), RunStatus::Finished);
  }

  // Until schema 5 an experiment was a run of stage "experiment" (its spec as config, its report
  // an artifact) and its runs carried an "exp-<id>" tag. Opening such a workspace moves it into
  // the experiments tables under the same id (its report folder is named after it), keeps a
  // person's own tags, and drops the stand-in run.
  void experimentRunsMoveToTheirOwnTables() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("runs.sqlite").toStdString();
    {
      RunStore store(path);  // the current schema, then wound back to version 4's rows
      const char* v4 = R"sql(
        DROP TABLE experiment_runs; DROP TABLE experiments;
        INSERT INTO runs(id, name, stage, status, created_at, updated_at, tags)
          VALUES(1, 'pretrain-1', 'pretrain', 'finished', 0, 0, 'exp-3,mine'),
                (2, 'sft-2', 'sft', 'finished', 0, 0, 'exp-3,exp-4'),
                (3, 'experiment-3', 'experiment', 'finished', 5, 6, ''),
                (4, 'experiment-4', 'experiment', 'running', 7, 8, ''),
                (5, 'dpo-5', 'dpo', 'finished', 0, 0, 'exp-30');
        UPDATE runs SET config_json = '{"seeds": 3}', message = 'done', preset = 'mini' WHERE id = 3;
        INSERT INTO artifacts(run_id, kind, path, created_at)
          VALUES(3, 'report', 'experiments/experiment-3', 0);
        PRAGMA user_version = 4;
      )sql";
      QVERIFY(execBehindTheStore(path, v4));
    }
    RunStore store(path);
    QCOMPARE(store.schemaVersion(), RunStore::kSchemaVersion);
    const auto experiments = store.experiments();
    QCOMPARE(experiments.size(), size_t(2));
    const auto& e = experiments[0];
    QCOMPARE(e.id, int64_t(3));
    QCOMPARE(e.name, std::string("experiment-3"));
    QCOMPARE(e.preset, std::string("mini"));
    QCOMPARE(e.specJson, std::string(R"({"seeds": 3})"));
    QCOMPARE(e.message, std::string("done"));
    QCOMPARE(std::string(name(e.status)), std::string("finished"));
    QCOMPARE(e.createdAt, 5.0);
    QCOMPARE(e.reportPath, store.workspaceRoot() + "/experiments/experiment-3");
    QCOMPARE(e.runIds, (std::vector<int64_t>{1, 2}));
    QCOMPARE(experiments[1].runIds, (std::vector<int64_t>{2}));  // run 2 was reused by both
    QCOMPARE(std::string(name(experiments[1].status)), std::string("running"));
    QCOMPARE(store.runs().size(), size_t(3));  // the stand-in runs are gone
    QCOMPARE(store.run(1)->tags, std::string("mine"));
    QCOMPARE(store.run(2)->tags, std::string(""));
    QCOMPARE(store.run(5)->tags, std::string("exp-30"));  // no experiment 30: a person's tag
    QVERIFY(store.integrityProblems().empty());
  }

  void experimentsRecordTheirRunsOnce() {
    QTemporaryDir dir;
    RunStore store(dir.filePath("runs.sqlite").toStdString());
    const int64_t run = store.createRun(RunInfo{});
    ExperimentInfo info;
    info.preset = "tiny";
    info.specJson = R"({"bases": 2})";
    const int64_t id = store.createExperiment(info);
    QCOMPARE(store.experiment(id)->name, "experiment-" + std::to_string(id));
    store.addExperimentRun(id, run);
    store.addExperimentRun(id, run);  // a reused stage is recorded again: still once
    store.claimExperiment(id, currentProcessOwner());
    store.setExperimentStatus(id, RunStatus::Running, "started");
    QCOMPARE(effectiveStatus(*store.experiment(id)), RunStatus::Running);  // this process
    store.setExperimentReport(id, dir.filePath("experiments/experiment-1").toStdString());
    auto e = *store.experiment(id);
    QCOMPARE(e.runIds, std::vector<int64_t>{run});
    QCOMPARE(e.reportPath, dir.filePath("experiments/experiment-1").toStdString());
    QCOMPARE(e.message, std::string("started"));
    e.owner.pid = 999999999;  // a process that is gone
    QCOMPARE(effectiveStatus(e), RunStatus::Crashed);
    store.deleteRun(run);  // deleting a run takes it out of the experiment
    QVERIFY(store.experiment(id)->runIds.empty());
  }

  // Issue 10.3: a damaged database is an error naming it, never a partial answer.
  // Two openers of a new workspace at once (the window's poller and its trainer): each migration
  // runs once, under the write lock, and neither opener fails.
  void concurrentOpenersOfANewStoreBothSucceed() {
    for (int round = 0; round < 20; ++round) {
      QTemporaryDir dir;
      const std::string path = dir.filePath("runs.sqlite").toStdString();
      std::atomic<int> failures{0};
      std::string why;
      std::mutex whyLock;
      const auto open = [&] {
        try {
          RunStore store(path);
        } catch (const std::exception& e) {
          ++failures;
          std::lock_guard<std::mutex> lock(whyLock);
          why = e.what();
        }
      };
      std::thread a(open), b(open);
      a.join();
      b.join();
      QVERIFY2(failures == 0, why.c_str());
      QCOMPARE(RunStore(path).schemaVersion(), RunStore::kSchemaVersion);
    }
  }

  void completionsLogRoundTripsAndResumeDropsLaterSteps() {
    QTemporaryDir dir;
    RunStore store(dir.filePath("runs.sqlite").toStdString());
    const int64_t id = store.createRun(RunInfo{});
    std::vector<CompletionRow> rows;
    for (int64_t step : {1, 11})
      for (int64_t g = 0; g < 2; ++g)
        rows.push_back({step, 0, g, "train:7", "what colour is the circle ?", "red",
                        g == 0 ? "red" : "blue", R"({"accuracy": 1})", 1.0 - g,
                        g == 0 ? 0.7 : -0.7});
    store.addCompletions(id, rows);
    QCOMPARE(store.completionSteps(id), (std::vector<int64_t>{1, 11}));
    const auto back = store.completions(id, 11);
    QCOMPARE(back.size(), size_t(2));
    QCOMPARE(back[1].completion, std::string("blue"));
    QCOMPARE(back[1].advantage, -0.7);
    QCOMPARE(back[0].sample, std::string("train:7"));
    store.deleteMetricsAfter(id, 5);  // a run resumed from step 5 logs step 11 again
    QCOMPARE(store.completionSteps(id), (std::vector<int64_t>{1}));
  }

  void damagedDatabaseIsAnErrorNamingIt() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("runs.sqlite").toStdString();
    int64_t id = 0;
    {
      RunStore store(path);
      id = store.createRun(RunInfo{});
      std::vector<MetricPoint> points;
      for (int step = 1; step <= 20000; ++step) points.push_back({step, "loss", 1.0 / step, 0});
      store.appendMetrics(id, points);
    }
    const auto size = std::filesystem::file_size(path);
    QVERIFY(size > 64 * 4096);
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
      const std::string garbage(3 * 4096, '\xA5');
      f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
    }
    RunStore store(path, RunStore::Access::ReadOnly);
    try {
      const auto points = store.metrics(id, "loss");
      QFAIL(qPrintable(QString("expected an error, got %1 points").arg(points.size())));
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find(path) != std::string::npos, e.what());
      QVERIFY2(std::string(e.what()).find("pivot doctor") != std::string::npos, e.what());
    }
    QVERIFY(!store.integrityProblems().empty());
  }

  // Issue 10.4 at the store's edge: SQLite would turn NaN into NULL; the error names the metric.
  void nonFiniteMetricIsRefusedByName() {
    QTemporaryDir dir;
    RunStore store(dir.filePath("runs.sqlite").toStdString());
    const auto id = store.createRun(RunInfo{});
    try {
      store.appendMetrics(id, {{3, "rewards/margins", std::nan(""), 0}});
      QFAIL("expected an error");
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find("'rewards/margins' at step 3") != std::string::npos,
               e.what());
    }
    QVERIFY(store.metrics(id).empty());
  }

  // Issue 10.6: a running run whose owner is gone shows as crashed; a live owner, a finished run
  // and a fresh heartbeat from another host do not.
  void liveness() {
    QTemporaryDir dir;
    RunStore store(dir.filePath("runs.sqlite").toStdString());
    const auto id = store.createRun(RunInfo{});
    store.setStatus(id, RunStatus::Running);
    store.claimRun(id, currentProcessOwner());
    QCOMPARE(runLiveness(*store.run(id)), Liveness::Alive);
    QCOMPARE(std::string(name(effectiveStatus(*store.run(id)))), std::string("running"));

    QProcess child;  // a process that owned the run and then ended
    child.start("sleep", {"0.3"});
    QVERIFY(child.waitForStarted());
    const RunOwner gone = processOwner(child.processId());
    QVERIFY(!gone.start.empty());
    store.claimRun(id, gone);
    QCOMPARE(runLiveness(*store.run(id)), Liveness::Alive);
    QVERIFY(child.waitForFinished());
    QCOMPARE(runLiveness(*store.run(id)), Liveness::Dead);
    QCOMPARE(std::string(name(effectiveStatus(*store.run(id)))), std::string("crashed"));

    RunOwner recycled = currentProcessOwner();  // our pid, but another process's start
    recycled.start += "0";
    store.claimRun(id, recycled);
    QCOMPARE(runLiveness(*store.run(id)), Liveness::Dead);

    RunInfo remote = *store.run(id);
    remote.owner.host = "another-host";
    remote.owner.heartbeat = unixNow() - 5;
    QCOMPARE(runLiveness(remote), Liveness::Alive);
    remote.owner.heartbeat = unixNow() - 3600;
    QCOMPARE(runLiveness(remote), Liveness::Dead);
    remote.status = RunStatus::Finished;
    QCOMPARE(runLiveness(remote), Liveness::NotRunning);
  }

  // Two trainers never share a run folder: the lock is exclusive and dies with its holder.
  void runLockIsExclusive() {
    QTemporaryDir dir;
    const std::string runDir = dir.filePath("checkpoints/run-1").toStdString();
    {
      RunLock first(runDir, "sft-1", "pid 1 on here");
      try {
        RunLock second(runDir, "sft-1", "pid 1 on here");
        QFAIL("expected an error");
      } catch (const std::runtime_error& e) {
        QVERIFY2(std::string(e.what()).find(
                     "run sft-1 is being trained by another process (pid 1 on here)") !=
                     std::string::npos,
                 e.what());
      }
    }
    RunLock again(runDir, "sft-1", "");  // released with its holder
  }

  void readOnlyAccessNeverWrites() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("runs.sqlite").toStdString();
    { RunStore(path).createRun(RunInfo{}); }
    RunStore reader(path, RunStore::Access::ReadOnly);
    QCOMPARE(reader.runs().size(), size_t(1));
    try {
      reader.createRun(RunInfo{});
      QFAIL("expected an error");
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find(path) != std::string::npos, e.what());
    }
    try {
      RunStore missing(dir.filePath("none.sqlite").toStdString(), RunStore::Access::ReadOnly);
      QFAIL("expected an error");
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find("no such run store") != std::string::npos, e.what());
    }
    QVERIFY(!QFileInfo::exists(dir.filePath("none.sqlite")));
  }
};

QTEST_GUILESS_MAIN(TestRunStore)
#include "test_run_store.moc"
