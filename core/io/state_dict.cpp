#include "io/state_dict.h"

#include <stdexcept>

namespace pivot {

TensorMap stateDict(torch::nn::Module& module, const std::string& prefix) {
  TensorMap out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out[prefix + p.key()] = p.value();
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out[prefix + b.key()] = b.value();
  return out;
}

LoadReport loadStateDict(torch::nn::Module& module, const TensorMap& tensors,
                         const std::vector<std::string>& prefixes, const std::string& source) {
  auto params = module.named_parameters(/*recurse=*/true);
  if (params.size() == 0) return {};
  LoadReport report;
  bool found = false;
  for (const auto& prefix : prefixes) {
    if (tensors.count(prefix + params.begin()->key())) {
      report.prefix = prefix;
      found = true;
      break;
    }
  }
  if (!found)
    throw std::runtime_error(source + ": no tensor named '" + params.begin()->key() +
                             "' (under any known prefix); not a checkpoint of this model");
  torch::NoGradGuard noGrad;
  for (const auto& p : params) {
    const std::string name = report.prefix + p.key();
    auto it = tensors.find(name);
    if (it == tensors.end()) throw std::runtime_error(source + ": missing tensor '" + name + "'");
    if (it->second.sizes() != p.value().sizes()) {
      std::ostringstream msg;
      msg << source << ": tensor '" << name << "' has shape " << it->second.sizes()
          << " but the model expects " << p.value().sizes() << " (another architecture?)";
      throw std::runtime_error(msg.str());
    }
    p.value().copy_(it->second.to(p.value().dtype()));
    ++report.loaded;
  }
  for (const auto& [name, t] : tensors)
    if (name.rfind(report.prefix, 0) == 0 && !params.contains(name.substr(report.prefix.size())))
      report.unexpected.push_back(name);
  return report;
}

}  // namespace pivot
