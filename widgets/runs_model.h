// The window's one model of the workspace's runs (Qt's model/view, as the address-book example
// does): RunsModel holds what the store poller last read, one row per run; every view of runs
// looks at it through a proxy, so a poll updates them all at once and none keeps its own copy.
//   - the runs browser's table: a QSortFilterProxyModel (sort, filter text);
//   - the runs browser's tree: RunsTree, experiments with their chains, other runs under parents;
//   - Inspect's checklist: a checkable RunsFilter (runs with checkpoints);
//   - the launch panel's parent picker: a RunsFilter (finished or stopped runs).
#pragma once
#include <QAbstractProxyModel>
#include <QAbstractTableModel>
#include <QSet>
#include <QSortFilterProxyModel>
#include <cmath>
#include <functional>
#include <vector>

#include "store/run_store.h"

namespace pivot {

// One run as the window shows it: its row, its last loss and margin, its checkpoints.
struct RunSummary {
  RunInfo info;
  int64_t lastStep = 0;
  double lastLoss = NAN, lastMargin = NAN;
  std::vector<CheckpointInfo> checkpoints;  // ascending steps
};

class RunsModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { Id, Name, Stage, Status, Parent, Steps, Loss, Margin, Tags, Created, ColumnCount };
  enum Role {
    RunIdRole = Qt::UserRole + 1,  // qlonglong
    SortRole,                      // numbers as numbers, text as text
  };

  explicit RunsModel(QObject* parent = nullptr);

  // A poll's runs (ascending ids) and experiments. Rows whose run is still there change in place,
  // so selections, check marks, current items and scroll positions in the views stay put.
  void setRuns(const std::vector<RunSummary>& runs,
               const std::vector<ExperimentInfo>& experiments = {});
  const std::vector<RunSummary>& runs() const { return m_runs; }
  const std::vector<ExperimentInfo>& experiments() const { return m_experiments; }
  const RunSummary* run(int64_t id) const;  // null when the workspace has no such run
  const RunSummary& runAt(int row) const { return m_runs[static_cast<size_t>(row)]; }
  int rowOf(int64_t id) const;  // -1 when absent

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role) const override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;
  // Editing a name asks for the rename (the store is written elsewhere); the row shows the new name
  // at once.
  bool setData(const QModelIndex& index, const QVariant& value, int role) override;

 Q_SIGNALS:
  void renameRequested(int64_t id, const QString& name);
  void updated();  // after each setRuns, once its rows have changed

 private:
  std::vector<RunSummary> m_runs;
  std::vector<ExperimentInfo> m_experiments;
};

// The runs a predicate accepts, e.g. those with checkpoints. Optionally checkable (a check box per
// run, kept by run id across polls) and with its own text for the name column (what a list or a
// combo box shows).
class RunsFilter : public QSortFilterProxyModel {
  Q_OBJECT
 public:
  using Predicate = std::function<bool(const RunSummary&)>;
  using Label = std::function<QString(const RunSummary&)>;
  RunsFilter(RunsModel* runs, Predicate accept, QObject* parent = nullptr);

  void setLabel(Label label) { m_label = std::move(label); }
  void setCheckable(bool checkable) { m_checkable = checkable; }
  QList<int64_t> checkedRuns() const;  // in row order
  void setCheckedRuns(const QList<int64_t>& ids);
  int64_t runIdAt(int row) const;
  const RunSummary& runAt(int row) const;

  QVariant data(const QModelIndex& index, int role) const override;
  bool setData(const QModelIndex& index, const QVariant& value, int role) override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;

 Q_SIGNALS:
  void checkedRunsChanged();

 protected:
  bool filterAcceptsRow(int sourceRow, const QModelIndex& sourceParent) const override;

 private:
  RunsModel* m_runs;
  Predicate m_accept;
  Label m_label;
  bool m_checkable = false;
  QSet<qlonglong> m_checked;
};

// The runs as a tree: each experiment (its own row, from the experiments table) with its chain
// (stage 0 -> 1a -> 1b -> stage 2 -> each transplant under the encoder it took), then the runs of
// no experiment under their parents. Its columns: run, id, stage, status, steps, last loss. A run
// in two experiments shows under each; mapFromSource finds its first place.
class RunsTree : public QAbstractProxyModel {
  Q_OBJECT
 public:
  enum TreeColumn { RunColumn, IdColumn, StageColumn, StatusColumn, StepsColumn, LossColumn };

  explicit RunsTree(RunsModel* runs, QObject* parent = nullptr);

  QModelIndex index(int row, int column, const QModelIndex& parent = {}) const override;
  QModelIndex parent(const QModelIndex& child) const override;
  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  bool hasChildren(const QModelIndex& parent = {}) const override;
  QModelIndex sibling(int row, int column, const QModelIndex& index) const override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role) const override;
  QModelIndex mapToSource(const QModelIndex& proxyIndex) const override;
  QModelIndex mapFromSource(const QModelIndex& sourceIndex) const override;
  int64_t experimentAt(const QModelIndex& index) const;  // 0 for a run's row

 private:
  struct Node {
    int64_t runId = 0;         // 0 for an experiment
    int64_t experimentId = 0;  // an experiment's node
    int parent = -1;           // index into m_nodes, -1 at the top
    int row = 0;               // among its parent's children
    std::vector<int> children;
  };
  std::vector<Node> build() const;
  void rebuild();  // after a poll: a reset when the shape changed
  void changed(int64_t runId, int64_t experimentId);  // dataChanged wherever it shows
  const Node* nodeOf(const QModelIndex& index) const;

  RunsModel* m_runs;
  std::vector<Node> m_nodes;
  std::vector<int> m_top;
};

// The encoder run a PIVOT transplant took its vision tower from ("vision_init": "<id>"), or 0.
int64_t transplantSource(const std::string& configJson);

}  // namespace pivot
