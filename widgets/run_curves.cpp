// MetricSeries' incremental caches (run_curves.h): the smoothed series extended as points arrive,
// the value range, truncation when a resumed run replaces steps.
#include "run_curves.h"

#include <algorithm>
#include <cmath>

namespace pivot {

const std::vector<double>& MetricSeries::smoothed(double weight) {
  const bool constantSoFar =
      m_constant &&
      std::all_of(values.begin() + static_cast<long>(std::min(m_smoothed.size(), values.size())),
                  values.end(), [&](double v) { return v == values.front(); });
  // Recompute from scratch when the weight changed, steps were replaced, or the series stopped
  // being constant (debiasedEma treats constant series specially); otherwise extend.
  if (weight != m_weight || m_smoothed.size() > values.size() || constantSoFar != m_constant ||
      constantSoFar) {
    m_smoothed = debiasedEma(values, weight);
    // Room to grow as values has: an exactly sized vector would be copied whole (and its pages
    // faulted in anew) by the first point that arrives, 23 ms at 1M points.
    m_smoothed.reserve(values.capacity());
    m_smoothedBlocks = BlockExtremes();  // every smoothed value changed
    m_weight = weight;
    m_constant = constantSoFar;
    m_last = 0;
    m_accumulated = 0;
    if (!m_constant)
      for (double y : values)
        if (std::isfinite(y)) {
          m_last = m_last * weight + (1 - weight) * y;
          ++m_accumulated;
        }
    return m_smoothed;
  }
  for (size_t i = m_smoothed.size(); i < values.size(); ++i) {
    const double y = values[i];
    if (!std::isfinite(y)) {
      m_smoothed.push_back(y);
      continue;
    }
    m_last = m_last * weight + (1 - weight) * y;
    ++m_accumulated;
    m_smoothed.push_back(m_last / (weight == 1.0 ? 1.0 : 1.0 - std::pow(weight, m_accumulated)));
  }
  return m_smoothed;
}

void MetricSeries::truncate(size_t n) {
  steps.resize(std::min(n, steps.size()));
  values.resize(std::min(n, values.size()));
  walls.resize(std::min(n, walls.size()));
  m_valueBlocks.coveredPoints = std::min(m_valueBlocks.coveredPoints, n);
  m_smoothedBlocks = BlockExtremes();
  m_weight = -1;                       // smoothing recomputes
  m_rangeCovered = values.size() + 1;  // range recomputes
}

std::pair<double, double> MetricSeries::valueRange() {
  if (m_rangeCovered > values.size()) {  // steps were replaced: start over
    m_rangeCovered = 0;
    m_yMin = INFINITY;
    m_yMax = -INFINITY;
  }
  for (; m_rangeCovered < values.size(); ++m_rangeCovered) {
    const double v = values[m_rangeCovered];
    if (!std::isfinite(v)) continue;
    m_yMin = std::min(m_yMin, v);
    m_yMax = std::max(m_yMax, v);
  }
  return {m_yMin, m_yMax};
}

}  // namespace pivot
