// The SQLite run store: schema version, runs, batched metrics, a second connection reading while
// another writes, and clear errors.
#include <QtTest/QtTest>

#include <sqlite3.h>

#include <QTemporaryDir>
#include <atomic>
#include <chrono>
#include <thread>

#include "store/run_store.h"

using namespace pivot;

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
    store.setStatus(c, "failed", "loss became nan");
    QCOMPARE(store.run(c)->status, std::string("failed"));
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
    store.appendMetrics(id, {{1, "loss", 2.0, 0}, {2, "loss", 1.5, 0}, {2, "grad_norm", 0.3, 0}, {3, "loss", 1.0, 0}});
    store.deleteMetricsAfter(id, 2);  // a resume from step 2 drops later points...
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
          for (int s = 0; s < 20; ++s) points.push_back({batch * 20 + s + 1, "loss", 1.0 / (batch + 1), unixNow()});
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
    sqlite3* db = nullptr;  // pretend a future version wrote the file
    QCOMPARE(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    QCOMPARE(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    try {
      RunStore s(path);
      QFAIL("expected an error");
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find(path) != std::string::npos &&
                   std::string(e.what()).find("newer") != std::string::npos, e.what());
    }
  }
};

QTEST_GUILESS_MAIN(TestRunStore)
#include "test_run_store.moc"
