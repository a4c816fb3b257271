// A Hugging Face LLaVA model folder (SigLIP vision tower, mlp2x_gelu projector, Qwen2 LM) into our
// Mllm: config.json as LlavaConfig, weights in one model.safetensors or shards listed by
// model.safetensors.index.json, BF16 / F16 / F32 converted to float32, and parameter names in any
// of the layouts seen in the wild normalised by prefix rules:
//   hub           vision_tower.vision_model.*, multi_modal_projector.linear_1|2.*,
//                 language_model.model.*, language_model.lm_head.*
//   transformers  model.vision_tower.[vision_model.]*, model.multi_modal_projector.*,
//                 model.language_model.*, lm_head.*   (the in-memory names some trainers save)
//   llava-next    model.vision_tower.vision_tower.vision_model.*, model.mm_projector.0|2.*,
//                 model.layers.* / model.embed_tokens.* / model.norm.*, lm_head.*
// A missing or misshapen tensor is an error naming the file and the tensor; tensors no module
// uses (a SigLIP pooling head) are listed in the report.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/mllm.h"

namespace pivot {

struct HfModelReport {
  std::string folder;
  std::string layout;                 // hub | transformers | llava-next
  std::vector<std::string> files;     // the safetensors files read
  std::map<std::string, int> dtypes;  // dtype as stored -> number of tensors
  int64_t visionParameters = 0, projectorParameters = 0, lmParameters = 0;
  std::vector<std::string> unused;  // names in the files that no parameter takes
  bool tiedHead = false;            // no lm_head: the embedding matrix is the head
};

struct HfLlava {
  MllmConfig config;
  Mllm model{nullptr};
  HfModelReport report;
};

// The LlavaConfig of a config.json as our MllmConfig (causal attention, as HF computes it).
// Throws naming `source` and the field for anything this model does not implement.
MllmConfig llavaConfigFromHf(const nlohmann::json& config, const std::string& source);

// Our name for a tensor of any layout ("" when it belongs to no part we know), and the layout the
// name reveals ("" when the name is the same in several).
std::string canonicalLlavaName(const std::string& name, std::string* layout = nullptr);

// Reads the folder into a float32 model on the CPU, in eval mode.
HfLlava loadHfLlava(const std::string& folder);

// Writes `model` as a LLaVA folder in the hub layout, as transformers' save_pretrained does:
// config.json (LlavaConfig), preprocessor_config.json (SigLIP: resize to the image size, bicubic,
// mean = std = 0.5), and the weights in `dtype`, in one model.safetensors or, past shardBytes,
// shards model-0000k-of-0000n.safetensors with model.safetensors.index.json. loadHfLlava reads it
// back bit-exactly (for float32; for bf16 exactly what the rounding kept).
// "bf16" | "f16" | "f32" (the command line's names for a stored dtype); throws for another.
torch::ScalarType storedDtypeFromName(const std::string& name);

struct HfExportOptions {
  torch::ScalarType dtype = torch::kBFloat16;
  int64_t shardBytes = int64_t{2} << 30;
};
void saveHfLlava(Mllm& model, const std::string& folder, const HfExportOptions& options = {});
// The vision encoder alone as a SiglipVisionModel folder (config.json, model.safetensors with
// "vision_model.*" names): what PIVOT users take away.
void saveSiglipVision(Mllm& model, const std::string& folder,
                      torch::ScalarType dtype = torch::kFloat32);

// A trained vision encoder to transplant (PIVOT), from any folder that holds one:
//   a workbench checkpoint (our names, vision_tower.*),
//   a Hugging Face LLaVA folder (any name layout above; sharded or not),
//   a SiglipVisionModel or full SiglipModel folder (vision_model.*; what `pivot export` writes as
//   vision_encoder/ and what google/siglip-* checkpoints are).
// Only the encoder's tensors (and a LLaVA source's first projector layer) are read, through the
// mapped reader: the source's language model never enters memory.
struct VisionEncoderSource {
  std::string kind;  // "checkpoint" | "llava" | "siglip"
  VisionConfig vision;
  TensorMap tower;  // names inside the tower: embeddings.*, encoder.*, post_layernorm.*
  TensorMap
      projectorFirstLayer;  // weight[, bias] of multi_modal_projector.linear_1 (LLaVA sources)
  int textHiddenSize = 0;   // the source LM's width (0 without one)
  std::vector<int> featureLayers;  // the source's vision_feature_layer (empty without one)
};
// Throws naming the folder: no config.json, a model type that holds no SigLIP tower, no weights.
VisionEncoderSource readVisionEncoder(const std::string& folder);

// Runs the model on recorded inputs (pixel_values, input_ids, attention_mask, optional
// position_ids; a missing tensor is an error naming `source`) and, where the file holds them,
// gives the max abs difference of image_features and of logits (compared where the mask is 1).
struct RecordedComparison {
  std::optional<double> imageFeatures, logits;
  bool finite = true;  // the model's own image features and logits (where the mask is 1)
};
RecordedComparison compareWithRecorded(Mllm& model, const TensorMap& io, const std::string& source);

}  // namespace pivot
