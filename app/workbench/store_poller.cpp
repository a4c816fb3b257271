#include "store_poller.h"

#include <QtConcurrent/QtConcurrent>
#include <filesystem>

#include "store/run_store.h"
#include "store/workspace.h"

namespace pivot {

namespace {
constexpr int kPollIntervalMs = 1500;  // runs started elsewhere, other runs' points
}

StorePoll readStore(const std::string& path, const std::map<int64_t, int64_t>& wanted) {
  StorePoll poll;
  try {
    if (!std::filesystem::exists(path)) return poll;
    RunStore store(path, RunStore::Access::ReadOnly);  // the poller never writes
    for (const auto& info : store.runs()) {
      RunSummary s;
      s.info = info;
      s.info.status = effectiveStatus(info);  // a dead owner's "running" run shows as crashed
      if (auto loss = store.lastMetric(info.id, "loss")) {
        s.lastStep = loss->step;
        s.lastLoss = loss->value;
      }
      if (auto margin = store.lastMetric(info.id, "rewards/margins")) s.lastMargin = margin->value;
      s.checkpoints = store.checkpoints(info.id);
      poll.runs.push_back(std::move(s));
    }
    poll.experiments = store.experiments();
    for (auto& e : poll.experiments) e.status = effectiveStatus(e);
    for (const auto& [id, after] : wanted) poll.newPoints[id] = store.metricsAfter(id, after);
  } catch (const std::exception& e) {
    poll.error = QString::fromUtf8(e.what());
  }
  return poll;
}

StorePoller::StorePoller(std::string storePath, std::function<std::map<int64_t, int64_t>()> wanted,
                         QObject* parent)
    : QObject(parent), m_storePath(std::move(storePath)), m_wanted(std::move(wanted)) {
  connect(&m_watcher, &QFutureWatcher<StorePoll>::finished, this,
          [this] { Q_EMIT polled(m_watcher.result()); });
  m_timer.setInterval(kPollIntervalMs);
  connect(&m_timer, &QTimer::timeout, this, &StorePoller::pollNow);
  m_timer.start();
}

StorePoller::~StorePoller() { m_watcher.waitForFinished(); }

void StorePoller::pollNow() {
  if (m_watcher.isRunning()) return;
  m_watcher.setFuture(QtConcurrent::run(
      [path = m_storePath, wanted = m_wanted()] { return readStore(path, wanted); }));
}

}  // namespace pivot
