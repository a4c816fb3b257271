// The explanation worker: its own thread and its own copies of the checkpoints' weights (never the
// training worker's), so computing a map never freezes the window nor touches a run in progress.
#pragma once
#include <QObject>
#include <QThread>
#include <list>
#include <map>
#include <string>
#include <memory>

#include "inspect_view.h"

namespace pivot {

struct LoadedCheckpoint;
class ConversationBatcher;

class ExplainWorker : public QObject {
  Q_OBJECT
 public:
  ExplainWorker();
  ~ExplainWorker() override;

 public Q_SLOTS:
  void run(const pivot::ExplainJob& job);

 Q_SIGNALS:
  void finished(const pivot::ExplainOutcome& outcome);

 private:
  LoadedCheckpoint& model(const std::string& path);
  // A real model's tokenizer, template and processor, loaded once per model folder.
  const ConversationBatcher& batcher(const LoadedCheckpoint& m);
  std::map<std::string, std::unique_ptr<ConversationBatcher>> m_batchers;
  std::list<std::pair<std::string, std::unique_ptr<LoadedCheckpoint>>>
      m_models;  // most recent first
};

class ExplainThread {
 public:
  ExplainThread();
  ~ExplainThread();
  ExplainWorker* worker() const { return m_worker; }

 private:
  QThread m_thread;
  ExplainWorker* m_worker;
};

}  // namespace pivot
