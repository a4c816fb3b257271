#include "data/record_index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <fstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace pivot {
namespace {

constexpr char kMagic[8] = {'P', 'I', 'V', 'I', 'D', 'X', '0', '2'};
constexpr size_t kStampBytes = 8 + 8 + 8 + 8 + 8;
constexpr size_t kHeaderBytes = sizeof kMagic + kStampBytes + 1 + 8;  // + layout + count
constexpr size_t kEntryBytes = 16;                                    // offset, length, line
static_assert(sizeof(RecordIndex::Entry) == kEntryBytes, "entries are written as they lie");

uint64_t fnv1a(const char* data, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ull;
  }
  return h;
}

template <typename T>
void put(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

template <typename T>
T take(const std::string& in, size_t& at) {
  T value;
  std::memcpy(&value, in.data() + at, sizeof value);
  at += sizeof value;
  return value;
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
  // it (-1 at the end of the file). Brackets are matched by kind, so a record missing a ']' fails
  // at the '}' that meets it, not lines later where the counts happen to come out.
  int skipContainer(int c) {
    m_open.assign(1, static_cast<char>(c));
    while (!m_open.empty()) {
      c = next();
      if (c < 0) fail("the file ends inside a record");
      if (c == '"') {
        skipString();
      } else if (c == '{' || c == '[') {
        m_open.push_back(static_cast<char>(c));
      } else if (c == '}' || c == ']') {
        const char expected = m_open.back() == '{' ? '}' : ']';
        if (c != expected)
          fail(std::string("'") + static_cast<char>(c) + "' where '" + expected +
               "' closes the record's " + (expected == '}' ? "object" : "list"));
        m_open.pop_back();
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
  std::string m_open;  // the brackets open inside the record being skipped
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

std::string RecordIndex::cachePath(const std::string& path) {
  std::error_code ec;
  const fs::path absolute = fs::weakly_canonical(fs::absolute(path, ec), ec);
  const std::string key = absolute.string();
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const fs::path root = xdg && *xdg     ? fs::path(xdg)
                        : home && *home ? fs::path(home) / ".cache"
                                        : fs::temp_directory_path() /
                                              ("pivot-workbench-" + std::to_string(::getuid()));
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx",
                static_cast<unsigned long long>(fnv1a(key.data(), key.size())));
  return (root / "pivot-workbench" / "record-index" /
          (std::string(hash) + "-" + absolute.filename().string() + ".pivot-index"))
      .string();
}

RecordIndex::Stamp RecordIndex::stampOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error(path + ": cannot be read");
  Stamp s;
  s.size = static_cast<uint64_t>(st.st_size);
  s.mtimeNs = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.ctimeNs = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  s.inode = static_cast<uint64_t>(st.st_ino);
  s.device = static_cast<uint64_t>(st.st_dev);
  return s;
}

std::string RecordIndex::serialiseCache(const Stamp& stamp, Layout layout,
                                        const std::vector<Entry>& entries) {
  std::string out(kMagic, sizeof kMagic);
  put(out, stamp.size);
  put(out, stamp.mtimeNs);
  put(out, stamp.ctimeNs);
  put(out, stamp.inode);
  put(out, stamp.device);
  put(out, static_cast<uint8_t>(layout == Layout::JsonArray ? 0 : 1));
  put(out, static_cast<uint64_t>(entries.size()));
  if (!entries.empty())
    out.append(reinterpret_cast<const char*>(entries.data()), entries.size() * kEntryBytes);
  put(out, fnv1a(out.data(), out.size()));
  return out;
}

bool RecordIndex::parseCache(const std::string& bytes, const Stamp& expected, Layout& layout,
                             std::vector<Entry>& entries) {
  if (bytes.size() < kHeaderBytes + 8 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return false;
  size_t at = sizeof kMagic;
  Stamp cached;
  cached.size = take<uint64_t>(bytes, at);
  cached.mtimeNs = take<int64_t>(bytes, at);
  cached.ctimeNs = take<int64_t>(bytes, at);
  cached.inode = take<uint64_t>(bytes, at);
  cached.device = take<uint64_t>(bytes, at);
  const auto layoutByte = take<uint8_t>(bytes, at);
  const auto count = take<uint64_t>(bytes, at);
  // The size first (so a wrong count allocates nothing), then the checksum, then each entry.
  if (!(cached == expected) || layoutByte > 1 ||
      count > (bytes.size() - kHeaderBytes) / kEntryBytes ||
      bytes.size() != kHeaderBytes + count * kEntryBytes + 8)
    return false;
  size_t sumAt = bytes.size() - 8;
  if (take<uint64_t>(bytes, sumAt) != fnv1a(bytes.data(), bytes.size() - 8)) return false;
  std::vector<Entry> read(count);
  if (count > 0) std::memcpy(read.data(), bytes.data() + kHeaderBytes, count * kEntryBytes);
  uint64_t end = 0;
  uint32_t line = 1;
  for (const Entry& e : read) {
    if (e.length == 0 || e.offset < end || e.offset > expected.size ||
        e.length > expected.size - e.offset || e.line < line)
      return false;
    end = e.offset + e.length;
    line = e.line;
  }
  layout = layoutByte == 0 ? Layout::JsonArray : Layout::JsonLines;
  entries = std::move(read);
  return true;
}

RecordIndex RecordIndex::open(const std::string& path) {
  const Stamp stamp = stampOf(path);
  const std::string cache = cachePath(path);
  struct stat cacheStat {};
  // A cache larger than an entry per byte of data cannot be whole: not even read.
  if (::stat(cache.c_str(), &cacheStat) == 0 &&
      static_cast<uint64_t>(cacheStat.st_size) <= kHeaderBytes + 8 + kEntryBytes * stamp.size) {
    std::ifstream in(cache, std::ios::binary);
    std::string bytes(static_cast<size_t>(cacheStat.st_size), '\0');
    RecordIndex index;
    if (in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())) &&
        parseCache(bytes, stamp, index.m_layout, index.m_entries)) {
      index.m_path = path;
      index.m_fromCache = true;
      return index;
    }
  }
  RecordIndex index = build(path);
  // Best effort: without a writable cache folder the index goes uncached. Written to a temporary
  // name and renamed, so a reader never sees half an index.
  std::error_code ec;
  fs::create_directories(fs::path(cache).parent_path(), ec);
  const std::string tmp = cache + ".tmp-" + std::to_string(::getpid());
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (out) {
    out << serialiseCache(stamp, index.m_layout, index.m_entries);
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
