// Statistics of a study's few values: mean and spread over seeds, a paired difference with its
// Student-t interval, and the nested design's difference over bases. Plain C++.
#pragma once
#include <string>
#include <vector>

namespace pivot {

// Summary statistics of a handful of values (seeds).
struct Summary {
  double mean = 0, std = 0;  // sample standard deviation (n - 1); 0 for one value
  int n = 0;
};
Summary summarise(const std::vector<double>& values);

// Paired difference a - b over matched seeds with a 95% Student-t interval (half-width 0 and
// defined = false for fewer than two pairs).
struct Difference {
  double mean = 0, low = 0, high = 0;
  int n = 0;  // pairs, or bases when overBases
  bool defined = false;
  // The nested design (several bases): the interval is over the bases' mean differences, so it
  // covers the variance between stage-0/1 chains, not only between stage-2 seeds.
  bool overBases = false;
  std::vector<double> perBase;  // each base's mean paired difference, by base
  int basesAbove = 0;           // bases whose mean difference is > 0 (e.g. DPO ahead)
  int basesBelow = 0;           // < 0; the rest are ties
  double p = 1;      // two-sided one-sample t-test of mean = 0 (over bases when overBases); 1
                     // when the differences have no spread
  double signP = 1;  // two-sided sign test over the bases, ties dropped (overBases only)
};
Difference pairedDifference(const std::vector<double>& a, const std::vector<double>& b);
double studentT975(int degreesOfFreedom);  // two-sided 95% quantile
// P(|T| >= |t|) for Student's t with `degreesOfFreedom` (> 0): 1 at t = 0, 0.5 at t = 1 for df 1.
double studentTTwoSidedP(double t, int degreesOfFreedom);
// The q with studentTTwoSidedP(q, df) = p (0 < p <= 1), by bisection: 2.776 for p 0.05 on 4 df.
double studentTQuantile(double twoSidedP, int degreesOfFreedom);
// Power analysis of a one-sample t-test over `units` independent units (bases) whose values have
// standard deviation `sd`: the smallest true mean difference detected with probability `power` at
// two-sided level `alpha`, (t_{1 - alpha/2} + t_{power}) sd / sqrt(units) on units - 1 degrees of
// freedom; and the fewest units whose detectable difference is at most `target` (capped at 10000).
double minimumDetectableDifference(double sd, int units, double alpha = 0.05, double power = 0.8);
int unitsToDetect(double sd, double target, double alpha = 0.05, double power = 0.8);
// One-way analysis of variance of k >= 2 groups (e.g. each replicate's base means): F = (between-
// group mean square, k - 1 df) / (within-group mean square, N - k df) and P(F' >= F). p = 1 when
// there is nothing to compare (fewer than two groups with values or no within-group df).
struct Anova {
  double f = 0, p = 1;
  int dfBetween = 0, dfWithin = 0;
};
Anova oneWayAnova(const std::vector<std::vector<double>>& groups);
// Exact two-sided sign test: n = above + below (ties dropped), p = min(1, 2 P(X <= min)) with
// X ~ Binomial(n, 1/2); 1 for n = 0.
double signTestP(int above, int below);
// Holm's step-down adjustment of a family of p-values, returned in their order: the i-th
// smallest becomes max over j <= i of min(1, (m - j + 1) p_(j)). Controls the family-wise error.
std::vector<double> holmAdjusted(const std::vector<double>& p);

// One value of a cell.
struct CellValue {
  int base = 1, seed = 0;
  double value = 0;
};
// a - b paired by (base, seed). One base: pairedDifference over its seeds. Several: per base the
// mean of its paired differences, then their mean with a Student-t interval over the K base means
// (K - 1 degrees of freedom) and the count of bases above zero.
Difference nestedDifference(const std::vector<CellValue>& a, const std::vector<CellValue>& b);
// a - ref where ref holds one value per base (a model trained once per base, such as stage 1):
// each of a's values minus its base's reference, then as nestedDifference.
Difference differenceFromBase(const std::vector<CellValue>& a, const std::vector<CellValue>& ref);

// "0.812 ± 0.012", "" for n = 0
std::string formatSummary(const Summary& s, int precision = 3);
// "+0.050 [-0.585, 0.685]"; over bases "+0.050 [-0.585, 0.685] (ahead in 2/3 bases, sign p 1.00)",
// with ties "(ahead in 1, tied in 1 of 3 bases, sign p 1.00)"
std::string formatDifference(const Difference& d, int precision = 3);

}  // namespace pivot
