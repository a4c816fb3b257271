// The runs browser: every run of the workspace (also those the `pivot` command started), as a table
// with filter and sort and as a tree of experiments and chains, with a hyper-parameter table
// comparing the selected runs (differences highlighted), and rename, tag, delete and resume
// actions. Both views look at the window's one RunsModel through proxies (runs_model.h).
#pragma once
#include <QList>
#include <QSet>
#include <QWidget>
#include <vector>

#include "runs_model.h"

class QCheckBox;
class QLabel;
class QLineEdit;
class QSortFilterProxyModel;
class QTableView;
class QTableWidget;
class QTabWidget;
class QTreeView;

namespace pivot {

class RunsBrowser : public QWidget {
  Q_OBJECT
 public:
  explicit RunsBrowser(RunsModel* runs, QWidget* parent = nullptr);

  QList<int64_t> selectedRunIds() const;
  void selectRuns(const QList<int64_t>& ids);
  int rowCount() const;          // rows the filter lets through
  bool emptyStateShown() const;  // the "no runs yet" note over the empty table
  void focusFilter();            // Find run: the filter field, its text selected
  const std::vector<RunSummary>& runs() const { return m_runs->runs(); }
  QTableWidget* parameterTable() const { return m_params; }
  QTableView* table() const { return m_view; }
  // The same runs as a tree: each experiment with its chain (stage 0 -> 1a -> 1b -> stage 2 ->
  // transplants under the encoder they took), other runs under their parents.
  QTreeView* tree() const { return m_tree; }
  void showTree();  // brings the Tree tab to the front
  RunsTree* treeModel() const { return m_treeModel; }
  void setFilterText(const QString& text);

 Q_SIGNALS:
  void selectionChanged(const QList<int64_t>& ids);
  void renameRequested(int64_t id, const QString& name);
  void tagsRequested(int64_t id, const QString& tags);
  void deleteRequested(const QList<int64_t>& ids);  // already confirmed by the user
  void resumeRequested(int64_t id);
  void experimentActivated(int64_t experimentId);  // its tree row double-clicked or chosen

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  void updateParameterTable();
  void showContextMenu(const QPoint& globalPos);    // rename, tag, resume, delete
  QString treeKey(const QModelIndex& index) const;  // the path of ids down to a tree row
  void restoreTreeExpansion();
  void showSelectionInTree();

  RunsModel* m_runs;
  QSortFilterProxyModel* m_proxy = nullptr;
  QTableView* m_view = nullptr;
  QLineEdit* m_filter = nullptr;
  QLabel* m_emptyState = nullptr;
  QTableWidget* m_params = nullptr;
  RunsTree* m_treeModel = nullptr;
  QTreeView* m_tree = nullptr;
  QTabWidget* m_views = nullptr;
  QSet<QString> m_collapsed;  // tree rows the user collapsed (all others open)
  QCheckBox* m_onlyDifferences = nullptr;
  bool m_updating = false;
};

// Flattens a run's config JSON to "key.path" -> value text, for the comparison table.
std::vector<std::pair<QString, QString>> flattenConfig(const std::string& configJson);

}  // namespace pivot
