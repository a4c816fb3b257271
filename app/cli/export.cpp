// `pivot export`: a run's checkpoint, vision encoder and metrics; --format hf writes a LLaVA folder
// transformers loads.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "io/checkpoint.h"
#include "io/export_folder.h"
#include "io/hf_llava.h"
#include "io/safetensors.h"
#include "store/workspace.h"
#include "torch_compat.h"
#include "config/text_file.h"
#include "text/word_tokenizer.h"
#include "training/run_checkpoint.h"

namespace fs = std::filesystem;

namespace pivot::cli {

namespace {

// What an export must never replace or write into: everything the run reads from, and the
// workspace's own files.
std::vector<ProtectedPath> runSources(const std::string& workspace, const TrainConfig& config,
                                      const std::string& checkpoint) {
  std::vector<ProtectedPath> paths = {
      {"the run's base model folder", config.model_dir},
      {"the run's data file", config.data},
      {"the run's image folder", config.image_root},
      {"the run's checkpoint", checkpoint},
      {"the workspace's checkpoints", fs::path(workspace) / "checkpoints"},
      {"the workspace's run store", storePath(workspace)}};
  // vision_init names a model folder or RUN[@STEP] of the workspace (already protected above).
  if (!config.vision_init.empty() && fs::exists(config.vision_init))
    paths.push_back({"the folder the run's encoder came from", config.vision_init});
  return paths;
}

// `pivot export --format hf`: a LLaVA folder transformers loads, and the encoder on its own.
int exportHf(const std::string& workspace, const ExportArgs& args) {
  auto store = openExisting(workspace);
  const auto run = store->findRun(args.run);
  const auto ref = resolveCheckpoint(*store, args.run);
  HfExportOptions options;
  options.dtype = storedDtypeFromName(args.dtype);
  if (args.shardMb <= 0) throw std::runtime_error("--shard-mb must be positive");
  options.shardBytes = int64_t{args.shardMb} << 20;
  auto loaded = loadCheckpointFolder(ref.path, "cpu");
  checkExportTarget(args.out, runSources(workspace, loaded.config, ref.path), args.overwrite);
  StagedFolder staged(args.out);  // written whole, then swapped in: never two layouts in one folder
  const fs::path folder = staged.path();
  saveHfLlava(loaded.model, folder.string(), options);
  saveSiglipVision(loaded.model, (folder / "vision_encoder").string(), options.dtype);
  // The tokenizer travels with the weights, so the export is a complete model: a real model's
  // run carries its folder's files, a ShapesWorld run its word vocabulary as a WordLevel one.
  if (loaded.config.realModel()) {
    for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
      if (fs::exists(fs::path(loaded.config.model_dir) / file))
        fs::copy_file(fs::path(loaded.config.model_dir) / file, folder / file);
  } else {
    const WordTokenizer words = WordTokenizer::shapesWorld();
    writeTextFile(folder / "tokenizer.json", words.hfTokenizerJson());
    writeTextFile(folder / "tokenizer_config.json", words.hfTokenizerConfigJson());
  }
  staged.commit();
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
  refuseDamagedStore(workspace);  // an export records itself as an artifact of the run
  if (args.format == "hf") return exportHf(workspace, args);
  const std::string& runName = args.run;
  const std::string& outDir = args.out;
  auto store = openExisting(workspace);
  const auto run = store->findRun(runName);
  const auto ref = resolveCheckpoint(*store, runName);  // the last checkpoint whose files exist
  const std::string ckpt = ref.path;
  auto weights = readCheckpointWeights(ckpt);  // validates the file before anything is written
  auto config = readCheckpointConfig(ckpt);
  TrainConfig trained;
  if (config.contains("pivot_train_config"))
    trained = trainConfigFromJson(config.at("pivot_train_config"));
  checkExportTarget(outDir, runSources(workspace, trained, ckpt), args.overwrite);
  StagedFolder staged(outDir);  // written whole, then swapped in
  const fs::path folder = staged.path();
  fs::copy_file(fs::path(ckpt) / "model.safetensors", folder / "model.safetensors");
  fs::copy_file(fs::path(ckpt) / "config.json", folder / "config.json");
  // The vision encoder alone, under SiglipVisionModel's names, with its own config.json.
  const std::string encoderDir = (folder / "vision_encoder").string();
  fs::create_directories(encoderDir);
  TensorMap encoder;
  const std::string prefix = "vision_tower.";
  for (const auto& [name, t] : weights)
    if (name.rfind(prefix, 0) == 0) encoder["vision_model." + name.substr(prefix.size())] = t;
  saveSafetensors((fs::path(encoderDir) / "model.safetensors").string(), encoder,
                  {{"format", "pt"}});
  nlohmann::json visionConfig = config.at("vision_config");
  visionConfig["architectures"] = {"SiglipVisionModel"};
  writeTextFile(fs::path(encoderDir) / "config.json", visionConfig.dump(2) + "\n");
  {
    std::ofstream csv(folder / "metrics.csv");
    auto* old = std::cout.rdbuf(csv.rdbuf());
    try {
      cmdMetrics(workspace, std::to_string(run.id), true, "");
    } catch (...) {
      std::cout.rdbuf(old);
      throw;
    }
    std::cout.rdbuf(old);
    if (!csv.flush())
      throw std::runtime_error((folder / "metrics.csv").string() + ": cannot be written");
  }
  staged.commit();
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
