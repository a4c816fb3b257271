#include "io/hf_llava.h"

#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

namespace pivot {
namespace {

namespace fs = std::filesystem;

// Prefix rules, most specific first: {prefix in the file, our prefix, layout it reveals}.
struct PrefixRule {
  const char* from;
  const char* to;
  const char* layout;
};
constexpr PrefixRule kRules[] = {
    {"model.vision_tower.vision_tower.vision_model.", "vision_tower.", "llava-next"},
    {"model.mm_projector.0.", "multi_modal_projector.linear_1.", "llava-next"},
    {"model.mm_projector.2.", "multi_modal_projector.linear_2.", "llava-next"},
    {"vision_tower.vision_model.", "vision_tower.", "hub"},
    {"multi_modal_projector.", "multi_modal_projector.", "hub"},
    {"language_model.model.", "language_model.model.", "hub"},
    {"language_model.lm_head.", "language_model.lm_head.", "hub"},
    {"model.vision_tower.vision_model.", "vision_tower.", "transformers"},
    {"model.vision_tower.", "vision_tower.", "transformers"},
    {"model.multi_modal_projector.", "multi_modal_projector.", "transformers"},
    {"model.language_model.", "language_model.model.", "transformers"},
    {"model.", "language_model.model.", "llava-next"},  // model.layers.*, model.embed_tokens.*
    {"lm_head.", "language_model.lm_head.", ""},        // transformers and llava-next alike
};

bool startsWith(const std::string& s, const char* prefix) {
  return s.compare(0, std::char_traits<char>::length(prefix), prefix) == 0;
}

std::runtime_error fieldError(const std::string& source, const std::string& field,
                              const std::string& why) {
  return std::runtime_error(source + ": field '" + field + "' " + why);
}

// The weight files of a folder: the index's shards, or the one model.safetensors.
std::vector<std::string> weightFiles(const std::string& folder,
                                     std::map<std::string, std::string>* weightMap) {
  const fs::path index = fs::path(folder) / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const auto j = readJsonFile(index.string());
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw fieldError(index.string(), "weight_map", "is missing");
    std::set<std::string> shards;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string())
        throw fieldError(index.string(), "weight_map." + name, "must name a file");
      (*weightMap)[name] = file.get<std::string>();
      shards.insert(file.get<std::string>());
    }
    std::vector<std::string> files;
    for (const auto& s : shards) files.push_back((fs::path(folder) / s).string());
    return files;
  }
  const fs::path single = fs::path(folder) / "model.safetensors";
  if (!fs::exists(single))
    throw std::runtime_error(folder + ": no model.safetensors or model.safetensors.index.json");
  return {single.string()};
}

}  // namespace

MllmConfig llavaConfigFromHf(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw std::runtime_error(source + ": not a JSON object");
  const std::string type = j.value("model_type", std::string());
  if (type != "llava")
    throw fieldError(source, "model_type",
                     "is \"" + type + "\"; supported: \"llava\" (SigLIP + Qwen2 LLaVA models)");
  // Without them transformers would fall back on another model's sizes (CLIP, Llama): never guess.
  for (const char* tower : {"vision_config", "text_config"})
    if (!j.contains(tower) || !j[tower].is_object())
      throw fieldError(source, tower, "is missing (the sizes of the model's tower)");
  const auto vision = j.value("vision_config", nlohmann::json::object());
  const auto text = j.value("text_config", nlohmann::json::object());
  if (vision.value("model_type", std::string("siglip_vision_model")) != "siglip_vision_model")
    throw fieldError(source, "vision_config.model_type", "must be \"siglip_vision_model\"");
  if (vision.value("hidden_act", std::string("gelu_pytorch_tanh")) != "gelu_pytorch_tanh")
    throw fieldError(source, "vision_config.hidden_act", "must be \"gelu_pytorch_tanh\"");
  for (const char* textType : {"qwen2"})
    if (text.value("model_type", std::string(textType)) != textType)
      throw fieldError(source, "text_config.model_type", "must be \"qwen2\"");
  if (text.value("hidden_act", std::string("silu")) != "silu")
    throw fieldError(source, "text_config.hidden_act", "must be \"silu\"");
  if (j.value("projector_hidden_act", std::string("gelu")) != "gelu")
    throw fieldError(source, "projector_hidden_act", "must be \"gelu\" (exact GELU)");
  MllmConfig c;
  try {
    c = mllmConfigFromJson(j);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(source + ": " + e.what());
  }
  // HF LLaVA attends causally throughout; only our own exports of ShapesWorld models say otherwise.
  if (!j.contains("prefix_bidirectional")) c.prefix_bidirectional = false;
  if (j.contains("image_seq_length") && j["image_seq_length"].is_number_integer() &&
      j["image_seq_length"].get<int>() != c.imageTokens())
    throw fieldError(source, "image_seq_length",
                     "is " + j["image_seq_length"].dump() + " but the vision tower gives " +
                         std::to_string(c.imageTokens()) + " tokens per image");
  if (c.image_token_id < 0 || c.image_token_id >= c.text.vocab_size)
    throw fieldError(source, "image_token_index", "is outside the vocabulary");
  return c;
}

std::string canonicalLlavaName(const std::string& name, std::string* layout) {
  for (const auto& rule : kRules) {
    if (!startsWith(name, rule.from)) continue;
    if (layout) *layout = rule.layout;
    return rule.to + name.substr(std::char_traits<char>::length(rule.from));
  }
  if (layout) layout->clear();
  return "";
}

HfLlava loadHfLlava(const std::string& folder) {
  HfLlava out;
  out.report.folder = folder;
  const std::string configPath = (fs::path(folder) / "config.json").string();
  out.config = llavaConfigFromHf(readJsonFile(configPath), configPath);

  // Every tensor of every file under our name, remembering where it came from.
  std::map<std::string, std::string> weightMap;
  out.report.files = weightFiles(folder, &weightMap);
  // Mapped, not read: each tensor is converted straight into its parameter and its pages released,
  // so loading needs the model's memory and little more.
  std::vector<MappedSafetensors> mapped;
  struct Found {
    const MappedSafetensors* file;
    const SafetensorsEntry* entry;
  };
  std::map<std::string, Found> tensors;
  std::map<std::string, int> layoutVotes;
  mapped.reserve(out.report.files.size());
  for (const auto& file : out.report.files) mapped.emplace_back(file);
  for (const auto& file : mapped) {
    for (const auto& entry : file.entries()) {
      const std::string& name = entry.name;
      if (!weightMap.empty() && !weightMap.count(name))
        throw std::runtime_error(file.path() + ": tensor '" + name +
                                 "' is not listed in model.safetensors.index.json");
      ++out.report.dtypes[c10::toString(file.dtype(entry))];
      std::string layout;
      const std::string ours = canonicalLlavaName(name, &layout);
      if (!layout.empty()) ++layoutVotes[layout];
      if (ours.empty() || tensors.count(ours)) {
        out.report.unused.push_back(name);
        continue;
      }
      tensors[ours] = {&file, &entry};
    }
  }
  out.report.layout = "hub";
  int most = 0;
  for (const auto& [layout, votes] : layoutVotes)
    if (votes > most) {
      most = votes;
      out.report.layout = layout;
    }

  // The vocabulary sizes the largest tensors: a config that disagrees with the weights is named
  // before the model is allocated (a vocab_size of 1e8 would ask for tens of gigabytes first).
  if (auto it = tensors.find("language_model.model.embed_tokens.weight"); it != tensors.end()) {
    const auto& shape = it->second.entry->shape;
    const std::vector<int64_t> expected = {out.config.text.vocab_size, out.config.text.hidden_size};
    if (shape != expected)
      throw std::runtime_error(configPath + ": text_config has vocab_size " +
                               std::to_string(expected[0]) + " and hidden_size " +
                               std::to_string(expected[1]) + " but " +
                               fs::path(it->second.file->path()).filename().string() +
                               " holds an embedding of " + c10::str(c10::IntArrayRef(shape)));
  }
  out.model = Mllm(out.config);
  out.model->eval();

  // Copy into every parameter; what is left over is unused.
  torch::NoGradGuard noGrad;
  std::set<std::string> taken;
  for (auto& item : out.model->named_parameters()) {
    const std::string& name = item.key();
    auto it = tensors.find(name);
    if (it == tensors.end())
      throw std::runtime_error(folder + ": tensor for '" + name +
                               "' is missing (no name in any layout maps to it)");
    const Found& f = it->second;
    if (c10::IntArrayRef(f.entry->shape) != item.value().sizes()) {
      std::ostringstream why;
      why << fs::path(f.file->path()).filename().string() << ": tensor '" << f.entry->name
          << "' has shape " << c10::IntArrayRef(f.entry->shape) << " but the config makes '" << name
          << "' " << item.value().sizes();
      throw std::runtime_error(why.str());
    }
    item.value().copy_(f.file->view(*f.entry));  // converts BF16 / F16 on the way
    f.file->release(*f.entry);
    taken.insert(name);
    const int64_t n = item.value().numel();
    if (startsWith(name, "vision_tower."))
      out.report.visionParameters += n;
    else if (startsWith(name, "multi_modal_projector."))
      out.report.projectorParameters += n;
    else
      out.report.lmParameters += n;
  }
  for (const auto& [name, f] : tensors)
    if (!taken.count(name)) out.report.unused.push_back(f.entry->name);
  out.report.tiedHead = out.config.text.tie_word_embeddings;
  if (out.report.tiedHead && tensors.count("language_model.lm_head.weight"))
    out.report.unused.push_back(tensors["language_model.lm_head.weight"].entry->name);
  std::sort(out.report.unused.begin(), out.report.unused.end());
  out.report.unused.erase(std::unique(out.report.unused.begin(), out.report.unused.end()),
                          out.report.unused.end());
  return out;
}

torch::ScalarType storedDtypeFromName(const std::string& name) {
  if (name == "bf16") return torch::kBFloat16;
  if (name == "f16") return torch::kFloat16;
  if (name == "f32") return torch::kFloat32;
  throw std::runtime_error("unknown dtype '" + name + "' (expected bf16, f16 or f32)");
}

VisionEncoderSource readVisionEncoder(const std::string& folder) {
  const std::string configPath = (fs::path(folder) / "config.json").string();
  if (!fs::exists(configPath))
    throw std::runtime_error(folder + ": no config.json (not a model folder)");
  const auto config = readJsonFile(configPath);
  const std::string type = config.value("model_type", std::string());
  VisionEncoderSource out;
  std::map<std::string, std::string> weightMap;
  std::vector<MappedSafetensors> files;
  for (const auto& file : weightFiles(folder, &weightMap)) files.emplace_back(file);
  auto anyName = [&](const char* prefix) {
    for (const auto& file : files)
      for (const auto& entry : file.entries())
        if (startsWith(entry.name, prefix)) return true;
    return false;
  };
  // Every tensor under a name of ours: the tower's without its prefix, the projector's first layer.
  std::function<std::string(const std::string&)> rename;
  if (type == "siglip_vision_model" || type == "siglip") {
    out.kind = "siglip";
    out.vision = visionConfigFromJson(config);
    rename = [](const std::string& name) {
      return startsWith(name, "vision_model.") ? "vision_tower." + name.substr(13) : std::string();
    };
  } else if (type == "llava") {
    MllmConfig c;
    if (anyName("vision_tower.embeddings.")) {  // the workbench's own checkpoint
      out.kind = "checkpoint";
      c = mllmConfigFromJson(config);
      rename = [](const std::string& name) { return name; };
    } else {
      out.kind = "llava";
      c = llavaConfigFromHf(config, configPath);
      rename = [](const std::string& name) { return canonicalLlavaName(name); };
    }
    out.vision = c.vision;
    out.textHiddenSize = c.text.hidden_size;
    out.featureLayers = c.vision_feature_layers;
  } else {
    throw std::runtime_error(configPath + ": model_type '" + type +
                             "' holds no SigLIP vision tower (expected llava, siglip or "
                             "siglip_vision_model)");
  }
  const std::string tower = "vision_tower.", projector = "multi_modal_projector.linear_1.";
  for (const auto& file : files)
    for (const auto& entry : file.entries()) {
      const std::string ours = rename(entry.name);
      if (startsWith(ours, tower.c_str()))
        out.tower[ours.substr(tower.size())] = file.view(entry).clone();
      else if (startsWith(ours, projector.c_str()))
        out.projectorFirstLayer[ours.substr(projector.size())] = file.view(entry).clone();
      else
        continue;
      file.release(entry);
    }
  if (out.tower.empty())
    throw std::runtime_error(folder + ": no vision tower tensors in its weights");
  return out;
}

RecordedComparison compareWithRecorded(Mllm& model, const TensorMap& io,
                                       const std::string& source) {
  auto need = [&](const char* name) {
    auto it = io.find(name);
    if (it == io.end()) throw std::runtime_error(source + ": tensor '" + name + "' is missing");
    return it->second;
  };
  torch::NoGradGuard noGrad;
  model->eval();
  const auto pixels = need("pixel_values").to(torch::kFloat32);
  const auto ids = need("input_ids").to(torch::kInt64);
  const auto mask = need("attention_mask").to(torch::kInt64);
  const auto positions =
      io.count("position_ids") ? io.at("position_ids").to(torch::kInt64) : torch::Tensor();
  RecordedComparison out;
  const auto visual = model->visualTokens(pixels);
  if (io.count("image_features"))
    out.imageFeatures =
        (visual - io.at("image_features").to(torch::kFloat32)).abs().max().item<double>();
  const auto embeds = model->spliceEmbeddings(ids, visual);
  const auto logits = model->language_model->forwardEmbeds(embeds, mask, positions);
  const auto real = mask.to(torch::kBool).unsqueeze(-1);  // padding positions are arbitrary
  if (io.count("logits")) {
    const auto diff = (logits - io.at("logits").to(torch::kFloat32)).abs().masked_fill(~real, 0);
    out.logits = diff.max().item<double>();
  }
  out.finite = torch::isfinite(visual).all().item<bool>() &&
               torch::isfinite(logits.masked_fill(~real, 0)).all().item<bool>();
  return out;
}

namespace {

void writeJson(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) throw std::runtime_error(path.string() + ": cannot be written");
}

nlohmann::json preprocessorConfig(const VisionConfig& v) {
  return {{"image_processor_type", "SiglipImageProcessor"},
          {"processor_class", "LlavaProcessor"},
          {"do_resize", true},
          {"size", {{"height", v.image_size}, {"width", v.image_size}}},
          {"resample", 3},
          {"do_rescale", true},
          {"rescale_factor", 1.0 / 255.0},
          {"do_normalize", true},
          {"image_mean", {0.5, 0.5, 0.5}},
          {"image_std", {0.5, 0.5, 0.5}}};
}

const char* dtypeConfigName(torch::ScalarType t) {
  switch (t) {
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kFloat16:
      return "float16";
    case torch::kFloat32:
      return "float32";
    default:
      throw std::invalid_argument("export: dtype must be bf16, f16 or f32");
  }
}

}  // namespace

void saveHfLlava(Mllm& model, const std::string& folder, const HfExportOptions& options) {
  fs::create_directories(folder);
  nlohmann::json config = toJson(model->config);
  config["torch_dtype"] = dtypeConfigName(options.dtype);
  config["tie_word_embeddings"] = model->config.text.tie_word_embeddings;
  writeJson(fs::path(folder) / "config.json", config);
  writeJson(fs::path(folder) / "preprocessor_config.json",
            preprocessorConfig(model->config.vision));

  // Hub names: the vision tower's under "vision_model.", the rest as our modules name them.
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  torch::NoGradGuard noGrad;
  for (const auto& item : model->named_parameters()) {
    std::string name = item.key();
    if (startsWith(name, "vision_tower."))
      name = "vision_tower.vision_model." + name.substr(std::strlen("vision_tower."));
    tensors.emplace_back(name, item.value().detach().to(torch::kCPU, options.dtype).contiguous());
  }
  std::sort(tensors.begin(), tensors.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  // Shards in name order, each at most shardBytes (a larger single tensor gets one of its own).
  std::vector<TensorMap> shards(1);
  int64_t shardSize = 0, total = 0;
  for (auto& [name, t] : tensors) {
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    if (shardSize > 0 && shardSize + bytes > options.shardBytes) {
      shards.emplace_back();
      shardSize = 0;
    }
    shards.back()[name] = t;
    shardSize += bytes;
    total += bytes;
  }
  const StringMap metadata = {{"format", "pt"}};
  if (shards.size() == 1) {
    saveSafetensors((fs::path(folder) / "model.safetensors").string(), shards[0], metadata);
    return;
  }
  nlohmann::json weightMap = nlohmann::json::object();
  char file[64];
  for (size_t k = 0; k < shards.size(); ++k) {
    std::snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    saveSafetensors((fs::path(folder) / file).string(), shards[k], metadata);
    for (const auto& [name, t] : shards[k]) weightMap[name] = file;
  }
  writeJson(fs::path(folder) / "model.safetensors.index.json",
            {{"metadata", {{"total_size", total}}}, {"weight_map", weightMap}});
}

void saveSiglipVision(Mllm& model, const std::string& folder, torch::ScalarType dtype) {
  fs::create_directories(folder);
  nlohmann::json config = toJson(model->config.vision);
  config["architectures"] = {"SiglipVisionModel"};
  config["torch_dtype"] = dtypeConfigName(dtype);
  writeJson(fs::path(folder) / "config.json", config);
  writeJson(fs::path(folder) / "preprocessor_config.json",
            preprocessorConfig(model->config.vision));
  TensorMap tensors;
  torch::NoGradGuard noGrad;
  for (const auto& item : model->vision_tower->named_parameters())
    tensors["vision_model." + item.key()] =
        item.value().detach().to(torch::kCPU, dtype).contiguous();
  saveSafetensors((fs::path(folder) / "model.safetensors").string(), tensors, {{"format", "pt"}});
}

}  // namespace pivot
