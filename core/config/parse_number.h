// Reading a number typed by a person (a --set value, a --tune-lr list, --nproc, a config's list of
// weights) strictly and the same way everywhere: the whole text is the number (no leading spaces,
// no trailing characters), it is finite, and the decimal point is a point whatever the locale (the
// window's process runs under the user's locale, where std::stod reads "0.3" as 0 in German).
#pragma once
#include <charconv>
#include <cmath>
#include <optional>
#include <string>

namespace pivot {

inline std::optional<double> parseNumber(const std::string& text) {
  double value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || stop != end || !std::isfinite(value))
    return std::nullopt;
  return value;
}

inline std::optional<long long> parseInteger(const std::string& text) {
  long long value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || stop != end) return std::nullopt;
  return value;
}

}  // namespace pivot
