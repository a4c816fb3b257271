// The safetensors header: length prefix, JSON, dtype/shape/offset validation. The input is the
// start of a file whose size is the input's size. Only a clean std::runtime_error may come out.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "io/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto header = pivot::parseSafetensorsHeader(bytes, size, "fuzz.safetensors");
    // What the parser promises: ranges inside the data block, sorted and contiguous.
    uint64_t expected = 0;
    for (const auto& t : header.tensors) {
      if (t.begin != expected || t.end < t.begin || header.dataStart + t.end > size)
        __builtin_trap();
      expected = t.end;
    }
  } catch (const std::runtime_error&) {
  }
  return 0;
}
