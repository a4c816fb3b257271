// Reading a whole file: the one reader for tokenizer files, chat files and fixtures.
#pragma once
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace pivot {

// A whole file's bytes; throws "<path>: cannot be read".
inline std::string readTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot be read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace pivot
