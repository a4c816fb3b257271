// `pivot model check`: what a user needs to trust a Hugging Face model folder before training it.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "data/image_processor.h"
#include "io/hf_llava.h"
#include "text/chat_template.h"
#include "text/hf_tokenizer.h"
#include "training/real_data.h"

namespace pivot::cli {
namespace {

namespace fs = std::filesystem;

// The files besides the weights that training, generation and explaining a photo read: the
// tokenizer (with its chat template) and the image processor. A missing one is named (the folder
// still serves forward passes); one that is present but unusable is a failure. Returns whether
// nothing present was unusable.
bool checkTrainingFiles(const std::string& folder, const MllmConfig& config) {
  bool usable = true;
  std::vector<std::string> missing;
  const fs::path tokenizerFile = fs::path(folder) / "tokenizer.json";
  // Another kind of tokenizer (a ShapesWorld export's WordLevel one) is valid for transformers;
  // pivot's real-model path reads byte-level BPE only, so it is named, not failed.
  std::string kind = "BPE";
  if (fs::exists(tokenizerFile)) {
    const auto j = nlohmann::json::parse(std::ifstream(tokenizerFile), nullptr, false);
    if (j.is_object() && j.contains("model") && j["model"].is_object() &&
        j["model"].value("type", std::string("BPE")) != "BPE")
      kind = j["model"].value("type", std::string());
  }
  if (!fs::exists(tokenizerFile)) {
    missing.push_back("tokenizer.json");
    std::printf("tokenizer: missing (%s)\n", tokenizerFile.c_str());
  } else if (kind != "BPE") {
    missing.push_back("a byte-level BPE tokenizer");
    std::printf("tokenizer: a %s tokenizer (pivot trains real models with byte-level BPE ones)\n",
                kind.c_str());
  } else {
    try {
      const HfTokenizer tokenizer = HfTokenizer::load(folder);
      std::string templateText = "no chat template (tokenizer_config.json)";
      if (!tokenizer.chatTemplate().empty())
        templateText =
            std::string("chat template ") + name(recogniseChatTemplate(tokenizer.chatTemplate()));
      std::printf("tokenizer: %lld tokens, %s\n", static_cast<long long>(tokenizer.vocabSize()),
                  templateText.c_str());
      if (tokenizer.chatTemplate().empty()) missing.push_back("a chat template");
      try {
        checkTokenizerFitsModel(tokenizer, config, folder);
      } catch (const std::runtime_error& e) {
        std::printf("  problem: %s\n", e.what());
        usable = false;
      }
    } catch (const std::exception& e) {
      std::printf("tokenizer: problem: %s\n", e.what());
      usable = false;
    }
  }
  const fs::path processorFile = fs::path(folder) / "preprocessor_config.json";
  if (!fs::exists(processorFile)) {
    missing.push_back("preprocessor_config.json");
    std::printf("image processor: missing (%s)\n", processorFile.c_str());
  } else {
    try {
      const ImageProcessorConfig p = imageProcessorConfigFromFile(processorFile.string());
      std::printf("image processor: %dx%d px\n", p.width, p.height);
      if (p.width != config.vision.image_size || p.height != config.vision.image_size) {
        std::printf("  problem: the vision tower's image_size is %d\n", config.vision.image_size);
        usable = false;
      }
    } catch (const std::exception& e) {
      std::printf("image processor: problem: %s\n", e.what());
      usable = false;
    }
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size(); ++i)
      list += (i == 0 ? "" : i + 1 == missing.size() ? " and " : ", ") + missing[i];
    std::printf("not usable for training, generate or explain --image: %s missing\n", list.c_str());
  }
  return usable;
}

}  // namespace

int cmdModelCheck(const ModelCheckArgs& args) {
  HfLlava llava = loadHfLlava(args.folder);
  const HfModelReport& r = llava.report;
  const MllmConfig& c = llava.config;
  std::printf("model: %s\n", args.folder.c_str());
  std::printf(
      "architecture: LLaVA (SigLIP %d layers, D %d, %d px / patch %d -> %d image tokens; "
      "Qwen2 %d layers, D %d, %d heads / %d kv, vocab %d%s)\n",
      c.vision.num_hidden_layers, c.vision.hidden_size, c.vision.image_size, c.vision.patch_size,
      c.imageTokens(), c.text.num_hidden_layers, c.text.hidden_size, c.text.num_attention_heads,
      c.text.num_key_value_heads, c.text.vocab_size, r.tiedHead ? ", tied head" : "");
  std::string layers;
  for (int layer : c.vision_feature_layers)
    layers += (layers.empty() ? "" : " + ") + std::to_string(layer);
  std::printf("features: hidden state%s %s, strategy %s; image token id %d; projector bias %s\n",
              c.vision_feature_layers.size() == 1 ? "" : "s (concatenated)", layers.c_str(),
              c.drop_first_vision_token ? "default" : "full", c.image_token_id,
              c.multimodal_projector_bias ? "yes" : "no");
  std::printf("name layout: %s; %zu file%s\n", r.layout.c_str(), r.files.size(),
              r.files.size() == 1 ? "" : "s");
  std::string dtypes;
  for (const auto& [dtype, n] : r.dtypes)
    dtypes += (dtypes.empty() ? "" : ", ") + std::to_string(n) + " " + dtype;
  std::printf("stored dtypes: %s (loaded as float32)\n", dtypes.c_str());
  std::printf(
      "parameters: vision %.3f M, projector %.3f M, language model %.3f M, total %.3f M\n",
      static_cast<double>(r.visionParameters) / 1e6,
      static_cast<double>(r.projectorParameters) / 1e6, static_cast<double>(r.lmParameters) / 1e6,
      static_cast<double>(r.visionParameters + r.projectorParameters + r.lmParameters) / 1e6);
  std::printf("missing tensors: none (a missing one is an error)\n");
  std::printf("unused tensors: %s\n", r.unused.empty() ? "none" : "");
  for (const auto& name : r.unused) std::printf("  %s\n", name.c_str());
  if (!checkTrainingFiles(args.folder, c)) {
    std::printf("FAILED: a file training reads is present but unusable (see above)\n");
    return 1;
  }
  if (args.inputs.empty()) return 0;
  const auto d = compareWithRecorded(llava.model, loadSafetensors(args.inputs), args.inputs);
  std::printf("recorded outputs (%s):\n", args.inputs.c_str());
  if (d.imageFeatures) std::printf("  image_features max abs diff %.3g\n", *d.imageFeatures);
  if (d.logits) std::printf("  logits max abs diff %.3g (where attention_mask is 1)\n", *d.logits);
  if (!d.imageFeatures && !d.logits)
    std::printf("  the file holds neither image_features nor logits: ran the model only\n");
  // A model whose outputs are not finite cannot be used, whatever the differences say.
  if ((d.imageFeatures && !std::isfinite(*d.imageFeatures)) ||
      (d.logits && !std::isfinite(*d.logits)) || !d.finite) {
    std::printf("FAILED: the model's outputs are not finite (NaN or infinity)\n");
    return 1;
  }
  return 0;
}

int cmdModelInit(const ModelInitArgs& args) {
  namespace fs = std::filesystem;
  const MllmConfig config = llavaConfigFromHf(readJsonFile(args.config), args.config);
  // The tokenizer must be whole and fit the model before anything is written (a mismatch would
  // fail at training's first step with an index error).
  const std::vector<std::string> tokenizerFiles = {"tokenizer.json", "tokenizer_config.json"};
  if (!args.tokenizer.empty()) {
    for (const auto& file : tokenizerFiles)
      if (!fs::exists(fs::path(args.tokenizer) / file))
        throw std::runtime_error((fs::path(args.tokenizer) / file).string() +
                                 ": cannot be read (--tokenizer needs tokenizer.json and "
                                 "tokenizer_config.json)");
    checkTokenizerFitsModel(HfTokenizer::load(args.tokenizer), config, args.tokenizer);
  }
  torch::manual_seed(args.seed);
  Mllm model(config);  // LibTorch's default initialisation: random, seeded
  HfExportOptions options;
  options.dtype = torch::kFloat32;
  saveHfLlava(model, args.out, options);
  if (!args.tokenizer.empty())
    for (const auto& file : tokenizerFiles)
      fs::copy_file(fs::path(args.tokenizer) / file, fs::path(args.out) / file,
                    fs::copy_options::overwrite_existing);
  std::cout << "random LLaVA model (seed " << args.seed << ") from " << args.config << " in "
            << args.out
            << (args.tokenizer.empty() ? "" : ", with the tokenizer of " + args.tokenizer) << "\n";
  return 0;
}

}  // namespace pivot::cli
