// Reading one field of a JSON config strictly: a missing or null key keeps the default (old files
// load), anything else must have the field's type: an integer field takes only whole numbers in its
// range ("steps": 2.5 is an error, not 2), a string field only a string. Shared by every config
// reader (run configs, presets, checkpoint config.json) so that all of them check the same way.
#pragma once
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace pivot {

template <typename T>
void readJsonField(const nlohmann::json& j, const char* key, T& out,
                   const std::string& prefix = "") {
  if (!j.is_object()) return;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  const auto bad = [&](const std::string& why) {
    return std::runtime_error("config field '" + prefix + key + "' " + why + ": " + it->dump());
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) throw bad("must be true or false");
    out = it->get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!it->is_number()) throw bad("must be an integer");
    const double v = it->get<double>();
    if (it->is_number_float() && (!std::isfinite(v) || std::floor(v) != v))
      throw bad("must be an integer");
    if (it->is_number_unsigned()) {
      const auto u = it->get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) throw bad("is out of range");
      out = static_cast<T>(u);
    } else if (it->is_number_integer()) {
      const auto s = it->get<int64_t>();
      if (s < 0 && std::is_unsigned_v<T>) throw bad("must not be negative");
      if (!std::is_unsigned_v<T> && (s < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
                                     s > static_cast<int64_t>(std::numeric_limits<T>::max())))
        throw bad("is out of range");
      out = static_cast<T>(s);
    } else {
      if (v < static_cast<double>(std::numeric_limits<T>::min()) ||
          v > static_cast<double>(std::numeric_limits<T>::max()))
        throw bad("is out of range");
      out = static_cast<T>(v);
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!it->is_number()) throw bad("must be a number");
    out = it->get<T>();
  } else {
    if (!it->is_string()) throw bad("must be a string");
    out = it->get<std::string>();
  }
}

}  // namespace pivot
