#include "io/safetensors.h"

#include "io/safetensors_header.h"

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

TensorMap loadSafetensors(const std::string& path, StringMap* metadata) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error(path + ": cannot open");
  const uint64_t fileSize = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  unsigned char lenBytes[8];
  if (fileSize < 8 || !in.read(reinterpret_cast<char*>(lenBytes), 8))
    throw std::runtime_error(path + ": too short for a safetensors header");
  const uint64_t headerLen = safetensorsHeaderLength(lenBytes, fileSize, path);
  std::string prefix(8 + headerLen, '\0');
  std::copy(lenBytes, lenBytes + 8, prefix.begin());
  in.read(prefix.data() + 8, static_cast<std::streamsize>(headerLen));
  const SafetensorsHeader header = parseSafetensorsHeader(prefix, fileSize, path);
  if (metadata)
    for (const auto& [k, v] : header.metadata) (*metadata)[k] = v;

  TensorMap out;
  for (const auto& entry : header.tensors) {
    const std::string where = path + ": tensor '" + entry.name + "'";
    auto tensor =
        torch::empty(entry.shape, torch::TensorOptions().dtype(dtypeFromName(entry.dtype, where)));
    const uint64_t nbytes = entry.end - entry.begin;
    in.seekg(static_cast<std::streamoff>(header.dataStart + entry.begin));
    if (nbytes > 0 &&
        !in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(nbytes)))
      throw std::runtime_error(where + ": read failed");
    out.emplace(entry.name, std::move(tensor));
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
