#include "curve_math.h"

#include <algorithm>
#include <cmath>

namespace pivot {

std::vector<double> debiasedEma(const std::vector<double>& ys, double weight) {
  std::vector<double> out(ys.size());
  const bool constant = std::all_of(ys.begin(), ys.end(), [&](double v) { return v == ys.front(); });
  double last = 0;
  int accumulated = 0;
  for (size_t i = 0; i < ys.size(); ++i) {
    const double y = ys[i];
    if (constant || !std::isfinite(y)) {
      out[i] = y;
      continue;
    }
    last = last * weight + (1 - weight) * y;
    ++accumulated;
    const double debias = weight == 1.0 ? 1.0 : 1.0 - std::pow(weight, accumulated);
    out[i] = last / debias;
  }
  return out;
}

XYPoints downsampleMinMaxLast(const std::vector<double>& xs, const std::vector<double>& ys,
                              double x0, double x1, int columns) {
  XYPoints out;
  if (xs.empty() || columns <= 0) return out;
  // Visible slice [lo, hi), widened by one point on each side.
  size_t lo = static_cast<size_t>(std::lower_bound(xs.begin(), xs.end(), x0) - xs.begin());
  size_t hi = static_cast<size_t>(std::upper_bound(xs.begin(), xs.end(), x1) - xs.begin());
  if (lo > 0) --lo;
  if (hi < xs.size()) ++hi;
  const size_t n = hi - lo;
  if (n <= static_cast<size_t>(3 * columns) || !(x1 > x0)) {
    out.x.assign(xs.begin() + static_cast<long>(lo), xs.begin() + static_cast<long>(hi));
    out.y.assign(ys.begin() + static_cast<long>(lo), ys.begin() + static_cast<long>(hi));
    return out;
  }
  out.x.reserve(static_cast<size_t>(3 * columns + 2));
  out.y.reserve(static_cast<size_t>(3 * columns + 2));
  const double width = (x1 - x0) / columns;
  auto bucketOf = [&](double x) {
    return std::clamp(static_cast<long>(std::floor((x - x0) / width)), -1L, static_cast<long>(columns));
  };
  size_t i = lo;
  while (i < hi) {
    const long bucket = bucketOf(xs[i]);
    size_t first = i, minI = i, maxI = i;
    while (i < hi && bucketOf(xs[i]) == bucket) {
      if (ys[i] < ys[minI] || std::isnan(ys[minI])) minI = i;
      if (ys[i] > ys[maxI] || std::isnan(ys[maxI])) maxI = i;
      ++i;
    }
    const size_t lastI = i - 1;
    size_t keep[4] = {first, minI, maxI, lastI};
    std::sort(keep, keep + 4);
    for (int k = 0; k < 4; ++k) {
      if (k > 0 && keep[k] == keep[k - 1]) continue;
      // The first point of a bucket only matters for the two edge buckets (line continuity).
      if (keep[k] == first && first != minI && first != maxI && first != lastI && bucket >= 0 && bucket < columns) continue;
      out.x.push_back(xs[keep[k]]);
      out.y.push_back(ys[keep[k]]);
    }
  }
  return out;
}

}  // namespace pivot
