// The metric series the curve widgets show, per run and metric key. Plain data, no widgets.
#pragma once
#include <QColor>
#include <cmath>
#include <QString>

#include "metrics/curve_math.h"
#include <cstdint>
#include <map>
#include <vector>

namespace pivot {

struct MetricSeries {
  std::vector<double> steps, values, walls;  // ascending steps; walls in unix seconds

  // The debiased EMA of values, kept up to date incrementally as points arrive.
  const std::vector<double>& smoothed(double weight);
  // Block extremes of the values and of the smoothed values (after smoothed(weight)).
  const BlockExtremes& valueBlocks() {
    m_valueBlocks.update(values);
    return m_valueBlocks;
  }
  const BlockExtremes& smoothedBlocks() {
    m_smoothedBlocks.update(m_smoothed);
    return m_smoothedBlocks;
  }
  // Range of the finite values.
  std::pair<double, double> valueRange();
  // Drops points from index n on (a resumed run repeats steps); caches follow.
  void truncate(size_t n);

 private:
  BlockExtremes m_valueBlocks, m_smoothedBlocks;
  size_t m_rangeCovered = 0;
  double m_yMin = INFINITY, m_yMax = -INFINITY;
  std::vector<double> m_smoothed;
  double m_weight = -1, m_last = 0;
  int m_accumulated = 0;
  bool m_constant = true;
};

struct RunCurves {
  int64_t id = 0;
  QString name;
  QColor colour;
  QString stage;              // its stage's name ("pretrain", "dpo"); empty while unknown
  double samplesPerStep = 1;  // batch size, for the "samples seen" axis
  bool visible = true;
  std::map<QString, MetricSeries> series;  // by TRL metric key
};

enum class XAxisKind { Step = 0, Samples, WallTime, RelativeTime };

// x values of a series for an axis kind (relative time counts from the run's first point).
std::vector<double> xValues(const RunCurves& run, const MetricSeries& s, XAxisKind kind);

// One stable colour per run id, the same in the curves, the runs table and Inspect: the palette's
// eight (legible on white, apart for colour-blind readers), then again darker every other round.
QColor runColour(int64_t runId);
const std::vector<QColor>& runPalette();

}  // namespace pivot
