// The export target check (io/export_folder) on any paths: a refusal is an error naming the target,
// never a crash; and whatever it lets through is no protected path, nor inside or around one.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/export_folder.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool overwrite = data[0] & 1;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (text.find('\0') != std::string::npos) return 0;  // no path holds a NUL
  // Lines: the target first, then the protected paths (relative ones resolve under /tmp's cwd).
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
    lines.push_back(text.substr(start, end - start));
  lines.push_back(text.substr(start));
  std::vector<pivot::ProtectedPath> sources;
  for (size_t i = 1; i < lines.size(); ++i) sources.push_back({"source", lines[i]});
  try {
    pivot::checkExportTarget(lines[0], sources, overwrite);
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).empty()) __builtin_trap();
    return 0;
  }
  // Accepted: the target is none of the sources (spelt alike: `..` through a symbolic link may
  // name another folder, so only the plain spelling is asserted here; the suite checks the rest).
  const auto plain = [](std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return p;
  };
  for (const auto& s : sources)
    if (!s.path.empty() && plain(lines[0]) == plain(s.path.string())) __builtin_trap();
  return 0;
}
