// The runs browser: every run of the workspace (also those the `pivot` command started), with
// filter and sort, a hyper-parameter table comparing the selected runs (differences highlighted),
// and rename, tag, delete and resume actions. It shows data it is given; the window fetches them
// from the run store off the GUI thread.
#pragma once
#include <QList>
#include <QWidget>
#include <vector>

#include "store/run_store.h"

class QCheckBox;
class QLineEdit;
class QSortFilterProxyModel;
class QStandardItemModel;
class QTableView;
class QTableWidget;
class QTreeWidget;
class QTreeWidgetItem;

namespace pivot {

struct RunSummary {
  RunInfo info;
  int64_t lastStep = 0;
  double lastLoss = NAN, lastMargin = NAN;
  std::vector<CheckpointInfo> checkpoints;  // ascending steps
};

class RunsBrowser : public QWidget {
  Q_OBJECT
 public:
  explicit RunsBrowser(QWidget* parent = nullptr);

  void setRuns(const std::vector<RunSummary>& runs);  // keeps the selection
  QList<int64_t> selectedRunIds() const;
  void selectRuns(const QList<int64_t>& ids);
  int rowCount() const;
  const std::vector<RunSummary>& runs() const { return m_runs; }
  QTableWidget* parameterTable() const { return m_params; }
  QTableView* table() const { return m_view; }
  // The same runs as a tree: each experiment with its chain (stage 0 -> 1a -> 1b -> stage 2 ->
  // transplants under the encoder they took), other runs under their parents.
  QTreeWidget* tree() const { return m_tree; }
  void setFilterText(const QString& text);

 Q_SIGNALS:
  void selectionChanged(const QList<int64_t>& ids);
  void renameRequested(int64_t id, const QString& name);
  void tagsRequested(int64_t id, const QString& tags);
  void deleteRequested(const QList<int64_t>& ids);  // already confirmed by the user
  void resumeRequested(int64_t id);

 private:
  void updateParameterTable();
  void rebuildTree();
  void showContextMenu(const QPoint& pos);

  std::vector<RunSummary> m_runs;
  QStandardItemModel* m_model = nullptr;
  QSortFilterProxyModel* m_proxy = nullptr;
  QTableView* m_view = nullptr;
  QLineEdit* m_filter = nullptr;
  QTableWidget* m_params = nullptr;
  QTreeWidget* m_tree = nullptr;
  QCheckBox* m_onlyDifferences = nullptr;
  bool m_updating = false;
};

// The encoder run a PIVOT transplant took its vision tower from ("vision_init": "<id>"), or 0.
int64_t transplantSource(const std::string& configJson);

// Flattens a run's config JSON to "key.path" -> value text, for the comparison table.
std::vector<std::pair<QString, QString>> flattenConfig(const std::string& configJson);

}  // namespace pivot
