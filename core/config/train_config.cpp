#include "config/train_config.h"

#include "config/parse_number.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "config/json_field.h"
#include "text/word_tokenizer.h"

namespace pivot {
namespace {

const char* kStageNames[] = {"pretrain", "align", "instruct", "sft", "dpo", "grpo", "mpo"};
constexpr int kNumStages = 7;

nlohmann::json worldToJson(const WorldConfig& w) {
  return {{"seed", w.seed},
          {"image_size", w.image_size},
          {"min_objects", w.min_objects},
          {"max_objects", w.max_objects},
          {"min_radius_pct", w.min_radius_pct},
          {"max_radius_pct", w.max_radius_pct},
          {"clutter", w.clutter},
          {"noise", w.noise},
          {"rejected_kind", w.rejected_kind == RejectedKind::InScene ? "in_scene" : "random"}};
}

template <typename T>
void readField(const nlohmann::json& j, const char* key, T& out, const std::string& path) {
  readJsonField(j, key, out, path);
}

// A list field: "a,b,c" (what --set and the launch panel give) or a JSON list (TRL's form).
std::vector<std::string> listField(const nlohmann::json& j, const char* key) {
  std::vector<std::string> out;
  const auto& v = j.at(key);
  const auto bad = [&] {
    return std::runtime_error(std::string("config field '") + key +
                              "' must be a list or a comma-separated string, got " + v.dump());
  };
  if (v.is_array()) {
    for (const auto& e : v) {
      if (e.is_string())
        out.push_back(e.get<std::string>());
      else if (e.is_number())
        out.push_back(e.dump());
      else
        throw bad();
    }
    return out;
  }
  if (!v.is_string()) throw bad();
  const std::string text = v.get<std::string>();
  size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    const auto comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

template <typename E>
std::vector<E> namesField(const nlohmann::json& j, const char* key, std::vector<E> fallback,
                          E (*fromName)(const std::string&)) {
  if (!j.contains(key)) return fallback;
  std::vector<E> out;
  for (const auto& n : listField(j, key)) {
    try {
      out.push_back(fromName(n));
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string("config field '") + key + "': " + e.what());
    }
  }
  return out;
}

std::vector<double> numbersField(const nlohmann::json& j, const char* key) {
  std::vector<double> out;
  if (!j.contains(key)) return out;
  for (const auto& n : listField(j, key)) {
    const auto v = parseNumber(n);
    if (!v)
      throw std::runtime_error(std::string("config field '") + key + "': '" + n +
                               "' is not a number");
    out.push_back(*v);
  }
  return out;
}

template <typename E>
std::string joinNames(const std::vector<E>& values) {
  std::string out;
  for (const auto& v : values) out += (out.empty() ? "" : ",") + std::string(name(v));
  return out;
}

std::string joinNumbers(const std::vector<double>& values) {
  std::string out;
  for (double v : values) {
    std::ostringstream t;
    t << v;
    out += (out.empty() ? "" : ",") + t.str();
  }
  return out;
}

WorldConfig worldFromJson(const nlohmann::json& j) {
  WorldConfig w;
  readField(j, "seed", w.seed, "world.");
  readField(j, "image_size", w.image_size, "world.");
  readField(j, "min_objects", w.min_objects, "world.");
  readField(j, "max_objects", w.max_objects, "world.");
  readField(j, "min_radius_pct", w.min_radius_pct, "world.");
  readField(j, "max_radius_pct", w.max_radius_pct, "world.");
  readField(j, "clutter", w.clutter, "world.");
  readField(j, "noise", w.noise, "world.");
  std::string kind = "in_scene";
  readField(j, "rejected_kind", kind, "world.");
  if (kind != "in_scene" && kind != "random")
    throw std::runtime_error(
        "config field 'world.rejected_kind' must be in_scene or random, got '" + kind + "'");
  w.rejected_kind = kind == "in_scene" ? RejectedKind::InScene : RejectedKind::Random;
  return w;
}

TrainConfig tinyPreset(Stage stage) {
  TrainConfig c;
  c.preset = "tiny";
  c.stage = stage;
  c.model.vision = VisionConfig{};  // D 64, 3 layers, 32 px, patch 8 -> 16 tokens
  c.model.text.hidden_size = 64;
  c.model.text.intermediate_size = 176;
  c.model.text.num_hidden_layers = 2;
  c.model.text.num_attention_heads = 4;
  c.model.text.num_key_value_heads = 2;
  c.world.image_size = 32;
  c.world.max_objects = 2;
  c.batch_size = 32;
  switch (stage) {
    case Stage::Pretrain:
      c.steps = 400;
      c.batch_size = 64;
      c.lr = 1e-3;
      c.vision_lr = 1e-3;
      break;
    case Stage::Align:
      c.steps = 150;
      c.lr = 2e-3;
      c.vision_lr = 0;
      break;
    case Stage::Instruct:
      c.steps = 400;
      c.lr = 2e-3;
      c.vision_lr = 1e-3;
      break;
    case Stage::Sft:
      c.steps = 120;
      c.lr = 2e-4;
      c.vision_lr = 2e-4;
      break;
    case Stage::Dpo:
    case Stage::Mpo:
      c.steps = 120;
      c.lr = 1e-4;
      c.vision_lr = 1e-4;
      break;
    case Stage::Grpo:  // 32 completions a step: 4 prompts x 8
      c.steps = 60;
      c.lr = 1e-4;
      c.vision_lr = 1e-4;
      c.beta = 0.04;  // VLM-R1's KL weight
      break;
  }
  if (stage == Stage::Mpo) {  // InternVL's MPO, as TRL's DPOTrainer spells it
    c.loss_type = {DpoLoss::Sigmoid, DpoLoss::BcoPair, DpoLoss::Sft};
    c.loss_weights = {0.8, 0.2, 1.0};
  }
  // Stage 2 keeps a few checkpoints along the way: the Inspect tab's step slider reads maps early
  // in training, as the paper does (around step 20).
  if (c.isStageTwo()) c.snapshots = 4;
  return c;
}

TrainConfig miniPreset(Stage stage) {
  TrainConfig c = tinyPreset(stage);
  c.preset = "mini";
  c.model.vision.image_size = 48;
  c.model.vision.patch_size = 6;  // 8 x 8 = 64 image tokens
  c.model.vision.hidden_size = 96;
  c.model.vision.intermediate_size = 192;
  c.model.vision.num_hidden_layers = 4;
  c.model.text.hidden_size = 128;
  c.model.text.intermediate_size = 352;
  c.model.text.num_hidden_layers = 4;
  c.world.image_size = 48;
  c.world.max_objects = 3;
  // Larger objects (7-11 px radius at 48 px was too small a shape cue): with stage 0 this took
  // stage-1 shape questions from 28% (chance 25%) to 56% on 192 held-out questions.
  c.world.min_radius_pct = 20;
  c.world.max_radius_pct = 32;
  // Sized for `pivot experiment --preset mini --seeds 3` within 30 minutes on 2 CPU cores, with
  // stage 1b kept long: at 2000 steps stage 1 fell to 63% (shape 34%, position 59%).
  switch (stage) {
    case Stage::Pretrain:
      c.steps = 1000;
      c.batch_size = 64;
      c.lr = 1e-3;
      c.vision_lr = 1e-3;
      c.conjunction_weight = 1.0;  // shape x colour labels beside the captions (SCIENCE.md)
      break;
    case Stage::Align:
      c.steps = 300;
      c.lr = 1e-3;
      c.vision_lr = 0;
      break;
    case Stage::Instruct:
      c.steps = 3000;
      c.lr = 1e-3;
      c.vision_lr = 5e-4;
      break;
    case Stage::Sft:
      c.steps = 300;
      c.lr = 1e-4;
      c.vision_lr = 1e-4;
      break;
    case Stage::Dpo:
    case Stage::Mpo:
      c.steps = 300;
      c.lr = 5e-5;
      c.vision_lr = 5e-5;
      break;
    case Stage::Grpo:
      // SFT's steps and learning rates, and as many prompts a step as SFT has samples: 32 prompts
      // x 8 completions. With 4 prompts a step (SFT's 32 sequences) the sampled accuracy stayed
      // flat over 300 steps (0.68 -> 0.65; 8 prompts at 3x the rate: 0.65 -> 0.68, noise); with
      // 32 it rose from 0.65 to 0.70 by step 180 while the entropy fell (base 1 of the mini study).
      c.steps = 300;
      c.batch_size = 256;
      c.lr = 1e-4;
      c.vision_lr = 1e-4;
      break;
  }
  return c;
}

// Parses `text` as the same JSON type as `like`; throws naming the key.
nlohmann::json parseLike(const nlohmann::json& like, const std::string& text,
                         const std::string& key) {
  auto bad = [&](const std::string& why) {
    return std::runtime_error("bad value for '" + key + "': '" + text + "' (" + why + ")");
  };
  try {
    if (like.is_string()) return text;
    if (like.is_boolean()) {
      if (text == "true" || text == "1") return true;
      if (text == "false" || text == "0") return false;
      throw bad("expected true or false");
    }
    size_t used = 0;
    if (like.is_number_unsigned()) {
      if (!text.empty() && text[0] == '-') throw bad("expected a non-negative integer");
      auto v = std::stoull(text, &used);
      if (used != text.size()) throw bad("expected an integer");
      return v;
    }
    if (like.is_number_integer()) {
      auto v = std::stoll(text, &used);
      if (used != text.size()) throw bad("expected an integer");
      return v;
    }
    if (like.is_number_float()) {
      const auto v = parseNumber(text);
      if (!v) throw bad("expected a finite number");
      return *v;
    }
  } catch (const std::invalid_argument&) {
    throw bad("not a number");
  } catch (const std::out_of_range&) {
    throw bad("out of range");
  }
  throw bad("this key holds a structure, set one of its fields");
}

// The node a dotted key names in a config's JSON form; throws "unknown key" naming it.
nlohmann::json& configNode(nlohmann::json& j, const std::string& key) {
  nlohmann::json* node = &j;
  size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part =
        key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(part))
      throw std::runtime_error("unknown key '" + key + "'");
    node = &(*node)[part];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return *node;
}

// The one rule for setting a config value, from --set, a preset file, a sweep or the launch panel:
// the key must exist and be settable, and the value must have the key's type (an integer key takes
// only a whole number; a structure is set field by field).
void assignConfigValue(nlohmann::json& j, const std::string& key, const nlohmann::json& value) {
  if (key == "preset" || key == "stage" || key == "model.model_type" ||
      key == "model.architectures" || key.rfind("model.vision_config.model_type", 0) == 0 ||
      key.rfind("model.text_config.model_type", 0) == 0 || key == "model.projector_hidden_act" ||
      key == "model.vision_config.hidden_act" || key == "model.text_config.hidden_act")
    throw std::runtime_error("key '" + key + "' cannot be set" +
                             (key == "preset" || key == "stage"
                                  ? std::string("; use --preset/--stage")
                                  : std::string()));
  nlohmann::json& node = configNode(j, key);
  const auto bad = [&](const std::string& why) {
    return std::runtime_error("bad value for '" + key + "': " + value.dump() + " (" + why + ")");
  };
  if (node.is_object()) throw bad("this key holds a structure, set one of its fields");
  if (node.is_boolean() && !value.is_boolean()) throw bad("expected true or false");
  if (node.is_string() && !value.is_string()) throw bad("expected a string");
  if (node.is_number_integer() || node.is_number_unsigned()) {
    const bool whole = value.is_number_integer() || value.is_number_unsigned() ||
                       (value.is_number_float() && std::isfinite(value.get<double>()) &&
                        std::floor(value.get<double>()) == value.get<double>() &&
                        std::fabs(value.get<double>()) < 9.0e15);
    if (!whole) throw bad("expected an integer");
    if (node.is_number_unsigned() && value.get<double>() < 0)
      throw bad("expected a non-negative integer");
    node =
        value.is_number_float() ? nlohmann::json(static_cast<int64_t>(value.get<double>())) : value;
    return;
  }
  if (node.is_number_float()) {
    if (!value.is_number() || !std::isfinite(value.get<double>()))
      throw bad("expected a finite number");
    node = value.get<double>();
    return;
  }
  node = value;
}

// Converts an assigned JSON form back and checks it whole (one image size for model and data).
TrainConfig fromAssignedJson(const nlohmann::json& j) {
  TrainConfig updated = trainConfigFromJson(j);
  updated.world.image_size = updated.model.vision.image_size;
  validate(updated);
  return updated;
}

// Every leaf of a preset file as "a.b.c" -> value.
void flattenLeaves(const nlohmann::json& j, const std::string& prefix,
                   std::vector<std::pair<std::string, nlohmann::json>>& out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object() && !it->empty())
      flattenLeaves(*it, key, out);
    else
      out.emplace_back(key, *it);
  }
}

}  // namespace

TrainConfig presetFromJson(const nlohmann::json& j, Stage stage, const std::string& name) {
  if (!j.is_object()) throw std::runtime_error("a preset is a JSON object of config keys");
  std::string base = "tiny";
  if (j.contains("preset")) {
    if (!j["preset"].is_string())
      throw std::runtime_error("'preset' (the base preset) must be \"tiny\" or \"mini\"");
    base = j["preset"].get<std::string>();
  }
  if (base != "tiny" && base != "mini")
    throw std::runtime_error("unknown base preset '" + base + "' (expected tiny or mini)");
  nlohmann::json merged = toJson(base == "mini" ? miniPreset(stage) : tinyPreset(stage));
  std::vector<std::pair<std::string, nlohmann::json>> leaves;
  flattenLeaves(j, "", leaves);
  for (const auto& [key, value] : leaves)
    if (key != "preset") assignConfigValue(merged, key, value);
  merged["preset"] = name;
  return fromAssignedJson(merged);
}

namespace {

// A preset file; errors name it.
TrainConfig presetFromJsonFile(const std::string& path, Stage stage) {
  const auto j = readJsonFile(path);
  try {
    return presetFromJson(j, stage, path);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

}  // namespace

const char* stageName(Stage s) { return kStageNames[static_cast<int>(s)]; }

Stage stageFromName(const std::string& name) {
  for (int i = 0; i < kNumStages; ++i)
    if (name == kStageNames[i]) return static_cast<Stage>(i);
  throw std::runtime_error("unknown stage '" + name +
                           "' (expected pretrain, align, instruct, sft, dpo, grpo or mpo)");
}

const std::vector<Stage>& allStages() {
  static const std::vector<Stage> stages = [] {
    std::vector<Stage> s;
    for (int i = 0; i < kNumStages; ++i) s.push_back(static_cast<Stage>(i));
    return s;
  }();
  return stages;
}

std::vector<Stage> stageTwoMethods() { return {Stage::Sft, Stage::Dpo, Stage::Grpo, Stage::Mpo}; }

std::vector<std::string> builtinPresets() { return {"tiny", "mini"}; }

TrainConfig presetConfig(const std::string& preset, Stage stage) {
  TrainConfig c;
  if (preset == "tiny") {
    c = tinyPreset(stage);
  } else if (preset == "mini") {
    c = miniPreset(stage);
  } else if (preset.size() > 5 && preset.substr(preset.size() - 5) == ".json") {
    c = presetFromJsonFile(preset, stage);
  } else {
    throw std::runtime_error("unknown preset '" + preset +
                             "' (expected tiny, mini or a .json file)");
  }
  c.model.text.vocab_size = static_cast<int>(WordTokenizer::shapesWorld().vocabSize());
  c.model.image_token_id = static_cast<int>(WordTokenizer::kImage);
  c.world.image_size = c.model.vision.image_size;
  return c;
}

nlohmann::json toJson(const TrainConfig& c) {
  return {{"preset", c.preset},
          {"stage", stageName(c.stage)},
          {"model", toJson(c.model)},
          {"world", worldToJson(c.world)},
          {"steps", c.steps},
          {"batch_size", c.batch_size},
          {"dataset_size", c.dataset_size},
          {"seed", c.seed},
          {"lr", c.lr},
          {"vision_lr", c.vision_lr},
          {"weight_decay", c.weight_decay},
          {"warmup_ratio", c.warmup_ratio},
          {"min_lr_ratio", c.min_lr_ratio},
          {"grad_clip", c.grad_clip},
          {"beta", c.beta},
          {"loss_type", joinNames(c.loss_type)},
          {"loss_weights", joinNumbers(c.loss_weights)},
          {"label_smoothing", c.label_smoothing},
          {"sft_weight", c.sft_weight},
          {"num_generations", c.num_generations},
          {"max_completion_length", c.max_completion_length},
          {"temperature", c.temperature},
          {"top_p", c.top_p},
          {"top_k", c.top_k},
          {"epsilon", c.epsilon},
          {"epsilon_high", c.epsilon_high},
          {"num_iterations", c.num_iterations},
          {"grpo_loss_type", name(c.grpo_loss_type)},
          {"scale_rewards", name(c.scale_rewards)},
          {"reward_funcs", joinNames(c.reward_funcs)},
          {"reward_weights", joinNumbers(c.reward_weights)},
          {"log_completions_steps", c.log_completions_steps},
          {"conjunction_weight", c.conjunction_weight},
          {"align_trains_lm", c.align_trains_lm},
          {"vision_init", c.vision_init},
          {"freeze_vision", c.freeze_vision},
          {"projector_init", name(c.projector_init)},
          {"model_dir", c.model_dir},
          {"data", c.data},
          {"image_root", c.image_root},
          {"chat_format", c.chat_format},
          {"max_length", c.max_length},
          {"max_images", c.max_images},
          {"skip_bad", c.skip_bad},
          {"checkpoint_every", c.checkpoint_every},
          {"checkpoint_minutes", c.checkpoint_minutes},
          {"snapshots", c.snapshots},
          {"eval_samples", c.eval_samples},
          {"device", c.device},
          {"dtype", name(c.dtype)},
          {"threads", c.threads}};
}

TrainConfig trainConfigFromJson(const nlohmann::json& j) {
  TrainConfig c;
  readField(j, "preset", c.preset, "");
  std::string stage = stageName(c.stage);
  readField(j, "stage", stage, "");
  c.stage = stageFromName(stage);
  try {
    if (j.contains("model")) c.model = mllmConfigFromJson(j["model"]);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("model.") + e.what());
  }
  if (j.contains("world")) c.world = worldFromJson(j["world"]);
  readField(j, "steps", c.steps, "");
  readField(j, "batch_size", c.batch_size, "");
  readField(j, "dataset_size", c.dataset_size, "");
  readField(j, "seed", c.seed, "");
  readField(j, "lr", c.lr, "");
  readField(j, "vision_lr", c.vision_lr, "");
  readField(j, "weight_decay", c.weight_decay, "");
  readField(j, "warmup_ratio", c.warmup_ratio, "");
  readField(j, "min_lr_ratio", c.min_lr_ratio, "");
  readField(j, "grad_clip", c.grad_clip, "");
  readField(j, "beta", c.beta, "");
  c.loss_type = namesField(j, "loss_type", c.loss_type, dpoLossFromName);
  c.loss_weights = numbersField(j, "loss_weights");
  readField(j, "label_smoothing", c.label_smoothing, "");
  readField(j, "sft_weight", c.sft_weight, "");
  readField(j, "num_generations", c.num_generations, "");
  readField(j, "max_completion_length", c.max_completion_length, "");
  readField(j, "temperature", c.temperature, "");
  readField(j, "top_p", c.top_p, "");
  readField(j, "top_k", c.top_k, "");
  readField(j, "epsilon", c.epsilon, "");
  readField(j, "epsilon_high", c.epsilon_high, "");
  readField(j, "num_iterations", c.num_iterations, "");
  c.grpo_loss_type =
      namesField<GrpoLoss>(j, "grpo_loss_type", {c.grpo_loss_type}, grpoLossFromName).at(0);
  c.scale_rewards =
      namesField<RewardScaling>(j, "scale_rewards", {c.scale_rewards}, rewardScalingFromName).at(0);
  c.reward_funcs = namesField(j, "reward_funcs", c.reward_funcs, rewardFunctionFromName);
  c.reward_weights = numbersField(j, "reward_weights");
  readField(j, "log_completions_steps", c.log_completions_steps, "");
  readField(j, "conjunction_weight", c.conjunction_weight, "");
  readField(j, "align_trains_lm", c.align_trains_lm, "");
  readField(j, "vision_init", c.vision_init, "");
  readField(j, "freeze_vision", c.freeze_vision, "");
  std::string projectorInit = name(c.projector_init);
  readField(j, "projector_init", projectorInit, "");
  try {
    c.projector_init = projectorInitFromName(projectorInit);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("config field 'projector_init': ") + e.what());
  }
  readField(j, "model_dir", c.model_dir, "");
  readField(j, "data", c.data, "");
  readField(j, "image_root", c.image_root, "");
  readField(j, "chat_format", c.chat_format, "");
  readField(j, "max_length", c.max_length, "");
  readField(j, "max_images", c.max_images, "");
  readField(j, "skip_bad", c.skip_bad, "");
  readField(j, "checkpoint_every", c.checkpoint_every, "");
  readField(j, "checkpoint_minutes", c.checkpoint_minutes, "");
  readField(j, "snapshots", c.snapshots, "");
  readField(j, "eval_samples", c.eval_samples, "");
  readField(j, "device", c.device, "");
  std::string dtype = name(c.dtype);
  readField(j, "dtype", dtype, "");
  try {
    c.dtype = precisionFromName(dtype);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("config field 'dtype': ") + e.what());
  }
  readField(j, "threads", c.threads, "");
  return c;
}

void applyOverride(TrainConfig& c, const std::string& assignment) {
  applyOverrides(c, {assignment});
}

void applyOverrides(TrainConfig& c, const std::vector<std::string>& assignments) {
  nlohmann::json j = toJson(c);
  for (const auto& assignment : assignments) {  // each key and value checked on its own
    const auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::runtime_error("bad --set '" + assignment + "' (expected key=value)");
    const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
    const nlohmann::json& node = configNode(j, key);
    assignConfigValue(j, key, parseLike(node, text, key));
  }
  c = fromAssignedJson(j);  // the whole checked once: batch_size=10 num_generations=2 in any order
}

void validate(const TrainConfig& c) {
  auto require = [](bool ok, const std::string& msg) {
    if (!ok) throw std::runtime_error(msg);
  };
  require(c.steps > 0, "steps must be positive");
  require(c.batch_size > 0, "batch_size must be positive");
  require(c.dataset_size >= c.batch_size, "dataset_size must be at least batch_size");
  require(c.lr > 0 && c.lr < 1, "lr must be in (0, 1)");
  require(c.vision_lr >= 0 && c.vision_lr < 1, "vision_lr must be in [0, 1)");
  require(c.weight_decay >= 0, "weight_decay must be >= 0");
  require(c.warmup_ratio >= 0 && c.warmup_ratio < 1, "warmup_ratio must be in [0, 1)");
  require(c.min_lr_ratio >= 0 && c.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]");
  require(c.grad_clip >= 0, "grad_clip must be >= 0");
  require(
      c.stage == Stage::Grpo ? c.beta >= 0 : c.beta > 0,
      c.stage == Stage::Grpo ? "beta (GRPO's KL weight) must be >= 0" : "beta must be positive");
  require(!c.loss_type.empty(), "loss_type needs at least one loss");
  for (size_t i = 0; i < c.loss_type.size(); ++i)
    for (size_t k = i + 1; k < c.loss_type.size(); ++k)
      require(c.loss_type[i] != c.loss_type[k],
              std::string("loss_type lists ") + name(c.loss_type[i]) + " twice");
  require(c.loss_weights.empty() || c.loss_weights.size() == c.loss_type.size(),
          "loss_weights needs one weight per loss_type (" + std::to_string(c.loss_type.size()) +
              "), got " + std::to_string(c.loss_weights.size()));
  for (double w : c.loss_weights) require(w >= 0, "loss_weights must be >= 0");
  require(c.num_generations >= 2,
          "num_generations must be at least 2 (advantages compare a group)");
  require(c.stage != Stage::Grpo || c.batch_size % c.num_generations == 0,
          "batch_size (completions per step) must be a multiple of num_generations");
  require(c.max_completion_length > 0, "max_completion_length must be positive");
  require(c.temperature > 0, "temperature must be positive (GRPO samples its completions)");
  require(c.top_p > 0 && c.top_p <= 1, "top_p must be in (0, 1]");
  require(c.top_k >= 0, "top_k must be >= 0 (0 = every token)");
  require(c.epsilon > 0 && c.epsilon < 1, "epsilon must be in (0, 1)");
  require(c.epsilon_high > 0, "epsilon_high must be positive");
  require(c.num_iterations >= 1, "num_iterations must be at least 1");
  require(!c.reward_funcs.empty(), "reward_funcs needs at least one reward function");
  require(c.reward_weights.empty() || c.reward_weights.size() == c.reward_funcs.size(),
          "reward_weights needs one weight per reward function (" +
              std::to_string(c.reward_funcs.size()) + "), got " +
              std::to_string(c.reward_weights.size()));
  require(c.log_completions_steps >= 0, "log_completions_steps must be >= 0");

  require(c.label_smoothing >= 0 && c.label_smoothing < 0.5, "label_smoothing must be in [0, 0.5)");
  require(c.sft_weight >= 0, "sft_weight must be >= 0");
  require(c.conjunction_weight >= 0, "conjunction_weight must be >= 0");
  require(c.checkpoint_every >= 0, "checkpoint_every must be >= 0");
  require(c.checkpoint_minutes >= 0, "checkpoint_minutes must be >= 0");
  require(c.snapshots >= 0 && c.snapshots <= 100, "snapshots must be in 0..100");
  require(c.projector_init == ProjectorInit::New || !c.vision_init.empty(),
          "projector_init=one_plus_one needs vision_init");
  require(c.eval_samples >= 0, "eval_samples must be >= 0");
  require(!c.realModel() || c.stage != Stage::Pretrain,
          "model_dir (a real model) trains stages align, instruct, sft, dpo, grpo and mpo (stage 0 "
          "pre-trains ShapesWorld encoders only)");
  require(c.max_length > 0, "max_length must be positive");
  require(c.max_images >= 0, "max_images must be 0 (any) or positive");
  require(c.device == "auto" || c.device == "cpu" || c.device == "cuda",
          "device must be auto, cpu or cuda");
  require(c.threads >= 0, "threads must be >= 0");
  const auto& v = c.model.vision;
  const auto& t = c.model.text;
  require(v.hidden_size > 0 && v.intermediate_size > 0 && v.num_hidden_layers > 0 &&
              v.num_attention_heads > 0 && v.image_size > 0 && v.patch_size > 0 &&
              v.num_channels > 0,
          "model.vision_config sizes must be positive");
  require(t.hidden_size > 0 && t.intermediate_size > 0 && t.num_hidden_layers > 0 &&
              t.num_attention_heads > 0 && t.num_key_value_heads > 0 && t.vocab_size > 0 &&
              t.max_position_embeddings > 0,
          "model.text_config sizes must be positive");
  require(c.model.vision.patch_size <= c.model.vision.image_size,
          "model.vision_config.patch_size must not exceed image_size");
  require(c.model.vision.hidden_size % c.model.vision.num_attention_heads == 0,
          "model.vision_config.num_attention_heads must divide hidden_size");
  require(c.model.text.hidden_size % c.model.text.num_attention_heads == 0,
          "model.text_config.num_attention_heads must divide hidden_size");
  require(c.model.text.num_attention_heads % c.model.text.num_key_value_heads == 0,
          "model.text_config.num_key_value_heads must divide num_attention_heads");
  require(c.model.text.headDim() % 2 == 0, "model.text_config head dim must be even (rotary)");
  ShapesWorld check(c.world);  // throws naming the bad world field
  (void)check;
}

TrainConfig makeConfig(const std::string& preset, Stage stage,
                       const std::vector<std::string>& overrides) {
  TrainConfig cfg = presetConfig(preset, stage);
  applyOverrides(cfg, overrides);
  validate(cfg);
  return cfg;
}

std::vector<int> snapshotSteps(const TrainConfig& c) {
  std::vector<int> steps;
  if (c.snapshots <= 0) return steps;
  if (c.steps > 40) steps.push_back(20);
  for (int k = 1; k <= c.snapshots; ++k) {
    const int s =
        static_cast<int>(std::lround(static_cast<double>(k) * c.steps / (c.snapshots + 1)));
    if (s > 0 && s < c.steps) steps.push_back(s);
  }
  std::sort(steps.begin(), steps.end());
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  return steps;
}

std::vector<Stage> prerequisiteStages(Stage stage) {
  switch (stage) {
    case Stage::Pretrain:
      return {};
    case Stage::Align:
      return {Stage::Pretrain};
    case Stage::Instruct:
      return {Stage::Pretrain, Stage::Align};
    default:
      return {Stage::Pretrain, Stage::Align, Stage::Instruct};
  }
}

bool overrideReachesEarlierStages(const std::string& assignment) {
  const std::string key = assignment.substr(0, assignment.find('='));
  if (key.rfind("model.", 0) == 0 || key.rfind("world.", 0) == 0) return true;
  for (const char* shared : {"device", "dtype", "threads", "checkpoint_minutes", "eval_samples"})
    if (key == shared) return true;
  return false;
}

std::vector<TrainConfig> chainConfigs(const std::string& preset, Stage stage,
                                      const std::vector<std::string>& overrides,
                                      bool withPrerequisites) {
  std::vector<TrainConfig> chain;
  const TrainConfig requested = makeConfig(preset, stage, overrides);
  // A real model starts from its own weights: nothing to run before it.
  if (withPrerequisites && !requested.realModel()) {
    // A transplant (vision_init) is a fresh model around a trained encoder: no stage 0 of its own,
    // and the encoder, its freezing and the projector's start reach its alignment too.
    const bool transplant = !requested.vision_init.empty();
    std::vector<std::string> shared;
    for (const auto& o : overrides) {
      const std::string key = o.substr(0, o.find('='));
      if (overrideReachesEarlierStages(o) ||
          (transplant &&
           (key == "vision_init" || key == "freeze_vision" || key == "projector_init")))
        shared.push_back(o);
    }
    for (Stage s : prerequisiteStages(stage))
      if (!(transplant && s == Stage::Pretrain)) chain.push_back(makeConfig(preset, s, shared));
  }
  chain.push_back(requested);
  return chain;
}

}  // namespace pivot
