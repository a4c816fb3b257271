#include "encoders_view.h"

#include <QComboBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMenu>
#include <QPushButton>
#include <QSplitter>
#include <QSvgGenerator>
#include <QTableWidget>
#include <QTextStream>
#include <QVBoxLayout>
#include <cmath>
#include <map>
#include <tuple>
#include <qcustomplot.h>

#include "results/encoder_style.h"

namespace pivot {
namespace {

QColor colourOf(const std::string& encoder) {
  const auto c = encoderColour(encoder);
  return QColor(c[0], c[1], c[2]);
}

// What a chart of the family shows: shares in [0, 1] (log-probs have their own scale, in the
// table).
bool charted(const SummaryTable::Line& line) {
  return line.metric != "logps_chosen" && line.metric != "uniform_baseline";
}

QString groupLabel(const SummaryTable::Line& line) {
  if (line.probe.rfind("linear/", 0) == 0) return QString::fromStdString(line.probe.substr(7));
  if (line.metric.rfind("accuracy/", 0) == 0) return QString::fromStdString(line.metric.substr(9));
  if (line.metric == "accuracy") return "overall";
  return QString::fromStdString(line.metric);
}

}  // namespace

EncodersView::EncodersView(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout;
  m_experiment = new QComboBox;
  m_experiment->setObjectName("experimentBox");
  m_experiment->setMinimumContentsLength(16);
  m_experiment->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
  m_sweep = new QComboBox;
  m_sweep->setObjectName("sweepBox");
  m_family = new QComboBox;
  m_family->setObjectName("familyBox");
  // Long measure names shrink to the space a laptop screen leaves (the full name in the popup).
  m_family->setMinimumContentsLength(16);
  m_family->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
  m_sweep->setMinimumContentsLength(8);
  m_sweep->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
  bar->addWidget(new QLabel("Experiment"));
  bar->addWidget(m_experiment, 1);
  bar->addWidget(new QLabel("Swept value"));
  bar->addWidget(m_sweep);
  bar->addWidget(new QLabel("Measure"));
  bar->addWidget(m_family, 2);
  auto* exportButton = new QPushButton("Export…");
  exportButton->setObjectName("encodersExportButton");
  auto* exportMenu = new QMenu(exportButton);
  for (const QString kind : {"PDF", "SVG", "PNG", "CSV"})
    exportMenu->addAction(kind == "CSV" ? "Table as CSV…" : "Chart as " + kind + "…", this,
                          [this, kind] { exportDialog(kind); });
  exportButton->setMenu(exportMenu);
  bar->addWidget(exportButton);
  layout->addLayout(bar);
  m_message = new QLabel(
      "No experiment yet: launch one from the panel (Experiment) or run `pivot experiment`.");
  m_message->setWordWrap(true);
  layout->addWidget(m_message);

  m_table = new QTableWidget;
  m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_table->verticalHeader()->hide();
  m_table->setAlternatingRowColors(true);
  m_chart = new QCustomPlot;
  m_chart->setMinimumSize(420, 300);
  m_chart->legend->setVisible(true);
  m_chart->legend->setFont(QFont(font().family(), 8));
  m_chart->plotLayout()->insertRow(0);
  m_chart->plotLayout()->addElement(
      0, 0, new QCPTextElement(m_chart, "", QFont(font().family(), 10, QFont::Bold)));
  // The legend in rows of three between the title and the plot, where it hides no bar.
  m_chart->axisRect()->insetLayout()->take(m_chart->legend);
  m_chart->plotLayout()->insertRow(1);
  m_chart->plotLayout()->addElement(1, 0, m_chart->legend);
  m_chart->plotLayout()->setRowStretchFactor(1, 0.001);
  m_chart->legend->setFillOrder(QCPLegend::foColumnsFirst);
  m_chart->legend->setWrap(3);
  m_chart->legend->setBorderPen(Qt::NoPen);
  auto* split = new QSplitter(Qt::Horizontal);
  m_content = split;
  split->addWidget(m_table);
  split->addWidget(m_chart);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 2);
  layout->addWidget(split, 1);
  split->hide();  // until a finished experiment's results arrive

  connect(m_experiment, &QComboBox::currentIndexChanged, this, &EncodersView::onExperimentChosen);
  connect(m_sweep, &QComboBox::currentIndexChanged, this, &EncodersView::rebuild);
  connect(m_family, &QComboBox::currentIndexChanged, this, &EncodersView::rebuild);
}

QString EncodersView::message() const { return m_message->text(); }

bool EncodersView::resultsShown() const { return !m_content->isHidden(); }

int EncodersView::basePointCount() const {
  int n = 0;
  for (int i = 0; i < m_chart->graphCount(); ++i) n += m_chart->graph(i)->dataCount();
  return n;
}

int EncodersView::barSeriesCount() const {
  int n = 0;
  for (int i = 0; i < m_chart->plottableCount(); ++i)
    n += qobject_cast<QCPBars*>(m_chart->plottable(i)) != nullptr;
  return n;
}

int EncodersView::errorBarSeriesCount() const {
  int n = 0;
  for (int i = 0; i < m_chart->plottableCount(); ++i)
    n += qobject_cast<QCPErrorBars*>(m_chart->plottable(i)) != nullptr;
  return n;
}

void EncodersView::setExperiments(const std::vector<ExperimentInfo>& experiments) {
  const qlonglong current = m_experiment->currentData().toLongLong();
  bool changed = experiments.size() != m_experiments.size();
  for (size_t i = 0; !changed && i < experiments.size(); ++i)
    changed = experiments[i].id != m_experiments[i].id ||
              experiments[i].reportPath != m_experiments[i].reportPath ||
              experiments[i].status != m_experiments[i].status;
  if (!changed) return;
  m_experiments = experiments;
  const QSignalBlocker block(m_experiment);
  m_experiment->clear();
  int keep = -1;
  for (size_t i = 0; i < experiments.size(); ++i) {
    m_experiment->addItem(QString("%1 (%2)").arg(QString::fromStdString(experiments[i].name),
                                                 QString(name(experiments[i].status))),
                          QVariant::fromValue<qlonglong>(experiments[i].id));
    if (experiments[i].id == current) keep = static_cast<int>(i);
  }
  if (keep < 0) keep = static_cast<int>(experiments.size()) - 1;  // the newest (-1: none)
  m_experiment->setCurrentIndex(keep);
  onExperimentChosen();
}

void EncodersView::showExperiment(int64_t experimentId) {
  const int index = m_experiment->findData(QVariant::fromValue<qlonglong>(experimentId));
  if (index >= 0) m_experiment->setCurrentIndex(index);
}

void EncodersView::onExperimentChosen() {
  const int i = m_experiment->currentIndex();
  if (i < 0 || i >= static_cast<int>(m_experiments.size())) return;
  const auto& e = m_experiments[static_cast<size_t>(i)];
  const QString title = QString::fromStdString(e.name);
  // A report folder from an earlier finish may be there while a rerun measures again.
  if (e.reportPath.empty() || e.status != RunStatus::Finished) {
    setResults({}, title);
    m_message->setText(title + " is " + name(e.status) +
                       ": its report appears here when it has measured every encoder.");
    return;
  }
  loadReport(QString::fromStdString(e.reportPath));
}

bool EncodersView::loadReport(const QString& reportDir) {
  const QString csv = reportDir + "/results.csv";
  try {
    const auto rows = readResultsCsv(csv.toStdString());
    setResults(rows, QFileInfo(reportDir).fileName());
    const int bases = distinctBases(rows);
    m_message->setText(
        "Report: " + reportDir + "/report.md — " +
        (bases > 1
             ? QString("%1 bases (stage-0/1 chains) x seeds: mean ± std over all; each − SFT: "
                       "95% interval over the bases' paired means")
                   .arg(bases)
             : QString("one base: mean ± std over seeds; each − SFT paired over seeds, 95% "
                       "interval (stage-2 seeds only)")) +
        ".");
    return true;
  } catch (const std::exception& e) {
    setResults({}, "");
    m_message->setText(QString("Cannot show this experiment: ") + e.what());
    return false;
  }
}

void EncodersView::setResults(const std::vector<ResultRow>& rows, const QString& title) {
  m_rows = rows;
  m_title = title;
  const QString sweep = m_sweep->currentText();
  {
    const QSignalBlocker block(m_sweep);
    m_sweep->clear();
    for (const auto& s : distinctSweeps(rows))
      m_sweep->addItem(s.empty() ? QString("(none)") : QString::fromStdString(s),
                       QString::fromStdString(s));
    m_sweep->setCurrentIndex(std::max(0, m_sweep->findText(sweep)));
    m_sweep->setEnabled(m_sweep->count() > 1);
  }
  rebuild();
}

void EncodersView::rebuild() {
  const std::string sweep = m_sweep->currentData().toString().toStdString();
  m_tables = summaryTables(m_rows, sweep);
  const QString family = m_family->currentData().toString();
  {
    const QSignalBlocker block(m_family);
    m_family->clear();
    for (const auto& t : m_tables)
      m_family->addItem(QString::fromStdString(t.title), QString::fromStdString(t.family));
    m_family->setCurrentIndex(std::max(0, m_family->findData(family)));
  }
  m_table->clear();
  m_table->setRowCount(0);
  const int f = m_family->currentIndex();
  // No results: the message says why; no empty table and no axes without bars.
  m_content->setVisible(f >= 0 && f < static_cast<int>(m_tables.size()));
  if (m_content->isHidden()) {
    m_table->setColumnCount(0);
    drawChart(SummaryTable{});
    return;
  }
  const auto& t = m_tables[static_cast<size_t>(f)];
  // Holm-adjusted p of each primary endpoint's arm - SFT (over every primary test of the study).
  std::map<std::tuple<std::string, std::string, std::string>, double> holm;
  for (const auto& test : primaryTests(m_rows))
    if (test.sweep == sweep) holm[{test.arm, test.probe, test.metric}] = test.holmP;
  QStringList headers = {"probe", "metric"};
  for (const auto& e : t.encoders) headers << QString::fromStdString(encoderTitle(e));
  const auto arms = t.armsVsSft();
  for (const auto& arm : arms)
    headers << QString::fromStdString(encoderTitle(arm)) + " − SFT [95% CI]";
  m_table->setColumnCount(headers.size());
  m_table->setHorizontalHeaderLabels(headers);
  m_table->setRowCount(static_cast<int>(t.lines.size()));
  for (int r = 0; r < static_cast<int>(t.lines.size()); ++r) {
    const auto& line = t.lines[static_cast<size_t>(r)];
    auto* probe = new QTableWidgetItem(QString::fromStdString(line.probe) +
                                       (line.primary ? " (primary)" : ""));
    probe->setToolTip(line.primary ? "a declared primary endpoint: its differences are tested "
                                     "with Holm's adjustment over every primary test"
                                   : "exploratory: unadjusted intervals");
    m_table->setItem(r, 0, probe);
    m_table->setItem(r, 1, new QTableWidgetItem(QString::fromStdString(line.metric)));
    for (size_t k = 0; k < line.cells.size(); ++k) {
      auto* item = new QTableWidgetItem(QString::fromStdString(formatSummary(line.cells[k])));
      item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
      m_table->setItem(r, 2 + static_cast<int>(k), item);
    }
    int column = 2 + static_cast<int>(line.cells.size());
    for (const auto& [arm, d] : line.minusSft) {
      auto* diff = new QTableWidgetItem(QString::fromStdString(formatDifference(d)));
      // Bold, coloured by sign, only where the study tests it: a primary endpoint, over bases,
      // whose Holm-adjusted p is below 0.05. Everything else is exploratory, and a one-base
      // interval covers only its stage-2 seeds.
      const auto adjusted = holm.find({arm, line.probe, line.metric});
      const bool supported =
          line.primary && d.overBases && adjusted != holm.end() && adjusted->second < 0.05;
      if (line.primary && adjusted != holm.end())
        diff->setToolTip(QString("Holm-adjusted p %1").arg(adjusted->second, 0, 'f', 3));
      if (supported) {
        QFont bold = diff->font();
        bold.setBold(true);
        diff->setFont(bold);
        diff->setForeground(d.low > 0 ? colourOf(arm) : colourOf("sft"));
      }
      m_table->setItem(r, column++, diff);
    }
  }
  m_table->resizeColumnsToContents();
  drawChart(t);
}

QSize EncodersView::heatMapSize() const {
  for (int i = 0; i < m_chart->plottableCount(); ++i)
    if (const auto* map = qobject_cast<QCPColorMap*>(m_chart->plottable(i)))
      return QSize(map->data()->keySize(), map->data()->valueSize());
  return QSize(0, 0);
}

bool EncodersView::legendShown() const { return m_chart->legend->visible(); }
int EncodersView::cellLabelCount() const { return m_chart->itemCount(); }

// How far each encoder moved, layer by layer: the mean linear CKA of its patch tokens with the
// stage-1 encoder's (1: unchanged), hidden states up, encoders across.
bool EncodersView::drawHeatMap(const SummaryTable& t) {
  std::vector<const SummaryTable::Line*> layers;
  for (const auto& l : t.lines)
    if (l.metric.rfind("cka/layer_", 0) == 0) layers.push_back(&l);
  if (layers.empty() || t.encoders.empty()) return false;
  const int K = static_cast<int>(t.encoders.size()), L = static_cast<int>(layers.size());
  auto* map = new QCPColorMap(m_chart->xAxis, m_chart->yAxis);
  map->removeFromLegend();
  map->data()->setSize(K, L);
  map->data()->setRange(QCPRange(1, K), QCPRange(0, L - 1));
  double lowest = 1;
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < L; ++l) {
      const auto& cell = layers[static_cast<size_t>(l)]->cells[static_cast<size_t>(k)];
      map->data()->setCell(k, l, cell.n ? cell.mean : std::nan(""));
      if (cell.n) lowest = std::min(lowest, cell.mean);
    }
  // Colour for the eye (white: unchanged, darker: moved further), the value written in each cell.
  const QCPRange range(std::min(lowest, 0.999), 1.0);
  map->setGradient(QCPColorGradient::gpHot);
  map->setInterpolate(false);  // one flat cell per encoder and hidden state
  map->setDataRange(range);
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < L; ++l) {
      const double v = map->data()->cell(k, l);
      if (std::isnan(v)) continue;
      auto* label = new QCPItemText(m_chart);
      label->position->setCoords(k + 1, l);
      label->setText(QString::number(v, 'f', 3));
      label->setFont(QFont(font().family(), 9));
      const bool dark = (v - range.lower) / range.size() < 0.55;
      label->setColor(dark ? Qt::white : Qt::black);
    }
  QSharedPointer<QCPAxisTickerText> across(new QCPAxisTickerText), up(new QCPAxisTickerText);
  for (int k = 0; k < K; ++k)
    across->addTick(k + 1,
                    QString::fromStdString(encoderTitle(t.encoders[static_cast<size_t>(k)])));
  for (int l = 0; l < L; ++l)
    up->addTick(l, l == 0 ? QString("embeddings") : QString("layer %1").arg(l));
  m_chart->xAxis->setTicker(across);
  m_chart->xAxis->setTickLabelRotation(0);
  m_chart->xAxis->setRange(0.5, K + 0.5);
  m_chart->yAxis->setTicker(up);
  m_chart->yAxis->setRange(-0.5, L - 0.5);
  m_chart->yAxis->setLabel("hidden state (cell: CKA with the stage-1 encoder)");
  m_chart->legend->setVisible(false);
  m_chart->replot();
  return true;
}

void EncodersView::drawChart(const SummaryTable& t) {
  m_chart->clearPlottables();
  m_chart->clearItems();  // the heat map's cell labels
  m_chart->legend->setVisible(true);
  m_chart->yAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
  auto* titleElement = qobject_cast<QCPTextElement*>(m_chart->plotLayout()->element(0, 0));
  if (titleElement) titleElement->setText(QString::fromStdString(t.title));
  if (t.family == "displacement" && drawHeatMap(t)) return;
  std::vector<const SummaryTable::Line*> lines;
  for (const auto& l : t.lines)
    if (charted(l)) lines.push_back(&l);
  QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
  for (size_t g = 0; g < lines.size(); ++g)
    ticker->addTick(static_cast<double>(g + 1), groupLabel(*lines[g]));
  m_chart->xAxis->setTicker(ticker);
  m_chart->xAxis->setTickLabelRotation(lines.size() > 6 ? 30 : 0);
  m_chart->xAxis->setRange(0.4, lines.size() + 0.6);
  bool severalBases = false;
  for (const auto* l : lines)
    for (const auto& means : l->baseMeans) severalBases |= means.size() > 1;
  m_chart->yAxis->setLabel(severalBases
                               ? "mean over bases and seeds (error bar: std; points: bases)"
                               : "mean over seeds (error bar: std)");
  const double K = static_cast<double>(t.encoders.size());
  double top = 1.0, bottom = 0.0;
  for (size_t k = 0; k < t.encoders.size(); ++k) {
    auto* bars = new QCPBars(m_chart->xAxis, m_chart->yAxis);
    bars->setName(QString::fromStdString(encoderTitle(t.encoders[k])));
    bars->setPen(Qt::NoPen);
    bars->setBrush(colourOf(t.encoders[k]));
    bars->setWidth(0.8 / std::max(1.0, K));
    auto* errors = new QCPErrorBars(m_chart->xAxis, m_chart->yAxis);
    errors->removeFromLegend();
    errors->setPen(QPen(QColor(40, 40, 40)));
    QVector<double> keys, values, spreads;
    for (size_t g = 0; g < lines.size(); ++g) {
      const auto& cell = lines[g]->cells[k];
      if (cell.n == 0) continue;
      keys << g + 1 - 0.4 + (k + 0.5) * 0.8 / K;  // side by side within the group
      values << cell.mean;
      spreads << cell.std;
      top = std::max(top, cell.mean + cell.std);
      bottom = std::min(bottom, cell.mean - cell.std);
    }
    bars->setData(keys, values, true);
    errors->setDataPlottable(bars);
    errors->setData(spreads);
    // With several bases (independent stage-0/1 chains), each base's mean as a point on its bar:
    // the spread the between-base interval is made of.
    auto* points = new QCPGraph(m_chart->xAxis, m_chart->yAxis);
    points->removeFromLegend();
    points->setLineStyle(QCPGraph::lsNone);
    points->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, QColor(30, 30, 30),
                                            colourOf(t.encoders[k]).lighter(130), 6));
    QVector<double> pointKeys, pointValues;
    for (size_t g = 0; g < lines.size(); ++g) {
      const auto& means = lines[g]->baseMeans[k];
      if (means.size() < 2) continue;
      for (size_t b = 0; b < means.size(); ++b) {
        const double spread = 0.5 * 0.8 / K;  // points spread across the bar, in base order
        pointKeys << g + 1 - 0.4 + (k + 0.5) * 0.8 / K +
                         spread * (static_cast<double>(b) / (means.size() - 1) - 0.5);
        pointValues << means[b];
        top = std::max(top, means[b]);
        bottom = std::min(bottom, means[b]);
      }
    }
    points->setData(pointKeys, pointValues);
    if (pointKeys.isEmpty()) m_chart->removeGraph(points);
  }
  m_chart->yAxis->setRange(bottom, top * 1.05);
  m_chart->replot();
}

bool EncodersView::exportChart(const QString& path) {
  const QString ext = QFileInfo(path).suffix().toLower();
  if (ext == "png")
    return m_chart->savePng(path, m_chart->width(), m_chart->height(), 2.0, -1, 192);
  if (ext == "pdf") return m_chart->savePdf(path);
  if (ext == "svg") {
    QSvgGenerator svg;
    svg.setFileName(path);
    svg.setSize(m_chart->size());
    svg.setViewBox(QRect(QPoint(0, 0), m_chart->size()));
    svg.setTitle(m_family->currentText());
    QCPPainter painter(&svg);
    if (!painter.isActive()) return false;
    m_chart->toPainter(&painter, m_chart->width(), m_chart->height());
    return true;
  }
  return false;
}

bool EncodersView::exportCsv(const QString& path) {
  QFile file(path);
  if (!file.open(QIODevice::WriteOnly | QIODevice::Text)) return false;
  const int f = m_family->currentIndex();
  if (f < 0 || f >= static_cast<int>(m_tables.size())) return false;
  const auto& t = m_tables[static_cast<size_t>(f)];
  QTextStream out(&file);
  out.setRealNumberPrecision(17);
  out << "probe,metric";
  for (const auto& e : t.encoders)
    out << ',' << QString::fromStdString(e) << "_mean," << QString::fromStdString(e) << "_std,"
        << QString::fromStdString(e) << "_n";
  for (const auto& arm : t.armsVsSft()) {
    const QString a = QString::fromStdString(arm);
    out << ',' << a << "_minus_sft," << a << "_minus_sft_low," << a << "_minus_sft_high";
  }
  out << '\n';
  for (const auto& line : t.lines) {
    out << QString::fromStdString(line.probe) << ',' << QString::fromStdString(line.metric);
    for (const auto& c : line.cells) {
      if (c.n)
        out << ',' << c.mean << ',' << c.std << ',' << c.n;
      else
        out << ",,,0";
    }
    for (const auto& [arm, d] : line.minusSft) {
      if (d.n)
        out << ',' << d.mean << ',' << (d.defined ? QString::number(d.low, 'g', 17) : "") << ','
            << (d.defined ? QString::number(d.high, 'g', 17) : "");
      else
        out << ",,,";
    }
    out << '\n';
  }
  return out.status() == QTextStream::Ok;
}

void EncodersView::exportDialog(const QString& kind) {
  const QString ext = kind.toLower();
  const QString path = QFileDialog::getSaveFileName(this, "Export " + kind,
                                                    m_family->currentData().toString() + "." + ext,
                                                    kind + " (*." + ext + ")");
  if (path.isEmpty()) return;
  const bool ok = kind == "CSV" ? exportCsv(path) : exportChart(path);
  m_message->setText(ok ? "Saved " + path : "Could not write " + path);
}

}  // namespace pivot
