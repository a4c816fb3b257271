// Named parameters in and out of modules, matched by Hugging Face names under an optional prefix.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/safetensors.h"

namespace pivot {

// Parameters and buffers of `module`, each name prefixed by `prefix`.
TensorMap stateDict(torch::nn::Module& module, const std::string& prefix = "");

struct LoadReport {
  std::string prefix;                   // the prefix under which the module's names were found
  int loaded = 0;                       // tensors copied into the module
  std::vector<std::string> unexpected;  // names under that prefix the module does not have
};

// Copies tensors into every parameter of `module`. The first of `prefixes` under which the module's
// first parameter exists is used for all. Throws, naming `source` and the parameter, when a
// parameter is missing or its shape differs (a checkpoint of another architecture).
LoadReport loadStateDict(torch::nn::Module& module, const TensorMap& tensors,
                         const std::vector<std::string>& prefixes, const std::string& source);

}  // namespace pivot
