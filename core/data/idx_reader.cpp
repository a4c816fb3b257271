#include "data/idx_reader.h"

#include <cstdio>
#include <memory>
#include <type_traits>
#include <stdexcept>

#ifdef PIVOT_HAVE_ZLIB
#include <zlib.h>
#else
// Without zlib only uncompressed IDX files can be read; the same three calls over stdio.
using gzFile = FILE*;
inline gzFile gzopen(const char* path, const char* mode) {
  const std::string p(path);
  if (p.size() > 3 && p.substr(p.size() - 3) == ".gz")
    throw std::runtime_error(p + ": built without zlib, cannot read .gz");
  return std::fopen(path, mode);
}
inline int gzread(gzFile f, void* buf, unsigned n) {
  return static_cast<int>(std::fread(buf, 1, n, f));
}
inline int gzclose(gzFile f) { return std::fclose(f); }
#endif

namespace pivot {

const char* const kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

IdxArray readIdx(const std::string& path) {
  // gzopen reads plain files too, so one path serves .gz and uncompressed IDX.
  std::unique_ptr<std::remove_pointer_t<gzFile>, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"),
                                                                       gzclose);
  if (!file) throw std::runtime_error(path + ": cannot open (install dataset-fashion-mnist?)");
  unsigned char magic[4];
  if (gzread(file.get(), magic, 4) != 4 || magic[0] != 0 || magic[1] != 0)
    throw std::runtime_error(path + ": not an IDX file (bad magic number)");
  if (magic[2] != 0x08) throw std::runtime_error(path + ": IDX element type is not unsigned bytes");
  IdxArray out;
  int64_t count = 1;
  for (int d = 0; d < magic[3]; ++d) {
    unsigned char be[4];
    if (gzread(file.get(), be, 4) != 4) throw std::runtime_error(path + ": truncated header");
    const int64_t n = (int64_t{be[0]} << 24) | (be[1] << 16) | (be[2] << 8) | be[3];
    out.dims.push_back(n);
    count *= n;
  }
  out.data.resize(static_cast<size_t>(count));
  size_t done = 0;
  while (done < out.data.size()) {
    const unsigned chunk =
        static_cast<unsigned>(std::min<size_t>(out.data.size() - done, 1u << 30));
    const int got = gzread(file.get(), out.data.data() + done, chunk);
    if (got <= 0)
      throw std::runtime_error(path + ": truncated data (" + std::to_string(done) + " of " +
                               std::to_string(out.data.size()) + " bytes)");
    done += static_cast<size_t>(got);
  }
  return out;
}

}  // namespace pivot
