// Our own reader/writer of the safetensors format (8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}}, then raw little-endian tensor bytes).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors_header.h"

namespace pivot {

using TensorMap = std::map<std::string, torch::Tensor>;  // ordered by name, as the format stores it
using StringMap = std::map<std::string, std::string>;

// A safetensors file mapped into memory (copy-on-write): the header parsed, each tensor a
// zero-copy view of the mapping. Reading a checkpoint through it costs page cache, not heap:
// copy a view into its parameter (converting the dtype on the way), then release() the tensor so
// its pages leave this process's resident set; peak memory stays near the parameters' own bytes.
// A view keeps the mapping alive after this object is gone.
class MappedSafetensors {
 public:
  explicit MappedSafetensors(const std::string& path);  // errors name the file
  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return header_.tensors; }
  const StringMap& metadata() const { return header_.metadata; }
  torch::ScalarType dtype(const SafetensorsEntry& entry) const;
  torch::Tensor view(const SafetensorsEntry& entry) const;
  void release(const SafetensorsEntry& entry) const;

 private:
  struct Mapping;
  std::string path_;
  SafetensorsHeader header_;
  std::shared_ptr<Mapping> mapping_;
};

// Loads every tensor to CPU. Errors (missing file, truncated data, bad header) name the file.
TensorMap loadSafetensors(const std::string& path, StringMap* metadata = nullptr);

// Writes tensors (any device; copied to CPU, made contiguous) atomically: a temporary file in the
// same folder, then rename, so a crash never leaves a half-written file.
void saveSafetensors(const std::string& path, const TensorMap& tensors,
                     const StringMap& metadata = {});

}  // namespace pivot
