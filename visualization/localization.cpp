#include "visualization/localization.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace pivot {

std::vector<uint8_t> targetMask(const std::vector<uint8_t>& instanceMask,
                                const std::vector<int>& targets) {
  std::vector<uint8_t> mask(instanceMask.size(), 0);
  for (size_t p = 0; p < mask.size(); ++p)
    for (int t : targets)
      if (instanceMask[p] == t + 1) mask[p] = 1;
  return mask;
}

std::vector<double> cellMaskFraction(const std::vector<uint8_t>& mask, int height, int width,
                                     int gh, int gw) {
  if (static_cast<int>(mask.size()) != height * width || gh <= 0 || gw <= 0)
    throw std::invalid_argument("cellMaskFraction: mask size does not match height x width");
  std::vector<double> inside(static_cast<size_t>(gh * gw), 0),
      total(static_cast<size_t>(gh * gw), 0);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const size_t cell = static_cast<size_t>((y * gh / height) * gw + x * gw / width);
      total[cell] += 1;
      if (mask[static_cast<size_t>(y * width + x)]) inside[cell] += 1;
    }
  for (size_t i = 0; i < inside.size(); ++i) inside[i] = total[i] > 0 ? inside[i] / total[i] : 0;
  return inside;
}

double massInside(const std::vector<float>& map, const std::vector<double>& fraction) {
  double in = 0, all = 0;
  for (size_t i = 0; i < map.size(); ++i) {
    in += map[i] * fraction[i];
    all += map[i];
  }
  return all > 0 ? in / all : 0;
}

double chanceMass(const std::vector<double>& fraction, int grid, bool borderSuppressed) {
  std::vector<float> uniform(fraction.size(), 1.0f);
  if (borderSuppressed)
    for (int y = 0; y < grid; ++y)
      for (int x = 0; x < grid; ++x)
        if (y == 0 || x == 0 || y == grid - 1 || x == grid - 1)
          uniform[static_cast<size_t>(y * grid + x)] = 0;
  return massInside(uniform, fraction);
}

bool pointingHit(const std::vector<float>& map, const std::vector<double>& fraction) {
  const auto best = static_cast<size_t>(std::max_element(map.begin(), map.end()) - map.begin());
  return fraction[best] > 0;
}

Interval meanInterval(const std::vector<double>& values) {
  Interval r;
  r.n = static_cast<int>(values.size());
  if (values.empty()) return r;
  r.mean = std::accumulate(values.begin(), values.end(), 0.0) / r.n;
  double ss = 0;
  for (double v : values) ss += (v - r.mean) * (v - r.mean);
  const double se = r.n > 1 ? std::sqrt(ss / (r.n - 1) / r.n) : 0;
  r.low = r.mean - 1.96 * se;
  r.high = r.mean + 1.96 * se;
  return r;
}

Interval wilsonInterval(int hits, int n) {
  Interval r;
  r.n = n;
  if (n == 0) return r;
  const double z = 1.96, p = static_cast<double>(hits) / n;
  const double denom = 1 + z * z / n;
  const double centre = (p + z * z / (2.0 * n)) / denom;
  const double half = z * std::sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / denom;
  r.mean = p;
  r.low = centre - half;
  r.high = centre + half;
  return r;
}

}  // namespace pivot
