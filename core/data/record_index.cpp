#include "data/record_index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <fstream>
#include <stdexcept>

namespace pivot {
namespace {

constexpr char kMagic[8] = {'P', 'I', 'V', 'I', 'D', 'X', '0', '1'};

struct FileStamp {
  uint64_t size = 0;
  int64_t mtimeNs = 0;
};

FileStamp stampOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error(path + ": cannot be read");
  return {static_cast<uint64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

class Fd {
 public:
  explicit Fd(const std::string& path) : m_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (m_fd < 0) throw std::runtime_error(path + ": cannot be read");
  }
  ~Fd() { ::close(m_fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return m_fd; }

 private:
  int m_fd;
};

// The streaming pass: a byte scanner that knows JSON strings (with escapes) and nesting, reading
// the file in 1 MB blocks so memory stays flat whatever the file size.
class Scanner {
 public:
  explicit Scanner(const std::string& path) : m_path(path), m_fd(path) {}

  RecordIndex::Layout scan(std::vector<RecordIndex::Entry>& out) {
    int c = skipSpace();
    if (c == '[') return scanArray(out);
    if (c < 0) return RecordIndex::Layout::JsonLines;  // empty: zero records
    return scanLines(c, out);
  }

 private:
  static constexpr size_t kBlock = 1 << 20;

  int next() {
    if (m_at == m_end) {
      const ssize_t n = ::read(m_fd.get(), m_buffer, kBlock);
      if (n < 0) throw std::runtime_error(m_path + ": read failed");
      if (n == 0) return -1;
      m_at = 0;
      m_end = static_cast<size_t>(n);
    }
    const int c = static_cast<unsigned char>(m_buffer[m_at++]);
    ++m_offset;
    if (c == '\n') ++m_line;
    return c;
  }
  uint64_t offsetOfLast() const { return m_offset - 1; }

  int skipSpace() {
    int c;
    do c = next();
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    return c;
  }

  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error(m_path + ":" + std::to_string(m_line) + ": " + why);
  }

  void skipString() {  // after the opening quote, through the closing one
    for (int c = next();; c = next()) {
      if (c < 0) fail("the file ends inside a string");
      if (c == '\\') {
        next();
      } else if (c == '"') {
        return;
      }
    }
  }

  // Consumes the object or array whose opening byte `c` was just read and returns the byte after
  // it (-1 at the end of the file).
  int skipContainer(int c) {
    int depth = 1;
    while (depth > 0) {
      c = next();
      if (c < 0) fail("the file ends inside a record");
      if (c == '"') {
        skipString();
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        --depth;
      }
    }
    return next();
  }

  RecordIndex::Layout scanArray(std::vector<RecordIndex::Entry>& out) {
    int c = skipSpace();
    if (c == ']') return RecordIndex::Layout::JsonArray;
    while (true) {
      if (c < 0) fail("the file ends inside the top-level array");
      const uint64_t start = offsetOfLast();
      const uint32_t line = m_line;
      if (c != '{') fail("a record of the top-level array is not a JSON object");
      c = skipContainer(c);
      const uint64_t end = c < 0 ? m_offset : offsetOfLast();
      push(out, start, end, line);
      while (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = next();
      if (c == ']') break;
      if (c != ',') fail("expected ',' or ']' after a record");
      c = skipSpace();
    }
    if (skipSpace() >= 0) fail("text after the top-level array");
    return RecordIndex::Layout::JsonArray;
  }

  RecordIndex::Layout scanLines(int c, std::vector<RecordIndex::Entry>& out) {
    // Records are lines; blank lines are skipped. A line's own JSON is checked when read.
    while (c >= 0) {
      const uint64_t start = offsetOfLast();
      const uint32_t line = m_line;
      while (c >= 0 && c != '\n') c = next();
      const uint64_t end = c < 0 ? m_offset : offsetOfLast();
      push(out, start, end, line);
      c = skipSpace();
    }
    return RecordIndex::Layout::JsonLines;
  }

  void push(std::vector<RecordIndex::Entry>& out, uint64_t start, uint64_t end, uint32_t line) {
    if (end - start > UINT32_MAX) fail("a record is larger than 4 GB");
    out.push_back({start, static_cast<uint32_t>(end - start), line});
  }

  std::string m_path;
  Fd m_fd;
  char m_buffer[kBlock];
  size_t m_at = 0, m_end = 0;
  uint64_t m_offset = 0;
  uint32_t m_line = 1;
};

}  // namespace

RecordIndex RecordIndex::build(const std::string& path) {
  RecordIndex index;
  index.m_path = path;
  auto scanner = std::make_unique<Scanner>(path);  // 1 MB buffer: not on the stack
  index.m_layout = scanner->scan(index.m_entries);
  return index;
}

RecordIndex RecordIndex::open(const std::string& path) {
  const FileStamp stamp = stampOf(path);
  const std::string cache = cachePath(path);
  {
    std::ifstream in(cache, std::ios::binary);
    char magic[8];
    FileStamp cached;
    uint8_t layout = 0;
    uint64_t count = 0;
    if (in.read(magic, 8) && std::memcmp(magic, kMagic, 8) == 0 &&
        in.read(reinterpret_cast<char*>(&cached), sizeof cached) && cached.size == stamp.size &&
        cached.mtimeNs == stamp.mtimeNs && in.read(reinterpret_cast<char*>(&layout), 1) &&
        in.read(reinterpret_cast<char*>(&count), sizeof count) && count < (1ull << 32)) {
      RecordIndex index;
      index.m_path = path;
      index.m_layout = layout == 0 ? Layout::JsonArray : Layout::JsonLines;
      index.m_entries.resize(count);
      if (in.read(reinterpret_cast<char*>(index.m_entries.data()),
                  static_cast<std::streamsize>(count * sizeof(Entry)))) {
        index.m_fromCache = true;
        return index;
      }
    }
  }
  RecordIndex index = build(path);
  // Best effort: a read-only dataset folder simply goes without a cache. Written to a temporary
  // name and renamed, so a reader never sees half an index.
  const std::string tmp = cache + ".tmp-" + std::to_string(::getpid());
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (out) {
    const uint8_t layout = index.m_layout == Layout::JsonArray ? 0 : 1;
    const uint64_t count = index.m_entries.size();
    out.write(kMagic, 8);
    out.write(reinterpret_cast<const char*>(&stamp), sizeof stamp);
    out.write(reinterpret_cast<const char*>(&layout), 1);
    out.write(reinterpret_cast<const char*>(&count), sizeof count);
    out.write(reinterpret_cast<const char*>(index.m_entries.data()),
              static_cast<std::streamsize>(count * sizeof(Entry)));
    out.close();
    if (!out || std::rename(tmp.c_str(), cache.c_str()) != 0) std::remove(tmp.c_str());
  }
  return index;
}

std::string RecordIndex::read(size_t i) const {
  const Entry& e = entry(i);
  Fd fd(m_path);
  std::string bytes(e.length, '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pread(fd.get(), bytes.data() + done, bytes.size() - done,
                              static_cast<off_t>(e.offset + done));
    if (n <= 0) throw std::runtime_error(where(i) + ": the file changed or cannot be read");
    done += static_cast<size_t>(n);
  }
  if (!bytes.empty() && bytes.back() == '\r') bytes.pop_back();  // a file written on Windows
  return bytes;
}

std::string RecordIndex::where(size_t i) const {
  return m_path + ":" + std::to_string(entry(i).line) + " (record " + std::to_string(i) + ")";
}

}  // namespace pivot
