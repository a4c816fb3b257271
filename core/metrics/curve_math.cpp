#include "metrics/curve_math.h"

#include <algorithm>
#include <cmath>

namespace pivot {

std::vector<double> debiasedEma(const std::vector<double>& ys, double weight) {
  std::vector<double> out(ys.size());
  const bool constant =
      std::all_of(ys.begin(), ys.end(), [&](double v) { return v == ys.front(); });
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

namespace {

// The smallest and largest point seen so far in a scan, NaN losing to any number and the earlier
// point winning a tie (so every way of scanning a range picks the same points).
struct Extremes {
  size_t minI, maxI;
  double minV, maxV;
  Extremes(size_t i, double y) : minI(i), maxI(i), minV(y), maxV(y) {}
  void add(size_t i, double y) { add(i, y, i, y); }
  void add(size_t iMin, double yMin, size_t iMax, double yMax) {
    if (yMin < minV || std::isnan(minV)) {
      minI = iMin;
      minV = yMin;
    }
    if (yMax > maxV || std::isnan(maxV)) {
      maxI = iMax;
      maxV = yMax;
    }
  }
};

}  // namespace

void BlockExtremes::update(const std::vector<double>& ys) {
  const size_t firstDirty = std::min(coveredPoints, ys.size()) / kBlock;  // redo the partial block
  const size_t blocks = (ys.size() + kBlock - 1) / kBlock;
  minIndex.resize(blocks);
  maxIndex.resize(blocks);
  minValue.resize(blocks);
  maxValue.resize(blocks);
  for (size_t b = firstDirty; b < blocks; ++b) {
    const size_t start = b * kBlock, end = std::min(ys.size(), start + kBlock);
    Extremes e(start, ys[start]);
    for (size_t i = start + 1; i < end; ++i) e.add(i, ys[i]);
    minIndex[b] = e.minI;
    maxIndex[b] = e.maxI;
    minValue[b] = e.minV;
    maxValue[b] = e.maxV;
  }
  coveredPoints = ys.size();
}

namespace {

// The first index in [from, to) whose x exceeds `edge` (to when none), searched outward from `from`
// first: a bucket's end lies a bucket's width away, so the search stays in cache instead of
// bisecting the whole remaining range for every column.
size_t firstAfter(const std::vector<double>& xs, size_t from, size_t to, double edge) {
  size_t step = 1, lo = from, hi = from;
  while (hi < to && xs[hi] <= edge) {
    lo = hi;
    hi = std::min(to, hi + step);
    step *= 2;
  }
  return static_cast<size_t>(std::upper_bound(xs.begin() + static_cast<long>(lo),
                                              xs.begin() + static_cast<long>(hi), edge) -
                             xs.begin());
}

}  // namespace

XYPoints downsampleMinMaxLast(const std::vector<double>& xs, const std::vector<double>& ys,
                              double x0, double x1, int columns, const BlockExtremes* blocks) {
  if (blocks && blocks->coveredPoints != ys.size()) blocks = nullptr;  // stale: read every point
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
  out.x.reserve(static_cast<size_t>(3 * columns + 4));
  out.y.reserve(static_cast<size_t>(3 * columns + 4));
  auto keepPoint = [&](size_t i) {
    out.x.push_back(xs[i]);
    out.y.push_back(ys[i]);
  };
  const double width = (x1 - x0) / columns;
  // Bucket edges by binary search, then one tight min/max pass per bucket: no per-point division.
  size_t start = lo;
  if (xs[start] < x0) keepPoint(start++);  // the neighbour left of the view
  for (int b = 0; b < columns && start < hi; ++b) {
    const double edge = b + 1 == columns ? x1 : x0 + (b + 1) * width;
    size_t end = firstAfter(xs, start, hi, edge);
    if (b + 1 == columns) end = std::min(end, hi);
    if (end == start) continue;
    Extremes e(start, ys[start]);
    constexpr size_t B = BlockExtremes::kBlock;
    size_t i = start + 1;
    if (blocks && end - start > 2 * B) {
      const size_t firstFull = (start + B - 1) / B,
                   lastFull = end / B;  // blocks inside [start, end)
      for (; i < firstFull * B; ++i) e.add(i, ys[i]);
      for (size_t k = firstFull; k < lastFull; ++k)
        e.add(blocks->minIndex[k], blocks->minValue[k], blocks->maxIndex[k], blocks->maxValue[k]);
      i = std::max(i, lastFull * B);
    }
    for (; i < end; ++i) e.add(i, ys[i]);
    size_t keep[3] = {e.minI, e.maxI, end - 1};
    std::sort(keep, keep + 3);
    for (int k = 0; k < 3; ++k)
      if (k == 0 || keep[k] != keep[k - 1]) keepPoint(keep[k]);
    start = end;
  }
  for (size_t i = start; i < hi; ++i) keepPoint(i);  // the neighbour right of the view
  return out;
}

}  // namespace pivot
