// Reading and writing a whole file: the one reader for tokenizer files, chat files and fixtures,
// and the one writer of small text files that says when the bytes did not reach the disk.
#pragma once
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace pivot {

// A whole file's bytes; throws "<path>: cannot be read" (or "is a directory").
inline std::string readTextFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw std::runtime_error(path + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot be read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes `text` as the whole file; throws "<path>: cannot be written" (a full disk included).
inline void writeTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error(path + ": cannot be written");
}

}  // namespace pivot
