// Where each record of a large JSON dataset starts, so a 1 GB LLaVA mix is never parsed whole:
// one streaming pass finds the byte range (and line) of every element of a top-level JSON array,
// or of every non-blank line of a JSONL file, and the index is cached so opening it again costs a
// read. A record is then read with one pread and parsed alone.
//
// The cache lives in the user's cache folder ($XDG_CACHE_HOME or ~/.cache, pivot-workbench/
// record-index/), never beside the data (a dataset folder is not ours to write into), keyed by the
// file's size, modification and status-change times in nanoseconds, inode and device (a same-size
// replacement with its old modification time restored still changes the status-change time).
// A cache is used only when it proves whole: its size is its header plus its entries plus a
// checksum, the checksum matches, and every entry lies inside the data file after the one before;
// any doubt means a fresh pass.
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

  // Where the cache of the data file `path` goes.
  static std::string cachePath(const std::string& path);

  // What a cache must match: the data file as stat() sees it now.
  struct Stamp {
    uint64_t size = 0;
    int64_t mtimeNs = 0, ctimeNs = 0;
    uint64_t inode = 0, device = 0;
    bool operator==(const Stamp& o) const {
      return size == o.size && mtimeNs == o.mtimeNs && ctimeNs == o.ctimeNs && inode == o.inode &&
             device == o.device;
    }
  };
  static Stamp stampOf(const std::string& path);  // throws "<path>: cannot be read"
  // A cache file's bytes: the layout and entries when they are whole and fit `expected`'s file,
  // else false (never throws, never allocates more than the bytes hold).
  static bool parseCache(const std::string& bytes, const Stamp& expected, Layout& layout,
                         std::vector<Entry>& entries);
  static std::string serialiseCache(const Stamp& stamp, Layout layout,
                                    const std::vector<Entry>& entries);

 private:
  std::string m_path;
  Layout m_layout = Layout::JsonLines;
  std::vector<Entry> m_entries;
  bool m_fromCache = false;
};

}  // namespace pivot
