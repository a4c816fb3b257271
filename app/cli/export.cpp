// `pivot export`: a run's checkpoint, vision encoder and metrics; --format hf writes a LLaVA folder
// transformers loads.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "io/checkpoint.h"
#include "io/hf_llava.h"
#include "io/safetensors.h"
#include "store/workspace.h"
#include "torch_compat.h"
#include "text/word_tokenizer.h"
#include "training/run_checkpoint.h"

namespace fs = std::filesystem;

namespace pivot::cli {

namespace {

// `pivot export --format hf`: a LLaVA folder transformers loads, and the encoder on its own.
int exportHf(const std::string& workspace, const ExportArgs& args) {
  auto store = openExisting(workspace);
  const auto run = store->findRun(args.run);
  const auto ref = resolveCheckpoint(*store, args.run);
  auto loaded = loadCheckpointFolder(ref.path, "cpu");
  HfExportOptions options;
  options.dtype = storedDtypeFromName(args.dtype);
  if (args.shardMb <= 0) throw std::runtime_error("--shard-mb must be positive");
  options.shardBytes = int64_t{args.shardMb} << 20;
  saveHfLlava(loaded.model, args.out, options);
  saveSiglipVision(loaded.model, (fs::path(args.out) / "vision_encoder").string(), options.dtype);
  // The tokenizer travels with the weights, so the export is a complete model: a real model's
  // run carries its folder's files, a ShapesWorld run its word vocabulary as a WordLevel one.
  if (loaded.config.realModel()) {
    for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
      if (fs::exists(fs::path(loaded.config.model_dir) / file))
        fs::copy_file(fs::path(loaded.config.model_dir) / file, fs::path(args.out) / file,
                      fs::copy_options::overwrite_existing);
  } else {
    const WordTokenizer words = WordTokenizer::shapesWorld();
    std::ofstream(fs::path(args.out) / "tokenizer.json") << words.hfTokenizerJson();
    std::ofstream(fs::path(args.out) / "tokenizer_config.json") << words.hfTokenizerConfigJson();
  }
  try {
    RunStore(storePath(workspace))
        .addArtifact(run.id, "export-hf", fs::absolute(args.out).string());
  } catch (const std::exception& e) {
    std::cerr << "warning: the export is not recorded in the run store: " << e.what() << "\n";
  }
  std::cout << "exported run " << run.name << " (step " << ref.step << ") to " << args.out
            << " as a Hugging Face LLaVA folder (" << args.dtype << ") and vision_encoder/\n";
  if (loaded.model->config.prefix_bidirectional)
    std::cout << "note: this model lets image and question tokens attend both ways "
                 "(prefix_bidirectional); pivot loads the export that way, transformers' LLaVA "
                 "attends causally and will compute different outputs\n";
  return 0;
}

}  // namespace

int cmdExport(const std::string& workspace, const ExportArgs& args) {
  if (args.format == "hf") return exportHf(workspace, args);
  const std::string& runName = args.run;
  const std::string& outDir = args.out;
  auto store = openExisting(workspace);
  const auto run = store->findRun(runName);
  const auto ref = resolveCheckpoint(*store, runName);  // the last checkpoint whose files exist
  const std::string ckpt = ref.path;
  auto weights = readCheckpointWeights(ckpt);  // validates the file before anything is written
  fs::create_directories(outDir);
  fs::copy_file(fs::path(ckpt) / "model.safetensors", fs::path(outDir) / "model.safetensors",
                fs::copy_options::overwrite_existing);
  fs::copy_file(fs::path(ckpt) / "config.json", fs::path(outDir) / "config.json",
                fs::copy_options::overwrite_existing);
  // The vision encoder alone, under SiglipVisionModel's names, with its own config.json.
  const std::string encoderDir = (fs::path(outDir) / "vision_encoder").string();
  fs::create_directories(encoderDir);
  TensorMap encoder;
  const std::string prefix = "vision_tower.";
  for (const auto& [name, t] : weights)
    if (name.rfind(prefix, 0) == 0) encoder["vision_model." + name.substr(prefix.size())] = t;
  saveSafetensors((fs::path(encoderDir) / "model.safetensors").string(), encoder,
                  {{"format", "pt"}});
  auto config = readCheckpointConfig(ckpt);
  nlohmann::json visionConfig = config.at("vision_config");
  visionConfig["architectures"] = {"SiglipVisionModel"};
  std::ofstream(fs::path(encoderDir) / "config.json") << visionConfig.dump(2) << "\n";
  {
    std::ofstream csv(fs::path(outDir) / "metrics.csv");
    auto* old = std::cout.rdbuf(csv.rdbuf());
    cmdMetrics(workspace, std::to_string(run.id), true, "");
    std::cout.rdbuf(old);
  }
  try {
    RunStore(storePath(workspace)).addArtifact(run.id, "export", fs::absolute(outDir).string());
  } catch (const std::exception& e) {  // a read-only workspace: the export itself is done
    std::cerr << "warning: the export is not recorded in the run store: " << e.what() << "\n";
  }
  std::cout << "exported run " << run.name << " (step " << ref.step << ") to " << outDir
            << ": model.safetensors, config.json, vision_encoder/, metrics.csv\n";
  return 0;
}

}  // namespace pivot::cli
