// A preset file's JSON through the one validation --set also uses.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "config/train_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto j = nlohmann::json::parse(text);
    const auto c = pivot::presetFromJson(j, pivot::Stage::Dpo, "fuzz.json");
    pivot::validate(c);  // what came out is valid, and survives its own round trip
    if (pivot::toJson(pivot::trainConfigFromJson(pivot::toJson(c))) != pivot::toJson(c))
      __builtin_trap();
  } catch (const std::exception&) {  // nlohmann's errors and ours
  }
  return 0;
}
