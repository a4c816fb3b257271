// Pure functions behind the live curves and the report's figures (no Qt): TensorBoard's debiased
// EMA and a downsampler that never hides data (per pixel column: min, max and last, as W&B's
// full-fidelity plots do).
#pragma once
#include <cstddef>
#include <vector>

namespace pivot {

// TensorBoard's smoothing: last = last * w + (1 - w) * y, divided by 1 - w^n (n finite points so
// far). Non-finite values pass through unchanged; a constant series stays constant. w in [0, 1).
std::vector<double> debiasedEma(const std::vector<double>& ys, double weight);

struct XYPoints {
  std::vector<double> x, y;
};

// Per block of kBlock consecutive points, the smallest and the largest y with their indices: lets
// the downsampler take whole blocks inside a pixel column instead of reading every point. The
// values are kept beside the indices so that a column's blocks are read in order; looking each
// one up in ys (a cache miss per block in an 8 MB series) cost as much as reading the points.
struct BlockExtremes {
  static constexpr size_t kBlock = 32;
  std::vector<size_t> minIndex, maxIndex;
  std::vector<double> minValue, maxValue;  // ys[minIndex[b]], ys[maxIndex[b]]
  size_t coveredPoints = 0;  // points summarised so far (the last block may be partial)
  void update(const std::vector<double>& ys);  // extends after appends, redoes after truncation
};

// xs ascending. Splits [x0, x1] into `columns` equal buckets and keeps, per bucket, the points with
// the smallest and the largest y and the last point (in x order, each at most once), plus the
// nearest point outside each end so lines run to the edges. Returns everything when that is no
// more than the budget anyway.
// `blocks`, when given, must be up to date for ys; the result is the same, only faster.
XYPoints downsampleMinMaxLast(const std::vector<double>& xs, const std::vector<double>& ys,
                              double x0, double x1, int columns,
                              const BlockExtremes* blocks = nullptr);

}  // namespace pivot
