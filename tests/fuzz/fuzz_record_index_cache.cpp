// The record index's cache reader (data/record_index) on any bytes: it accepts only a whole cache
// whose entries lie in order inside the data file, never reads past the bytes and never allocates
// more than they hold. The expected file stamp is taken from the input's own header, so the
// fuzzer reaches the size, checksum and entry checks instead of stopping at a stamp mismatch.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "data/record_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  pivot::RecordIndex::Stamp stamp;
  if (size >= 48) {
    std::memcpy(&stamp.size, data + 8, 8);
    std::memcpy(&stamp.mtimeNs, data + 16, 8);
    std::memcpy(&stamp.ctimeNs, data + 24, 8);
    std::memcpy(&stamp.inode, data + 32, 8);
    std::memcpy(&stamp.device, data + 40, 8);
  }
  pivot::RecordIndex::Layout layout;
  std::vector<pivot::RecordIndex::Entry> entries;
  if (!pivot::RecordIndex::parseCache(bytes, stamp, layout, entries)) return 0;
  uint64_t end = 0;
  for (const auto& e : entries) {  // what was accepted is in order and inside the file
    if (e.length == 0 || e.offset < end || e.offset + e.length > stamp.size) __builtin_trap();
    end = e.offset + e.length;
  }
  // ... and it is exactly what writing it back gives.
  if (pivot::RecordIndex::serialiseCache(stamp, layout, entries) != bytes) __builtin_trap();
  return 0;
}
