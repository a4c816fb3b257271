#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace pivot {
namespace {

struct DtypeName {
  const char* name;
  torch::ScalarType type;
};
constexpr DtypeName kDtypes[] = {{"F64", torch::kFloat64}, {"F32", torch::kFloat32},
                                 {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
                                 {"I64", torch::kInt64},   {"I32", torch::kInt32},
                                 {"I16", torch::kInt16},   {"I8", torch::kInt8},
                                 {"U8", torch::kUInt8},    {"BOOL", torch::kBool}};

torch::ScalarType dtypeFromName(const std::string& name, const std::string& where) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d.type;
  throw std::runtime_error(where + ": unsupported dtype '" + name + "'");
}

const char* nameFromDtype(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return d.name;
  throw std::runtime_error(std::string("safetensors: cannot store dtype ") + c10::toString(t));
}

}  // namespace

struct MappedSafetensors::Mapping {
  void* base = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (base) ::munmap(base, size);
  }
};

MappedSafetensors::MappedSafetensors(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open");
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    ::close(fd);
    throw std::runtime_error(path + ": cannot stat");
  }
  const uint64_t fileSize = static_cast<uint64_t>(info.st_size);
  mapping_ = std::make_shared<Mapping>();
  if (fileSize > 0) {
    // Private and writable so that a caller who writes into a view gets its own page, never a
    // crash and never a change to the file.
    void* base = ::mmap(nullptr, fileSize, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) {
      ::close(fd);
      throw std::runtime_error(path + ": cannot be mapped into memory");
    }
    mapping_->base = base;
    mapping_->size = fileSize;
  }
  ::close(fd);  // the mapping keeps the file
  if (fileSize < 8) throw std::runtime_error(path + ": too short for a safetensors header");
  const auto* bytes = static_cast<const unsigned char*>(mapping_->base);
  unsigned char lenBytes[8];
  std::copy(bytes, bytes + 8, lenBytes);
  const uint64_t headerLen = safetensorsHeaderLength(lenBytes, fileSize, path);
  header_ = parseSafetensorsHeader(std::string(reinterpret_cast<const char*>(bytes), 8 + headerLen),
                                   fileSize, path);
}

torch::ScalarType MappedSafetensors::dtype(const SafetensorsEntry& entry) const {
  return dtypeFromName(entry.dtype, path_ + ": tensor '" + entry.name + "'");
}

torch::Tensor MappedSafetensors::view(const SafetensorsEntry& entry) const {
  const auto options = torch::TensorOptions().dtype(dtype(entry));
  if (entry.end == entry.begin) return torch::empty(entry.shape, options);
  char* data = static_cast<char*>(mapping_->base) + header_.dataStart + entry.begin;
  const auto elementSize = static_cast<uintptr_t>(safetensorsDtypeSize(entry.dtype));
  if (reinterpret_cast<uintptr_t>(data) % elementSize != 0) {
    // The format does not promise alignment; kernels may assume it. Copy this one.
    auto copy = torch::empty(entry.shape, options);
    std::memcpy(copy.data_ptr(), data, entry.end - entry.begin);
    return copy;
  }
  std::shared_ptr<Mapping> keepAlive = mapping_;
  return torch::from_blob(
      data, entry.shape, [keepAlive](void*) mutable { keepAlive.reset(); }, options);
}

void MappedSafetensors::release(const SafetensorsEntry& entry) const {
  // Whole pages inside the tensor's bytes only: a neighbour's pages stay where they are.
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin =
      reinterpret_cast<uintptr_t>(mapping_->base) + header_.dataStart + entry.begin;
  const uintptr_t end = reinterpret_cast<uintptr_t>(mapping_->base) + header_.dataStart + entry.end;
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

TensorMap loadSafetensors(const std::string& path, StringMap* metadata) {
  const MappedSafetensors file(path);
  if (metadata)
    for (const auto& [k, v] : file.metadata()) (*metadata)[k] = v;
  TensorMap out;
  for (const auto& entry : file.entries()) {
    out.emplace(entry.name, file.view(entry).clone());
    file.release(entry);
  }
  return out;
}

void saveSafetensors(const std::string& path, const TensorMap& tensors, const StringMap& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto cpu = t.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(cpu.numel()) * cpu.element_size();
    header[name] = {{"dtype", nameFromDtype(cpu.scalar_type())},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    blobs.push_back(cpu);
  }
  std::string headerText = header.dump();
  while (headerText.size() % 8 != 0) headerText.push_back(' ');  // align data to 8 bytes

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(tmp + ": cannot write");
    unsigned char lenBytes[8];
    uint64_t len = headerText.size();
    for (int i = 0; i < 8; ++i) lenBytes[i] = static_cast<unsigned char>((len >> (8 * i)) & 0xff);
    out.write(reinterpret_cast<const char*>(lenBytes), 8);
    out.write(headerText.data(), static_cast<std::streamsize>(headerText.size()));
    for (const auto& b : blobs)
      out.write(static_cast<const char*>(b.data_ptr()),
                static_cast<std::streamsize>(b.numel() * b.element_size()));
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());  // nothing half-written stays behind
      throw std::runtime_error(tmp + ": write failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(path + ": cannot rename temporary file into place");
}

}  // namespace pivot
