#include "runs_browser.h"

#include <QCheckBox>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QEvent>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QTableView>
#include <QTabWidget>
#include <QTableWidget>
#include <QTreeView>
#include <QVBoxLayout>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

namespace pivot {
namespace {

void flatten(const nlohmann::json& j, const std::string& prefix,
             std::vector<std::pair<QString, QString>>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out.emplace_back(QString::fromStdString(prefix),
                     QString::fromStdString(j.is_string() ? j.get<std::string>() : j.dump()));
  }
}

}  // namespace

std::vector<std::pair<QString, QString>> flattenConfig(const std::string& configJson) {
  std::vector<std::pair<QString, QString>> out;
  try {
    flatten(nlohmann::json::parse(configJson), "", out);
  } catch (const nlohmann::json::exception&) {
    out.emplace_back("config", "(unreadable)");
  }
  return out;
}

RunsBrowser::RunsBrowser(RunsModel* runs, QWidget* parent) : QWidget(parent), m_runs(runs) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  m_filter = new QLineEdit;
  m_filter->setPlaceholderText("Filter runs (name, stage, status, tags)…");
  m_filter->setClearButtonEnabled(true);
  layout->addWidget(m_filter);

  m_proxy = new QSortFilterProxyModel(this);
  m_proxy->setSourceModel(m_runs);
  m_proxy->setSortRole(RunsModel::SortRole);
  m_proxy->setFilterCaseSensitivity(Qt::CaseInsensitive);
  m_proxy->setFilterKeyColumn(-1);
  m_view = new QTableView;
  m_view->setModel(m_proxy);
  m_view->setSortingEnabled(true);
  m_view->sortByColumn(RunsModel::Id, Qt::DescendingOrder);
  m_view->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_view->setSelectionMode(QAbstractItemView::ExtendedSelection);
  m_view->setEditTriggers(QAbstractItemView::DoubleClicked | QAbstractItemView::EditKeyPressed);
  m_view->verticalHeader()->hide();
  m_view->horizontalHeader()->setStretchLastSection(true);
  m_view->setContextMenuPolicy(Qt::CustomContextMenu);
  m_view->setAlternatingRowColors(true);

  auto* paramBox = new QWidget;
  auto* paramLayout = new QVBoxLayout(paramBox);
  paramLayout->setContentsMargins(0, 0, 0, 0);
  m_onlyDifferences = new QCheckBox("Only differences");
  m_onlyDifferences->setChecked(true);
  paramLayout->addWidget(m_onlyDifferences);
  m_params = new QTableWidget;
  m_params->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_params->verticalHeader()->hide();
  paramLayout->addWidget(m_params);

  m_treeModel = new RunsTree(m_runs, this);
  m_tree = new QTreeView;
  m_tree->setObjectName("runsTree");
  m_tree->setModel(m_treeModel);
  m_tree->setSelectionMode(QAbstractItemView::ExtendedSelection);
  m_tree->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_tree->setAlternatingRowColors(true);
  m_tree->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_views = new QTabWidget;
  m_views->addTab(m_view, "Table");
  m_views->addTab(m_tree, "Tree");
  auto* split = new QSplitter(Qt::Horizontal);
  split->addWidget(m_views);
  split->addWidget(paramBox);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 2);
  layout->addWidget(split, 1);

  connect(m_filter, &QLineEdit::textChanged, this, &RunsBrowser::setFilterText);
  // The table's selection is the one the window follows; a run a poll removes leaves it.
  connect(m_view->selectionModel(), &QItemSelectionModel::selectionChanged, this, [this] {
    if (m_updating) return;
    updateParameterTable();
    showSelectionInTree();
    Q_EMIT selectionChanged(selectedRunIds());
  });
  connect(m_onlyDifferences, &QCheckBox::toggled, this, &RunsBrowser::updateParameterTable);
  connect(m_runs, &RunsModel::renameRequested, this, &RunsBrowser::renameRequested);
  // An empty workspace says what fills it, over the table.
  m_emptyState = new QLabel(
      "No runs in this workspace yet.\nStart one from the Launch panel (Ctrl+R), or run `pivot "
      "train` or `pivot experiment` on this workspace: its runs appear here as they start.",
      m_view->viewport());
  m_emptyState->setObjectName("runsEmptyState");
  m_emptyState->setAlignment(Qt::AlignCenter);
  m_emptyState->setWordWrap(true);
  m_emptyState->setStyleSheet("color: #777; padding: 12px;");
  m_view->viewport()->installEventFilter(this);
  connect(m_runs, &RunsModel::updated, this, [this] {
    m_emptyState->setVisible(m_runs->rowCount() == 0);
    m_view->resizeColumnsToContents();
    for (int c = 0; c < m_treeModel->columnCount(); ++c) m_tree->resizeColumnToContents(c);
    updateParameterTable();  // a name may have changed
  });
  connect(m_view, &QTableView::customContextMenuRequested, this,
          [this](const QPoint& pos) { showContextMenu(m_view->viewport()->mapToGlobal(pos)); });
  // The tree offers the same actions on its runs (its selection is the table's); an experiment's
  // row opens its report in the Encoders view.
  m_tree->setContextMenuPolicy(Qt::CustomContextMenu);
  connect(m_tree, &QTreeView::customContextMenuRequested, this, [this](const QPoint& pos) {
    if (const auto experiment = m_treeModel->experimentAt(m_tree->indexAt(pos))) {
      QMenu menu(this);
      auto* show = menu.addAction("Show its report in Encoders");
      if (menu.exec(m_tree->viewport()->mapToGlobal(pos)) == show)
        Q_EMIT experimentActivated(experiment);
      return;
    }
    showContextMenu(m_tree->viewport()->mapToGlobal(pos));
  });
  connect(m_tree, &QTreeView::activated, this, [this](const QModelIndex& index) {
    if (const auto experiment = m_treeModel->experimentAt(index))
      Q_EMIT experimentActivated(experiment);
  });
  connect(m_tree->selectionModel(), &QItemSelectionModel::selectionChanged, this, [this] {
    if (m_updating) return;
    QList<int64_t> ids;
    bool experimentRow = false;
    for (const auto& index : m_tree->selectionModel()->selectedRows()) {
      const auto id = m_treeModel->data(index, RunsModel::RunIdRole).toLongLong();
      if (id && !ids.contains(id)) ids << id;
      experimentRow |= m_treeModel->experimentAt(index) != 0;
    }
    // An experiment's row alone is not a choice of runs: the runs shown stay.
    if (ids.isEmpty() && experimentRow) return;
    selectRuns(ids);
  });
  // Every row starts open; what the user closes stays closed across polls.
  connect(m_tree, &QTreeView::collapsed, this, [this](const QModelIndex& index) {
    if (!m_updating) m_collapsed.insert(treeKey(index));
  });
  connect(m_tree, &QTreeView::expanded, this, [this](const QModelIndex& index) {
    if (!m_updating) m_collapsed.remove(treeKey(index));
  });
  connect(m_treeModel, &QAbstractItemModel::modelReset, this, &RunsBrowser::restoreTreeExpansion);
  restoreTreeExpansion();
}

QString RunsBrowser::treeKey(const QModelIndex& index) const {
  QString key;
  for (QModelIndex i = index; i.isValid(); i = i.parent()) {
    const auto experiment = m_treeModel->experimentAt(i);
    key.prepend(experiment
                    ? QString("/e%1").arg(experiment)
                    : QString("/%1").arg(m_treeModel->data(i, RunsModel::RunIdRole).toLongLong()));
  }
  return key;
}

// After the tree's shape changed (a run or experiment came or went): open every row but those the
// user closed, and show the table's selection.
void RunsBrowser::restoreTreeExpansion() {
  const bool wasUpdating = m_updating;
  m_updating = true;
  m_tree->expandAll();
  std::function<void(const QModelIndex&)> visit = [&](const QModelIndex& parent) {
    for (int row = 0; row < m_treeModel->rowCount(parent); ++row) {
      const auto index = m_treeModel->index(row, 0, parent);
      if (m_collapsed.contains(treeKey(index))) m_tree->collapse(index);
      visit(index);
    }
  };
  visit({});
  for (int c = 0; c < m_treeModel->columnCount(); ++c) m_tree->resizeColumnToContents(c);
  m_updating = wasUpdating;
  showSelectionInTree();
}

void RunsBrowser::showSelectionInTree() {
  const bool wasUpdating = m_updating;
  m_updating = true;
  QItemSelection selection;
  for (const auto id : selectedRunIds()) {
    const auto at = m_treeModel->mapFromSource(m_runs->index(m_runs->rowOf(id), RunsModel::Name));
    if (at.isValid())
      selection.select(at,
                       m_treeModel->index(at.row(), m_treeModel->columnCount() - 1, at.parent()));
  }
  m_tree->selectionModel()->select(selection, QItemSelectionModel::ClearAndSelect);
  m_updating = wasUpdating;
}

void RunsBrowser::setFilterText(const QString& text) {
  if (m_filter->text() != text) m_filter->setText(text);
  m_proxy->setFilterFixedString(text);
}

void RunsBrowser::showTree() { m_views->setCurrentWidget(m_tree); }

int RunsBrowser::rowCount() const { return m_proxy->rowCount(); }

QList<int64_t> RunsBrowser::selectedRunIds() const {
  QList<int64_t> ids;
  for (const auto& index : m_view->selectionModel()->selectedRows(RunsModel::Id))
    ids << m_proxy->data(index, RunsModel::RunIdRole).toLongLong();
  std::sort(ids.begin(), ids.end());
  return ids;
}

void RunsBrowser::selectRuns(const QList<int64_t>& ids) {
  const bool wasUpdating = m_updating;
  m_updating = true;
  QItemSelection selection;
  for (int r = 0; r < m_proxy->rowCount(); ++r) {
    const auto index = m_proxy->index(r, RunsModel::Id);
    if (ids.contains(m_proxy->data(index, RunsModel::RunIdRole).toLongLong()))
      selection.select(index, m_proxy->index(r, RunsModel::ColumnCount - 1));
  }
  m_view->selectionModel()->select(selection, QItemSelectionModel::ClearAndSelect);
  m_updating = wasUpdating;
  if (!m_updating) {
    showSelectionInTree();
    updateParameterTable();
    Q_EMIT selectionChanged(selectedRunIds());
  }
}

void RunsBrowser::updateParameterTable() {
  const auto ids = selectedRunIds();
  std::vector<const RunSummary*> chosen;
  for (const auto& r : m_runs->runs())
    if (ids.contains(r.info.id)) chosen.push_back(&r);
  std::map<QString, std::vector<QString>> table;  // key -> value per chosen run
  for (size_t c = 0; c < chosen.size(); ++c)
    for (const auto& [k, v] : flattenConfig(chosen[c]->info.configJson)) {
      auto& row = table[k];
      row.resize(chosen.size());
      row[c] = v;
    }
  m_params->clear();
  m_params->setColumnCount(static_cast<int>(chosen.size()) + 1);
  QStringList headers{"parameter"};
  for (const auto* r : chosen) headers << QString::fromStdString(r->info.name);
  m_params->setHorizontalHeaderLabels(headers);
  int row = 0;
  m_params->setRowCount(static_cast<int>(table.size()));
  for (auto& [key, values] : table) {
    values.resize(chosen.size());
    const bool differs = std::any_of(values.begin(), values.end(),
                                     [&](const QString& v) { return v != values.front(); });
    if (m_onlyDifferences->isChecked() && chosen.size() > 1 && !differs) continue;
    m_params->setItem(row, 0, new QTableWidgetItem(key));
    for (size_t c = 0; c < values.size(); ++c) {
      auto* item = new QTableWidgetItem(values[c]);
      if (differs) item->setBackground(QColor("#fff3b0"));
      m_params->setItem(row, static_cast<int>(c) + 1, item);
    }
    if (differs) m_params->item(row, 0)->setBackground(QColor("#fff3b0"));
    ++row;
  }
  m_params->setRowCount(row);
  m_params->resizeColumnsToContents();
}

void RunsBrowser::showContextMenu(const QPoint& globalPos) {
  const auto ids = selectedRunIds();
  if (ids.isEmpty()) return;
  QMenu menu(this);
  auto* rename = menu.addAction("Rename…");
  auto* tag = menu.addAction("Edit tags…");
  auto* resume = menu.addAction("Resume from last checkpoint");
  menu.addSeparator();
  auto* remove =
      menu.addAction(ids.size() == 1 ? "Delete run…" : QString("Delete %1 runs…").arg(ids.size()));
  const RunSummary* first = m_runs->run(ids.front());
  rename->setEnabled(ids.size() == 1 && first);
  tag->setEnabled(ids.size() == 1 && first);
  // A run whose process is gone shows as "crashed" and is resumable; a live one (running or paused
  // here or in another process) is not: the trainer would refuse it.
  resume->setEnabled(ids.size() == 1 && first && first->info.status != RunStatus::Finished &&
                     first->info.status != RunStatus::Running &&
                     first->info.status != RunStatus::Paused &&
                     first->info.status != RunStatus::Unknown);
  auto* chosen = menu.exec(globalPos);
  if (!chosen || !first) return;
  if (chosen == rename) {
    bool ok = false;
    const auto name = QInputDialog::getText(this, "Rename run", "Name:", QLineEdit::Normal,
                                            QString::fromStdString(first->info.name), &ok);
    if (ok && !name.trimmed().isEmpty()) Q_EMIT renameRequested(first->info.id, name.trimmed());
  } else if (chosen == tag) {
    bool ok = false;
    const auto tags =
        QInputDialog::getText(this, "Tags", "Comma-separated tags:", QLineEdit::Normal,
                              QString::fromStdString(first->info.tags), &ok);
    if (ok) Q_EMIT tagsRequested(first->info.id, tags.trimmed());
  } else if (chosen == resume) {
    Q_EMIT resumeRequested(first->info.id);
  } else if (chosen == remove) {
    const auto answer = QMessageBox::question(
        this, "Delete runs",
        QString("Delete %1 run(s) with their checkpoints and metrics? This cannot be undone.")
            .arg(ids.size()));
    if (answer == QMessageBox::Yes) Q_EMIT deleteRequested(ids);
  }
}

}  // namespace pivot

namespace pivot {

bool RunsBrowser::eventFilter(QObject* watched, QEvent* event) {
  if (watched == m_view->viewport() && event->type() == QEvent::Resize)
    m_emptyState->setGeometry(m_view->viewport()->rect());  // centred over the whole table
  return QWidget::eventFilter(watched, event);
}

bool RunsBrowser::emptyStateShown() const { return !m_emptyState->isHidden(); }

void RunsBrowser::focusFilter() {
  m_filter->setFocus(Qt::ShortcutFocusReason);
  m_filter->selectAll();
}

}  // namespace pivot
