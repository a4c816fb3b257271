// `pivot swap`: the swap test (the README's "Swap test"): one run's vision encoder under another
// run's projector and LM, kept as a run of its own.
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "store/run_store.h"
#include "store/workspace.h"
#include "text/word_tokenizer.h"
#include "training/evaluate.h"
#include "training/run_checkpoint.h"
#include "training/trainer.h"

namespace pivot::cli {

// The swap test: a stage-2 encoder under the stage-1 projector and LM. The result is a
// run of its own (stage "swap", parent = the receiving run) with a checkpoint, so explain,
// localize, probe and the Inspect tab work on it; its held-out VQA is printed beside the receiving
// model's.
int cmdSwap(const std::string& workspace, const std::string& encoderSpec,
            const std::string& intoSpec, int samples) {
  auto encoder = loadRunCheckpoint(workspace, encoderSpec);
  auto into = loadRunCheckpoint(workspace, intoSpec);
  if (toJson(encoder.config.model.vision) != toJson(into.config.model.vision))
    throw std::runtime_error(encoder.label() + " and " + into.label() +
                             " have vision towers of different architectures");
  const ShapesWorld world(into.config.world);
  const WordTokenizer tok = WordTokenizer::shapesWorld();
  const auto device = into.model->parameters().front().device();
  const auto before = evaluateVqa(into.model, world, tok, Split::Val, samples, device);
  loadStateDict(*into.model->vision_tower, stateDict(*encoder.model->vision_tower), {""},
                encoder.path);
  const auto after = evaluateVqa(into.model, world, tok, Split::Val, samples, device);

  RunStore store(storePath(workspace));
  RunInfo info;
  info.name = "swap-" + encoder.runName + "-into-" + into.runName;
  info.preset = into.config.preset;
  info.stage = "swap";
  info.parentId = into.runId;
  info.configJson = toJson(into.config).dump();
  info.message = "vision tower from " + encoder.label();
  const int64_t id = store.createRun(info);
  const auto path = writeCheckpoint(runDirectory(workspace, id), into.step, *into.model,
                                    checkpointConfig(into.config), nullptr,
                                    {{"step", into.step},
                                     {"run_id", id},
                                     {"stage", "swap"},
                                     {"encoder_checkpoint", encoder.path},
                                     {"into_checkpoint", into.path}});
  store.addCheckpoint(id, into.step, path);
  std::vector<EvaluationRow> rows;
  for (const auto& [k, v] : after) rows.push_back({into.step, "vqa/val", k, v});
  store.addEvaluation(id, rows);
  store.setStatus(id, RunStatus::Finished, info.message);

  std::cout << "swap test: the encoder of " << encoder.label() << " under the projector and LM of "
            << into.label() << "\n"
            << std::left << std::setw(28) << "metric" << std::setw(14) << "as trained"
            << "swapped encoder\n";
  for (size_t i = 0; i < before.size(); ++i)
    std::cout << std::setw(28) << before[i].first << std::fixed << std::setprecision(4)
              << std::setw(14) << before[i].second << after[i].second << "\n";
  std::cout.unsetf(std::ios::fixed);
  std::cout << "saved as run " << id << " (" << info.name << "): pivot localize --checkpoint " << id
            << "\n";
  return 0;
}

}  // namespace pivot::cli
