// pivot: the headless command line of PIVOT Workbench. One function per command family registers
// its options and what it runs; main() reads the command line, runs the chosen command and turns
// its exceptions into one line on stderr and an exit code (2: bad input, 1: a failed run, 128 + the
// signal: stopped with a checkpoint).
#include <malloc.h>

#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>
#include <memory>

#include "commands.h"
#include "launch.h"
#include "config/train_config.h"
#include "config/vocabulary.h"
#include "stop_signals.h"
#include "study/experiment.h"

namespace {

using namespace pivot::cli;

// What the chosen command does once the whole command line is read.
using Action = std::function<int()>;

// The arguments of a command live as long as its action: bound to the options, read when it runs.
template <typename T>
std::shared_ptr<T> argsOf() {
  return std::make_shared<T>();
}

// `command`'s action, set when it is the command chosen (CLI11 calls this after its options).
void whenChosen(CLI::App* command, Action& action, Action run) {
  command->callback([&action, run = std::move(run)] { action = run; });
}

// `pivot train`: one stage (and the stages it builds on), data parallel with --nproc.
void addTrain(CLI::App& app, const std::string& workspace, Action& action, int argc, char** argv) {
  // The stage lists come from the Stage name table, so the help cannot drift from it (and the
  // README's synopses are checked against this help by test_cli).
  std::string stages, stageChoices;
  for (const pivot::Stage stage : pivot::allStages()) {
    stages += (stages.empty() ? "" : ", ") + std::string(pivot::stageName(stage));
    stageChoices += (stageChoices.empty() ? "" : " | ") + std::string(pivot::stageName(stage));
  }
  auto t = argsOf<TrainArgs>();
  auto* train = app.add_subcommand("train", "train one stage (" + stages + ") as a new run");
  train->add_option("--preset", t->preset, "tiny, mini, or a preset .json file")
      ->capture_default_str();
  train->add_option("--stage", t->stage, stageChoices)->capture_default_str();
  train->add_option("--from", t->from,
                    "parent run (id or name) to start from, at its last checkpoint or RUN@STEP; "
                    "without it earlier stages run first, reusing identical finished ones");
  train->add_option("--resume", t->resume,
                    "continue a stopped or crashed run from its last checkpoint");
  train->add_option("--name", t->name, "run name");
  train->add_option("--set", t->sets, "override a config value, key=value (repeatable)");
  train->add_option("--model", t->model,
                    "a Hugging Face LLaVA folder to train instead of the miniature (align, "
                    "instruct, sft, dpo, mpo)");
  train->add_option("--data", t->data,
                    "with --model: LLaVA instructions (sft) or preference records (dpo)");
  train->add_option("--image-root", t->imageRoot,
                    "with --data: folder image paths are relative to");
  train->add_option("--chat-format", t->chatFormat,
                    "with --model: qwen2.5 | qwen3 | llava-onevision | chatml instead of the "
                    "tokenizer's recognised template");
  train->add_flag("--skip-bad", t->skipBad,
                  "with --data: count and skip bad records (malformed, images missing or not "
                  "decoding) instead of stopping; with --resume, from there on");
  train->add_flag("--quiet", t->quiet, "no progress line");
  train
      ->add_option("--progress", t->progress,
                   "human | jsonl: one JSON object a line (stage, run, step, message, end events)")
      ->capture_default_str()
      ->check(CLI::IsMember({"human", "jsonl"}));
  train
      ->add_option(
          "--nproc", t->nproc,
          "data-parallel processes on this machine (Gloo on CPU, NCCL on CUDA); a worker "
          "started by torchrun or a cluster launcher reads RANK, WORLD_SIZE, MASTER_ADDR...")
      ->check(CLI::Range(1, 256));
  whenChosen(train, action, [&workspace, t, train, argc, argv] {
    if (t->nproc > 1) {
      int nproc = 1;
      return launchWorkers(t->nproc, withoutNproc(argc, argv, nproc));
    }
    std::string beside;
    for (const char* o : {"--preset", "--stage", "--from", "--set", "--name", "--model", "--data"})
      if (train->count(o) > 0) beside += (beside.empty() ? "" : ", ") + std::string(o);
    t->optionsBesideResume = beside;
    return cmdTrain(workspace, *t);
  });
}

// The workspace's runs: list, check, read, export.
void addWorkspaceCommands(CLI::App& app, const std::string& workspace, Action& action) {
  auto* runs = app.add_subcommand("runs", "list the runs of the workspace");
  whenChosen(runs, action, [&workspace] { return cmdRuns(workspace); });

  auto doctorFix = std::make_shared<bool>(false);
  auto* doctor = app.add_subcommand(
      "doctor",
      "check the workspace: database integrity, crashed runs, missing or stray checkpoint folders");
  doctor->add_flag("--fix", *doctorFix,
                   "mark crashed runs as such and remove stray temporary folders");

  struct MetricsArgs {
    std::string run, key;
    bool csv = false;
  };
  auto m = argsOf<MetricsArgs>();
  auto* metrics = app.add_subcommand("metrics", "print a run's metrics");
  metrics->add_option("RUN", m->run, "run id or name")->required();
  metrics->add_flag("--csv", m->csv, "all steps as CSV (step, one column per key)");
  metrics->add_option("--key", m->key, "only this metric");

  auto ea = argsOf<ExportArgs>();
  auto* exportCmd =
      app.add_subcommand("export", "export a run's checkpoint, vision encoder and metrics");
  exportCmd->add_option("RUN", ea->run, "run id or name")->required();
  exportCmd->add_option("--out", ea->out, "output folder")->required();
  exportCmd
      ->add_option("--format", ea->format,
                   "pivot (checkpoint, vision_encoder/, metrics.csv) | hf (a LLaVA folder in the "
                   "hub layout, sharded, with vision_encoder/ as a SiglipVisionModel)")
      ->capture_default_str()
      ->check(CLI::IsMember({"pivot", "hf"}));
  exportCmd->add_option("--dtype", ea->dtype, "hf: bf16 | f16 | f32")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  exportCmd->add_option("--shard-mb", ea->shardMb, "hf: largest shard in MB")
      ->capture_default_str();
  exportCmd->add_flag("--overwrite", ea->overwrite,
                      "replace an earlier export in --out whole (without it a folder that holds "
                      "files is refused)");
  whenChosen(doctor, action, [&workspace, doctorFix] { return cmdDoctor(workspace, *doctorFix); });
  whenChosen(metrics, action,
             [&workspace, m] { return cmdMetrics(workspace, m->run, m->csv, m->key); });
  whenChosen(exportCmd, action, [&workspace, ea] { return cmdExport(workspace, *ea); });
}

// The kinds of `pivot bench` (tokenizer, model, load, generate, ddp, data).
void addBenchKinds(CLI::App* bench, Action& action) {
  auto tb = argsOf<TokenizerBenchArgs>();
  auto* benchTokenizer = bench->add_subcommand(
      "tokenizer", "encode MB/s of the HF tokenizer vs @huggingface/tokenizers (JS), same text");
  benchTokenizer->add_option("--tokenizer", tb->tokenizer, "tokenizer folder")
      ->capture_default_str();
  benchTokenizer->add_option("--megabytes", tb->megabytes, "text size")->capture_default_str();
  benchTokenizer->add_option("--node", tb->node, "node executable")->capture_default_str();
  benchTokenizer->add_option("--js-module", tb->jsModule,
                             "@huggingface/tokenizers dist/tokenizers.mjs (default: tests/data)");

  auto mb = argsOf<ModelBenchArgs>();
  auto* benchModel = bench->add_subcommand(
      "model",
      "one gradient map and one SFT step on a model built from a LLaVA config "
      "(random weights): seconds and peak memory");
  benchModel->add_option("--config", mb->config, "LLaVA config.json")->required();
  benchModel->add_option("--tokenizer", mb->tokenizer, "tokenizer folder")->capture_default_str();
  benchModel->add_option("--image", mb->image, "the photo")->capture_default_str();
  benchModel->add_option("--chat-format", mb->chatFormat, "override the tokenizer's template");
  benchModel->add_option("--question-tokens", mb->questionTokens, "question length")
      ->capture_default_str();
  benchModel->add_option("--threads", mb->threads, "CPU threads (0: every core, as training)")
      ->capture_default_str();
  benchModel->add_option("--dtype", mb->dtype, "fp32 | bf16 (autocast, float32 master weights)")
      ->capture_default_str()
      ->check(CLI::IsMember(pivot::precisionNames()));

  auto lb = argsOf<LoadBenchArgs>();
  auto* benchLoad = bench->add_subcommand(
      "load",
      "load a generated LLaVA checkpoint (random weights from a config): seconds, and peak "
      "memory against the loaded parameters' bytes");
  benchLoad->add_option("--config", lb->config, "LLaVA config.json")->required();
  benchLoad->add_option("--dtype", lb->dtype, "dtype the checkpoint stores")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  benchLoad->add_option("--folder", lb->folder, "write the checkpoint here and keep it");

  auto gb = argsOf<GenerateBenchArgs>();
  auto* benchGenerate = bench->add_subcommand(
      "generate", "decoding tokens/s with the key/value cache vs recomputing every step");
  benchGenerate->add_option("--preset", gb->preset, "the preset's model")->capture_default_str();
  benchGenerate->add_option("--batch", gb->batch, "prompts")->capture_default_str();
  benchGenerate->add_option("--tokens", gb->tokens, "new tokens per prompt")->capture_default_str();
  auto ddpb = argsOf<DdpBenchArgs>();
  auto* benchDdp = bench->add_subcommand(
      "ddp", "data-parallel overhead: N processes vs 1 on the same global batch (SFT and DPO)");
  benchDdp->add_option("--preset", ddpb->preset, "tiny or mini")->capture_default_str();
  benchDdp->add_option("--nproc", ddpb->nproc, "data-parallel processes")->capture_default_str();
  benchDdp->add_option("--steps", ddpb->steps, "steps per measurement")->capture_default_str();
  benchDdp->add_flag("--keep", ddpb->keep, "keep the temporary workspace");

  auto db = argsOf<DataBenchArgs>();
  auto* benchData = bench->add_subcommand(
      "data", "index a generated LLaVA-style JSON file: records/s, peak RSS, second open");
  benchData->add_option("--megabytes", db->megabytes, "size of the generated file")
      ->capture_default_str();
  benchData->add_option("--folder", db->folder, "where to write it (default: temporary folder)");
  benchData->add_flag("--keep", db->keep, "keep the file and its index");
  whenChosen(benchTokenizer, action, [tb] { return cmdBenchTokenizer(*tb); });
  whenChosen(benchModel, action, [mb] { return cmdBenchModel(*mb); });
  whenChosen(benchLoad, action, [lb] { return cmdBenchLoad(*lb); });
  whenChosen(benchGenerate, action, [gb] { return cmdBenchGenerate(*gb); });
  whenChosen(benchDdp, action, [ddpb] { return cmdBenchDdp(*ddpb); });
  whenChosen(benchData, action, [db] { return cmdBenchData(*db); });
}

// `pivot bench` and its kinds: each times something against a reference measured in the same run.
void addBench(CLI::App& app, Action& action) {
  struct BenchArgs {
    int steps = 10;
    std::string python = "/usr/bin/python3";
    std::string preset = "mini";
  };
  auto timing = argsOf<BenchArgs>();
  auto* bench = app.add_subcommand(
      "bench", "time SFT and DPO steps in C++ and in Python (same model, same run)");
  bench->add_option("--preset", timing->preset, "tiny or mini")->capture_default_str();
  bench->add_option("--steps", timing->steps, "timed steps per measurement")->capture_default_str();
  bench->add_option("--python", timing->python, "python with torch for the reference")
      ->capture_default_str();

  addBenchKinds(bench, action);
  // `pivot bench` alone (its callback also runs after a kind's: the kind wins).
  bench->callback([&action, bench, timing] {
    if (bench->get_subcommands().empty())
      action = [timing] { return cmdBench(timing->preset, timing->steps, timing->python); };
  });
}

// Datasets and Hugging Face model folders: check them, make a random one.
void addDataAndModelCommands(CLI::App& app, Action& action) {
  auto dc = argsOf<DataCheckArgs>();
  auto* data = app.add_subcommand("data", "datasets: LLaVA, preference (MMPR/PIVOT), TRL");
  data->require_subcommand(1);
  auto* dataCheck = data->add_subcommand(
      "check", "validate a dataset: summary, skips by reason, token lengths, a rendered example");
  dataCheck->add_option("FILE", dc->file, "a .json / .jsonl data file or an MMPR meta.json")
      ->required();
  dataCheck->add_option("--format", dc->format,
                        "llava | preference | trl | mmpr-meta (default: recognised)");
  dataCheck->add_option("--image-root", dc->imageRoot, "folder image paths are relative to");
  dataCheck->add_option("--tokenizer", dc->tokenizer,
                        "tokenizer folder (token lengths, max_length)");
  dataCheck->add_option("--chat-format", dc->chatFormat,
                        "qwen2.5 | qwen3 | llava-onevision | chatml (default: the tokenizer's)");
  dataCheck
      ->add_option("--max-images", dc->maxImages,
                   "drop records with more images (the paper's stage 1b: 1; 0 = any)")
      ->capture_default_str();
  dataCheck->add_option("--max-length", dc->maxLength, "drop prompt + chosen longer than this")
      ->capture_default_str();
  dataCheck->add_flag("--skip-bad", dc->skipBad, "count bad records instead of stopping at one");
  dataCheck->add_flag("--no-image-check", dc->noImageCheck,
                      "do not require the images to exist and decode (each is decoded otherwise)");

  auto mc = argsOf<ModelCheckArgs>();
  auto* model = app.add_subcommand("model", "Hugging Face model folders (LLaVA: SigLIP + Qwen2)");
  model->require_subcommand(1);
  auto* modelCheck = model->add_subcommand(
      "check",
      "architecture, name layout, dtypes, parameter counts, unused tensors; with "
      "--inputs, the max abs difference from recorded outputs");
  modelCheck->add_option("DIR", mc->folder, "model folder (config.json + safetensors)")->required();
  modelCheck->add_option(
      "--inputs", mc->inputs,
      "safetensors with pixel_values, input_ids, attention_mask [, position_ids, "
      "image_features, logits]");

  auto mi = argsOf<ModelInitArgs>();
  auto* modelInit = model->add_subcommand(
      "init", "a randomly initialised LLaVA folder from a config.json, for tests and demos");
  modelInit->add_option("CONFIG", mi->config, "a LLaVA config.json (SigLIP + Qwen2)")->required();
  modelInit->add_option("--out", mi->out, "the model folder to write")->required();
  modelInit->add_option("--tokenizer", mi->tokenizer, "copy this folder's tokenizer files");
  modelInit->add_option("--seed", mi->seed, "initialisation seed")->capture_default_str();
  whenChosen(dataCheck, action, [dc] { return cmdDataCheck(*dc); });
  whenChosen(modelCheck, action, [mc] { return cmdModelCheck(*mc); });
  whenChosen(modelInit, action, [mi] { return cmdModelInit(*mi); });
}

// `pivot tokenize`: a tokenizer's pieces and ids, or a conversation through its chat template.
void addTokenize(CLI::App& app, Action& action) {
  auto tk = argsOf<TokenizeArgs>();
  auto* tokenize = app.add_subcommand(
      "tokenize", "pieces and ids of a text, or a conversation rendered with the chat template");
  tokenize->add_option("--tokenizer", tk->tokenizer, "folder with tokenizer.json")->required();
  tokenize->add_option("TEXT", tk->text, "the text, or - to read standard input")
      ->each([tk](const std::string&) { tk->textGiven = true; });
  tokenize->add_option("--chat", tk->chat, "a JSON list of {role, content} to render and encode");
  tokenize->add_option("--chat-format", tk->chatFormat,
                       "render as qwen2.5 | qwen3 | llava-onevision | chatml instead of the "
                       "recognised template");
  tokenize->add_flag("--add-generation-prompt", tk->addGenerationPrompt,
                     "end with the assistant header (--chat)");
  tokenize->add_flag("--ids", tk->idsOnly, "only the ids, on one line");
  tokenize->add_flag("--json", tk->json, "one JSON object a line");
  whenChosen(tokenize, action, [tk] { return cmdTokenize(*tk); });
}

// Where the encoder looks: attribution maps of one sample, and their scores over a split.
void addExplainCommands(CLI::App& app, const std::string& workspace, Action& action) {
  auto x = argsOf<ExplainArgs>();
  auto* explain = app.add_subcommand(
      "explain", "attribution maps of one sample under several checkpoints, as a figure");
  auto* localize = app.add_subcommand(
      "localize", "localisation scores of a checkpoint's attribution maps over a split");
  explain->add_option("--model", x->models,
                      "a Hugging Face LLaVA folder (repeatable; with --image, --question, "
                      "--answer)");
  auto* counterfactual = app.add_subcommand(
      "counterfactual",
      "edit a ShapesWorld scene (remove, move or recolour an object) and compare each "
      "checkpoint's answer, log-prob and map before and after");
  localize->add_option("--checkpoint", x->checkpoints, "RUN[@STEP]")->required();
  explain->add_option("--checkpoint", x->checkpoints, "RUN[@STEP] (repeatable)");
  counterfactual->add_option("--checkpoint", x->checkpoints, "RUN[@STEP] (repeatable)")->required();
  counterfactual->add_option("--sample", x->sample, "ShapesWorld sample index")->required();
  counterfactual
      ->add_option("--edit", x->edit,
                   "remove:K | move:K:DX,DY | recolour:K:COLOUR (K: the object's index)")
      ->required();
  counterfactual->add_option("--out", x->out, "figure file (.png, .pdf or .svg)");
  for (auto* cmd : {explain, localize, counterfactual}) {
    cmd->add_option("--method", x->method, "gradmap | gradcam | hirescam | layercam | rollout")
        ->capture_default_str();
    cmd->add_option("--target", x->target,
                    "what the gradient methods differentiate: sft | dpo | logprob")
        ->capture_default_str();
    cmd->add_option("--layer", x->layer, "vision hidden-state index for the CAM methods")
        ->capture_default_str();
    cmd->add_option("--split", x->split, "train | val | test")->capture_default_str();
    cmd->add_flag("--l2", x->l2, "gradmap: L2 instead of L1 norm over channels");
    cmd->add_flag("--keep-border", x->keepBorder, "do not suppress the border cells");
    cmd->add_option("--head-fusion", x->headFusion, "rollout: mean | min | max")
        ->capture_default_str();
    cmd->add_option("--discard-ratio", x->discardRatio,
                    "rollout: share of the weakest attention dropped per layer")
        ->capture_default_str();
  }
  explain->add_option("--sample", x->sample, "ShapesWorld sample index");
  explain->add_option("--image", x->image, "an image file instead of a sample");
  explain->add_option("--question", x->question, "with --image");
  explain->add_option("--answer", x->answer, "with --image");
  explain->add_option("--colormap", x->colormap, "jet | viridis | magma | turbo")
      ->capture_default_str();
  explain->add_flag(
      "--colour-bar", x->colourBar,
      "draw the colormap's bar beside the maps (0 and 1: each map's own least and most)");
  explain->add_flag("--animate", x->animate,
                    "every stored checkpoint of one run (--checkpoint RUN), a frame each, as an "
                    "animated PNG (--out FILE.png)");
  explain->add_flag("--per-token", x->perToken,
                    "one map per answer token (of that token's log-prob), for one checkpoint");
  explain->add_option("--out", x->out, "figure file (.png, or .pdf / .svg as vector)")->required();
  localize->add_option("--samples", x->samples, "samples of the split to score")
      ->capture_default_str();
  localize->add_flag("--csv", x->csv, "one row per sample");
  localize->add_option("--data", x->data,
                       "image+mask records, one JSON object a line: image, mask, question, "
                       "answer[, rejected, category]");
  whenChosen(explain, action, [&workspace, x] { return cmdExplain(workspace, *x); });
  whenChosen(localize, action, [&workspace, x] { return cmdLocalize(workspace, *x); });
  whenChosen(counterfactual, action, [&workspace, x] { return cmdCounterfactual(workspace, *x); });
}

// Asking checkpoints: answers, probes of the frozen encoder, the swap test.
void addQueryCommands(CLI::App& app, const std::string& workspace, Action& action) {
  auto gen = argsOf<GenerateArgs>();
  auto* generateCmd = app.add_subcommand(
      "generate", "answer a ShapesWorld sample or a photo with a question (greedy or sampled)");
  generateCmd->add_option("--checkpoint", gen->checkpoint, "RUN[@STEP]");
  generateCmd->add_option("--model", gen->model, "a Hugging Face LLaVA folder");
  generateCmd->add_option("--sample", gen->sample, "ShapesWorld sample index");
  generateCmd->add_option("--split", gen->split, "train | val | test")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "val", "test"}));
  generateCmd->add_option("--image", gen->image, "a photo instead of a sample");
  generateCmd->add_option("--question", gen->question, "the question about --image");
  generateCmd->add_option("--samples", gen->samples, "answers to draw")->capture_default_str();
  generateCmd->add_option("--max-new-tokens", gen->maxNewTokens, "token budget")
      ->capture_default_str();
  generateCmd->add_option("--temperature", gen->temperature, "0 = greedy")->capture_default_str();
  generateCmd->add_option("--top-k", gen->topK, "0 = all tokens")->capture_default_str();
  generateCmd->add_option("--top-p", gen->topP, "nucleus sampling")->capture_default_str();
  generateCmd->add_option("--seed", gen->seed, "sampling seed (answer k uses seed + k)")
      ->capture_default_str();
  whenChosen(generateCmd, action, [&workspace, gen] { return cmdGenerate(workspace, *gen); });

  auto pr = argsOf<ProbeArgs>();
  auto* probe =
      app.add_subcommand("probe", "linear and segmentation probes of frozen vision encoders");
  probe->add_option("--checkpoint", pr->checkpoints, "RUN[@STEP] (repeatable)");
  probe->add_option("--model", pr->models, "a Hugging Face LLaVA folder (repeatable)");
  probe
      ->add_option("--task", pr->task,
                   "shape | colour | conjunction | count (ShapesWorld), fashion-mnist, or "
                   "imagefolder (with --images)")
      ->capture_default_str();
  probe->add_option("--images", pr->images,
                    "an ImageFolder: DIR/class/* (split 3:1:1 by path hash) or "
                    "DIR/train|val|test/class/*");
  probe->add_option("--layer", pr->layer, "vision hidden-state index")->capture_default_str();
  probe->add_flag("--after-projector", pr->afterProjector, "features after the projector");
  probe->add_option("--train", pr->trainSamples, "training samples")->capture_default_str();
  probe->add_option("--val", pr->valSamples, "validation samples (choose C)")
      ->capture_default_str();
  probe->add_option("--test", pr->testSamples, "test samples")->capture_default_str();
  probe->add_option("--seg-seeds", pr->segSeeds, "segmentation probe seeds")->capture_default_str();
  whenChosen(probe, action, [&workspace, pr] { return cmdProbe(workspace, *pr); });

  struct SwapArgs {
    std::string encoder, into;
    int samples = 192;
  };
  auto sw = argsOf<SwapArgs>();
  auto* swap = app.add_subcommand(
      "swap", "swap test: one run's vision encoder under another run's projector and LM");
  swap->add_option("--encoder", sw->encoder,
                   "RUN[@STEP] giving the vision encoder (e.g. the DPO run)")
      ->required();
  swap->add_option("--into", sw->into, "RUN[@STEP] giving projector and LM (e.g. the stage-1 run)")
      ->required();
  swap->add_option("--samples", sw->samples, "held-out samples for VQA")->capture_default_str();
  whenChosen(swap, action,
             [&workspace, sw] { return cmdSwap(workspace, sw->encoder, sw->into, sw->samples); });
}

// The study: `pivot experiment`, and `pivot pool` over replicates of one.
void addStudyCommands(CLI::App& app, const std::string& workspace, Action& action) {
  auto ex = argsOf<ExperimentArgs>();
  auto* experiment =
      app.add_subcommand("experiment",
                         "the whole study as a resumable chain of runs: stage 0, 1a, 1b, then SFT "
                         "vs DPO, GRPO (and MPO) per seed, transplants, probes and a report");
  experiment->add_option("--preset", ex->spec.preset, "tiny, mini, or a preset .json file")
      ->capture_default_str();
  experiment
      ->add_option("--bases", ex->spec.bases,
                   "independent stage-0/1 chains, the seeds nested in each (intervals over bases)")
      ->capture_default_str();
  experiment->add_option("--seeds", ex->spec.seeds, "stage-2 seeds (and everything after stage 2)")
      ->capture_default_str();
  experiment->add_option("--sweep", ex->sweep,
                         "a stage-2 key and its values, key=v1,v2,... (e.g. vision_lr=1e-5,1e-4), "
                         "or dose=preset,paper: the preset's stage 2 and the paper's proportions "
                         "to stage 1b");
  experiment->add_option("--set", ex->spec.sets,
                         "override a config value in every stage, key=value (repeatable)");
  experiment
      ->add_option("--arms", ex->arms,
                   "the stage-2 methods compared, from the same stage-1 model: sft (always), dpo, "
                   "grpo, mpo")
      ->capture_default_str();
  experiment
      ->add_option("--mixed-sft-weight", ex->spec.mixedSftWeight,
                   "> 0: one more arm, DPO with this SFT weight")
      ->capture_default_str();
  experiment->add_option(
      "--tune-lr", ex->tuneLr,
      "learning-rate scales each arm tries on base 1, seed 1, e.g. 0.3,1,3; every "
      "base trains the one with the lowest held-out objective (the arm's own loss)");
  experiment
      ->add_option(
          "--transplant-projector", ex->spec.transplantProjector,
          "new | one_plus_one (the first projector layer of the source, frozen, plus a new one)")
      ->capture_default_str();
  experiment->add_flag_callback(
      "--no-transplants", [ex] { ex->spec.transplants = false; },
      "skip the PIVOT transplants (a study of stage 2 alone)");
  experiment->add_option("--transplant-align-steps", ex->spec.transplantAlignSteps,
                         "projector-only alignment steps of each transplant (0: preset default)");
  experiment->add_option("--transplant-instruct-steps", ex->spec.transplantInstructSteps,
                         "instruction-tuning steps of each transplant (0: preset default)");
  experiment->add_option("--seg-seeds", ex->spec.segmentationSeeds, "segmentation probe seeds")
      ->capture_default_str();
  experiment
      ->add_option("--jobs", ex->spec.jobs,
                   "stages trained side by side, each with cores/jobs threads (0: 2 from two "
                   "cores up); results depend on it only through the threads' rounding")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  experiment->add_option("--out", ex->spec.out,
                         "report folder (default: <workspace>/experiments/experiment-<id>)");
  experiment->add_flag("--quiet", ex->quiet, "no per-step progress lines");
  experiment
      ->add_option("--progress", ex->progress,
                   "human | jsonl: one JSON object a line (stage, step, message, done events)")
      ->capture_default_str()
      ->check(CLI::IsMember({"human", "jsonl"}));

  struct PoolArgs {
    std::vector<std::string> reports;
    std::string out;
  };
  auto pl = argsOf<PoolArgs>();
  auto* pool = app.add_subcommand(
      "pool", "replicates of one experiment (report folders) as one report, heterogeneity first");
  pool->add_option("reports", pl->reports, "two or more report folders (or results.csv files)")
      ->required()
      ->expected(2, -1);
  pool->add_option("--out", pl->out, "the pooled report's folder")->required();
  whenChosen(experiment, action, [&workspace, ex] { return cmdExperiment(workspace, *ex); });
  whenChosen(pool, action, [pl] { return cmdPool(pl->reports, pl->out); });
}

}  // namespace

int main(int argc, char** argv) {
  // glibc otherwise returns freed memory to the kernel after every training step; the page faults
  // made the C++ loop 1.3-1.5x slower than Python (measured with `pivot bench`).
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);

  CLI::App app{
      "pivot: train, inspect and export PIVOT Workbench runs (SFT vs DPO on a multimodal LLM)"};
  app.require_subcommand(1);
  app.fallthrough();  // global options go before or after the subcommand
  std::string workspace = defaultWorkspace();
  app.add_option("--workspace", workspace, "folder holding runs.sqlite and checkpoints/")
      ->capture_default_str();
  Action action;
  addTrain(app, workspace, action, argc, argv);
  addWorkspaceCommands(app, workspace, action);
  addBench(app, action);
  addDataAndModelCommands(app, action);
  addTokenize(app, action);
  addExplainCommands(app, workspace, action);
  addQueryCommands(app, workspace, action);
  addStudyCommands(app, workspace, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    return action ? action() : 0;
  } catch (const RunStopped& e) {
    std::cerr << "pivot: " << e.what() << "\n";
    return stoppedExitCode();
  } catch (const pivot::ExperimentStopped& e) {
    std::cerr << "pivot: " << e.what() << "\n";
    return stoppedExitCode();
  } catch (const RunFailed& e) {
    std::cerr << "pivot: error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {  // a LibTorch check: its message, without the C++ backtrace
    std::string what = e.what_without_backtrace();
    what = what.substr(0, what.find('\n'));
    std::cerr << "pivot: error: " << what << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "pivot: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
