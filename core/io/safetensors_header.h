// The safetensors header, parsed and validated without torch (so that it can be fuzzed alone):
// 8-byte little-endian length, a JSON object {name: {dtype, shape, data_offsets}, "__metadata__":
// {str: str}}, then the data block. Enforced as the format's own reader does: a known dtype, a
// shape of non-negative integers whose byte count matches the offsets, and ranges that, sorted,
// are contiguous from 0, never overlap and cover the data block exactly.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pivot {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data block
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // in data order
  std::map<std::string, std::string> metadata;
  uint64_t dataStart = 0;  // 8 + header length
};

constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;  // the format's own limit

size_t safetensorsDtypeSize(const std::string& dtype);  // 0 for a dtype the format does not know

// `prefix` holds at least the 8 length bytes and the header; `fileSize` is the whole file's size.
// Throws naming `where` (the file) and the tensor at fault.
SafetensorsHeader parseSafetensorsHeader(const std::string& prefix, uint64_t fileSize,
                                         const std::string& where);

// The header length from the first 8 bytes; throws when it cannot fit the file.
uint64_t safetensorsHeaderLength(const unsigned char (&bytes)[8], uint64_t fileSize,
                                 const std::string& where);

}  // namespace pivot
