#include "curve_panel.h"

#include <QDateTime>
#include <QLabel>
#include <QSvgGenerator>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <qcustomplot.h>

#include "metrics/curve_math.h"

namespace pivot {

std::vector<double> xValues(const RunCurves& run, const MetricSeries& s, XAxisKind kind) {
  switch (kind) {
    case XAxisKind::Step:
      return s.steps;
    case XAxisKind::Samples: {
      std::vector<double> x(s.steps);
      for (auto& v : x) v *= run.samplesPerStep;
      return x;
    }
    case XAxisKind::WallTime:
      return s.walls;
    case XAxisKind::RelativeTime: {
      double start = s.walls.empty() ? 0 : s.walls.front();
      for (const auto& [k, other] : run.series)
        if (!other.walls.empty()) start = std::min(start, other.walls.front());
      std::vector<double> x(s.walls);
      for (auto& v : x) v -= start;
      return x;
    }
  }
  return s.steps;
}

const std::vector<QColor>& runPalette() {
  // Okabe-Ito and Paul Tol colours chosen so that each has at least 3:1 contrast on white (WCAG's
  // bar for lines) and any two stay apart for deuteranopes and protanopes too (test_curves checks
  // both): no pale grey, yellow or peach.
  static const std::vector<QColor> palette = {"#0077bb", "#d55e00", "#444444", "#009e73",
                                              "#332288", "#cc79a7", "#117733", "#7f3c8d"};
  return palette;
}

QColor runColour(int64_t runId) {
  const auto& palette = runPalette();
  const auto n = static_cast<int64_t>(palette.size());
  const auto i = static_cast<size_t>(((runId - 1) % n + n) % n);
  // Past the palette the colours come again, darker every other round (darker keeps the contrast);
  // the legend and the runs table tell such runs apart.
  return ((runId - 1) / n) % 2 == 1 ? palette[i].darker(140) : palette[i];
}

namespace {

// The pen of a panel's k-th key, and the same pen in words for the title: solid, dashed, dotted,
// dash-dotted, dash-dot-dotted, long-dashed, then again.
constexpr int kKeyStyles = 6;
QPen keyPen(const QColor& colour, double width, int k) {
  static const Qt::PenStyle styles[] = {Qt::SolidLine,   Qt::DashLine,       Qt::DotLine,
                                        Qt::DashDotLine, Qt::DashDotDotLine, Qt::CustomDashLine};
  QPen pen(colour, width, styles[k % kKeyStyles]);
  if (pen.style() == Qt::CustomDashLine) pen.setDashPattern({8, 3});
  return pen;
}
QString keyStyleName(int k) {
  static const char* names[] = {"—", "- -", "···", "-·-", "-··", "— —"};
  return QString::fromUtf8(names[k % kKeyStyles]);
}

}  // namespace

CurvePanel::CurvePanel(const QString& title, const QStringList& keys, const QString& note,
                       QWidget* parent)
    : QWidget(parent), m_title(title), m_keys(keys) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(2, 2, 2, 2);
  layout->setSpacing(0);
  m_plot = new QCustomPlot(this);
  m_plot->setMinimumSize(260, 180);
  m_plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  m_plot->plotLayout()->insertRow(0);
  m_titleElement = new QCPTextElement(m_plot, title, QFont(font().family(), 10, QFont::Bold));
  m_plot->plotLayout()->addElement(0, 0, m_titleElement);
  m_plot->legend->setVisible(false);  // until there are lines to name
  m_plot->legend->setFont(QFont(font().family(), 7));
  m_plot->legend->setBrush(QColor(255, 255, 255, 210));
  m_plot->legend->setBorderPen(QPen(QColor("#bbbbbb")));
  m_plot->legend->setRowSpacing(0);
  m_plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
  m_plot->xAxis->setTickLabelFont(QFont(font().family(), 8));
  m_plot->yAxis->setTickLabelFont(QFont(font().family(), 8));
  m_plot->setNoAntialiasingOnDrag(true);
  // One polyline per graph instead of a QPainter call per segment: a third of the paint time of
  // 16 lines x ~700 points (9 -> 3 ms); the lines stay antialiased (solid pens only).
  m_plot->setPlottingHint(QCP::phFastPolylines, true);
  layout->addWidget(m_plot, 1);
  if (!note.isEmpty()) {
    m_note = new QLabel(note, this);
    m_note->setWordWrap(true);
    m_note->setStyleSheet("color: #666; font-size: 8pt; padding: 0 4px;");
    layout->addWidget(m_note);
  }
  connect(m_plot->xAxis, QOverload<const QCPRange&>::of(&QCPAxis::rangeChanged), this, [this] {
    if (m_settingRange) return;
    m_userZoomed = true;
    redrawData();
    m_plot->replot(QCustomPlot::rpQueuedReplot);
  });
  connect(m_plot, &QCustomPlot::mouseDoubleClick, this, [this] { resetView(); });
  connect(m_plot, &QCustomPlot::mouseMove, this,
          [this](QMouseEvent* e) { showHover(static_cast<int>(e->position().x())); });
}

bool CurvePanel::drawsKey(const QString& key) const {
  return m_keys.contains(key) || (!m_keyPrefix.isEmpty() && key.startsWith(m_keyPrefix));
}

QStringList CurvePanel::keysIn(const std::map<int64_t, RunCurves>& runs) const {
  QStringList keys = m_keys;
  if (m_keyPrefix.isEmpty()) return keys;
  QStringList more;
  for (const auto& [id, run] : runs)
    for (const auto& [key, series] : run.series)
      if (key.startsWith(m_keyPrefix) && !keys.contains(key) && !more.contains(key)) more << key;
  more.sort();
  return keys + more;
}

QString CurvePanel::keyLabel(const QStringList& keys, int k) const {
  if (k < m_keyLabels.size()) return m_keyLabels[k];
  return keys[k].startsWith(m_keyPrefix) ? keys[k].mid(m_keyPrefix.size()) : keys[k];
}

bool CurvePanel::drawsRun(const RunCurves& run) const {
  return m_stages.isEmpty() || run.stage.isEmpty() || m_stages.contains(run.stage);
}

bool CurvePanel::hasData(const std::map<int64_t, RunCurves>& runs) const {
  for (const auto& [id, run] : runs)
    if (drawsRun(run))
      for (const auto& key : keysIn(runs))
        if (auto it = run.series.find(key); it != run.series.end() && !it->second.values.empty())
          return true;
  return false;
}

void CurvePanel::update(std::map<int64_t, RunCurves>* runs, XAxisKind axis, double smoothing) {
  m_runs = runs;
  if (m_axis != axis) m_userZoomed = false;
  m_axis = axis;
  m_smoothing = smoothing;
  m_lines.clear();
  m_plot->clearGraphs();
  m_bands.clear();
  const QStringList keys = keysIn(*runs);
  for (auto& [id, run] : *runs) {
    if (!run.visible || !drawsRun(run)) continue;
    addBand(run, axis, smoothing);  // first, so that the lines draw over it
    for (int k = 0; k < keys.size(); ++k) {
      auto it = run.series.find(keys[k]);
      if (it == run.series.end() || it->second.values.empty()) continue;
      Line line;
      line.label = run.name + (keys.size() > 1 ? " · " + keyLabel(keys, k) : QString());
      if (axis == XAxisKind::Step) {
        line.x = &it->second.steps;
      } else {
        line.ownX = xValues(run, it->second, axis);
      }
      auto& series = it->second;
      line.raw = &series.values;
      line.rawBlocks = &series.valueBlocks();
      line.smooth = smoothing > 0 ? &series.smoothed(smoothing) : line.raw;
      line.smoothBlocks = smoothing > 0 ? &series.smoothedBlocks() : line.rawBlocks;
      line.yRange = series.valueRange();
      QColor faint = run.colour;
      faint.setAlpha(55);
      line.rawGraph = m_plot->addGraph();
      line.rawGraph->setPen(keyPen(faint, 1, k));
      line.rawGraph->setAdaptiveSampling(false);
      line.rawGraph->removeFromLegend();  // the smoothed line names the run
      // Paint time is the replot's largest share: the faint raw series (context, not the reading)
      // is drawn without antialiasing, and the smoothed line 1 px wide, which keeps QPainter's
      // fast cosmetic path (a wider antialiased pen goes through its stroker: 8 runs x 1M points
      // replotted in 44 ms instead of 25 on this 2-core machine).
      line.rawGraph->setAntialiased(false);
      line.smoothGraph = m_plot->addGraph();
      line.smoothGraph->setPen(keyPen(run.colour, 1, k));
      line.smoothGraph->setName(line.label);
      line.smoothGraph->setAdaptiveSampling(false);
      m_lines.push_back(std::move(line));
    }
  }
  if (m_keyLabels.size() == m_keys.size() && keys.size() > 1) {  // which line is which
    QStringList parts;
    for (int k = 0; k < keys.size(); ++k)
      for (const auto& [id, run] : *runs)
        if (auto it = run.series.find(keys[k]);
            run.visible && drawsRun(run) && it != run.series.end() && !it->second.values.empty()) {
          parts << QString("%1 %2").arg(keyLabel(keys, k), keyStyleName(k));
          break;
        }
    m_titleElement->setText(parts.isEmpty() ? m_title : m_title + ": " + parts.join(", "));
  }
  m_plot->legend->setVisible(m_legendShown && !m_lines.empty());
  for (auto& l : m_lines)  // computed x values live in the line itself: point at them once placed
    if (axis != XAxisKind::Step) l.x = &l.ownX;
  if (axis == XAxisKind::WallTime) {
    auto ticker = QSharedPointer<QCPAxisTickerDateTime>::create();
    ticker->setDateTimeFormat("hh:mm:ss");
    m_plot->xAxis->setTicker(ticker);
  } else if (m_plot->xAxis->scaleType() == QCPAxis::stLinear) {
    m_plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>::create());
  }
  m_plot->xAxis->setLabel(axis == XAxisKind::Step       ? "step"
                          : axis == XAxisKind::Samples  ? "samples seen"
                          : axis == XAxisKind::WallTime ? "wall time"
                                                        : "seconds since start");
  if (!m_userZoomed) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    const bool logY = m_plot->yAxis->scaleType() == QCPAxis::stLogarithmic;
    for (const auto& l : m_lines) {
      if (l.x->empty()) continue;
      x0 = std::min(x0, l.x->front());
      x1 = std::max(x1, l.x->back());
      if (!logY) {
        y0 = std::min(y0, l.yRange.first);
        y1 = std::max(y1, l.yRange.second);
        continue;
      }
      for (double v : *l.raw)  // log scale: the smallest positive value bounds the axis
        if (std::isfinite(v) && v > 0) {
          y0 = std::min(y0, v);
          y1 = std::max(y1, v);
        }
    }
    for (const auto& b : m_bands)  // the band shows whole
      for (size_t i = 0; i < b.upper.size() && !logY; ++i)
        if (std::isfinite(b.upper[i]) && std::isfinite(b.lower[i])) {
          y0 = std::min(y0, b.lower[i]);
          y1 = std::max(y1, b.upper[i]);
        }
    if (std::isfinite(x0)) {
      m_settingRange = true;
      m_plot->xAxis->setRange(x0, x1 > x0 ? x1 : x0 + 1);
      // A constant series (all zero, say) gets an axis around its value, not one of ±1e-9.
      const double constantPad = y0 != 0 ? std::abs(y0) * 0.1 : 1.0;
      const double pad = y1 > y0 ? (y1 - y0) * 0.05 : constantPad;
      m_plot->yAxis->setRange(logY ? y0 / 1.2 : y0 - pad, logY ? y1 * 1.2 : y1 + pad);
      m_settingRange = false;
    }
  }
  redrawData();
  m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void CurvePanel::redrawData() {
  const QCPRange range = m_plot->xAxis->range();
  const int columns = std::max(50, m_plot->axisRect()->width());
  for (size_t i = 0; i < m_lines.size(); ++i) {
    const auto& l = m_lines[i];
    auto raw = downsampleMinMaxLast(*l.x, *l.raw, range.lower, range.upper, columns, l.rawBlocks);
    auto smooth =
        downsampleMinMaxLast(*l.x, *l.smooth, range.lower, range.upper, columns, l.smoothBlocks);
    l.rawGraph->setData(QVector<double>(raw.x.begin(), raw.x.end()),
                        QVector<double>(raw.y.begin(), raw.y.end()), true);
    l.smoothGraph->setData(QVector<double>(smooth.x.begin(), smooth.x.end()),
                           QVector<double>(smooth.y.begin(), smooth.y.end()), true);
  }
  for (const auto& b : m_bands) {
    const auto upper = downsampleMinMaxLast(b.x, b.upper, range.lower, range.upper, columns);
    const auto lower = downsampleMinMaxLast(b.x, b.lower, range.lower, range.upper, columns);
    b.upperGraph->setData(QVector<double>(upper.x.begin(), upper.x.end()),
                          QVector<double>(upper.y.begin(), upper.y.end()), true);
    b.lowerGraph->setData(QVector<double>(lower.x.begin(), lower.x.end()),
                          QVector<double>(lower.y.begin(), lower.y.end()), true);
  }
}

void CurvePanel::addBand(RunCurves& run, XAxisKind axis, double smoothing) {
  if (m_bandKey.isEmpty() || m_keys.isEmpty()) return;
  const auto mean = run.series.find(m_keys.front()), spread = run.series.find(m_bandKey);
  if (mean == run.series.end() || spread == run.series.end() ||
      mean->second.steps != spread->second.steps || mean->second.values.empty())
    return;
  // mean ± std, both smoothed alike, so the band follows the line it surrounds.
  const auto& m = smoothing > 0 ? mean->second.smoothed(smoothing) : mean->second.values;
  const auto& sd = smoothing > 0 ? spread->second.smoothed(smoothing) : spread->second.values;
  Band band;
  band.x = axis == XAxisKind::Step ? mean->second.steps : xValues(run, mean->second, axis);
  for (size_t i = 0; i < m.size(); ++i) {
    band.upper.push_back(m[i] + sd[i]);
    band.lower.push_back(m[i] - sd[i]);
  }
  QColor fill = run.colour;
  fill.setAlpha(45);
  band.upperGraph = m_plot->addGraph();
  band.upperGraph->setPen(Qt::NoPen);
  band.upperGraph->removeFromLegend();
  band.lowerGraph = m_plot->addGraph();
  band.lowerGraph->removeFromLegend();
  band.lowerGraph->setPen(Qt::NoPen);
  band.lowerGraph->setBrush(fill);
  band.lowerGraph->setChannelFillGraph(band.upperGraph);
  m_bands.push_back(std::move(band));
}

QString CurvePanel::shownTitle() const { return m_titleElement->text(); }

int CurvePanel::bandCount() const { return static_cast<int>(m_bands.size()); }

int CurvePanel::drawnPointCount() const {
  int n = 0;
  for (int i = 0; i < m_plot->graphCount(); ++i) n += m_plot->graph(i)->dataCount();
  return n;
}

void CurvePanel::setLogScale(bool logX, bool logY) {
  auto apply = [](QCPAxis* axis, bool log) {
    axis->setScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    if (log)
      axis->setTicker(QSharedPointer<QCPAxisTickerLog>::create());
    else
      axis->setTicker(QSharedPointer<QCPAxisTicker>::create());
  };
  apply(m_plot->xAxis, logX);
  apply(m_plot->yAxis, logY);
  m_userZoomed = false;
  if (m_runs) update(m_runs, m_axis, m_smoothing);
}

void CurvePanel::setLegendShown(bool shown) {
  m_legendShown = shown;
  m_plot->legend->setVisible(shown && !m_lines.empty());
  m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void CurvePanel::resetView() {
  m_userZoomed = false;
  if (m_runs) update(m_runs, m_axis, m_smoothing);
}

void CurvePanel::setXRange(double lower, double upper) { m_plot->xAxis->setRange(lower, upper); }

void CurvePanel::replotImmediately() { m_plot->replot(QCustomPlot::rpImmediateRefresh); }

void CurvePanel::showHover(int pixelX) {
  if (m_lines.empty()) return;
  QToolTip::showText(m_plot->mapToGlobal(QPoint(pixelX + 12, 10)),
                     hoverText(m_plot->xAxis->pixelToCoord(pixelX)), m_plot);
}

QString CurvePanel::hoverText(double x) const {
  // Each line's point nearest the pointer; the header names the first one's x (a logged step, not
  // the pixel's fraction of one), and a line whose nearest point lies elsewhere says where.
  const auto xText = [this](double v) {
    return m_axis == XAxisKind::WallTime
               ? QDateTime::fromMSecsSinceEpoch(static_cast<qint64>(v * 1000)).toString("hh:mm:ss")
               : QString::number(v, 'g', m_axis == XAxisKind::Step ? 12 : 6);
  };
  QString header, rows;
  for (const auto& l : m_lines) {
    if (l.x->empty()) continue;
    auto it = std::lower_bound(l.x->begin(), l.x->end(), x);
    if (it == l.x->end()) --it;
    if (it != l.x->begin() && std::abs(*(it - 1) - x) < std::abs(*it - x)) --it;
    const auto i = static_cast<size_t>(it - l.x->begin());
    const QString at = xText(*it);
    if (header.isEmpty()) header = at;
    rows += QString("<br>%1: %2 (raw %3)%4")
                .arg(l.label.toHtmlEscaped())
                .arg((*l.smooth)[i], 0, 'g', 5)
                .arg((*l.raw)[i], 0, 'g', 5)
                .arg(at == header ? QString() : " at " + at);
  }
  const QString axisName = m_plot->xAxis->label();
  return QString("<b>%1</b>, %2 %3").arg(m_title, axisName, header) + rows;
}

bool CurvePanel::savePng(const QString& file, int dpi) {
  return m_plot->savePng(file, m_plot->width(), m_plot->height(), dpi / 96.0, -1, dpi);
}

bool CurvePanel::savePdf(const QString& file) { return m_plot->savePdf(file); }

bool CurvePanel::saveSvg(const QString& file) {
  QSvgGenerator svg;
  svg.setFileName(file);
  svg.setSize(m_plot->size());
  svg.setViewBox(QRect(QPoint(0, 0), m_plot->size()));
  svg.setTitle(m_title);
  QCPPainter painter(&svg);
  if (!painter.isActive()) return false;
  m_plot->toPainter(&painter, m_plot->width(), m_plot->height());
  return true;
}

}  // namespace pivot
