// One panel of the curve grid: a QCustomPlot with one or two metric keys, every visible run
// overlaid in its colour, the raw series faint behind the smoothed one, downsampled per pixel
// column on every zoom. The header keeps qcustomplot.h out of its includers.
#pragma once
#include <QStringList>
#include <QWidget>

#include "run_curves.h"

class QCPGraph;
class QCPTextElement;
class QCustomPlot;
class QLabel;

namespace pivot {

class CurvePanel : public QWidget {
  Q_OBJECT
 public:
  CurvePanel(const QString& title, const QStringList& keys, const QString& note,
             QWidget* parent = nullptr);

  const QStringList& keys() const { return m_keys; }
  // A standard deviation drawn as a shaded band (mean ± std) around the first key's line, for
  // every run that logs both (GRPO's reward and reward_std).
  void setBandKey(const QString& key) { m_bandKey = key; }
  // Short names of the keys: the title then says which line is which, for the keys some shown
  // run has ("rewards per function: accuracy —, format - -", the pens in words).
  void setKeyLabels(const QStringList& labels) { m_keyLabels = labels; }
  // Also every key under `prefix` that some run logs (after the fixed keys, labelled by the rest of
  // the key): categories that a dataset defines, such as GRPO's "accuracy/<category>".
  void setKeyPrefix(const QString& prefix) { m_keyPrefix = prefix; }
  // Only runs of these stages (a run whose stage is unknown passes); empty: every run.
  void setStages(const QStringList& stages) { m_stages = stages; }
  bool drawsRun(const RunCurves& run) const;
  bool drawsKey(const QString& key) const;  // a new point of `key` changes this panel
  QString shownTitle() const;               // the title as drawn
  int bandCount() const;                    // bands drawn at the last update
  QString title() const { return m_title; }
  bool hasData(const std::map<int64_t, RunCurves>& runs) const;

  // Rebuilds the graphs from `runs` (call after new data or a change of smoothing or axis).
  // The panel keeps pointers into `runs` until the next update.
  void update(std::map<int64_t, RunCurves>* runs, XAxisKind axis, double smoothing);
  void setLogScale(bool logX, bool logY);
  // A legend inside the plot naming each line (run, and key when there are several): on screen and
  // in every export, so a figure says which run a line is.
  void setLegendShown(bool shown);
  bool legendShown() const { return m_legendShown; }
  void resetView();
  void setXRange(double lower, double upper);  // as a zoom by the user
  void replotImmediately();                    // synchronous replot (benchmarks, export)

  // Vector or raster export of this panel alone.
  bool savePng(const QString& file, int dpi);
  bool savePdf(const QString& file);
  bool saveSvg(const QString& file);

  QCustomPlot* plot() const { return m_plot; }
  int drawnPointCount() const;  // points handed to QCustomPlot after downsampling
  // The hover tooltip at axis position x: each line's nearest logged point, the header at the
  // first line's (a step that was logged, never a fraction of one).
  QString hoverText(double x) const;

 private:
  void redrawData();
  void showHover(int pixelX);
  void addBand(RunCurves& run, XAxisKind axis, double smoothing);
  QStringList keysIn(const std::map<int64_t, RunCurves>& runs) const;  // fixed, then prefixed
  QString keyLabel(const QStringList& keys, int k) const;

  QString m_title;
  QStringList m_keys;
  QString m_bandKey;
  QStringList m_keyLabels;
  QString m_keyPrefix;
  QStringList m_stages;
  QCPTextElement* m_titleElement = nullptr;
  QCustomPlot* m_plot = nullptr;
  QLabel* m_note = nullptr;
  std::map<int64_t, RunCurves>* m_runs = nullptr;
  XAxisKind m_axis = XAxisKind::Step;
  double m_smoothing = 0.6;
  bool m_userZoomed = false;
  bool m_legendShown = true;
  bool m_settingRange = false;
  // Per drawn graph, full resolution: x (the steps themselves, or computed for other axes), raw y
  // and smoothed y (both owned by the series).
  struct Line {
    QString label;
    const std::vector<double>* x = nullptr;
    const std::vector<double>* raw = nullptr;
    const std::vector<double>* smooth = nullptr;
    const BlockExtremes* rawBlocks = nullptr;
    const BlockExtremes* smoothBlocks = nullptr;
    std::pair<double, double> yRange;
    std::vector<double> ownX;
    QCPGraph *rawGraph = nullptr, *smoothGraph = nullptr;
  };
  std::vector<Line> m_lines;
  struct Band {
    std::vector<double> x, upper, lower;
    QCPGraph *upperGraph = nullptr, *lowerGraph = nullptr;
  };
  std::vector<Band> m_bands;
};

}  // namespace pivot
