// The whole configuration of a training run: plain structs with defaults, serialised whole (JSON)
// with every run. Old runs load: missing keys keep their defaults.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "config/vocabulary.h"
#include "data/shapes_world.h"
#include "model/model_config.h"

namespace pivot {

// The training stages: 0 pretrain (the encoder), 1a align, 1b instruct, then the stage-2 methods
// whose effect on the encoder the study compares: SFT, DPO, GRPO (online RL with verifiable
// rewards) and MPO (DPO's trainer with the weighted losses sigmoid + bco_pair + sft).
enum class Stage { Pretrain, Align, Instruct, Sft, Dpo, Grpo, Mpo };
const char* stageName(Stage s);
Stage stageFromName(const std::string& name);  // throws naming the value

struct TrainConfig {
  std::string preset = "tiny";  // the preset these values started from
  Stage stage = Stage::Dpo;    // pretrain (0: encoder), align (1a), instruct (1b), sft (2), dpo (2)
  MllmConfig model;            // architecture (HF names); text.vocab_size follows the tokenizer
  WorldConfig world;           // the ShapesWorld the samples come from
  int steps = 200;             // optimiser steps
  int batch_size = 32;         // samples (SFT) or pairs (DPO) per step
  int dataset_size = 20000;    // distinct training samples, cycled in seeded epochs (paper: 20K)
  uint64_t seed = 1;           // model init and data order
  double lr = 1e-3;            // peak learning rate of projector + LM
  double vision_lr = 1e-4;     // peak learning rate of the vision tower (0 = frozen)
  double weight_decay = 0.0;   // AdamW decoupled weight decay (paper: 0)
  double warmup_ratio = 0.03;  // share of steps with linear warmup (paper: 3%)
  double min_lr_ratio = 0.0;   // cosine decays to lr * min_lr_ratio
  double grad_clip = 1.0;      // max global grad norm (0 = off)
  // DPO / MPO: the temperature of the implicit reward; GRPO: the weight of the k3 KL to the frozen
  // stage-1 reference (0 = no KL and no reference forward), as TRL names both.
  double beta = 0.1;
  // DPO's loss terms (TRL's loss_type list; JSON "sigmoid" or "sigmoid,bco_pair,sft") with one
  // weight each (loss_weights; empty = 1 each). MPO's preset: sigmoid, bco_pair, sft at 0.8,
  // 0.2, 1.
  std::vector<DpoLoss> loss_type = {DpoLoss::Sigmoid};
  std::vector<double> loss_weights;
  double label_smoothing = 0.0;  // robust DPO: assumed share of flipped preference labels
  double sft_weight = 0.0;       // DPO: weight of an SFT term on the chosen answer (0 = pure DPO)
  // GRPO (TRL's GRPOConfig names): per prompt num_generations completions sampled from the policy
  // (batch_size counts completions, so batch_size / num_generations prompts a step), scored by
  // reward_funcs with reward_weights (empty = 1 each); advantages scaled by scale_rewards; the
  // clipped surrogate in [1 - epsilon, 1 + epsilon_high]; each generation batch reused for
  // num_iterations updates; grpo_loss_type (TRL's GRPO loss_type) aggregates the tokens.
  int num_generations = 8;
  int max_completion_length = 8;  // tokens a completion may take (ShapesWorld answers take 2-4)
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = 0;
  double epsilon = 0.2;
  double epsilon_high = 0.2;
  int num_iterations = 1;
  GrpoLoss grpo_loss_type = GrpoLoss::Dapo;
  RewardScaling scale_rewards = RewardScaling::Group;
  std::vector<RewardFunction> reward_funcs = {RewardFunction::Accuracy, RewardFunction::Format};
  std::vector<double> reward_weights;
  int log_completions_steps = 10;  // completions log every this many steps (0 = never)
  double conjunction_weight =
      0.0;  // stage 0: weight of an auxiliary multi-label loss on which
            // shape x colour conjunctions a scene holds (it helped the miniature's probes)
  bool align_trains_lm = true;  // stage 1a also trains the LM: the miniature LM has no language
                                // pre-training of its own (false = the paper's projector-only 1a)
  // PIVOT transplant: "RUN[@STEP]", a checkpoint folder, a Hugging Face LLaVA folder or a
  // SiglipVisionModel folder whose vision tower starts this fresh model (runs without a parent).
  std::string vision_init;
  bool freeze_vision = false;  // the vision tower never trains (a transplanted encoder)
  ProjectorInit projector_init =
      ProjectorInit::New;  // new | one_plus_one: reuse the source's first projector
                           // layer, frozen, plus a new second one (the paper's best)
  // A real model instead of ShapesWorld (stages align, instruct, sft, dpo): a Hugging Face LLaVA
  // folder whose weights start the run (without a parent) and whose tokenizer, chat template and
  // image processor make the batches, and a data file: LLaVA instructions (every stage but dpo)
  // or preference records.
  std::string model_dir;
  std::string data;
  std::string image_root;   // image paths of `data` are relative to it (default: its folder)
  std::string chat_format;  // "" = the tokenizer's recognised template
  int max_length = 1500;    // records whose prompt + chosen exceed it are skipped (the paper's)
  int max_images = 0;       // records with more images are skipped (0 = any; the paper's 1b: 1)
  // Bad records (malformed, a missing image, an image that does not decode) are counted and
  // skipped instead of stopping the run; a batch that meets an image that does not decode takes
  // the next good record in its place.
  bool skip_bad = false;
  int checkpoint_every = 0;  // steps between checkpoints (0 = only at the end)
  // A checkpoint also once this many minutes passed since the last, replacing the previous timed
  // one, so a stop or crash loses at most this much work (0 = off).
  double checkpoint_minutes = 5;
  // Evenly spaced checkpoints kept besides the final one, plus step 20 where the paper reads its
  // maps (the Inspect tab's step slider); stage 2 presets keep 4.
  int snapshots = 0;
  int eval_samples = 192;       // held-out samples scored at the end of the run
  std::string device = "auto";  // auto | cpu | cuda
  // fp32, or bf16: forward passes under autocast (matrix products in bfloat16), float32 master
  // weights, gradients and optimizer state; the same code path on CPU and CUDA.
  Precision dtype = Precision::Fp32;
  int threads = 0;  // CPU threads for torch (0 = all cores)

  bool realModel() const { return !model_dir.empty(); }
  bool isPreference() const { return stage == Stage::Dpo || stage == Stage::Mpo; }  // pairs
  bool isStageTwo() const { return stage >= Stage::Sft; }
  // A frozen copy of the starting model scores every step: DPO's and MPO's reference, GRPO's KL.
  bool needsReference() const { return isPreference() || (stage == Stage::Grpo && beta > 0); }
  bool trainsVision() const { return stage != Stage::Align && vision_lr > 0 && !freeze_vision; }
  bool trainsLanguage() const {
    return stage != Stage::Pretrain;
  }  // stage 0 trains the encoder only
};

// The built-in presets: "tiny" (seconds per stage, tests) and "mini" (the miniature study).
// A preset is a name or a path to a JSON file holding a TrainConfig (any subset of keys).
TrainConfig presetConfig(const std::string& preset, Stage stage);
// A preset file's content: {"preset": "tiny" | "mini" (the base, default tiny), config keys...},
// every key set by the rule --set uses (unknown keys, wrong types and fractions for integers are
// errors). `name` is recorded as the run's preset.
TrainConfig presetFromJson(const nlohmann::json& j, Stage stage, const std::string& name);
std::vector<std::string> builtinPresets();

nlohmann::json toJson(const TrainConfig& c);
TrainConfig trainConfigFromJson(const nlohmann::json& j);  // throws naming the field

// Applies "key=value" with a dotted key into the JSON form ("lr=1e-4", "model.text_config.
// hidden_size=96", "world.noise=4"). Throws "unknown key" / "bad value" naming the key.
void applyOverride(TrainConfig& c, const std::string& assignment);
// Several at once: each key and value checked as applyOverride does, then the resulting config
// validated once, so that settings that constrain each other can be given in any order.
void applyOverrides(TrainConfig& c, const std::vector<std::string>& assignments);

// Every stage, in enum order, and the stage-2 methods the study compares.
const std::vector<Stage>& allStages();
std::vector<Stage> stageTwoMethods();

// Checks ranges and consistency; throws naming the first bad field.
void validate(const TrainConfig& c);

// A preset's config for a stage with "key=value" overrides applied, validated.
TrainConfig makeConfig(const std::string& preset, Stage stage,
                       const std::vector<std::string>& overrides);

// The steps at which a run keeps a snapshot checkpoint (ascending, each in 1..steps-1).
std::vector<int> snapshotSteps(const TrainConfig& c);

// The stages a run of `stage` builds on when it has no parent run: the encoder's pre-training, then
// align, then instruct, all before SFT and DPO.
std::vector<Stage> prerequisiteStages(Stage stage);

// The one rule for which "key=value" overrides given for a stage also reach the stages it builds
// on: those that define what every stage of a chain shares, the architecture (model.*) and the data
// world (world.*), and how runs execute and are measured (device, dtype, threads,
// checkpoint_minutes, eval_samples). A training hyper-parameter (lr, steps, beta, seed, ...)
// belongs to the stage it was given for: a DPO learning rate must not become stage 1's.
bool overrideReachesEarlierStages(const std::string& assignment);

// The configurations of a chain that ends in `stage`: its prerequisite stages first (when
// `withPrerequisites`, i.e. the request has no parent run, and the request is not a real model,
// which starts from its own weights), then the stage itself; every one validated before anything
// runs. The command line and the window both train a request through this.
std::vector<TrainConfig> chainConfigs(const std::string& preset, Stage stage,
                                      const std::vector<std::string>& overrides,
                                      bool withPrerequisites);

}  // namespace pivot
