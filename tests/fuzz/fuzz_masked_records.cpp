// The image+mask records of `pivot localize --data`, line by line as the command reads them.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

#include "data/masked_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string line;
  for (int lineNo = 1; std::getline(in, line); ++lineNo) {
    try {
      const auto record =
          pivot::parseMaskedRecordLine(line, "fuzz.jsonl:" + std::to_string(lineNo));
      if (record && (record->image.empty() || record->mask.empty())) __builtin_trap();
    } catch (const std::runtime_error&) {
    }
  }
  return 0;
}
