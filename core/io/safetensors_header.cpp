#include "io/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace pivot {
namespace {

struct DtypeSize {
  const char* name;
  size_t bytes;
};
// Every dtype the format defines (whether or not torch can hold it).
constexpr DtypeSize kDtypeSizes[] = {{"BOOL", 1},    {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1},
                                     {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
                                     {"BF16", 2},    {"I32", 4}, {"U32", 4}, {"F32", 4},
                                     {"F64", 8},     {"I64", 8}, {"U64", 8}};

}  // namespace

size_t safetensorsDtypeSize(const std::string& dtype) {
  for (const auto& d : kDtypeSizes)
    if (dtype == d.name) return d.bytes;
  return 0;
}

uint64_t safetensorsHeaderLength(const unsigned char (&bytes)[8], uint64_t fileSize,
                                 const std::string& where) {
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | bytes[i];
  if (len > kMaxSafetensorsHeaderBytes || fileSize < 8 || len > fileSize - 8)
    throw std::runtime_error(where + ": header length " + std::to_string(len) +
                             " exceeds the file (" + std::to_string(fileSize) + " bytes)");
  return len;
}

SafetensorsHeader parseSafetensorsHeader(const std::string& prefix, uint64_t fileSize,
                                         const std::string& where) {
  if (prefix.size() < 8) throw std::runtime_error(where + ": too short for a safetensors header");
  unsigned char lenBytes[8];
  std::copy(prefix.begin(), prefix.begin() + 8, lenBytes);
  const uint64_t headerLen = safetensorsHeaderLength(lenBytes, fileSize, where);
  if (prefix.size() < 8 + headerLen) throw std::runtime_error(where + ": header is cut short");
  const std::string text = prefix.substr(8, headerLen);
  if (text.empty() || text[0] != '{')
    throw std::runtime_error(where + ": header does not start with '{'");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse errors, numbers too large
    throw std::runtime_error(where + ": header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw std::runtime_error(where + ": header is not a JSON object");

  SafetensorsHeader out;
  out.dataStart = 8 + headerLen;
  const uint64_t dataSize = fileSize - out.dataStart;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw std::runtime_error(where + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          throw std::runtime_error(where + ": __metadata__ value '" + m.key() +
                                   "' is not a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string at = where + ": tensor '" + it.key() + "'";
    const auto& e = *it;
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets"))
      throw std::runtime_error(at + " lacks dtype, shape or data_offsets");
    if (!e["dtype"].is_string()) throw std::runtime_error(at + ": dtype is not a string");
    SafetensorsEntry entry;
    entry.name = it.key();
    entry.dtype = e["dtype"].get<std::string>();
    const size_t itemSize = safetensorsDtypeSize(entry.dtype);
    if (itemSize == 0) throw std::runtime_error(at + ": unknown dtype '" + entry.dtype + "'");
    if (!e["shape"].is_array()) throw std::runtime_error(at + ": shape is not a list");
    uint64_t elements = 1;
    bool overflow = false;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throw std::runtime_error(at + ": shape holds " + d.dump() + ", not a non-negative integer");
      const auto dim = static_cast<uint64_t>(d.get<int64_t>());
      if (dim != 0 && elements > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
      elements *= dim;
      entry.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      throw std::runtime_error(at + ": data_offsets is not a pair of non-negative integers");
    entry.begin = off[0].get<uint64_t>();
    entry.end = off[1].get<uint64_t>();
    if (entry.begin > entry.end || entry.end > dataSize)
      throw std::runtime_error(at + " has data_offsets [" + std::to_string(entry.begin) + ", " +
                               std::to_string(entry.end) + ") outside the data block of " +
                               std::to_string(dataSize) + " bytes");
    if (overflow || elements > std::numeric_limits<uint64_t>::max() / itemSize ||
        elements * itemSize != entry.end - entry.begin)
      throw std::runtime_error(
          at + " has " + std::to_string(entry.end - entry.begin) +
          " bytes but its shape and dtype need " +
          (overflow ? std::string("more than 2^64") : std::to_string(elements * itemSize)));
    out.tensors.push_back(std::move(entry));
  }
  // Sorted by offset, each range must start where the previous one ended: no gap, no overlap,
  // and together they cover the data block.
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  uint64_t expected = 0;
  for (const auto& t : out.tensors) {
    if (t.begin != expected)
      throw std::runtime_error(
          where + ": tensor '" + t.name + "' starts at byte " + std::to_string(t.begin) +
          " of the data block, expected " + std::to_string(expected) +
          (t.begin < expected ? " (it overlaps the tensor before it)" : " (a gap before it)"));
    expected = t.end;
  }
  if (expected != dataSize)
    throw std::runtime_error(where + ": the tensors cover " + std::to_string(expected) +
                             " of the data block's " + std::to_string(dataSize) + " bytes");
  return out;
}

}  // namespace pivot
