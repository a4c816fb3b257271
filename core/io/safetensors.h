// Our own reader/writer of the safetensors format (8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}}, then raw little-endian tensor bytes).
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace pivot {

using TensorMap = std::map<std::string, torch::Tensor>;  // ordered by name, as the format stores it
using StringMap = std::map<std::string, std::string>;

// Loads every tensor to CPU. Errors (missing file, truncated data, bad header) name the file.
TensorMap loadSafetensors(const std::string& path, StringMap* metadata = nullptr);

// Writes tensors (any device; copied to CPU, made contiguous) atomically: a temporary file in the
// same folder, then rename, so a crash never leaves a half-written file.
void saveSafetensors(const std::string& path, const TensorMap& tensors,
                     const StringMap& metadata = {});

}  // namespace pivot
