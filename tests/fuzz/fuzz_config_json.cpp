// The config.json readers: a checkpoint's LLaVA-style config (model config + the run config beside
// it) and a --set assignment taken from the input's first line.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "config/train_config.h"
#include "model/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto newline = text.find('\n');
  static const pivot::TrainConfig tiny = pivot::presetConfig("tiny", pivot::Stage::Sft);
  try {
    pivot::TrainConfig c = tiny;
    pivot::applyOverride(c, text.substr(0, newline));
  } catch (const std::exception&) {
  }
  try {
    const auto j =
        nlohmann::json::parse(newline == std::string::npos ? text : text.substr(newline + 1));
    (void)pivot::mllmConfigFromJson(j);
    (void)pivot::visionConfigFromJson(j);
    (void)pivot::lmConfigFromJson(j);
    if (j.is_object() && j.contains("pivot_train_config"))
      (void)pivot::trainConfigFromJson(j["pivot_train_config"]);
    (void)pivot::trainConfigFromJson(j);
  } catch (const std::exception&) {
  }
  return 0;
}
