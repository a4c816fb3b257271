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
  return out;
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
  if (d.overBases)
    out += " (ahead in " + std::to_string(d.basesAbove) + "/" + std::to_string(d.n) + " bases)";
  return out;
}

}  // namespace pivot
