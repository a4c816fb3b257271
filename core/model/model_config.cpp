#include "model/model_config.h"

#include <cmath>

#include "config/json_field.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace pivot {
namespace {

template <typename T>
void readField(const nlohmann::json& j, const char* key, T& out) {
  readJsonField(j, key, out);
}

// Sizes are counts: a zero or negative one would divide by zero or allocate nonsense later.
void requirePositive(const char* key, int64_t value) {
  if (value <= 0)
    throw std::runtime_error(std::string("config field '") + key + "' must be positive, got " +
                             std::to_string(value));
}

// Epsilons and the rotary base are positive reals: zero or below gives NaN (a division by zero, a
// square root of a negative variance, a log of zero) in the first forward pass.
void requirePositiveReal(const char* key, double value) {
  if (!(value > 0) || !std::isfinite(value))
    throw std::runtime_error(std::string("config field '") + key +
                             "' must be a positive number, got " + std::to_string(value));
}

}  // namespace

VisionConfig visionConfigFromJson(const nlohmann::json& jIn) {
  // A full SiglipConfig nests the tower under "vision_config".
  const nlohmann::json& j = jIn.contains("vision_config") ? jIn.at("vision_config") : jIn;
  VisionConfig c;
  readField(j, "hidden_size", c.hidden_size);
  readField(j, "intermediate_size", c.intermediate_size);
  readField(j, "num_hidden_layers", c.num_hidden_layers);
  readField(j, "num_attention_heads", c.num_attention_heads);
  readField(j, "num_channels", c.num_channels);
  readField(j, "image_size", c.image_size);
  readField(j, "patch_size", c.patch_size);
  readField(j, "layer_norm_eps", c.layer_norm_eps);
  if (j.contains("hidden_act") && j["hidden_act"] != "gelu_pytorch_tanh")
    throw std::runtime_error(
        "config field 'hidden_act': only gelu_pytorch_tanh is supported, got " +
        j["hidden_act"].dump());
  for (const auto& [key, value] : {std::pair<const char*, int64_t>{"hidden_size", c.hidden_size},
                                   {"intermediate_size", c.intermediate_size},
                                   {"num_hidden_layers", c.num_hidden_layers},
                                   {"num_attention_heads", c.num_attention_heads},
                                   {"num_channels", c.num_channels},
                                   {"image_size", c.image_size},
                                   {"patch_size", c.patch_size}})
    requirePositive(key, value);
  requirePositiveReal("layer_norm_eps", c.layer_norm_eps);
  if (c.hidden_size % c.num_attention_heads != 0)
    throw std::runtime_error("config field 'num_attention_heads' must divide hidden_size");
  // SigLIP's patch embedding is a strided convolution without padding: floor(384 / 14) = 27
  // patches a side for so400m-patch14-384, the edge pixels unused.
  if (c.patch_size > c.image_size)
    throw std::runtime_error("config field 'patch_size' must not exceed image_size");
  return c;
}

LmConfig lmConfigFromJson(const nlohmann::json& jIn) {
  const nlohmann::json& j = jIn.contains("text_config") ? jIn.at("text_config") : jIn;
  LmConfig c;
  readField(j, "vocab_size", c.vocab_size);
  readField(j, "hidden_size", c.hidden_size);
  readField(j, "intermediate_size", c.intermediate_size);
  readField(j, "num_hidden_layers", c.num_hidden_layers);
  readField(j, "num_attention_heads", c.num_attention_heads);
  c.num_key_value_heads = c.num_attention_heads;
  readField(j, "num_key_value_heads", c.num_key_value_heads);
  readField(j, "rms_norm_eps", c.rms_norm_eps);
  readField(j, "max_position_embeddings", c.max_position_embeddings);
  readField(j, "tie_word_embeddings", c.tie_word_embeddings);
  // Released Qwen2.5 configs write rope_theta at the top; transformers 5 under rope_parameters.
  readField(j, "rope_theta", c.rope_theta);
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object())
    readField(j["rope_parameters"], "rope_theta", c.rope_theta);
  for (const auto& [key, value] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                                   {"hidden_size", c.hidden_size},
                                   {"intermediate_size", c.intermediate_size},
                                   {"num_hidden_layers", c.num_hidden_layers},
                                   {"num_attention_heads", c.num_attention_heads},
                                   {"num_key_value_heads", c.num_key_value_heads},
                                   {"max_position_embeddings", c.max_position_embeddings}})
    requirePositive(key, value);
  requirePositiveReal("rms_norm_eps", c.rms_norm_eps);
  requirePositiveReal("rope_theta", c.rope_theta);
  if (c.hidden_size % c.num_attention_heads != 0)
    throw std::runtime_error("config field 'num_attention_heads' must divide hidden_size");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw std::runtime_error("config field 'num_key_value_heads' must divide num_attention_heads");
  return c;
}

MllmConfig mllmConfigFromJson(const nlohmann::json& j) {
  if (!j.is_object())  // an array or a number has no fields: the defaults must not stand in
    throw std::runtime_error("a model config is a JSON object, not " + std::string(j.type_name()));
  MllmConfig c;
  try {
    if (j.contains("vision_config")) c.vision = visionConfigFromJson(j.at("vision_config"));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("vision_config: ") + e.what());
  }
  try {
    if (j.contains("text_config")) c.text = lmConfigFromJson(j.at("text_config"));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("text_config: ") + e.what());
  }
  if (j.contains("vision_feature_layer")) {
    const auto& layers = j.at("vision_feature_layer");
    const bool valid = layers.is_number_integer() ||
                       (layers.is_array() && !layers.empty() &&
                        std::all_of(layers.begin(), layers.end(),
                                    [](const nlohmann::json& v) { return v.is_number_integer(); }));
    if (!valid)
      throw std::runtime_error(
          "config field 'vision_feature_layer' must be an integer or a non-empty list of "
          "integers, got " +
          layers.dump());
    c.vision_feature_layers =
        layers.is_array() ? layers.get<std::vector<int>>() : std::vector<int>{layers.get<int>()};
    // A layer the tower does not have fails here, where the file is named, not at the first
    // forward pass. Negative indices count from the end, as in transformers.
    const int count = c.vision.num_hidden_layers + 1;
    for (int layer : c.vision_feature_layers)
      if (layer >= count || layer < -count)
        throw std::runtime_error("config field 'vision_feature_layer' is " + std::to_string(layer) +
                                 ", outside the vision tower's " + std::to_string(-count) + ".." +
                                 std::to_string(count - 1));
  }
  readField(j, "prefix_bidirectional", c.prefix_bidirectional);
  readField(j, "image_token_index", c.image_token_id);
  readField(j, "image_token_id", c.image_token_id);  // transformers 5 spells it so
  std::string strategy = c.drop_first_vision_token ? "default" : "full";
  readField(j, "vision_feature_select_strategy", strategy);
  c.drop_first_vision_token = strategy == "default";
  if (strategy != "full" && strategy != "default")
    throw std::runtime_error(
        "config field 'vision_feature_select_strategy' must be \"full\" or "
        "\"default\"");
  readField(j, "multimodal_projector_bias", c.multimodal_projector_bias);
  // LlavaConfig may state the head's tying at the top, for the whole model.
  readField(j, "tie_word_embeddings", c.text.tie_word_embeddings);
  return c;
}

int MllmConfig::deepestFeatureLayer() const {
  // Negative indices count from the end (-1 = the last layer), so compare resolved positions.
  const int count = vision.num_hidden_layers + 1;
  auto resolved = [count](int layer) { return layer < 0 ? count + layer : layer; };
  return *std::max_element(vision_feature_layers.begin(), vision_feature_layers.end(),
                           [&](int a, int b) { return resolved(a) < resolved(b); });
}

nlohmann::json toJson(const VisionConfig& c) {
  return {{"model_type", "siglip_vision_model"},
          {"hidden_act", "gelu_pytorch_tanh"},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"num_hidden_layers", c.num_hidden_layers},
          {"num_attention_heads", c.num_attention_heads},
          {"num_channels", c.num_channels},
          {"image_size", c.image_size},
          {"patch_size", c.patch_size},
          {"layer_norm_eps", c.layer_norm_eps}};
}

nlohmann::json toJson(const LmConfig& c) {
  return {{"model_type", "qwen2"},
          {"hidden_act", "silu"},
          {"vocab_size", c.vocab_size},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"num_hidden_layers", c.num_hidden_layers},
          {"num_attention_heads", c.num_attention_heads},
          {"num_key_value_heads", c.num_key_value_heads},
          {"rms_norm_eps", c.rms_norm_eps},
          {"rope_theta", c.rope_theta},
          {"max_position_embeddings", c.max_position_embeddings},
          {"tie_word_embeddings", c.tie_word_embeddings}};
}

nlohmann::json toJson(const MllmConfig& c) {
  return {{"model_type", "llava"},
          {"architectures", {"LlavaForConditionalGeneration"}},
          {"projector_hidden_act", "gelu"},
          {"vision_config", toJson(c.vision)},
          {"text_config", toJson(c.text)},
          {"vision_feature_layer", c.vision_feature_layers.size() == 1
                                       ? nlohmann::json(c.vision_feature_layers[0])
                                       : nlohmann::json(c.vision_feature_layers)},
          {"vision_feature_select_strategy", c.drop_first_vision_token ? "default" : "full"},
          {"multimodal_projector_bias", c.multimodal_projector_bias},
          {"image_seq_length", c.imageTokens()},
          {"prefix_bidirectional", c.prefix_bidirectional},
          {"image_token_index", c.image_token_id}};
}

nlohmann::json readJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error(path + ": invalid JSON at byte " + std::to_string(e.byte) + ": " +
                             e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double
    throw std::runtime_error(path + ": invalid JSON: " + e.what());
  }
}

}  // namespace pivot
