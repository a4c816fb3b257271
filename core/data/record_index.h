// Where each record of a large JSON dataset starts, so a 1 GB LLaVA mix is never parsed whole:
// one streaming pass finds the byte range (and line) of every element of a top-level JSON array,
// or of every non-blank line of a JSONL file, and the index is cached beside the file
// (FILE.pivot-index, keyed by size and modification time) so opening it again costs a read.
// A record is then read with one pread and parsed alone.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pivot {

class RecordIndex {
 public:
  enum class Layout { JsonArray, JsonLines };
  struct Entry {
    uint64_t offset;
    uint32_t length;
    uint32_t line;  // 1-based line where the record starts
  };

  // The cached index when it matches the file, else a fresh pass (cached when the folder is
  // writable). Throws naming the file and line for a file that is not an array / not JSONL
  // (a record's own JSON is checked only when it is read).
  static RecordIndex open(const std::string& path);
  static RecordIndex build(const std::string& path);  // always a fresh pass, no cache

  Layout layout() const { return m_layout; }
  size_t size() const { return m_entries.size(); }
  const Entry& entry(size_t i) const { return m_entries.at(i); }
  const std::string& path() const { return m_path; }
  bool fromCache() const { return m_fromCache; }
  // The bytes of record i (one pread).
  std::string read(size_t i) const;
  // "FILE:LINE (record I)", for errors.
  std::string where(size_t i) const;

  static std::string cachePath(const std::string& path) { return path + ".pivot-index"; }

 private:
  std::string m_path;
  Layout m_layout = Layout::JsonLines;
  std::vector<Entry> m_entries;
  bool m_fromCache = false;
};

}  // namespace pivot
