// Peak resident memory of this process for the benchmarks (`pivot bench data`, `pivot bench
// model`): VmHWM from /proc/self/status, reset by writing "5" to /proc/self/clear_refs.
#pragma once
#include <fstream>
#include <string>

namespace pivot::cli {

inline void resetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// MB since the last reset, -1 where /proc does not say.
inline double peakRssMb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long kb = 0;
  while (status >> key)
    if (key == "VmHWM:" && status >> kb)
      return static_cast<double>(kb) / 1024;
    else
      status.ignore(1 << 10, '\n');
  return -1;
}

}  // namespace pivot::cli
