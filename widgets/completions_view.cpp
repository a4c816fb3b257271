#include "completions_view.h"

#include <QAction>
#include <QComboBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFontMetricsF>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QPainter>
#include <QPixmap>
#include <QPushButton>
#include <QScrollBar>
#include <QTableWidget>
#include <QTextStream>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "config/train_config.h"
#include "data/shapes_world.h"
#include "figure_file.h"

namespace pivot {
namespace {

constexpr int kThumbnail = 96;

// An advantage as a colour: green above the group's mean, red below, stronger the larger
// (saturating at |A| = 2 group standard deviations).
QColor advantageColour(double a) {
  const double t = std::min(1.0, std::abs(a) / 2.0);
  const QColor base = a >= 0 ? QColor(46, 160, 67) : QColor(214, 39, 40);
  return QColor::fromRgbF(1.0 - t * (1.0 - base.redF()), 1.0 - t * (1.0 - base.greenF()),
                          1.0 - t * (1.0 - base.blueF()));
}

// A prompt's picture: a ShapesWorld sample ("split:index") rendered from the run's world, or a
// real record's image file; an empty image when neither.
QImage thumbnail(const ShapesWorld& world, const std::string& sample) {
  QImage picture;
  if (QFileInfo(QString::fromStdString(sample)).isFile()) {
    picture.load(QString::fromStdString(sample));
  } else if (const auto colon = sample.find(':'); colon != std::string::npos) {
    try {
      const Split split = splitFromName(sample.substr(0, colon));
      const auto s = world.sample(split, std::stoll(sample.substr(colon + 1)));
      picture = QImage(s.scene.rgb.data(), s.scene.size, s.scene.size, 3 * s.scene.size,
                       QImage::Format_RGB888)
                    .copy();
    } catch (const std::exception&) {
      // not a ShapesWorld sample either
    }
  }
  return picture.isNull()
             ? picture
             : picture.scaled(kThumbnail, kThumbnail, Qt::KeepAspectRatio, Qt::FastTransformation);
}

QTableWidgetItem* cell(const QString& text, Qt::Alignment align = Qt::AlignLeft) {
  auto* item = new QTableWidgetItem(text);
  item->setTextAlignment(align | Qt::AlignVCenter);
  item->setFlags(item->flags() & ~Qt::ItemIsEditable);
  return item;
}

}  // namespace

CompletionsView::CompletionsView(RunsModel* runs, QWidget* parent) : QWidget(parent) {
  m_grpoRuns = new RunsFilter(
      runs, [](const RunSummary& r) { return r.info.stage == "grpo"; }, this);
  m_grpoRuns->setLabel([](const RunSummary& r) {
    return QString("%1 (%2)").arg(QString::fromStdString(r.info.name),
                                  QString(name(r.info.status)));
  });
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout;
  bar->addWidget(new QLabel("GRPO run"));
  m_run = new QComboBox;
  m_run->setObjectName("completionsRunBox");
  m_run->setMinimumWidth(220);
  m_run->setModel(m_grpoRuns);
  m_run->setModelColumn(RunsModel::Name);
  bar->addWidget(m_run);
  bar->addSpacing(12);
  bar->addWidget(new QLabel("Logged step"));
  m_step = new QComboBox;
  m_step->setObjectName("completionsStepBox");
  bar->addWidget(m_step);
  bar->addSpacing(12);
  m_inspect = new QPushButton("Open prompt in Inspect");
  m_inspect->setObjectName("completionsInspectButton");
  bar->addWidget(m_inspect);
  bar->addStretch(1);
  auto* exportButton = new QPushButton("Export…");
  exportButton->setObjectName("completionsExportButton");
  exportButton->setToolTip("This step's completions as a figure (PDF, SVG, PNG) or a table (CSV)");
  connect(exportButton, &QPushButton::clicked, this, &CompletionsView::exportCompletionsDialog);
  bar->addWidget(exportButton);
  layout->addLayout(bar);
  m_message = new QLabel;
  m_message->setWordWrap(true);
  layout->addWidget(m_message);
  m_table = new QTableWidget;
  m_table->setObjectName("completionsTable");
  m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_table->setSelectionMode(QAbstractItemView::SingleSelection);
  m_table->verticalHeader()->setVisible(false);
  m_table->setContextMenuPolicy(Qt::ActionsContextMenu);
  auto* exportAction = new QAction("Export completions…", m_table);
  connect(exportAction, &QAction::triggered, this, &CompletionsView::exportCompletionsDialog);
  m_table->addAction(exportAction);
  layout->addWidget(m_table, 1);

  connect(m_run, QOverload<int>::of(&QComboBox::currentIndexChanged), this,
          &CompletionsView::refreshSteps);
  connect(m_run, QOverload<int>::of(&QComboBox::activated), this, [this] { m_runChosen = true; });
  connect(runs, &RunsModel::updated, this, [this] {
    if (!m_runChosen && m_run->currentIndex() != m_run->count() - 1)
      m_run->setCurrentIndex(m_run->count() - 1);  // the newest; the index change reads its steps
    else if (m_run->currentIndex() >= 0 &&
             m_grpoRuns->runAt(m_run->currentIndex()).lastStep != m_shownLastStep)
      refreshSteps();  // a live run logs new steps
  });
  connect(m_step, QOverload<int>::of(&QComboBox::currentIndexChanged), this,
          &CompletionsView::refreshTable);
  connect(m_inspect, &QPushButton::clicked, this, &CompletionsView::openSelectedInInspect);
  connect(m_table, &QTableWidget::cellDoubleClicked, this, [this] { openSelectedInInspect(); });
  m_message->setText("No GRPO run yet: train stage grpo and its completions show here.");
}

QString CompletionsView::message() const { return m_message->text(); }

void CompletionsView::setStorePath(const QString& storePath) { m_storePath = storePath; }

void CompletionsView::showRun(int64_t runId) {
  const int index = m_run->findData(QVariant::fromValue<qlonglong>(runId), RunsModel::RunIdRole);
  if (index < 0) return;
  m_runChosen = true;
  m_run->setCurrentIndex(index);
}

void CompletionsView::refreshSteps() {
  const QVariant current = m_step->currentData();
  const bool wasLast = m_step->currentIndex() == m_step->count() - 1;
  std::vector<int64_t> steps;
  if (m_run->currentIndex() >= 0 && !m_storePath.isEmpty()) {
    try {
      RunStore store(m_storePath.toStdString(), RunStore::Access::ReadOnly);
      steps = store.completionSteps(m_run->currentData(RunsModel::RunIdRole).toLongLong());
      m_shownLastStep = m_grpoRuns->runAt(m_run->currentIndex()).lastStep;
    } catch (const std::exception& e) {
      m_message->setText(QString("Cannot read completions: ") + e.what());
    }
  }
  {
    const QSignalBlocker block(m_step);
    m_step->clear();
    for (auto s : steps) m_step->addItem(QString::number(s), QVariant::fromValue<qlonglong>(s));
    const int index = m_step->findData(current);
    // Follows a live run: on the last step, it moves on to the newest.
    m_step->setCurrentIndex(index >= 0 && !wasLast ? index : m_step->count() - 1);
  }
  refreshTable();
}

void CompletionsView::refreshTable() {
  m_table->clear();
  m_table->setRowCount(0);
  m_prompts.clear();
  m_rows.clear();
  m_functions.clear();
  if (m_run->currentIndex() < 0 || m_step->currentIndex() < 0) {
    m_table->setColumnCount(0);
    if (m_run->currentIndex() >= 0)
      m_message->setText("This run has logged no completions yet (log_completions_steps).");
    return;
  }
  const int64_t runId = m_run->currentData(RunsModel::RunIdRole).toLongLong();
  const int64_t step = m_step->currentData().toLongLong();
  std::vector<CompletionRow> rows;
  WorldConfig world;
  try {
    RunStore store(m_storePath.toStdString(), RunStore::Access::ReadOnly);
    rows = store.completions(runId, step);
    const auto info = store.run(runId);
    if (info) world = trainConfigFromJson(nlohmann::json::parse(info->configJson)).world;
  } catch (const std::exception& e) {
    m_message->setText(QString("Cannot read completions: ") + e.what());
    return;
  }
  // The reward functions logged, in first-seen order: one column each.
  std::vector<std::string> functions;
  for (const auto& r : rows) {
    const auto rewards = nlohmann::json::parse(r.rewardsJson, nullptr, false);
    if (!rewards.is_object()) continue;
    for (auto it = rewards.begin(); it != rewards.end(); ++it)
      if (std::find(functions.begin(), functions.end(), it.key()) == functions.end())
        functions.push_back(it.key());
  }
  QStringList headers = {"image", "prompt", "completion"};
  for (const auto& f : functions) headers << QString::fromStdString(f);
  headers << "reward"
          << "advantage";
  m_table->setColumnCount(headers.size());
  m_table->setHorizontalHeaderLabels(headers);
  m_table->setRowCount(static_cast<int>(rows.size()));
  const ShapesWorld shapes(world);
  int shownPrompts = 0;
  for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
    const auto& r = rows[static_cast<size_t>(i)];
    const bool firstOfPrompt = i == 0 || rows[static_cast<size_t>(i - 1)].prompt != r.prompt;
    if (firstOfPrompt) {
      m_prompts.push_back({i, QString::fromStdString(r.sample), QString::fromStdString(r.question),
                           QString::fromStdString(r.reference), thumbnail(shapes, r.sample)});
      ++shownPrompts;
      int span = 1;
      while (i + span < static_cast<int>(rows.size()) &&
             rows[static_cast<size_t>(i + span)].prompt == r.prompt)
        ++span;
      auto* image = cell("");
      image->setData(Qt::DecorationRole, QPixmap::fromImage(m_prompts.back().picture));
      image->setToolTip(QString::fromStdString(r.sample));
      m_table->setItem(i, 0, image);
      m_table->setItem(i, 1,
                       cell(QString::fromStdString(r.question) +
                            "\nreference: " + QString::fromStdString(r.reference)));
      if (span > 1) {
        m_table->setSpan(i, 0, span, 1);
        m_table->setSpan(i, 1, span, 1);
      }
    }
    auto* completion = cell(r.completion.empty() ? QString("(empty: stopped at once)")
                                                 : QString::fromStdString(r.completion));
    if (r.completion.empty()) completion->setForeground(QColor(140, 140, 140));
    m_table->setItem(i, 2, completion);
    const auto rewards = nlohmann::json::parse(r.rewardsJson, nullptr, false);
    for (size_t f = 0; f < functions.size(); ++f) {
      const bool has = rewards.is_object() && rewards.contains(functions[f]) &&
                       rewards[functions[f]].is_number();
      m_table->setItem(i, 3 + static_cast<int>(f),
                       cell(has ? QString::number(rewards[functions[f]].get<double>(), 'g', 3) : "",
                            Qt::AlignRight));
    }
    const int rewardColumn = 3 + static_cast<int>(functions.size());
    m_table->setItem(i, rewardColumn, cell(QString::number(r.reward, 'g', 3), Qt::AlignRight));
    auto* advantage = cell(QString::asprintf("%+.3f", r.advantage), Qt::AlignRight);
    advantage->setBackground(advantageColour(r.advantage));
    m_table->setItem(i, rewardColumn + 1, advantage);
  }
  m_table->resizeColumnsToContents();
  m_table->setColumnWidth(0, kThumbnail + 8);
  m_table->setWordWrap(true);
  fitTextColumns();
  const int rowsPerPrompt = rows.empty() ? 1 : static_cast<int>(rows.size()) / shownPrompts;
  for (int i = 0; i < m_table->rowCount(); ++i)
    m_table->setRowHeight(i, std::max(22, (kThumbnail + 8 + rowsPerPrompt - 1) / rowsPerPrompt));
  m_rows = std::move(rows);
  m_functions = std::move(functions);
  m_shownTitle =
      QString("%1 · step %2")
          .arg(QString::fromStdString(m_grpoRuns->runAt(m_run->currentIndex()).info.name))
          .arg(step);
  m_message->setText(QString("Step %1: %2 prompts, %3 completions each (advantage: green above "
                             "the group's mean reward, red below).")
                         .arg(step)
                         .arg(shownPrompts)
                         .arg(rowsPerPrompt));
}

void CompletionsView::openSelectedInInspect() {
  if (m_prompts.empty() || m_run->currentIndex() < 0) return;
  const int row = std::max(0, m_table->currentRow());
  const Prompt* chosen = &m_prompts.front();
  for (const auto& p : m_prompts)
    if (p.firstRow <= row) chosen = &p;
  const qint64 runId = m_run->currentData(RunsModel::RunIdRole).toLongLong();
  if (QFileInfo(chosen->sample).isFile()) {  // a real record's image, with its question
    Q_EMIT photoInspectRequested(runId, chosen->sample, chosen->question, chosen->reference);
    return;
  }
  const int colon = chosen->sample.indexOf(':');
  try {
    const Split split = splitFromName(chosen->sample.left(colon).toStdString());
    Q_EMIT inspectRequested(runId, static_cast<int>(split),
                            chosen->sample.mid(colon + 1).toLongLong());
  } catch (const std::exception& e) {
    m_message->setText(QString("Cannot open in Inspect: ") + e.what());
  }
}

}  // namespace pivot

namespace pivot {

// The reward and advantage columns stay in view on a laptop screen: the number columns keep their
// content's width, and the prompt (2 parts) and the completion (3 parts) wrap within the rest.
void CompletionsView::fitTextColumns() {
  if (m_table->columnCount() < 3) return;
  int numbers = m_table->columnWidth(0);
  for (int c = 3; c < m_table->columnCount(); ++c) numbers += m_table->columnWidth(c);
  // The vertical scroll bar may appear only after the rows are laid out: leave room for it.
  const int scrollBar = m_table->verticalScrollBar()->sizeHint().width();
  const int rest =
      std::max(240, m_table->width() - m_table->frameWidth() * 2 - numbers - scrollBar - 2);
  m_table->setColumnWidth(1, rest * 2 / 5);
  m_table->setColumnWidth(2, rest - rest * 2 / 5);
}

void CompletionsView::resizeEvent(QResizeEvent* event) {
  QWidget::resizeEvent(event);
  fitTextColumns();
}

}  // namespace pivot

namespace pivot {
namespace {

QString csvField(QString text) {
  if (!text.contains(',') && !text.contains('"') && !text.contains('\n')) return text;
  return '"' + text.replace('"', "\"\"") + '"';
}

double rewardOf(const CompletionRow& r, const std::string& function) {
  const auto rewards = nlohmann::json::parse(r.rewardsJson, nullptr, false);
  return rewards.is_object() && rewards.contains(function) && rewards[function].is_number()
             ? rewards[function].get<double>()
             : NAN;
}

// The figure's layout in points: a row a completion, a prompt's rows at least its picture's height.
constexpr double kFigMargin = 12, kFigPicture = 44, kFigRow = 15, kFigNumber = 52, kFigHeader = 40,
                 kFigWidth = 760;

}  // namespace

bool CompletionsView::exportCompletions(const QString& path, int dpi) const {
  if (m_rows.empty()) return false;
  if (QFileInfo(path).suffix().toLower() == "csv") return writeCsv(path);
  return saveFigureFile(
      path, QSizeF(kFigWidth, figureHeight()), "GRPO completions: " + m_shownTitle,
      [this](QPainter& painter) { paintFigure(painter, kFigWidth); }, dpi);
}

void CompletionsView::exportCompletionsDialog() {
  if (m_rows.empty()) {
    m_message->setText("Nothing to export: choose a GRPO run and a logged step first.");
    return;
  }
  const QString file = QFileDialog::getSaveFileName(
      this, "Export completions",
      QString(m_shownTitle).replace(" · ", "_").replace(' ', '_') + ".pdf",
      "Figure (*.pdf *.svg *.png);;Table (*.csv)");
  if (file.isEmpty()) return;
  int dpi = 300;
  if (QFileInfo(file).suffix().toLower() == "png") {
    bool ok = false;
    dpi = QInputDialog::getInt(this, "PNG resolution", "Dots per inch:", dpi, 72, 600, 1, &ok);
    if (!ok) return;
  }
  m_message->setText(exportCompletions(file, dpi) ? "Exported " + file : "Cannot write " + file);
}

bool CompletionsView::writeCsv(const QString& path) const {
  QFile file(path);
  if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate | QIODevice::Text)) return false;
  QTextStream out(&file);
  out << "step,prompt,generation,sample,question,reference,completion";
  for (const auto& f : m_functions) out << ",reward/" << QString::fromStdString(f);
  out << ",reward,advantage\n";
  for (const auto& r : m_rows) {
    out << r.step << ',' << r.prompt << ',' << r.generation << ','
        << csvField(QString::fromStdString(r.sample)) << ','
        << csvField(QString::fromStdString(r.question)) << ','
        << csvField(QString::fromStdString(r.reference)) << ','
        << csvField(QString::fromStdString(r.completion));
    for (const auto& f : m_functions) {
      const double v = rewardOf(r, f);
      out << ',' << (std::isnan(v) ? QString() : QString::number(v, 'g', 17));
    }
    out << ',' << QString::number(r.reward, 'g', 17) << ',' << QString::number(r.advantage, 'g', 17)
        << '\n';
  }
  return file.error() == QFile::NoError;
}

double CompletionsView::figureHeight() const {
  double height = kFigMargin + kFigHeader;
  for (size_t p = 0; p < m_prompts.size(); ++p) {
    const int end =
        p + 1 < m_prompts.size() ? m_prompts[p + 1].firstRow : static_cast<int>(m_rows.size());
    height += std::max(kFigPicture + 4, (end - m_prompts[p].firstRow) * kFigRow) + 6;
  }
  return height + kFigMargin;
}

void CompletionsView::paintFigure(QPainter& painter, double width) const {
  QFont font("DejaVu Sans");
  font.setPointSizeF(7.5);
  QFont bold = font;
  bold.setBold(true);
  bold.setPointSizeF(9);
  const QFontMetricsF metrics(font);
  const int numbers = static_cast<int>(m_functions.size()) + 2;  // functions, reward, advantage
  const double numbersLeft = width - kFigMargin - numbers * kFigNumber;
  const double promptLeft = kFigMargin + kFigPicture + 6, completionLeft = promptLeft + 170;
  painter.setFont(bold);
  painter.setPen(QColor(20, 20, 20));
  painter.drawText(QPointF(kFigMargin, kFigMargin + 10),
                   "GRPO completions: " + m_shownTitle +
                       "  (advantage: green above the group's mean reward, red below)");
  painter.setFont(font);
  QStringList headers = {"prompt", "completion"};
  for (const auto& f : m_functions) headers << QString::fromStdString(f);
  headers << "reward"
          << "advantage";
  const double headerY = kFigMargin + kFigHeader - 8;
  painter.drawText(QPointF(promptLeft, headerY), headers[0]);
  painter.drawText(QPointF(completionLeft, headerY), headers[1]);
  for (int c = 0; c < numbers; ++c)
    painter.drawText(QRectF(numbersLeft + c * kFigNumber, headerY - 10, kFigNumber - 4, 12),
                     Qt::AlignRight | Qt::AlignBottom, headers[2 + c]);
  double y = kFigMargin + kFigHeader;
  for (size_t p = 0; p < m_prompts.size(); ++p) {
    const Prompt& prompt = m_prompts[p];
    const int end =
        p + 1 < m_prompts.size() ? m_prompts[p + 1].firstRow : static_cast<int>(m_rows.size());
    const double groupHeight = std::max(kFigPicture + 4, (end - prompt.firstRow) * kFigRow);
    painter.setPen(QColor(210, 210, 210));
    painter.drawLine(QPointF(kFigMargin, y - 2), QPointF(width - kFigMargin, y - 2));
    painter.setPen(QColor(20, 20, 20));
    if (!prompt.picture.isNull())
      painter.drawImage(QRectF(kFigMargin, y, kFigPicture, kFigPicture), prompt.picture);
    painter.drawText(QRectF(promptLeft, y, completionLeft - promptLeft - 6, groupHeight),
                     Qt::TextWordWrap | Qt::AlignTop,
                     prompt.question + "\nreference: " + prompt.reference);
    for (int i = prompt.firstRow; i < end; ++i) {
      const CompletionRow& r = m_rows[static_cast<size_t>(i)];
      const double rowY = y + (i - prompt.firstRow) * kFigRow;
      const QString completion = r.completion.empty() ? QString("(empty: stopped at once)")
                                                      : QString::fromStdString(r.completion);
      painter.drawText(QPointF(completionLeft, rowY + 10),
                       metrics.elidedText(completion.simplified(), Qt::ElideRight,
                                          numbersLeft - completionLeft - 8));
      for (int c = 0; c < numbers; ++c) {
        const QRectF box(numbersLeft + c * kFigNumber, rowY, kFigNumber - 4, kFigRow - 2);
        double value = c < static_cast<int>(m_functions.size())
                           ? rewardOf(r, m_functions[static_cast<size_t>(c)])
                       : c == numbers - 2 ? r.reward
                                          : r.advantage;
        const bool advantage = c == numbers - 1;
        if (advantage) painter.fillRect(box, advantageColour(value));
        const QString text = std::isnan(value) ? QString()
                             : advantage       ? QString::asprintf("%+.3f", value)
                                               : QString::number(value, 'g', 3);
        painter.drawText(box.adjusted(0, 0, -3, 0), Qt::AlignRight | Qt::AlignVCenter, text);
      }
    }
    y += groupHeight + 6;
  }
}

}  // namespace pivot
