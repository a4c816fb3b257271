// The `pivot` command's sub-commands. Each returns the process exit code; errors are thrown as
// std::runtime_error and main() turns them into one line and exit code 2 (bad input), 1 (a run
// that failed) or 128 + the signal (a run stopped by SIGINT/SIGTERM).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/run_store.h"
#include "study/experiment.h"

namespace pivot::cli {

struct TrainArgs {
  std::string preset = "tiny";
  std::string stage = "dpo";
  std::string from;    // parent run (id or name)
  std::string resume;  // run to continue
  std::string name;
  std::vector<std::string> sets;                   // key=value overrides
  std::string model, data, imageRoot, chatFormat;  // a real model (HF LLaVA folder) and its data
  bool quiet = false;
  std::string progress = "human";   // human | jsonl (one JSON object a line, for the window)
  bool skipBad = false;             // config key skip_bad; beside --resume, from there on
  int nproc = 1;                    // data-parallel processes (app/cli/launch.h)
  std::string optionsBesideResume;  // e.g. "--set, --from": refused with --resume
};

// A training run that ended "failed" (a non-finite value, a full disk): exit code 1, where bad
// input is 2.
struct RunFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A run stopped by SIGINT/SIGTERM with a checkpoint: exit code 128 + the signal.
struct RunStopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ExplainArgs {
  std::vector<std::string> checkpoints;  // RUN[@STEP]
  std::vector<std::string> models;       // Hugging Face LLaVA folders (explain, with --image)
  int sample = -1;                       // ShapesWorld sample index (with split)
  std::string split = "val";
  std::string image, question, answer;  // or an image file with a question and answer
  std::string method = "gradmap";       // gradmap | gradcam | hirescam | layercam | rollout
  std::string target = "sft";           // sft | dpo | logprob
  int layer = -2;                       // CAM layer (HF hidden-state index)
  bool l2 = false, keepBorder = false, colourBar = false, csv = false;
  bool perToken = false;  // explain: one map per answer token, one checkpoint
  bool animate = false;   // explain: one run's every checkpoint, a frame each (APNG)
  std::string edit;       // counterfactual: remove:K | move:K:DX,DY | recolour:K:COLOUR
  std::string colormap = "jet";
  std::string headFusion = "mean";  // rollout
  double discardRatio = 0.9;        // rollout
  std::string out;
  int samples = 192;  // localize: samples of the split
  std::string data;   // localize: image+mask records (JSONL) instead
};

struct GenerateArgs {
  std::string checkpoint;  // RUN[@STEP], or a Hugging Face LLaVA folder with --model
  std::string model;
  int sample = -1;  // a ShapesWorld sample of `split`
  std::string split = "val";
  std::string image, question;  // or a photo with a typed question
  int samples = 1;              // answers to draw (sampling: each with its own seed)
  int maxNewTokens = 32, topK = 0;
  double temperature = 0, topP = 1.0;
  uint64_t seed = 0;
};
int cmdGenerate(const std::string& workspace, const GenerateArgs& args);

struct ProbeArgs {
  std::vector<std::string> checkpoints;  // RUN[@STEP]
  std::vector<std::string> models;       // Hugging Face LLaVA folders, probed without a run
  std::string images;                    // an ImageFolder (DIR/class/*.jpg): the task "imagefolder"
  std::string task = "conjunction";      // shape | colour | conjunction | count
  int layer = -2;                        // HF hidden-state index (-2 = penultimate)
  bool afterProjector = false;
  int trainSamples = 1024, valSamples = 256, testSamples = 512;
  int segSeeds = 6;
};

// `pivot experiment`: the options bind straight into the study's spec; only what needs parsing
// (the sweep and the arms) and the display's own choices live beside it.
struct ExperimentArgs {
  ExperimentSpec spec;
  std::string sweep;                  // key=v1,v2,...
  std::string arms = "sft,dpo,grpo";  // the stage-2 methods compared
  std::string tuneLr;                 // learning-rate scales s1,s2,... (none: no tuning)
  bool quiet = false;
  std::string progress = "human";  // human | jsonl (one JSON object a line, for the window)
};

struct TokenizeArgs {
  std::string tokenizer;   // folder with tokenizer.json (+ tokenizer_config.json)
  std::string text;        // the text, or "-" for standard input
  bool textGiven = false;  // TEXT was on the command line ("" is a text: no tokens)
  std::string chat;        // a JSON list of {role, content} to render with the chat template
  std::string chatFormat;  // override the recognised template: qwen2.5 | qwen3 | ...
  bool addGenerationPrompt = false;
  bool idsOnly = false, json = false;
};

struct TokenizerBenchArgs {
  std::string tokenizer = PIVOT_SOURCE_DIR "/tests/data/qwen2.5-tokenizer";
  double megabytes = 4;
  std::string node = "node";
  std::string jsModule;  // @huggingface/tokenizers' dist/tokenizers.mjs (default: tests/data)
};

struct DataCheckArgs {
  std::string file;
  std::string format;  // empty: recognised from the file
  std::string imageRoot;
  std::string tokenizer;   // token lengths, the max_length filter, the rendered example's ids
  std::string chatFormat;  // override the tokenizer's recognised template
  int maxLength = 1500;
  int maxImages = 0;  // 0 = any number of images per record
  bool skipBad = false;
  bool noImageCheck = false;
};

struct DataBenchArgs {
  double megabytes = 1000;
  std::string folder;  // where the generated file goes (default: the temporary folder)
  bool keep = false;
};

struct ModelCheckArgs {
  std::string folder;
  std::string inputs;  // a safetensors file of recorded inputs (and outputs to compare)
};

std::string defaultWorkspace();
// Before a command writes into a workspace's store (train, experiment, export): throws when
// SQLite's quick_check finds damage, which reads do not always report. No store: nothing to check.
void refuseDamagedStore(const std::string& workspace);
// Opens an existing workspace's store; never creates one (errors write nothing). Reading commands
// open it read-only, so a read-only workspace can be listed.
std::unique_ptr<RunStore> openExisting(const std::string& workspace,
                                       RunStore::Access access = RunStore::Access::ReadOnly);
int cmdModelCheck(const ModelCheckArgs& args);
struct ModelInitArgs {
  std::string config;     // a LLaVA config.json
  std::string out;        // the model folder to write
  std::string tokenizer;  // a folder whose tokenizer.json and tokenizer_config.json are copied
  uint64_t seed = 1;
};
int cmdModelInit(const ModelInitArgs& args);
struct ModelBenchArgs {
  std::string config;  // a LLaVA config.json: the model is built from it with random weights
  std::string tokenizer = PIVOT_SOURCE_DIR "/tests/data/qwen2.5-tokenizer";
  std::string image = PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny/photo.png";
  std::string chatFormat;
  int questionTokens = 32;
  int threads = 0;             // 0: every core, as training uses
  std::string dtype = "fp32";  // fp32 | bf16 (autocast over float32 weights, as training)
};
int cmdBenchModel(const ModelBenchArgs& args);
struct LoadBenchArgs {
  std::string config;          // a LLaVA config.json: the checkpoint is generated from it
  std::string dtype = "bf16";  // how the generated checkpoint stores its weights
  std::string folder;          // where to write it (default: a temporary folder, removed after)
};
int cmdBenchLoad(const LoadBenchArgs& args);
struct GenerateBenchArgs {
  std::string preset = "mini";  // the preset's model, random weights
  int batch = 8, tokens = 32;
};
int cmdBenchGenerate(const GenerateBenchArgs& args);
struct DdpBenchArgs {
  std::string preset = "mini";
  int nproc = 2, steps = 40;
  bool keep = false;  // keep the temporary workspace
};
int cmdBenchDdp(const DdpBenchArgs& args);
int cmdDataCheck(const DataCheckArgs& args);
int cmdBenchData(const DataBenchArgs& args);
int cmdTokenize(const TokenizeArgs& args);
int cmdBenchTokenizer(const TokenizerBenchArgs& args);
int cmdExperiment(const std::string& workspace, const ExperimentArgs& args);
// `pivot pool DIR DIR... --out DIR`: replicates of one experiment as one pooled report.
int cmdPool(const std::vector<std::string>& reportDirs, const std::string& out);
int cmdProbe(const std::string& workspace, const ProbeArgs& args);
int cmdSwap(const std::string& workspace, const std::string& encoder, const std::string& into,
            int samples);
int cmdExplain(const std::string& workspace, const ExplainArgs& args);
int cmdLocalize(const std::string& workspace, const ExplainArgs& args);
int cmdCounterfactual(const std::string& workspace, const ExplainArgs& args);
int cmdTrain(const std::string& workspace, const TrainArgs& args);
int cmdRuns(const std::string& workspace);
int cmdMetrics(const std::string& workspace, const std::string& run, bool csv,
               const std::string& key);
struct ExportArgs {
  std::string run, out;
  std::string format = "pivot";  // pivot (checkpoint + vision_encoder/ + metrics.csv) | hf
  std::string dtype = "bf16";    // hf: bf16 | f16 | f32
  int shardMb = 2048;            // hf: largest shard
  bool overwrite = false;        // replace an earlier export folder whole
};
int cmdExport(const std::string& workspace, const ExportArgs& args);
int cmdDoctor(const std::string& workspace, bool fix);
int cmdBench(const std::string& preset, int steps, const std::string& python);

}  // namespace pivot::cli
