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
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "run_curves.h"

namespace pivot {
namespace {

enum Column { ColId, ColName, ColStage, ColStatus, ColParent, ColSteps, ColLoss, ColMargin, ColTags, ColCreated, ColCount };
const char* kHeaders[] = {"id", "name", "stage", "status", "parent", "steps", "last loss", "last margin", "tags", "created"};

void flatten(const nlohmann::json& j, const std::string& prefix, std::vector<std::pair<QString, QString>>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out.emplace_back(QString::fromStdString(prefix), QString::fromStdString(j.is_string() ? j.get<std::string>() : j.dump()));
  }
}

QStandardItem* numberItem(double v, int precision = 4) {
  auto* item = new QStandardItem(std::isfinite(v) ? QString::number(v, 'g', precision) : QString("-"));
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

  auto* split = new QSplitter(Qt::Horizontal);
  split->addWidget(m_view);
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
  for (int r = 0; r < m_model->rowCount(); ++r) rowOf[m_model->item(r, ColId)->data(Qt::UserRole).toLongLong()] = r;
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
    auto* status = text(s.info.status);
    if (s.info.status == "failed") status->setForeground(QColor("#c0392b"));
    if (s.info.status == "running") status->setForeground(QColor("#1e8449"));
    if (!s.info.message.empty()) status->setToolTip(QString::fromStdString(s.info.message));
    auto* parent = s.info.parentId ? numberItem(static_cast<double>(*s.info.parentId), 10) : text("-");
    auto* steps = numberItem(static_cast<double>(s.lastStep), 10);
    auto* created = text(QDateTime::fromSecsSinceEpoch(static_cast<qint64>(s.info.createdAt)).toString("yyyy-MM-dd hh:mm").toStdString());
    created->setData(s.info.createdAt, Qt::UserRole);
    items << id << name << text(s.info.stage) << status << parent << steps << numberItem(s.lastLoss)
          << numberItem(s.lastMargin) << text(s.info.tags) << created;
    if (auto it = rowOf.find(s.info.id); it != rowOf.end()) {
      for (int c = 0; c < ColCount; ++c) {
        auto* old = m_model->item(it->second, c);
        if (old->text() != items[c]->text() || old->toolTip() != items[c]->toolTip()) m_model->setItem(it->second, c, items[c]);
        else delete items[c];
      }
    } else {
      m_model->appendRow(items);
    }
  }
  for (int r = m_model->rowCount() - 1; r >= 0; --r)
    if (!present.count(m_model->item(r, ColId)->data(Qt::UserRole).toLongLong())) m_model->removeRow(r);
  m_view->resizeColumnsToContents();
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
    const bool differs = std::any_of(values.begin(), values.end(), [&](const QString& v) { return v != values.front(); });
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
  auto* remove = menu.addAction(ids.size() == 1 ? "Delete run…" : QString("Delete %1 runs…").arg(ids.size()));
  const RunSummary* first = nullptr;
  for (const auto& r : m_runs)
    if (r.info.id == ids.front()) first = &r;
  rename->setEnabled(ids.size() == 1 && first);
  tag->setEnabled(ids.size() == 1 && first);
  // "running" is resumable too: a run whose process crashed keeps that status. The window refuses
  // to resume the run it is training itself.
  resume->setEnabled(ids.size() == 1 && first && first->info.status != "finished");
  auto* chosen = menu.exec(m_view->viewport()->mapToGlobal(pos));
  if (!chosen || !first) return;
  if (chosen == rename) {
    bool ok = false;
    const auto name = QInputDialog::getText(this, "Rename run", "Name:", QLineEdit::Normal, QString::fromStdString(first->info.name), &ok);
    if (ok && !name.trimmed().isEmpty()) Q_EMIT renameRequested(first->info.id, name.trimmed());
  } else if (chosen == tag) {
    bool ok = false;
    const auto tags = QInputDialog::getText(this, "Tags", "Comma-separated tags:", QLineEdit::Normal, QString::fromStdString(first->info.tags), &ok);
    if (ok) Q_EMIT tagsRequested(first->info.id, tags.trimmed());
  } else if (chosen == resume) {
    Q_EMIT resumeRequested(first->info.id);
  } else if (chosen == remove) {
    const auto answer = QMessageBox::question(
        this, "Delete runs",
        QString("Delete %1 run(s) with their checkpoints and metrics? This cannot be undone.").arg(ids.size()));
    if (answer == QMessageBox::Yes) Q_EMIT deleteRequested(ids);
  }
}

}  // namespace pivot
