// The live curve grid: one panel per metric group (loss, DPO's rewards, margins, accuracies and
// log-probs, MPO's terms, GRPO's rewards, KL, lengths and clip ratios, learning rate, grad norm,
// throughput) in families, several runs overlaid with one colour per run, a smoothing
// slider, x-axis choice, log scales, export of panels, the grid (PNG/PDF/SVG) and CSV.
// New points are buffered and the grid replots at most once per 40 ms tick (coalesced updates).
#pragma once
#include <QTimer>
#include <QWidget>
#include <map>
#include <set>
#include <vector>

#include "run_curves.h"
#include "store/run_store.h"

class QComboBox;
class QCheckBox;
class QGridLayout;
class QLabel;
class QScrollArea;
class QSlider;

namespace pivot {

class CurvePanel;

// The grid's panel families: the training loop's own values, DPO's and MPO's preference metrics,
// GRPO's rewards (reward with its std band, per function, KL, completion lengths, clip ratios).
enum class PanelFamily { All, Training, Preference, Rewards };

class CurveGrid : public QWidget {
  Q_OBJECT
 public:
  explicit CurveGrid(QWidget* parent = nullptr);

  // Adds points of one run (appended in step order; a repeated step replaces the old value).
  void appendMetrics(int64_t runId, const QString& runName, double samplesPerStep,
                     const std::vector<MetricPoint>& points);
  // The run's stage (pretrain, sft, dpo, ...): which loss panel draws it. A run whose stage is
  // not known yet is drawn in every loss panel.
  void setRunStage(int64_t runId, const QString& stage);
  void setRunVisible(int64_t runId, bool visible);
  void removeRun(int64_t runId);
  bool hasRun(int64_t runId) const { return m_runs.count(runId) > 0; }
  int64_t lastStep(int64_t runId) const;  // 0 when unknown

  void setSmoothing(double weight);  // 0 .. 0.999
  double smoothing() const { return m_smoothing; }
  void setXAxis(XAxisKind kind);
  void setLogScale(bool logX, bool logY);
  void setPanelFamily(PanelFamily family);  // the Panels box
  void setLegendShown(bool shown);          // the legend box: a legend inside every panel
  bool legendShown() const;

  bool exportGrid(const QString& file, int dpi = 150);  // .png, .pdf or .svg by suffix
  void exportGridDialog();                              // asks for the file (and PNG's dpi)
  bool exportCsv(const QString& file) const;            // run_id,run,key,step,wall_time,value

  const std::vector<CurvePanel*>& panels() const { return m_panels; }
  int visiblePanelCount() const;
  const std::map<int64_t, RunCurves>& runs() const { return m_runs; }
  void replotNow();                // flushes pending data at once (tests, export)
  QString emptyStateText() const;  // empty when panels show

 Q_SIGNALS:
  void replotted(double milliseconds);

 private:
  void markDirty() { m_dirty = m_fullReplot = true; }
  void markKeyDirty(const QString& key) {
    m_dirty = true;
    m_dirtyKeys.insert(key);
  }
  void relayout();
  void showEmptyState();
  bool panelShown(size_t i) const;  // of the chosen family, with data

  std::map<int64_t, RunCurves> m_runs;
  std::vector<CurvePanel*> m_panels;
  std::vector<PanelFamily> m_panelFamilies;  // per panel
  PanelFamily m_family = PanelFamily::All;
  QComboBox* m_familyBox = nullptr;
  QGridLayout* m_grid = nullptr;
  QSlider* m_smoothingSlider = nullptr;
  QLabel* m_smoothingLabel = nullptr;
  QCheckBox* m_legend = nullptr;
  QLabel* m_emptyState = nullptr;  // instead of the grid while no panel has data
  QScrollArea* m_scroll = nullptr;
  QComboBox* m_axisBox = nullptr;
  QCheckBox* m_logX = nullptr;
  QCheckBox* m_logY = nullptr;
  QTimer m_timer;
  bool m_dirty = false;
  bool m_fullReplot = false;      // structure changed: every shown panel redraws
  std::set<QString> m_dirtyKeys;  // otherwise only panels showing these keys
  double m_smoothing = 0.6;
  XAxisKind m_axis = XAxisKind::Step;
};

}  // namespace pivot
