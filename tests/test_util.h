// Helpers the Qt Test suites share. Header-only, Qt Core only.
#pragma once
#include <QString>
#include <exception>
#include <functional>

// The message of what `f` throws (a std::exception), empty when it throws nothing: tests assert
// that a bad input's one error names the file, line, field or tensor.
inline QString errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return QString::fromStdString(e.what());
  }
  return {};
}
