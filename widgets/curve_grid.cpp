#include "curve_grid.h"

#include <QCheckBox>
#include <QComboBox>
#include <QElapsedTimer>
#include <QFile>
#include <QFileDialog>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QInputDialog>
#include <QLabel>
#include <QMenu>
#include <QPdfWriter>
#include <QPushButton>
#include <QScrollArea>
#include <QSlider>
#include <QSvgGenerator>
#include <QTextStream>
#include <qcustomplot.h>

#include "curve_panel.h"

namespace pivot {
namespace {

constexpr int kReplotIntervalMs = 40;
const QString kDpoNote =
    "DPO: falling chosen rewards with a growing margin are normal (likelihood displacement).";

const QString kGrpoNote =
    "GRPO: rewards of the sampled completions; a group whose rewards are all equal teaches "
    "nothing (frac_reward_zero_std).";

// A panel: its family (the grid's Panels filter), title, metric keys (drawn solid, dashed,
// dotted, dash-dotted) with a short label each when there are several (the title lists those some
// run has), a note, and the key of a standard deviation drawn as a band around the first key.
struct PanelSpec {
  PanelFamily family;
  const char* title;
  QStringList keys;
  QStringList labels;
  QString note;
  QString band;
  QString keyPrefix;     // also every logged key under it (CurvePanel::setKeyPrefix)
  QStringList stages{};  // only runs of these stages (CurvePanel::setStages); empty: all
};

const std::vector<PanelSpec>& panelSpecs() {
  using F = PanelFamily;
  static const std::vector<PanelSpec> specs = {
      // "loss" is a different objective in each stage: one axis per objective, so that a
      // SigLIP loss of 7 does not flatten a DPO loss of 0.69 against it.
      {F::Training, "loss: SigLIP (pretrain)", {"loss"}, {}, "", "", "", {"pretrain"}},
      {F::Training,
       "loss: next-token cross-entropy (align, instruct, SFT)",
       {"loss"},
       {},
       "",
       "",
       "",
       {"align", "instruct", "sft"}},
      {F::Training, "loss: DPO", {"loss"}, {}, "", "", "", {"dpo"}},
      {F::Training, "loss: MPO (weighted terms)", {"loss"}, {}, "", "", "", {"mpo"}},
      {F::Training, "loss: GRPO", {"loss"}, {}, "", "", "", {"grpo"}},
      {F::Preference,
       "rewards",
       {"rewards/chosen", "rewards/rejected"},
       {"chosen", "rejected"},
       kDpoNote,
       ""},
      {F::Preference, "rewards/margins", {"rewards/margins"}, {}, kDpoNote, ""},
      {F::Preference, "rewards/accuracies", {"rewards/accuracies"}, {}, "", ""},
      {F::Preference,
       "log-probs",
       {"logps/chosen", "logps/rejected"},
       {"chosen", "rejected"},
       "",
       ""},
      {F::Preference,
       "MPO terms",
       {"loss/sigmoid", "loss/bco_pair", "loss/sft"},
       {"sigmoid", "bco_pair", "sft"},
       "",
       ""},
      {F::Rewards, "reward (band: ± reward_std)", {"reward"}, {}, kGrpoNote, "reward_std"},
      {F::Rewards,
       "rewards per function",
       {"rewards/accuracy/mean", "rewards/format/mean", "rewards/format_think/mean",
        "rewards/length/mean"},
       {"accuracy", "format", "format_think", "length"},
       "",
       ""},
      {F::Rewards,
       "accuracy by category",
       {"accuracy/colour", "accuracy/shape", "accuracy/count", "accuracy/position",
        "accuracy/existence", "accuracy/relation"},
       {"colour", "shape", "count", "position", "existence", "relation"},
       "",
       "",
       "accuracy/"},  // and any other category a dataset's records name
      {F::Rewards, "kl (to the stage-1 reference)", {"kl"}, {}, "", ""},
      {F::Rewards,
       "completion length",
       {"completions/mean_length", "completions/min_length", "completions/max_length"},
       {"mean", "min", "max"},
       "",
       ""},
      {F::Rewards,
       "clip ratios",
       {"clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean"},
       {"region", "low", "high"},
       "",
       ""},
      {F::Rewards,
       "GRPO",
       {"entropy", "frac_reward_zero_std"},
       {"entropy", "frac_reward_zero_std"},
       "",
       ""},
      {F::Training,
       "learning rate",
       {"learning_rate", "vision_learning_rate"},
       {"LM", "vision"},
       "",
       ""},
      {F::Training, "grad_norm", {"grad_norm"}, {}, "", ""},
      {F::Training, "throughput (samples/s)", {"throughput/samples_per_s"}, {}, "", ""},
  };
  return specs;
}

}  // namespace

CurveGrid::CurveGrid(QWidget* parent) : QWidget(parent) {
  auto* outer = new QVBoxLayout(this);
  outer->setContentsMargins(4, 4, 4, 4);
  auto* bar = new QHBoxLayout;
  bar->addWidget(new QLabel("Smoothing"));
  m_smoothingSlider = new QSlider(Qt::Horizontal);
  m_smoothingSlider->setRange(0, 999);
  m_smoothingSlider->setValue(600);
  m_smoothingSlider->setMaximumWidth(180);
  m_smoothingSlider->setObjectName("smoothingSlider");
  bar->addWidget(m_smoothingSlider);
  m_smoothingLabel = new QLabel("0.600");
  m_smoothingLabel->setMinimumWidth(40);
  bar->addWidget(m_smoothingLabel);
  bar->addSpacing(12);
  bar->addWidget(new QLabel("X axis"));
  m_axisBox = new QComboBox;
  m_axisBox->setObjectName("xAxisBox");
  m_axisBox->addItems({"step", "samples seen", "wall time", "relative time"});
  bar->addWidget(m_axisBox);
  bar->addSpacing(12);
  bar->addWidget(new QLabel("Panels"));
  m_familyBox = new QComboBox;
  m_familyBox->setObjectName("panelFamilyBox");
  m_familyBox->addItem("all", static_cast<int>(PanelFamily::All));
  m_familyBox->addItem("training", static_cast<int>(PanelFamily::Training));
  m_familyBox->addItem("preference (DPO, MPO)", static_cast<int>(PanelFamily::Preference));
  m_familyBox->addItem("rewards (GRPO)", static_cast<int>(PanelFamily::Rewards));
  bar->addWidget(m_familyBox);
  m_logX = new QCheckBox("log x");
  m_logY = new QCheckBox("log y");
  bar->addWidget(m_logX);
  bar->addWidget(m_logY);
  m_legend = new QCheckBox("legend");
  m_legend->setObjectName("legendBox");
  m_legend->setChecked(true);
  m_legend->setToolTip("Name each line inside its plot (also in exported figures)");
  bar->addWidget(m_legend);
  bar->addStretch(1);
  auto* exportButton = new QPushButton("Export…");
  auto* menu = new QMenu(exportButton);
  menu->addAction("Grid as PNG/PDF/SVG…", this, &CurveGrid::exportGridDialog);
  menu->addAction("Visible runs as CSV…", this, [this] {
    const auto file =
        QFileDialog::getSaveFileName(this, "Export CSV", "metrics.csv", "CSV (*.csv)");
    if (!file.isEmpty()) exportCsv(file);
  });
  exportButton->setMenu(menu);
  bar->addWidget(exportButton);
  outer->addLayout(bar);

  auto* scroll = m_scroll = new QScrollArea;
  scroll->setWidgetResizable(true);
  scroll->setFrameShape(QFrame::NoFrame);
  auto* canvas = new QWidget;
  m_grid = new QGridLayout(canvas);
  m_grid->setSpacing(6);
  for (const auto& spec : panelSpecs()) {
    auto* panel = new CurvePanel(spec.title, spec.keys, spec.note, canvas);
    panel->setBandKey(spec.band);
    panel->setKeyLabels(spec.labels);
    panel->setKeyPrefix(spec.keyPrefix);
    panel->setStages(spec.stages);
    m_panelFamilies.push_back(spec.family);
    panel->setContextMenuPolicy(Qt::ActionsContextMenu);
    auto addExport = [this, panel](const QString& label, const QString& suffix) {
      auto* action = new QAction(label, panel);
      connect(action, &QAction::triggered, this, [this, panel, suffix] {
        const auto file = QFileDialog::getSaveFileName(
            this, "Export panel", QString(panel->keys().front()).replace('/', '_') + suffix);
        if (file.isEmpty()) return;
        if (suffix == ".png") {
          bool ok = false;
          const int dpi =
              QInputDialog::getInt(this, "PNG resolution", "Dots per inch:", 200, 72, 600, 1, &ok);
          if (ok) panel->savePng(file, dpi);
        } else if (suffix == ".pdf")
          panel->savePdf(file);
        else
          panel->saveSvg(file);
      });
      panel->addAction(action);
    };
    addExport("Export panel as PNG…", ".png");
    addExport("Export panel as PDF…", ".pdf");
    addExport("Export panel as SVG…", ".svg");
    panel->hide();
    m_panels.push_back(panel);
  }
  scroll->setWidget(canvas);
  m_emptyState = new QLabel;
  m_emptyState->setObjectName("curvesEmptyState");
  m_emptyState->setAlignment(Qt::AlignCenter);
  m_emptyState->setWordWrap(true);
  m_emptyState->setStyleSheet("color: #777; font-size: 11pt; padding: 24px;");
  outer->addWidget(m_emptyState, 1);
  outer->addWidget(scroll, 1);
  showEmptyState();

  connect(m_smoothingSlider, &QSlider::valueChanged, this,
          [this](int v) { setSmoothing(v / 1000.0); });
  connect(m_familyBox, QOverload<int>::of(&QComboBox::currentIndexChanged), this,
          [this] { setPanelFamily(static_cast<PanelFamily>(m_familyBox->currentData().toInt())); });
  connect(m_axisBox, QOverload<int>::of(&QComboBox::currentIndexChanged), this,
          [this](int i) { setXAxis(static_cast<XAxisKind>(i)); });
  auto logChanged = [this] { setLogScale(m_logX->isChecked(), m_logY->isChecked()); };
  connect(m_logX, &QCheckBox::toggled, this, logChanged);
  connect(m_legend, &QCheckBox::toggled, this, &CurveGrid::setLegendShown);
  connect(m_logY, &QCheckBox::toggled, this, logChanged);
  m_timer.setInterval(kReplotIntervalMs);
  connect(&m_timer, &QTimer::timeout, this, [this] {
    if (m_dirty) replotNow();
  });
  m_timer.start();
}

void CurveGrid::appendMetrics(int64_t runId, const QString& runName, double samplesPerStep,
                              const std::vector<MetricPoint>& points) {
  auto& run = m_runs[runId];
  if (run.id == 0) {
    run.id = runId;
    run.colour = runColour(runId);
    markDirty();
  }
  run.name = runName;
  run.samplesPerStep = samplesPerStep;
  for (const auto& p : points) {
    auto& s = run.series[QString::fromStdString(p.key)];
    const double step = static_cast<double>(p.step);
    if (!s.steps.empty() && step <= s.steps.back()) {  // a resumed run repeats steps: replace
      auto it = std::lower_bound(s.steps.begin(), s.steps.end(), step);
      s.truncate(static_cast<size_t>(it - s.steps.begin()));
    }
    s.steps.push_back(step);
    s.values.push_back(p.value);
    s.walls.push_back(p.wallTime);
    markKeyDirty(QString::fromStdString(p.key));
  }
}

void CurveGrid::setRunStage(int64_t runId, const QString& stage) {
  auto it = m_runs.find(runId);
  if (it == m_runs.end() || it->second.stage == stage) return;
  it->second.stage = stage;
  markDirty();
}

int64_t CurveGrid::lastStep(int64_t runId) const {
  auto it = m_runs.find(runId);
  if (it == m_runs.end()) return 0;
  double last = 0;
  for (const auto& [k, s] : it->second.series)
    if (!s.steps.empty()) last = std::max(last, s.steps.back());
  return static_cast<int64_t>(last);
}

void CurveGrid::setRunVisible(int64_t runId, bool visible) {
  if (auto it = m_runs.find(runId); it != m_runs.end() && it->second.visible != visible) {
    it->second.visible = visible;
    markDirty();
  }
}

void CurveGrid::removeRun(int64_t runId) {
  if (m_runs.erase(runId)) markDirty();
}

void CurveGrid::setSmoothing(double weight) {
  m_smoothing = std::clamp(weight, 0.0, 0.999);
  m_smoothingLabel->setText(QString::number(m_smoothing, 'f', 3));
  const int slider = static_cast<int>(std::lround(m_smoothing * 1000));
  if (m_smoothingSlider->value() != slider) m_smoothingSlider->setValue(slider);
  markDirty();
}

void CurveGrid::setXAxis(XAxisKind kind) {
  m_axis = kind;
  if (m_axisBox->currentIndex() != static_cast<int>(kind))
    m_axisBox->setCurrentIndex(static_cast<int>(kind));
  markDirty();
}

void CurveGrid::setLogScale(bool logX, bool logY) {
  m_logX->setChecked(logX);
  m_logY->setChecked(logY);
  for (auto* p : m_panels) p->setLogScale(logX, logY);
}

int CurveGrid::visiblePanelCount() const {
  return static_cast<int>(std::count_if(m_panels.begin(), m_panels.end(),
                                        [](CurvePanel* p) { return !p->isHidden(); }));
}

void CurveGrid::setLegendShown(bool shown) {
  if (m_legend->isChecked() != shown) m_legend->setChecked(shown);  // comes back here
  for (auto* p : m_panels) p->setLegendShown(shown);
}

bool CurveGrid::legendShown() const { return m_legend->isChecked(); }

void CurveGrid::setPanelFamily(PanelFamily family) {
  m_family = family;
  const int index = m_familyBox->findData(static_cast<int>(family));
  if (index != m_familyBox->currentIndex()) m_familyBox->setCurrentIndex(index);
  markDirty();
  replotNow();
}

bool CurveGrid::panelShown(size_t i) const {
  return (m_family == PanelFamily::All || m_panelFamilies[i] == m_family) &&
         m_panels[i]->hasData(m_runs);
}

QString CurveGrid::emptyStateText() const {
  return m_emptyState->isHidden() ? QString() : m_emptyState->text();
}

// With no panel to show, the grid says why and what to do instead of showing an empty box.
void CurveGrid::showEmptyState() {
  const bool any = std::any_of(m_panels.begin(), m_panels.end(),
                               [](const CurvePanel* p) { return !p->isHidden(); });
  m_emptyState->setText(
      m_runs.empty()
          ? "No run shown.\nStart one from the Launch panel (Ctrl+R), or select runs in the Runs "
            "table below: their curves appear here and grow while they train."
          : "The runs shown log no curves of this kind: choose another family under Panels.");
  m_emptyState->setVisible(!any);
  m_scroll->setVisible(any);
}

void CurveGrid::relayout() {
  // Panels of the chosen family for metrics some run has show; they flow into two columns.
  bool same = true;
  for (size_t i = 0; i < m_panels.size(); ++i)
    same = same && (panelShown(i) == !m_panels[i]->isHidden());
  if (same) {
    showEmptyState();  // runs may have come or gone without a panel changing
    return;
  }
  m_fullReplot = true;
  for (auto* p : m_panels) m_grid->removeWidget(p);
  int index = 0;
  for (size_t i = 0; i < m_panels.size(); ++i) {
    auto* p = m_panels[i];
    const bool show = panelShown(i);
    p->setVisible(show);
    if (show) {
      m_grid->addWidget(p, index / 2, index % 2);
      ++index;
    }
  }
  showEmptyState();
}

void CurveGrid::replotNow() {
  QElapsedTimer clock;
  clock.start();
  relayout();
  for (auto* p : m_panels) {
    if (p->isHidden()) continue;
    const bool changed =
        m_fullReplot || std::any_of(m_dirtyKeys.begin(), m_dirtyKeys.end(),
                                    [&](const QString& k) { return p->drawsKey(k); });
    if (changed) p->update(&m_runs, m_axis, m_smoothing);
  }
  m_dirty = m_fullReplot = false;
  m_dirtyKeys.clear();
  const double ms = clock.nsecsElapsed() / 1e6;
  // Keep the GUI thread's share of a core small while a run trains next to it: replot no more
  // often than every 40 ms, nor than four times what the last replot cost.
  m_timer.setInterval(std::clamp(static_cast<int>(4 * ms), kReplotIntervalMs, 1000));
  Q_EMIT replotted(ms);
}

void CurveGrid::exportGridDialog() {
  const auto file =
      QFileDialog::getSaveFileName(this, "Export grid", "curves.pdf", "Images (*.pdf *.svg *.png)");
  if (file.isEmpty()) return;
  int dpi = 150;
  if (file.endsWith(".png", Qt::CaseInsensitive)) {
    bool ok = false;
    dpi = QInputDialog::getInt(this, "PNG resolution", "Dots per inch:", 150, 72, 600, 1, &ok);
    if (!ok) return;
  }
  exportGrid(file, dpi);
}

bool CurveGrid::exportGrid(const QString& file, int dpi) {
  replotNow();
  std::vector<CurvePanel*> shown;
  for (auto* p : m_panels)
    if (!p->isHidden()) shown.push_back(p);
  if (shown.empty()) return false;
  const int w = 520, h = 320, cols = 2, rows = static_cast<int>((shown.size() + 1) / 2);
  const QSize size(cols * w, rows * h);
  auto paintAll = [&](QPaintDevice* device, double scale) {
    QCPPainter painter(device);
    if (!painter.isActive()) return false;
    painter.scale(scale, scale);
    for (size_t i = 0; i < shown.size(); ++i) {
      painter.save();
      painter.translate(static_cast<double>(static_cast<int>(i) % cols * w),
                        static_cast<double>(static_cast<int>(i) / cols * h));
      shown[i]->plot()->toPainter(&painter, w, h);
      painter.restore();
    }
    return true;
  };
  if (file.endsWith(".svg", Qt::CaseInsensitive)) {
    QSvgGenerator svg;
    svg.setFileName(file);
    svg.setSize(size);
    svg.setViewBox(QRect(QPoint(0, 0), size));
    return paintAll(&svg, 1.0);
  }
  if (file.endsWith(".pdf", Qt::CaseInsensitive)) {
    QPdfWriter pdf(file);
    pdf.setPageSize(QPageSize(QSizeF(size.width(), size.height()), QPageSize::Point));
    pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
    pdf.setResolution(72);
    return paintAll(&pdf, 1.0);
  }
  const double scale = dpi / 96.0;
  QImage image(size * scale, QImage::Format_ARGB32);
  image.setDotsPerMeterX(static_cast<int>(dpi / 0.0254));
  image.setDotsPerMeterY(static_cast<int>(dpi / 0.0254));
  image.fill(Qt::white);
  if (!paintAll(&image, scale)) return false;
  return image.save(file);
}

bool CurveGrid::exportCsv(const QString& file) const {
  QFile f(file);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Text)) return false;
  QTextStream out(&f);
  out.setRealNumberPrecision(17);
  out << "run_id,run,key,step,wall_time,value\n";
  for (const auto& [id, run] : m_runs) {
    if (!run.visible) continue;
    QString name = run.name;
    name.replace('"', "\"\"");
    for (const auto& [key, s] : run.series)
      for (size_t i = 0; i < s.steps.size(); ++i)
        out << id << ",\"" << name << "\"," << key << ',' << static_cast<qint64>(s.steps[i]) << ','
            << s.walls[i] << ',' << s.values[i] << '\n';
  }
  return f.error() == QFile::NoError;
}

}  // namespace pivot
