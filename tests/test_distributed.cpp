// Data-parallel training (training/distributed.h, `pivot train --nproc N`) on loopback Gloo:
// 2 ranks x B/2 take the steps 1 process x B takes (SFT and DPO: the loss curve and the final
// weights), a killed rank fails the run with an error naming it and leaves a resumable checkpoint,
// a hung rank is given up on after the timeout, torchrun's environment is read strictly.
#include <QtTest/QtTest>
#include <torch/torch.h>

#include <QDir>
#include <QProcess>
#include <QTemporaryDir>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "io/safetensors.h"
#include "store/run_store.h"
#include "store/workspace.h"
#include "test_util.h"
#include "training/distributed.h"

using namespace pivot;

namespace {

const QString kPivot = PIVOT_BINARY_DIR "/app/pivot";

struct Result {
  int code;
  QString out, err;
};

Result pivotCmd(const QStringList& args, const QProcessEnvironment& env = {}) {
  QProcess p;
  if (!env.isEmpty()) p.setProcessEnvironment(env);
  p.start(kPivot, args);
  p.waitForFinished(600000);
  return {p.exitCode(), QString::fromUtf8(p.readAllStandardOutput()),
          QString::fromUtf8(p.readAllStandardError())};
}

std::map<int64_t, double> lossCurve(const QString& workspace, int64_t runId) {
  RunStore store(storePath(workspace.toStdString()), RunStore::Access::ReadOnly);
  std::map<int64_t, double> curve;
  for (const auto& p : store.metrics(runId, "loss")) curve[p.step] = p.value;
  return curve;
}

TensorMap finalWeights(const QString& workspace, int64_t runId) {
  RunStore store(storePath(workspace.toStdString()), RunStore::Access::ReadOnly);
  return loadSafetensors(store.checkpoints(runId).back().path + "/model.safetensors");
}

int64_t lastRunId(const QString& workspace) {
  RunStore store(storePath(workspace.toStdString()), RunStore::Access::ReadOnly);
  return store.runs().back().id;
}

// The process ids of `parent`'s children (the launcher's workers), in start order: /proc/*/stat's
// fourth field is the parent's id.
QList<qint64> childrenOf(qint64 parent) {
  QList<qint64> pids;
  for (const auto& entry : QDir("/proc").entryList(QDir::Dirs)) {
    bool isPid = false;
    const qint64 pid = entry.toLongLong(&isPid);
    if (!isPid) continue;
    QFile f("/proc/" + entry + "/stat");
    if (!f.open(QIODevice::ReadOnly)) continue;
    const QString stat = QString::fromUtf8(f.readAll());
    const auto fields = stat.mid(stat.lastIndexOf(')') + 2).split(' ');
    if (fields.size() > 1 && fields[1].toLongLong() == parent) pids.push_back(pid);
  }
  std::sort(pids.begin(), pids.end());
  return pids;
}

// The newest (stage-2 SFT) run once it is running and `ready` holds for it (polled for up to a
// minute); 0 if never.
int64_t waitForRunningRun(const std::function<bool(const RunStore&, int64_t)>& ready,
                          const QString& workspace) {
  for (int i = 0; i < 600; ++i) {
    QTest::qWait(100);
    RunStore store(storePath(workspace.toStdString()), RunStore::Access::ReadOnly);
    const auto runs = store.runs();
    if (runs.back().stage == "sft" && runs.back().status == RunStatus::Running &&
        ready(store, runs.back().id))
      return runs.back().id;
  }
  return 0;
}

}  // namespace

class TestDistributed : public QObject {
  Q_OBJECT
  QTemporaryDir m_dir;
  QString m_ws;
  QString m_stage1;  // a finished tiny stage 1b run: the parent of every stage-2 run here

  // 1 process x batch 16 (one thread) against 2 processes x 8 (one thread each, as --nproc
  // gives them on this 2-core machine): the same global batches, so the same steps up to float
  // rounding in the reductions.
  void compareWithOneProcess(const QString& stage) {
    const QStringList common = {
        "--workspace",   m_ws,     "train",       "--preset", "tiny",           "--stage",
        stage,           "--from", m_stage1,      "--set",    "steps=12",       "--set",
        "batch_size=16", "--set",  "snapshots=0", "--set",    "eval_samples=0", "--quiet"};
    const auto one = pivotCmd(common + QStringList{"--set", "threads=1"});
    QVERIFY2(one.code == 0, qPrintable(one.err));
    const int64_t single = lastRunId(m_ws);
    const auto two = pivotCmd(common + QStringList{"--nproc", "2"});
    QVERIFY2(two.code == 0, qPrintable(two.err + two.out));
    const int64_t parallel = lastRunId(m_ws);
    QVERIFY(parallel != single);
    QVERIFY2(two.out.contains("2 data-parallel processes"), qPrintable(two.out));

    const auto a = lossCurve(m_ws, single), b = lossCurve(m_ws, parallel);
    QCOMPARE(a.size(), size_t(12));
    QCOMPARE(b.size(), a.size());
    double worstLoss = 0;
    for (const auto& [step, loss] : a) worstLoss = std::max(worstLoss, std::abs(loss - b.at(step)));
    const auto wa = finalWeights(m_ws, single), wb = finalWeights(m_ws, parallel);
    QCOMPARE(wb.size(), wa.size());
    double worstWeight = 0;
    for (const auto& [name, t] : wa)
      worstWeight = std::max(worstWeight, (t - wb.at(name)).abs().max().item<double>());
    qInfo("%s: largest loss difference %.2e, largest weight difference %.2e", qPrintable(stage),
          worstLoss, worstWeight);
    // Float32: only the order of the sums differs (measured: 1e-7 on the loss, 1e-6 to 1e-5 on
    // the weights after 20 steps).
    QVERIFY2(worstLoss < 1e-5, qPrintable(QString::number(worstLoss)));
    QVERIFY2(worstWeight < 1e-4, qPrintable(QString::number(worstWeight)));
    // The gradient all-reduce is timed and logged.
    RunStore store(storePath(m_ws.toStdString()), RunStore::Access::ReadOnly);
    QCOMPARE(store.metrics(parallel, "ddp/allreduce_ms").size(), size_t(12));
    QVERIFY(store.metrics(single, "ddp/allreduce_ms").empty());
    QVERIFY(QString::fromStdString(store.run(parallel)->message).contains("finished"));
  }

  // Starts a long 2-rank SFT run from stage 1 and waits until it logged a loss past `pastStep`;
  // returns its id (0 if it never got there).
  int64_t startLongRun(QProcess& launcher, int64_t pastStep) {
    launcher.start(kPivot,
                   {"--workspace", m_ws, "train", "--preset", "tiny", "--stage", "sft", "--from",
                    m_stage1, "--set", "steps=4000", "--set", "eval_samples=0", "--nproc", "2"});
    if (!launcher.waitForStarted()) return 0;
    return waitForRunningRun(
        [pastStep](const RunStore& store, int64_t id) {
          const auto loss = store.lastMetric(id, "loss");
          return loss && loss->step > pastStep;
        },
        m_ws);
  }

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(m_dir.isValid());
    m_ws = m_dir.filePath("ws");
    const auto r = pivotCmd({"--workspace", m_ws, "train", "--preset", "tiny", "--stage",
                             "instruct", "--set", "steps=150", "--quiet"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    m_stage1 = QString::number(lastRunId(m_ws));
  }

  void torchrunEnvironmentIsReadStrictly() {
    const auto envOf = [](std::map<std::string, std::string> vars) {
      return distributedEnvFromEnvironment([vars](const char* name) -> const char* {
        const auto it = vars.find(name);
        return it == vars.end() ? nullptr : it->second.c_str();
      });
    };
    QCOMPARE(envOf({}).worldSize, 1);
    QVERIFY(!envOf({}).active());
    const auto e = envOf({{"WORLD_SIZE", "4"},
                          {"RANK", "3"},
                          {"LOCAL_RANK", "1"},
                          {"LOCAL_WORLD_SIZE", "2"},
                          {"MASTER_ADDR", "node7"},
                          {"MASTER_PORT", "29400"},
                          {"PIVOT_DIST_TIMEOUT_S", "7"}});
    QCOMPARE(e.rank, 3);
    QCOMPARE(e.worldSize, 4);
    QCOMPARE(e.localRank, 1);
    QCOMPARE(e.localWorldSize, 2);
    QCOMPARE(QString::fromStdString(e.masterAddr), QString("node7"));
    QCOMPARE(e.masterPort, 29400);
    QCOMPARE(e.timeout.count(), int64_t(7000));
    QVERIFY(e.active() && !e.leader());
    QVERIFY(errorOf([&] { envOf({{"WORLD_SIZE", "2"}}); }).contains("RANK is not set"));
    QVERIFY(errorOf([&] { envOf({{"WORLD_SIZE", "2"}, {"RANK", "2"}}); }).contains("RANK='2'"));
    QVERIFY(errorOf([&] { envOf({{"WORLD_SIZE", "two"}}); }).contains("WORLD_SIZE='two'"));
    QVERIFY(errorOf([&] {
              envOf({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "70000"}});
            }).contains("MASTER_PORT"));
  }

  void ranksSliceTheGlobalBatch() {
    const std::vector<int64_t> global = {5, 1, 9, 3, 7, 2};
    QCOMPARE(rankSlice(global, 0, 2), (std::vector<int64_t>{5, 1, 9}));
    QCOMPARE(rankSlice(global, 1, 2), (std::vector<int64_t>{3, 7, 2}));
    QCOMPARE(rankSlice(global, 2, 3), (std::vector<int64_t>{7, 2}));
    QVERIFY(errorOf([&] { rankSlice(global, 0, 4); }).contains("does not split evenly over 4"));
    const auto odd = pivotCmd({"--workspace", m_ws, "train", "--preset", "tiny", "--stage", "sft",
                               "--from", m_stage1, "--set", "batch_size=15", "--nproc", "2"});
    QCOMPARE(odd.code, 2);  // refused before the run exists
    QVERIFY2(odd.err.contains("does not split evenly over 2 processes"), qPrintable(odd.err));
    QCOMPARE(lastRunId(m_ws), m_stage1.toLongLong());
    const auto bad = pivotCmd({"--workspace", m_ws, "train", "--nproc", "0"});
    QCOMPARE(bad.code, 2);
  }

  void sftOnTwoRanksMatchesOneProcess() { compareWithOneProcess("sft"); }
  void dpoOnTwoRanksMatchesOneProcess() { compareWithOneProcess("dpo"); }
  void pretrainOnTwoRanksMatchesOneProcess() { compareWithOneProcess("pretrain"); }

  // GRPO: each rank samples its prompts' groups; the run logs rewards and rank 0's completions.
  void grpoRunsOnTwoRanks() {
    const auto r = pivotCmd({"--workspace", m_ws, "train", "--preset", "tiny", "--stage", "grpo",
                             "--from", m_stage1, "--set", "steps=4", "--set", "eval_samples=0",
                             "--set", "log_completions_steps=1", "--quiet", "--nproc", "2"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    RunStore store(storePath(m_ws.toStdString()), RunStore::Access::ReadOnly);
    const int64_t id = store.runs().back().id;
    QCOMPARE(store.metrics(id, "reward").size(), size_t(4));
    QCOMPARE(store.metrics(id, "ddp/allreduce_ms").size(), size_t(4));
    QVERIFY(!store.completionSteps(id).empty());
  }

  // Kill rank 1 mid-run: rank 0 fails the run naming it, keeps the store intact and the last
  // checkpoint; `--resume --nproc 2` finishes the run; resuming on another world size is refused.
  void aKilledRankFailsTheRunAndResumeFinishesIt() {
    QProcess launcher;
    launcher.start(kPivot, {"--workspace", m_ws, "train", "--preset", "tiny", "--stage", "sft",
                            "--from", m_stage1, "--set", "steps=4000", "--set",
                            "checkpoint_every=20", "--set", "eval_samples=0", "--nproc", "2"});
    QVERIFY(launcher.waitForStarted());
    // Wait for a checkpoint past step 20, then kill rank 1.
    const int64_t runId = waitForRunningRun(
        [](const RunStore& store, int64_t id) { return !store.checkpoints(id).empty(); }, m_ws);
    QVERIFY(runId > 0);
    const auto workers = childrenOf(launcher.processId());
    QCOMPARE(workers.size(), 2);
    QVERIFY(::kill(static_cast<pid_t>(workers[1]), SIGKILL) == 0);
    QVERIFY(launcher.waitForFinished(120000));
    const QString err = QString::fromUtf8(launcher.readAllStandardError());
    QCOMPARE(launcher.exitCode(), 1);
    QVERIFY2(err.contains("rank 1") && err.contains("killed by signal 9"), qPrintable(err));
    QVERIFY2(err.contains("rank 1 (last seen at step"), qPrintable(err));

    RunStore store(storePath(m_ws.toStdString()), RunStore::Access::ReadOnly);
    QVERIFY(store.integrityProblems().empty());
    const auto failed = *store.run(runId);
    QCOMPARE(QString(name(failed.status)), QString("failed"));
    QVERIFY2(QString::fromStdString(failed.message).contains("last good checkpoint"),
             failed.message.c_str());
    const int64_t saved = store.checkpoints(runId).back().step;
    QVERIFY(saved >= 20 && saved < 4000);

    const auto other = pivotCmd({"--workspace", m_ws, "train", "--resume", QString::number(runId)});
    QCOMPARE(other.code, 2);
    QVERIFY2(other.err.contains("was trained on 2 processes") && other.err.contains("--nproc 2"),
             qPrintable(other.err));

    // The rest of the run, shortened through a second stop: SIGINT reaches both workers.
    QProcess resume;
    resume.start(
        kPivot, {"--workspace", m_ws, "train", "--resume", QString::number(runId), "--nproc", "2"});
    QVERIFY(resume.waitForStarted());
    // Until the resumed leader has marked the run running (after it dropped the failed attempt's
    // metrics past its checkpoint, which could otherwise satisfy the wait at once) and trained
    // ten steps past the failed attempt's last checkpoint.
    for (int i = 0; i < 600; ++i) {
      QTest::qWait(100);
      RunStore s(storePath(m_ws.toStdString()), RunStore::Access::ReadOnly);
      if (s.run(runId)->status != RunStatus::Running) continue;
      const auto loss = s.lastMetric(runId, "loss");
      if (loss && loss->step > saved + 10) break;
    }
    QVERIFY(::kill(static_cast<pid_t>(resume.processId()), SIGINT) == 0);
    QVERIFY(resume.waitForFinished(120000));
    // The stop names the command that continues it, with the world size a resume needs.
    const QString said =
        QString::fromUtf8(resume.readAllStandardOutput() + resume.readAllStandardError());
    QVERIFY2(resume.exitCode() == 128 + SIGINT, qPrintable(said));
    QVERIFY2(said.contains("pivot train --resume " + QString::number(runId) + " --nproc 2"),
             qPrintable(said));
    const auto stopped = *store.run(runId);
    QCOMPARE(QString(name(stopped.status)), QString("stopped"));
    const int64_t stoppedAt = store.checkpoints(runId).back().step;
    QVERIFY(stoppedAt > saved);
    // Every step from 1 to the stop is logged once: the resumed steps replaced nothing twice.
    const auto curve = lossCurve(m_ws, runId);
    QCOMPARE(static_cast<int64_t>(curve.size()), stoppedAt);
    QCOMPARE(curve.rbegin()->first, stoppedAt);
  }

  // The launcher killed outright (SIGKILL: it forwards nothing): its workers notice its death at
  // once, stop the run with a checkpoint like SIGTERM does, and exit.
  void aKilledLauncherStopsItsWorkers() {
    QProcess launcher;
    const int64_t runId = startLongRun(launcher, 10);
    QVERIFY(runId > 0);
    const auto workers = childrenOf(launcher.processId());
    QCOMPARE(workers.size(), 2);
    QVERIFY(::kill(static_cast<pid_t>(launcher.processId()), SIGKILL) == 0);
    QVERIFY(launcher.waitForFinished(10000));
    QElapsedTimer clock;
    clock.start();
    const auto alive = [&] {
      return std::count_if(workers.begin(), workers.end(), [](qint64 pid) {
        // Reparented, so not ours to reap: a zombie (state Z) has exited.
        QFile stat(QString("/proc/%1/stat").arg(pid));
        if (!stat.open(QIODevice::ReadOnly)) return false;
        const QByteArray line = stat.readAll();
        const int close = line.lastIndexOf(')');
        return close > 0 && line.size() > close + 2 && line[close + 2] != 'Z';
      });
    };
    while (alive() > 0 && clock.elapsed() < 60000) QTest::qWait(100);
    QCOMPARE(alive(), 0);
    RunStore store(storePath(m_ws.toStdString()), RunStore::Access::ReadOnly);
    const auto run = *store.run(runId);
    QCOMPARE(QString(name(run.status)), QString("stopped"));
    QVERIFY(!store.checkpoints(runId).empty());
    QVERIFY(store.checkpoints(runId).back().step < 4000);
  }

  // A rank that hangs (SIGSTOP) is given up on after PIVOT_DIST_TIMEOUT_S: rank 0 fails the run
  // naming it, the launcher terminates the hung worker.
  void aHungRankIsGivenUpOnAfterTheTimeout() {
    QProcess launcher;
    auto env = QProcessEnvironment::systemEnvironment();
    env.insert("PIVOT_DIST_TIMEOUT_S", "4");
    launcher.setProcessEnvironment(env);
    const int64_t runId = startLongRun(launcher, 20);
    QVERIFY(runId > 0);
    const auto workers = childrenOf(launcher.processId());
    QCOMPARE(workers.size(), 2);
    QElapsedTimer clock;
    clock.start();
    QVERIFY(::kill(static_cast<pid_t>(workers[1]), SIGSTOP) == 0);
    QVERIFY(launcher.waitForFinished(120000));
    const QString err = QString::fromUtf8(launcher.readAllStandardError());
    QCOMPARE(launcher.exitCode(), 1);
    QVERIFY2(err.contains("rank 1 (last seen at step") && err.contains("died or hangs"),
             qPrintable(err));
    QVERIFY2(clock.elapsed() < 60000, qPrintable(QString::number(clock.elapsed())));
    RunStore store(storePath(m_ws.toStdString()), RunStore::Access::ReadOnly);
    QCOMPARE(QString(name(store.run(runId)->status)), QString("failed"));
  }
};

QTEST_GUILESS_MAIN(TestDistributed)
#include "test_distributed.moc"
