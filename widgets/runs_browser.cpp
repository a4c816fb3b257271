#include "runs_browser.h"

#include <QCheckBox>
#include <QDateTime>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStandardItemModel>
#include <QTableView>
#include <QTabWidget>
#include <QTableWidget>
#include <QTreeWidget>
#include <QVBoxLayout>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "run_curves.h"

namespace pivot {
namespace {

enum Column {
  ColId,
  ColName,
  ColStage,
  ColStatus,
  ColParent,
  ColSteps,
  ColLoss,
  ColMargin,
  ColTags,
  ColCreated,
  ColCount
};
const char* kHeaders[] = {"id",    "name",      "stage",       "status", "parent",
                          "steps", "last loss", "last margin", "tags",   "created"};

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

QStandardItem* numberItem(double v, int precision = 4) {
  auto* item =
      new QStandardItem(std::isfinite(v) ? QString::number(v, 'g', precision) : QString("-"));
  item->setData(std::isfinite(v) ? v : -1e300, Qt::UserRole);  // sort numerically
  item->setEditable(false);
  return item;
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

RunsBrowser::RunsBrowser(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  m_filter = new QLineEdit;
  m_filter->setPlaceholderText("Filter runs (name, stage, status, tags)…");
  m_filter->setClearButtonEnabled(true);
  layout->addWidget(m_filter);

  m_model = new QStandardItemModel(0, ColCount, this);
  for (int c = 0; c < ColCount; ++c) m_model->setHeaderData(c, Qt::Horizontal, kHeaders[c]);
  m_proxy = new QSortFilterProxyModel(this);
  m_proxy->setSourceModel(m_model);
  m_proxy->setSortRole(Qt::UserRole);
  m_proxy->setFilterCaseSensitivity(Qt::CaseInsensitive);
  m_proxy->setFilterKeyColumn(-1);
  m_view = new QTableView;
  m_view->setModel(m_proxy);
  m_view->setSortingEnabled(true);
  m_view->sortByColumn(ColId, Qt::DescendingOrder);
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

  m_tree = new QTreeWidget;
  m_tree->setObjectName("runsTree");
  m_tree->setHeaderLabels({"run", "id", "stage", "status", "steps", "last loss"});
  m_tree->setSelectionMode(QAbstractItemView::ExtendedSelection);
  m_tree->setAlternatingRowColors(true);
  auto* views = new QTabWidget;
  views->addTab(m_view, "Table");
  views->addTab(m_tree, "Tree");
  auto* split = new QSplitter(Qt::Horizontal);
  split->addWidget(views);
  split->addWidget(paramBox);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 2);
  layout->addWidget(split, 1);

  connect(m_filter, &QLineEdit::textChanged, this, &RunsBrowser::setFilterText);
  connect(m_view->selectionModel(), &QItemSelectionModel::selectionChanged, this, [this] {
    if (m_updating) return;
    updateParameterTable();
    Q_EMIT selectionChanged(selectedRunIds());
  });
  connect(m_onlyDifferences, &QCheckBox::toggled, this, &RunsBrowser::updateParameterTable);
  connect(m_model, &QStandardItemModel::itemChanged, this, [this](QStandardItem* item) {
    if (m_updating || item->column() != ColName) return;
    const int64_t id = m_model->item(item->row(), ColId)->data(Qt::UserRole).toLongLong();
    Q_EMIT renameRequested(id, item->text().trimmed());
  });
  connect(m_view, &QTableView::customContextMenuRequested, this, &RunsBrowser::showContextMenu);
  connect(m_tree, &QTreeWidget::itemSelectionChanged, this, [this] {
    if (m_updating) return;
    QList<int64_t> ids;
    for (auto* item : m_tree->selectedItems()) {
      const auto id = item->data(0, Qt::UserRole).toLongLong();
      if (!ids.contains(id)) ids << id;
    }
    selectRuns(ids);  // the table's selection is the one the window follows
  });
}

int64_t transplantSource(const std::string& configJson) {
  try {
    const auto j = nlohmann::json::parse(configJson);
    const std::string init = j.value("vision_init", std::string());
    size_t used = 0;
    const long long id = init.empty() ? 0 : std::stoll(init, &used);
    return used == init.size() ? id : 0;
  } catch (...) {
    return 0;  // a folder path, or not a run of this workspace
  }
}

void RunsBrowser::rebuildTree() {
  // Keep what the user expanded or collapsed across rebuilds (keyed by the path of run ids).
  std::map<QString, bool> expanded;
  std::function<void(QTreeWidgetItem*, const QString&)> remember = [&](QTreeWidgetItem* item,
                                                                       const QString& path) {
    const QString key = path + "/" + item->text(1);
    expanded[key] = item->isExpanded();
    for (int i = 0; i < item->childCount(); ++i) remember(item->child(i), key);
  };
  for (int i = 0; i < m_tree->topLevelItemCount(); ++i) remember(m_tree->topLevelItem(i), "");
  m_tree->clear();

  std::map<int64_t, const RunSummary*> byId;
  for (const auto& r : m_runs) byId[r.info.id] = &r;
  // Who hangs under whom: the parent run, or for a transplant's first stage the encoder's run.
  auto upstream = [&](const RunSummary& r) -> int64_t {
    if (r.info.parentId) return *r.info.parentId;
    return transplantSource(r.info.configJson);
  };
  auto makeItem = [](const RunSummary& r) {
    auto* item = new QTreeWidgetItem(
        QStringList{QString::fromStdString(r.info.name), QString::number(r.info.id),
                    QString::fromStdString(r.info.stage), QString(name(r.info.status)),
                    QString::number(r.lastStep),
                    std::isfinite(r.lastLoss) ? QString::number(r.lastLoss, 'g', 4) : "-"});
    item->setData(0, Qt::UserRole, QVariant::fromValue<qlonglong>(r.info.id));
    item->setData(0, Qt::DecorationRole, runColour(r.info.id));
    if (r.info.status == RunStatus::Failed || r.info.status == RunStatus::Crashed)
      item->setForeground(3, QColor("#c0392b"));
    return item;
  };
  // Children of `id` among `members` (all runs when members is empty), recursively.
  std::function<void(QTreeWidgetItem*, int64_t, const std::set<int64_t>&, const QString&)>
      addChildren = [&](QTreeWidgetItem* under, int64_t id, const std::set<int64_t>& members,
                        const QString& path) {
        for (const auto& r : m_runs) {
          if (r.info.stage == "experiment" || upstream(r) != id) continue;
          if (!members.empty() && !members.count(r.info.id)) continue;
          auto* item = makeItem(r);
          under->addChild(item);
          const QString key = path + "/" + item->text(1);
          addChildren(item, r.info.id, members, key);
          item->setExpanded(expanded.count(key) ? expanded[key] : true);
        }
      };
  std::set<int64_t> inExperiment;
  for (const auto& e : m_runs) {
    if (e.info.stage != "experiment") continue;
    const std::string tag = "exp-" + std::to_string(e.info.id);
    std::set<int64_t> members;
    for (const auto& r : m_runs)
      if (("," + r.info.tags + ",").find("," + tag + ",") != std::string::npos)
        members.insert(r.info.id);
    inExperiment.insert(members.begin(), members.end());
    auto* root = makeItem(e);
    m_tree->addTopLevelItem(root);
    const QString key = "/" + root->text(1);
    for (const auto& r : m_runs) {  // the chain's roots: members whose upstream is not a member
      if (!members.count(r.info.id) || members.count(upstream(r))) continue;
      auto* item = makeItem(r);
      root->addChild(item);
      addChildren(item, r.info.id, members, key + "/" + item->text(1));
      item->setExpanded(
          expanded.count(key + "/" + item->text(1)) ? expanded[key + "/" + item->text(1)] : true);
    }
    root->setExpanded(expanded.count(key) ? expanded[key] : true);
  }
  std::set<int64_t> outside;
  for (const auto& o : m_runs)
    if (!inExperiment.count(o.info.id)) outside.insert(o.info.id);
  for (const auto& r : m_runs) {  // runs of no experiment: under their parents
    if (r.info.stage == "experiment" || inExperiment.count(r.info.id)) continue;
    if (const int64_t up = upstream(r); up && byId.count(up) && !inExperiment.count(up)) continue;
    auto* item = makeItem(r);
    m_tree->addTopLevelItem(item);
    addChildren(item, r.info.id, outside, "/" + item->text(1));
    item->setExpanded(expanded.count("/" + item->text(1)) ? expanded["/" + item->text(1)] : true);
  }
  for (int c = 0; c < m_tree->columnCount(); ++c) m_tree->resizeColumnToContents(c);
}

void RunsBrowser::setFilterText(const QString& text) {
  if (m_filter->text() != text) m_filter->setText(text);
  m_proxy->setFilterFixedString(text);
}

int RunsBrowser::rowCount() const { return m_proxy->rowCount(); }

void RunsBrowser::setRuns(const std::vector<RunSummary>& runs) {
  const auto selected = selectedRunIds();
  m_updating = true;
  m_runs = runs;
  // Update rows in place where the id already has one, so sorting and scrolling stay put.
  std::map<int64_t, int> rowOf;
  for (int r = 0; r < m_model->rowCount(); ++r)
    rowOf[m_model->item(r, ColId)->data(Qt::UserRole).toLongLong()] = r;
  std::map<int64_t, bool> present;
  for (const auto& s : runs) {
    present[s.info.id] = true;
    QList<QStandardItem*> items;
    auto* id = new QStandardItem(QString::number(s.info.id));
    id->setData(QVariant::fromValue<qlonglong>(s.info.id), Qt::UserRole);
    id->setEditable(false);
    id->setData(runColour(s.info.id), Qt::DecorationRole);
    auto* name = new QStandardItem(QString::fromStdString(s.info.name));
    name->setData(name->text(), Qt::UserRole);
    auto text = [](const std::string& v) {
      auto* item = new QStandardItem(QString::fromStdString(v));
      item->setData(item->text(), Qt::UserRole);
      item->setEditable(false);
      return item;
    };
    auto* status = text(pivot::name(s.info.status));
    if (s.info.status == RunStatus::Failed || s.info.status == RunStatus::Crashed)
      status->setForeground(QColor("#c0392b"));
    if (s.info.status == RunStatus::Running) status->setForeground(QColor("#1e8449"));
    if (!s.info.message.empty()) status->setToolTip(QString::fromStdString(s.info.message));
    auto* parent =
        s.info.parentId ? numberItem(static_cast<double>(*s.info.parentId), 10) : text("-");
    auto* steps = numberItem(static_cast<double>(s.lastStep), 10);
    auto* created = text(QDateTime::fromSecsSinceEpoch(static_cast<qint64>(s.info.createdAt))
                             .toString("yyyy-MM-dd hh:mm")
                             .toStdString());
    created->setData(s.info.createdAt, Qt::UserRole);
    items << id << name << text(s.info.stage) << status << parent << steps << numberItem(s.lastLoss)
          << numberItem(s.lastMargin) << text(s.info.tags) << created;
    if (auto it = rowOf.find(s.info.id); it != rowOf.end()) {
      for (int c = 0; c < ColCount; ++c) {
        auto* old = m_model->item(it->second, c);
        if (old->text() != items[c]->text() || old->toolTip() != items[c]->toolTip())
          m_model->setItem(it->second, c, items[c]);
        else
          delete items[c];
      }
    } else {
      m_model->appendRow(items);
    }
  }
  for (int r = m_model->rowCount() - 1; r >= 0; --r)
    if (!present.count(m_model->item(r, ColId)->data(Qt::UserRole).toLongLong()))
      m_model->removeRow(r);
  m_view->resizeColumnsToContents();
  rebuildTree();
  selectRuns(selected);  // restores the user's selection without announcing a change
  m_updating = false;
  updateParameterTable();
}

QList<int64_t> RunsBrowser::selectedRunIds() const {
  QList<int64_t> ids;
  for (const auto& index : m_view->selectionModel()->selectedRows(ColId))
    ids << m_proxy->data(index, Qt::UserRole).toLongLong();
  std::sort(ids.begin(), ids.end());
  return ids;
}

void RunsBrowser::selectRuns(const QList<int64_t>& ids) {
  const bool wasUpdating = m_updating;
  m_updating = true;
  QItemSelection selection;
  for (int r = 0; r < m_proxy->rowCount(); ++r) {
    const auto index = m_proxy->index(r, ColId);
    if (ids.contains(m_proxy->data(index, Qt::UserRole).toLongLong()))
      selection.select(index, m_proxy->index(r, ColCount - 1));
  }
  m_view->selectionModel()->select(selection, QItemSelectionModel::ClearAndSelect);
  m_updating = wasUpdating;
  if (!m_updating) {
    updateParameterTable();
    Q_EMIT selectionChanged(selectedRunIds());
  }
}

void RunsBrowser::updateParameterTable() {
  const auto ids = selectedRunIds();
  std::vector<const RunSummary*> chosen;
  for (const auto& r : m_runs)
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

void RunsBrowser::showContextMenu(const QPoint& pos) {
  const auto ids = selectedRunIds();
  if (ids.isEmpty()) return;
  QMenu menu(this);
  auto* rename = menu.addAction("Rename…");
  auto* tag = menu.addAction("Edit tags…");
  auto* resume = menu.addAction("Resume from last checkpoint");
  menu.addSeparator();
  auto* remove =
      menu.addAction(ids.size() == 1 ? "Delete run…" : QString("Delete %1 runs…").arg(ids.size()));
  const RunSummary* first = nullptr;
  for (const auto& r : m_runs)
    if (r.info.id == ids.front()) first = &r;
  rename->setEnabled(ids.size() == 1 && first);
  tag->setEnabled(ids.size() == 1 && first);
  // A run whose process is gone shows as "crashed" and is resumable; a live one (running or paused
  // here or in another process) is not: the trainer would refuse it.
  resume->setEnabled(ids.size() == 1 && first && first->info.status != RunStatus::Finished &&
                     first->info.status != RunStatus::Running &&
                     first->info.status != RunStatus::Paused);
  auto* chosen = menu.exec(m_view->viewport()->mapToGlobal(pos));
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
