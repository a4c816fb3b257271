// The process's default torch generator is one stream of random numbers. A run seeds it and draws
// its initial weights from it (module constructors and the N(0, 0.02) initialisation), and a
// segmentation probe seeds it for its MLP. Two of them at once in one process (the study trains
// stages side by side) would interleave their draws and make the weights depend on timing, so
// whoever seeds and draws holds this lock until it has what it needs.
#pragma once
#include <mutex>

namespace pivot {

inline std::mutex& globalRngMutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace pivot
