#include "runs_model.h"

#include <QColor>
#include <QDateTime>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "run_curves.h"

namespace pivot {
namespace {

const char* const kHeaders[] = {"id",    "name",      "stage",       "status", "parent",
                                "steps", "last loss", "last margin", "tags",   "created"};
static_assert(sizeof kHeaders / sizeof *kHeaders == RunsModel::ColumnCount);

QVariant number(double v, int precision = 4) {
  return std::isfinite(v) ? QVariant(QString::number(v, 'g', precision)) : QVariant("-");
}

bool sameRow(const RunSummary& a, const RunSummary& b) {
  return a.info.name == b.info.name && a.info.stage == b.info.stage &&
         a.info.status == b.info.status && a.info.parentId == b.info.parentId &&
         a.info.message == b.info.message && a.info.tags == b.info.tags &&
         a.info.configJson == b.info.configJson && a.lastStep == b.lastStep &&
         (a.lastLoss == b.lastLoss || (std::isnan(a.lastLoss) && std::isnan(b.lastLoss))) &&
         (a.lastMargin == b.lastMargin || (std::isnan(a.lastMargin) && std::isnan(b.lastMargin))) &&
         a.checkpoints.size() == b.checkpoints.size();
}

}  // namespace

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

// --- RunsModel ----------------------------------------------------------------------------------

RunsModel::RunsModel(QObject* parent) : QAbstractTableModel(parent) {}

void RunsModel::setRuns(const std::vector<RunSummary>& runs,
                        const std::vector<ExperimentInfo>& experiments) {
  m_experiments = experiments;
  std::set<int64_t> present;
  for (const auto& r : runs) present.insert(r.info.id);
  // Rows of deleted runs go (from the bottom, so the rows above keep their numbers).
  for (int row = rowCount() - 1; row >= 0; --row)
    if (!present.count(m_runs[static_cast<size_t>(row)].info.id)) {
      beginRemoveRows({}, row, row);
      m_runs.erase(m_runs.begin() + row);
      endRemoveRows();
    }
  // Both lists ascend by id: walk them together, changing rows in place and inserting new ones.
  size_t row = 0;
  for (const auto& r : runs) {
    while (row < m_runs.size() && m_runs[row].info.id < r.info.id) ++row;
    const int at = static_cast<int>(row);
    if (row < m_runs.size() && m_runs[row].info.id == r.info.id) {
      const bool changed = !sameRow(m_runs[row], r);
      m_runs[row] = r;
      if (changed) Q_EMIT dataChanged(index(at, 0), index(at, ColumnCount - 1));
    } else {
      beginInsertRows({}, at, at);
      m_runs.insert(m_runs.begin() + at, r);
      endInsertRows();
    }
    ++row;
  }
  Q_EMIT updated();
}

const RunSummary* RunsModel::run(int64_t id) const {
  const int row = rowOf(id);
  return row < 0 ? nullptr : &m_runs[static_cast<size_t>(row)];
}

int RunsModel::rowOf(int64_t id) const {
  for (size_t i = 0; i < m_runs.size(); ++i)
    if (m_runs[i].info.id == id) return static_cast<int>(i);
  return -1;
}

int RunsModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(m_runs.size());
}

int RunsModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : ColumnCount;
}

QVariant RunsModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount()) return {};
  const RunSummary& s = runAt(index.row());
  const RunInfo& r = s.info;
  if (role == RunIdRole) return QVariant::fromValue<qlonglong>(r.id);
  const auto column = static_cast<Column>(index.column());
  if (role == Qt::DisplayRole || role == Qt::EditRole) {
    switch (column) {
      case Id:
        return QString::number(r.id);
      case Name:
        return QString::fromStdString(r.name);
      case Stage:
        return QString::fromStdString(r.stage);
      case Status:
        return QString(name(r.status));
      case Parent:
        return r.parentId ? QString::number(*r.parentId) : QString("-");
      case Steps:
        return QString::number(s.lastStep);
      case Loss:
        return number(s.lastLoss);
      case Margin:
        return number(s.lastMargin);
      case Tags:
        return QString::fromStdString(r.tags);
      case Created:
        return QDateTime::fromSecsSinceEpoch(static_cast<qint64>(r.createdAt))
            .toString("yyyy-MM-dd hh:mm");
      case ColumnCount:
        break;
    }
  }
  if (role == SortRole) {
    switch (column) {
      case Id:
        return QVariant::fromValue<qlonglong>(r.id);
      case Parent:
        return QVariant::fromValue<qlonglong>(r.parentId ? *r.parentId : -1);
      case Steps:
        return QVariant::fromValue<qlonglong>(s.lastStep);
      case Loss:
        return std::isfinite(s.lastLoss) ? s.lastLoss : -1e300;
      case Margin:
        return std::isfinite(s.lastMargin) ? s.lastMargin : -1e300;
      case Created:
        return r.createdAt;
      default:
        return data(index, Qt::DisplayRole);
    }
  }
  if (role == Qt::DecorationRole && column == Id) return runColour(r.id);
  if (role == Qt::ForegroundRole && column == Status) {
    if (r.status == RunStatus::Failed || r.status == RunStatus::Crashed) return QColor("#c0392b");
    if (r.status == RunStatus::Running) return QColor("#1e8449");
  }
  if (role == Qt::ToolTipRole && column == Status && !r.message.empty())
    return QString::fromStdString(r.message);
  return {};
}

QVariant RunsModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation == Qt::Horizontal && role == Qt::DisplayRole && section >= 0 &&
      section < ColumnCount)
    return QString(kHeaders[section]);
  return {};
}

Qt::ItemFlags RunsModel::flags(const QModelIndex& index) const {
  auto f = QAbstractTableModel::flags(index);
  if (index.isValid() && index.column() == Name) f |= Qt::ItemIsEditable;
  return f;
}

bool RunsModel::setData(const QModelIndex& index, const QVariant& value, int role) {
  if (!index.isValid() || index.column() != Name || role != Qt::EditRole) return false;
  const QString name = value.toString().trimmed();
  auto& run = m_runs[static_cast<size_t>(index.row())];
  if (name.isEmpty() || name.toStdString() == run.info.name) return false;
  run.info.name = name.toStdString();
  Q_EMIT dataChanged(index, index);
  Q_EMIT renameRequested(run.info.id, name);
  return true;
}

// --- RunsFilter ---------------------------------------------------------------------------------

RunsFilter::RunsFilter(RunsModel* runs, Predicate accept, QObject* parent)
    : QSortFilterProxyModel(parent), m_runs(runs), m_accept(std::move(accept)) {
  setSourceModel(runs);
}

bool RunsFilter::filterAcceptsRow(int sourceRow, const QModelIndex&) const {
  return m_accept(m_runs->runAt(sourceRow));
}

int64_t RunsFilter::runIdAt(int row) const {
  return data(index(row, RunsModel::Id), RunsModel::RunIdRole).toLongLong();
}

const RunSummary& RunsFilter::runAt(int row) const {
  return m_runs->runAt(mapToSource(index(row, 0)).row());
}

QList<int64_t> RunsFilter::checkedRuns() const {
  QList<int64_t> ids;
  for (int row = 0; row < rowCount(); ++row)
    if (m_checked.contains(runIdAt(row))) ids << runIdAt(row);
  return ids;
}

void RunsFilter::setCheckedRuns(const QList<int64_t>& ids) {
  m_checked.clear();
  for (const auto id : ids) m_checked.insert(id);
  if (rowCount() > 0)
    Q_EMIT dataChanged(index(0, RunsModel::Name), index(rowCount() - 1, RunsModel::Name),
                       {Qt::CheckStateRole});
  Q_EMIT checkedRunsChanged();
}

QVariant RunsFilter::data(const QModelIndex& index, int role) const {
  if (index.isValid() && index.column() == RunsModel::Name) {
    if (role == Qt::CheckStateRole && m_checkable)
      return m_checked.contains(runIdAt(index.row())) ? Qt::Checked : Qt::Unchecked;
    if (role == Qt::DisplayRole && m_label) return m_label(runAt(index.row()));
    if (role == Qt::DecorationRole)  // the run's colour beside its name in a list or combo box
      return QSortFilterProxyModel::data(this->index(index.row(), RunsModel::Id), role);
  }
  return QSortFilterProxyModel::data(index, role);
}

bool RunsFilter::setData(const QModelIndex& index, const QVariant& value, int role) {
  if (role != Qt::CheckStateRole || !m_checkable || index.column() != RunsModel::Name)
    return QSortFilterProxyModel::setData(index, value, role);
  const qlonglong id = runIdAt(index.row());
  if (value.toInt() == Qt::Checked)
    m_checked.insert(id);
  else
    m_checked.remove(id);
  Q_EMIT dataChanged(index, index, {Qt::CheckStateRole});
  Q_EMIT checkedRunsChanged();
  return true;
}

Qt::ItemFlags RunsFilter::flags(const QModelIndex& index) const {
  auto f = QSortFilterProxyModel::flags(index) & ~Qt::ItemIsEditable;
  if (m_checkable && index.column() == RunsModel::Name) f |= Qt::ItemIsUserCheckable;
  return f;
}

// --- RunsTree -----------------------------------------------------------------------------------

namespace {
// The runs model's column behind each of the tree's.
const RunsModel::Column kTreeSource[] = {RunsModel::Name,   RunsModel::Id,    RunsModel::Stage,
                                         RunsModel::Status, RunsModel::Steps, RunsModel::Loss};
constexpr int kTreeColumns = sizeof kTreeSource / sizeof *kTreeSource;
const char* const kTreeHeaders[] = {"run", "id", "stage", "status", "steps", "last loss"};
}  // namespace

RunsTree::RunsTree(RunsModel* runs, QObject* parent) : QAbstractProxyModel(parent), m_runs(runs) {
  QAbstractProxyModel::setSourceModel(runs);
  connect(runs, &RunsModel::updated, this, &RunsTree::rebuild);
  // A run's row changed (a poll, a rename): every place it shows changes.
  connect(runs, &RunsModel::dataChanged, this,
          [this](const QModelIndex& topLeft, const QModelIndex& bottomRight) {
            for (int row = topLeft.row(); row <= bottomRight.row(); ++row)
              changed(m_runs->runAt(row).info.id, 0);
          });
  rebuild();
}

std::vector<RunsTree::Node> RunsTree::build() const {
  const auto& runs = m_runs->runs();
  std::map<int64_t, const RunSummary*> byId;
  for (const auto& r : runs) byId[r.info.id] = &r;
  // Who hangs under whom: the parent run, or for a transplant's first stage the encoder's run.
  const auto upstream = [](const RunSummary& r) -> int64_t {
    return r.info.parentId ? *r.info.parentId : transplantSource(r.info.configJson);
  };
  std::vector<Node> nodes;
  std::vector<int> top;
  const auto add = [&](int parent, int64_t runId, int64_t experimentId) {
    Node n;
    n.runId = runId;
    n.experimentId = experimentId;
    n.parent = parent;
    auto& siblings = parent < 0 ? top : nodes[static_cast<size_t>(parent)].children;
    n.row = static_cast<int>(siblings.size());
    siblings.push_back(static_cast<int>(nodes.size()));
    nodes.push_back(n);
    return static_cast<int>(nodes.size()) - 1;
  };
  // Each run of `members` whose upstream is `id`, with its own children (ids only ever grow down a
  // chain; the depth bound guards a damaged store's cycle).
  std::function<void(int, int64_t, const std::set<int64_t>&, int)> addChildren =
      [&](int under, int64_t id, const std::set<int64_t>& members, int depth) {
        if (depth > 64) return;
        for (const auto& r : runs)
          if (members.count(r.info.id) && upstream(r) == id)
            addChildren(add(under, r.info.id, 0), r.info.id, members, depth + 1);
      };
  std::set<int64_t> inExperiment;
  for (const auto& e : m_runs->experiments()) {
    std::set<int64_t> members;
    for (const auto id : e.runIds)
      if (byId.count(id)) members.insert(id);
    inExperiment.insert(members.begin(), members.end());
    const int root = add(-1, 0, e.id);
    for (const auto id : members)  // the chain's roots: members whose upstream is not a member
      if (!members.count(upstream(*byId[id]))) addChildren(add(root, id, 0), id, members, 0);
  }
  std::set<int64_t> outside;
  for (const auto& r : runs)
    if (!inExperiment.count(r.info.id)) outside.insert(r.info.id);
  for (const auto id : outside)  // runs of no experiment: under their parents
    if (!outside.count(upstream(*byId[id]))) addChildren(add(-1, id, 0), id, outside, 0);
  // The top level's rows were counted in `top`.
  return nodes;
}

void RunsTree::rebuild() {
  auto nodes = build();
  std::vector<int> top;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].parent < 0) top.push_back(static_cast<int>(i));
  const bool sameShape =
      nodes.size() == m_nodes.size() &&
      std::equal(nodes.begin(), nodes.end(), m_nodes.begin(), [](const Node& a, const Node& b) {
        return a.runId == b.runId && a.experimentId == b.experimentId && a.parent == b.parent;
      });
  if (!sameShape) {
    beginResetModel();
    m_nodes = std::move(nodes);
    m_top = std::move(top);
    endResetModel();
    return;
  }
  for (const auto& e : m_runs->experiments()) changed(0, e.id);  // status, message, run count
}

void RunsTree::changed(int64_t runId, int64_t experimentId) {
  for (size_t i = 0; i < m_nodes.size(); ++i)
    if (m_nodes[i].runId == runId && m_nodes[i].experimentId == experimentId)
      Q_EMIT dataChanged(createIndex(m_nodes[i].row, 0, static_cast<quintptr>(i)),
                         createIndex(m_nodes[i].row, kTreeColumns - 1, static_cast<quintptr>(i)));
}

const RunsTree::Node* RunsTree::nodeOf(const QModelIndex& index) const {
  if (!index.isValid() || index.internalId() >= m_nodes.size()) return nullptr;
  return &m_nodes[index.internalId()];
}

QModelIndex RunsTree::index(int row, int column, const QModelIndex& parent) const {
  if (row < 0 || column < 0 || column >= kTreeColumns) return {};
  const auto* p = nodeOf(parent);
  if (parent.isValid() && (!p || parent.column() != 0)) return {};
  const auto& siblings = p ? p->children : m_top;
  if (row >= static_cast<int>(siblings.size())) return {};
  return createIndex(row, column, static_cast<quintptr>(siblings[static_cast<size_t>(row)]));
}

QModelIndex RunsTree::parent(const QModelIndex& child) const {
  const auto* n = nodeOf(child);
  if (!n || n->parent < 0) return {};
  const auto& p = m_nodes[static_cast<size_t>(n->parent)];
  return createIndex(p.row, 0, static_cast<quintptr>(n->parent));
}

int RunsTree::rowCount(const QModelIndex& parent) const {
  if (!parent.isValid()) return static_cast<int>(m_top.size());
  const auto* n = nodeOf(parent);
  return n && parent.column() == 0 ? static_cast<int>(n->children.size()) : 0;
}

int RunsTree::columnCount(const QModelIndex&) const { return kTreeColumns; }

// The base class would ask the flat source model; the shape is this model's own.
bool RunsTree::hasChildren(const QModelIndex& parent) const { return rowCount(parent) > 0; }

QModelIndex RunsTree::sibling(int row, int column, const QModelIndex& index) const {
  return this->index(row, column, parent(index));
}

Qt::ItemFlags RunsTree::flags(const QModelIndex& index) const {
  return nodeOf(index) ? Qt::ItemIsEnabled | Qt::ItemIsSelectable : Qt::NoItemFlags;
}

QVariant RunsTree::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation == Qt::Horizontal && role == Qt::DisplayRole && section >= 0 &&
      section < kTreeColumns)
    return QString(kTreeHeaders[section]);
  return {};
}

int64_t RunsTree::experimentAt(const QModelIndex& index) const {
  const auto* n = nodeOf(index);
  return n ? n->experimentId : 0;
}

QVariant RunsTree::data(const QModelIndex& index, int role) const {
  const auto* n = nodeOf(index);
  if (!n) return {};
  if (n->experimentId) {  // an experiment's own row
    const ExperimentInfo* e = nullptr;
    for (const auto& x : m_runs->experiments())
      if (x.id == n->experimentId) e = &x;
    if (!e || (role != Qt::DisplayRole && role != Qt::ToolTipRole)) return {};
    switch (index.column()) {
      case RunColumn:
        return QString::fromStdString(e->name);
      case IdColumn:
        return QString::number(e->id);
      case StageColumn:
        return QString("experiment");
      case StatusColumn:
        return role == Qt::ToolTipRole ? QString::fromStdString(e->message)
                                       : QString(name(e->status));
      case StepsColumn:
        return QString("%1 runs").arg(e->runIds.size());
      default:
        return QString("-");
    }
  }
  const int row = m_runs->rowOf(n->runId);
  if (row < 0) return {};
  if (role == Qt::DecorationRole && index.column() != RunColumn) return {};
  const int column = role == Qt::DecorationRole ? RunsModel::Id  // the run's colour by its name
                                                : kTreeSource[index.column()];
  return m_runs->data(m_runs->index(row, column), role);
}

QModelIndex RunsTree::mapToSource(const QModelIndex& proxyIndex) const {
  const auto* n = nodeOf(proxyIndex);
  if (!n || n->experimentId) return {};
  const int row = m_runs->rowOf(n->runId);
  return row < 0 ? QModelIndex() : m_runs->index(row, kTreeSource[proxyIndex.column()]);
}

QModelIndex RunsTree::mapFromSource(const QModelIndex& sourceIndex) const {
  if (!sourceIndex.isValid()) return {};
  const int64_t id = m_runs->runAt(sourceIndex.row()).info.id;
  int column = -1;
  for (int c = 0; c < kTreeColumns; ++c)
    if (kTreeSource[c] == sourceIndex.column()) column = c;
  if (column < 0) return {};
  for (size_t i = 0; i < m_nodes.size(); ++i)
    if (m_nodes[i].runId == id)
      return createIndex(m_nodes[i].row, column, static_cast<quintptr>(i));
  return {};
}

}  // namespace pivot
