#include "metrics/statistics.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

namespace pivot {

Summary summarise(const std::vector<double>& values) {
  Summary s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  for (double v : values) s.mean += v / s.n;
  if (s.n > 1) {
    double ss = 0;
    for (double v : values) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / (s.n - 1));
  }
  return s;
}

double studentT975(int df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                                 2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                                 2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return NAN;
  if (df <= 30) return table[df - 1];
  return 1.96 + 2.4 / df;  // within 0.002 of the exact quantile above 30
}

namespace {

// The regularised incomplete beta function I_x(a, b), by Lentz's continued fraction (converges
// fast for x < (a + 1) / (a + b + 2); the other side by symmetry).
double incompleteBeta(double x, double a, double b) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) +
                                a * std::log(x) + b * std::log1p(-x)) /
                       a;
  constexpr double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  d = 1 / (std::abs(d) < tiny ? tiny : d);
  double f = d;
  for (int m = 1; m <= 300; ++m) {
    for (int half = 0; half < 2; ++half) {
      const double numerator = half == 0
                                   ? m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
                                   : -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
      d = 1 + numerator * d;
      d = 1 / (std::abs(d) < tiny ? tiny : d);
      c = 1 + numerator / c;
      if (std::abs(c) < tiny) c = tiny;
      f *= c * d;
      if (half == 1 && std::abs(c * d - 1) < 1e-15) return front * f;
    }
  }
  return front * f;
}

}  // namespace

double studentTTwoSidedP(double t, int df) {
  if (df < 1 || std::isnan(t)) return NAN;
  if (std::isinf(t)) return 0;
  const double v = df;
  return incompleteBeta(v / (v + t * t), v / 2, 0.5);
}

double studentTQuantile(double twoSidedP, int df) {
  if (df < 1 || !(twoSidedP > 0) || twoSidedP > 1) return NAN;
  double low = 0, high = 1;
  while (studentTTwoSidedP(high, df) > twoSidedP) high *= 2;  // p falls as q grows
  for (int i = 0; i < 200 && high - low > 1e-12 * high; ++i) {
    const double mid = (low + high) / 2;
    (studentTTwoSidedP(mid, df) > twoSidedP ? low : high) = mid;
  }
  return (low + high) / 2;
}

double minimumDetectableDifference(double sd, int units, double alpha, double power) {
  if (units < 2) return NAN;
  const int df = units - 1;
  return (studentTQuantile(alpha, df) + studentTQuantile(2 * (1 - power), df)) * sd /
         std::sqrt(static_cast<double>(units));
}

int unitsToDetect(double sd, double target, double alpha, double power) {
  int units = 2;
  while (units < 10000 && minimumDetectableDifference(sd, units, alpha, power) > target) ++units;
  return units;
}

Anova oneWayAnova(const std::vector<std::vector<double>>& groups) {
  Anova a;
  int k = 0, n = 0;
  double total = 0;
  for (const auto& g : groups) {
    if (g.empty()) continue;
    ++k;
    n += static_cast<int>(g.size());
    for (double v : g) total += v;
  }
  if (k < 2 || n - k < 1) return a;
  const double grand = total / n;
  double between = 0, within = 0;
  for (const auto& g : groups) {
    if (g.empty()) continue;
    const double mean = summarise(g).mean;
    between += static_cast<double>(g.size()) * (mean - grand) * (mean - grand);
    for (double v : g) within += (v - mean) * (v - mean);
  }
  a.dfBetween = k - 1;
  a.dfWithin = n - k;
  const double msBetween = between / a.dfBetween, msWithin = within / a.dfWithin;
  if (msWithin <= 0) {
    a.f = msBetween > 0 ? INFINITY : 0;
    a.p = msBetween > 0 ? 0 : 1;
    return a;
  }
  a.f = msBetween / msWithin;
  // P(F >= f) for F(d1, d2) is I_{d2 / (d2 + d1 f)}(d2 / 2, d1 / 2).
  const double d1 = a.dfBetween, d2 = a.dfWithin;
  a.p = incompleteBeta(d2 / (d2 + d1 * a.f), d2 / 2, d1 / 2);
  return a;
}

double signTestP(int above, int below) {
  const int n = above + below;
  if (n == 0) return 1;
  const int k = std::min(above, below);
  double tail = 0;  // P(X <= k), X ~ Binomial(n, 1/2)
  for (int i = 0; i <= k; ++i)
    tail += std::exp(std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) -
                     n * std::log(2.0));
  return std::min(1.0, 2 * tail);
}

std::vector<double> holmAdjusted(const std::vector<double>& p) {
  std::vector<size_t> order(p.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return p[x] < p[y]; });
  std::vector<double> adjusted(p.size());
  double running = 0;
  const double m = static_cast<double>(p.size());
  for (size_t rank = 0; rank < order.size(); ++rank) {
    running = std::max(running, std::min(1.0, (m - static_cast<double>(rank)) * p[order[rank]]));
    adjusted[order[rank]] = running;
  }
  return adjusted;
}

Difference pairedDifference(const std::vector<double>& a, const std::vector<double>& b) {
  Difference d;
  const size_t n = std::min(a.size(), b.size());
  std::vector<double> diffs;
  for (size_t i = 0; i < n; ++i) diffs.push_back(a[i] - b[i]);
  const auto s = summarise(diffs);
  d.n = s.n;
  d.mean = d.low = d.high = s.mean;
  if (s.n >= 2) {
    const double half = studentT975(s.n - 1) * s.std / std::sqrt(static_cast<double>(s.n));
    d.low = s.mean - half;
    d.high = s.mean + half;
    d.defined = true;
    // Without spread (identical differences, e.g. accuracies on a coarse grid) the t-test is
    // undefined: p stays 1 rather than 0, and the sign test says what identical signs are worth.
    const double se = s.std / std::sqrt(static_cast<double>(s.n));
    d.p = se > 0 ? studentTTwoSidedP(s.mean / se, s.n - 1) : 1.0;
  }
  return d;
}

Difference nestedDifference(const std::vector<CellValue>& a, const std::vector<CellValue>& b) {
  std::map<int, std::vector<double>> diffs;  // base -> paired differences over its seeds
  for (const auto& x : a)
    for (const auto& y : b)
      if (x.base == y.base && x.seed == y.seed) diffs[x.base].push_back(x.value - y.value);
  if (diffs.size() <= 1) {
    std::vector<double> d = diffs.empty() ? std::vector<double>{} : diffs.begin()->second;
    return pairedDifference(d, std::vector<double>(d.size(), 0.0));
  }
  std::vector<double> means;
  for (const auto& [base, d] : diffs) means.push_back(summarise(d).mean);
  Difference out = pairedDifference(means, std::vector<double>(means.size(), 0.0));
  out.overBases = true;
  out.perBase = means;
  out.basesAbove =
      static_cast<int>(std::count_if(means.begin(), means.end(), [](double m) { return m > 0; }));
  out.basesBelow =
      static_cast<int>(std::count_if(means.begin(), means.end(), [](double m) { return m < 0; }));
  out.signP = signTestP(out.basesAbove, out.basesBelow);
  return out;
}

Difference differenceFromBase(const std::vector<CellValue>& a, const std::vector<CellValue>& ref) {
  std::vector<CellValue> matched;  // the reference, copied to every (base, seed) of a
  for (const auto& x : a)
    for (const auto& r : ref)
      if (r.base == x.base) {
        matched.push_back({x.base, x.seed, r.value});
        break;
      }
  return nestedDifference(a, matched);
}

namespace {

std::string fixed(double v, int precision) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

}  // namespace

std::string formatSummary(const Summary& s, int precision) {
  if (s.n == 0) return "";
  return s.n > 1 ? fixed(s.mean, precision) + " ± " + fixed(s.std, precision)
                 : fixed(s.mean, precision);
}

std::string formatDifference(const Difference& d, int precision) {
  if (d.n == 0) return "";
  std::string out = (d.mean >= 0 ? "+" : "") + fixed(d.mean, precision);
  out += d.defined ? " [" + fixed(d.low, precision) + ", " + fixed(d.high, precision) + "]"
                   : " (one seed: no interval)";
  if (d.overBases) {
    const int ties = d.n - d.basesAbove - d.basesBelow;
    out += " (ahead in " + std::to_string(d.basesAbove) +
           (ties ? ", tied in " + std::to_string(ties) + " of " : "/") + std::to_string(d.n) +
           " bases, sign p " + fixed(d.signP, 2) + ")";
  }
  return out;
}

}  // namespace pivot
