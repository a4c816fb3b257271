// Model configurations as plain structs, read from and written to Hugging Face config.json files.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace pivot {

// SigLIP vision tower (transformers' SiglipVisionConfig).
struct VisionConfig {
  int hidden_size = 64;         // width D of every token
  int intermediate_size = 128;  // MLP hidden width
  int num_hidden_layers = 3;    // transformer blocks
  int num_attention_heads = 4;  // heads; D must divide evenly
  int num_channels = 3;         // image channels
  int image_size = 32;          // square input side, pixels
  int patch_size = 8;           // square patch side; image_size / patch_size patches per side
  double layer_norm_eps = 1e-6;
  int numPatches() const { return (image_size / patch_size) * (image_size / patch_size); }
};

// Qwen2 causal language model (transformers' Qwen2Config).
struct LmConfig {
  int vocab_size = 128;
  int hidden_size = 64;
  int intermediate_size = 176;  // SwiGLU hidden width
  int num_hidden_layers = 2;
  int num_attention_heads = 4;
  int num_key_value_heads = 2;  // grouped-query attention: heads share kv in groups
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int max_position_embeddings = 256;
  bool tie_word_embeddings = false;
  int headDim() const { return hidden_size / num_attention_heads; }
};

// The multimodal model: vision tower -> mlp2x_gelu projector -> language model.
struct MllmConfig {
  VisionConfig vision;
  LmConfig text;
  // LLaVA's vision_feature_layer: the hidden_states indices fed to the projector (-2 = the
  // penultimate layer); several are concatenated along the feature axis, as transformers does.
  std::vector<int> vision_feature_layers = {-2};
  bool prefix_bidirectional = true;  // image + question tokens attend both ways (prefix LM)
  int image_token_id = 3;            // id of the placeholder token replaced by image tokens
  // LLaVA's vision_feature_select_strategy: "default" drops the first vision token (a CLIP class
  // token), "full" keeps all (SigLIP has no class token).
  bool drop_first_vision_token = false;
  bool multimodal_projector_bias = true;
  int imageTokens() const { return vision.numPatches() - (drop_first_vision_token ? 1 : 0); }
  // The deepest layer the features need (HF-style index, resolved by the vision tower).
  int deepestFeatureLayer() const;
};

VisionConfig visionConfigFromJson(
    const nlohmann::json& j);  // throws std::runtime_error naming field
LmConfig lmConfigFromJson(const nlohmann::json& j);
MllmConfig mllmConfigFromJson(const nlohmann::json& j);
nlohmann::json toJson(const VisionConfig& c);
nlohmann::json toJson(const LmConfig& c);
nlohmann::json toJson(const MllmConfig& c);

// Reads a config.json file; the error names the file.
nlohmann::json readJsonFile(const std::string& path);

}  // namespace pivot
