// The metric series the curve widgets show, per run and metric key. Plain data, no widgets.
#pragma once
#include <QColor>
#include <QString>
#include <cstdint>
#include <map>
#include <vector>

namespace pivot {

struct MetricSeries {
  std::vector<double> steps, values, walls;  // ascending steps; walls in unix seconds
};

struct RunCurves {
  int64_t id = 0;
  QString name;
  QColor colour;
  double samplesPerStep = 1;  // batch size, for the "samples seen" axis
  bool visible = true;
  std::map<QString, MetricSeries> series;  // by TRL metric key
};

enum class XAxisKind { Step = 0, Samples, WallTime, RelativeTime };

// x values of a series for an axis kind (relative time counts from the run's first point).
std::vector<double> xValues(const RunCurves& run, const MetricSeries& s, XAxisKind kind);

// One stable, distinguishable colour per run id (Tableau 10, then shifted hues).
QColor runColour(int64_t runId);

}  // namespace pivot
