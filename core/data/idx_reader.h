// Reader of the IDX format (MNIST, Fashion-MNIST), plain or gzip-compressed (.gz), e.g. Debian's
// dataset-fashion-mnist in /usr/share/datasets/fashion-mnist.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pivot {

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. {60000, 28, 28} or {60000}
  std::vector<uint8_t> data;  // unsigned bytes, row-major
};

// Throws naming the file: missing, not IDX (bad magic), not unsigned bytes, truncated.
IdxArray readIdx(const std::string& path);

extern const char* const kFashionMnistDir;  // where Debian installs it

}  // namespace pivot
