// Learning-rate schedule as a pure function of the step (nanochat style): linear warmup, then
// cosine decay to peak * minRatio, as HF's get_cosine_schedule_with_warmup.
#pragma once
#include <algorithm>
#include <cmath>

namespace pivot {

inline int warmupSteps(int totalSteps, double warmupRatio) {
  return static_cast<int>(std::ceil(warmupRatio * totalSteps));
}

// step counts from 0 (the first optimiser step) to totalSteps - 1.
inline double learningRateAt(int step, int totalSteps, double peak, double warmupRatio,
                             double minRatio = 0.0) {
  const int warmup = warmupSteps(totalSteps, warmupRatio);
  if (step < warmup) return peak * static_cast<double>(step) / std::max(1, warmup);
  const double progress = static_cast<double>(step - warmup) / std::max(1, totalSteps - warmup);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
  return peak * (minRatio + (1.0 - minRatio) * cosine);
}

}  // namespace pivot
