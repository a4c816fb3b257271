#include "study/experiment.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "store/run_store.h"
#include "store/workspace.h"
#include "study/measurements.h"
#include "study/report.h"
#include "training/run_checkpoint.h"
#include "training/trainer.h"
#include "io/state_dict.h"
#include "torch_compat.h"

namespace fs = std::filesystem;

namespace pivot {
namespace {

// What makes two runs "the same stage": everything but where, how fast and how often it saved.
nlohmann::json comparable(nlohmann::json j) {
  for (const char* k : {"device", "threads", "checkpoint_every", "checkpoint_minutes", "snapshots"})
    j.erase(k);
  return j;
}

nlohmann::json specJson(const ExperimentSpec& s) {
  nlohmann::json j = {{"preset", s.preset},
                      {"seeds", s.seeds},
                      {"sets", s.sets},
                      {"sweep_key", s.sweepKey},
                      {"sweep_values", s.sweepValues},
                      {"arms", s.arms},
                      {"mixed_sft_weight", s.mixedSftWeight},
                      {"transplant_projector", s.transplantProjector},
                      {"transplant_align_steps", s.transplantAlignSteps},
                      {"transplant_instruct_steps", s.transplantInstructSteps},
                      {"probe_train", s.probeTrain},
                      {"probe_val", s.probeVal},
                      {"probe_test", s.probeTest},
                      {"segmentation_seeds", s.segmentationSeeds},
                      {"localisation_samples", s.localisationSamples},
                      {"vqa_samples", s.vqaSamples}};
  if (s.bases != 1) j["bases"] = s.bases;  // absent for one base: older experiments stay found
  return j;
}

// A stage of base b's chain: base 1 is the preset's own seed; base b > 1 adds 1000 (b - 1), so
// every base starts from other initial weights and sees its data in another order.
TrainConfig baseConfig(const ExperimentSpec& s, Stage stage, int base) {
  TrainConfig c = makeConfig(s.preset, stage, s.sets);
  c.seed += static_cast<uint64_t>(1000 * (base - 1));
  return c;
}

// The stage-2 arms of the study: name, stage, SFT weight.
struct Arm {
  std::string encoder;  // sft | dpo | grpo | mpo | dpo+sft
  Stage stage;
  double sftWeight;
};

std::vector<Arm> armsOf(const ExperimentSpec& s) {
  std::vector<Arm> arms;
  for (const auto& name : s.arms) arms.push_back({name, stageFromName(name), 0.0});
  if (s.mixedSftWeight > 0) arms.push_back({"dpo+sft", Stage::Dpo, s.mixedSftWeight});
  return arms;
}

// "dpo vision_lr=1e-4 seed 2": how progress names a stage-2 run and its transplant.
std::string armLabel(const Arm& arm, const std::string& sweep, int seed) {
  return arm.encoder + (sweep.empty() ? "" : " " + sweep) + " seed " + std::to_string(seed);
}

std::vector<std::string> sweepLabels(const ExperimentSpec& s) {
  if (s.sweepKey.empty()) return {""};
  std::vector<std::string> out;
  for (const auto& v : s.sweepValues) out.push_back(s.sweepKey + "=" + v);
  return out;
}

TrainConfig stageTwoConfig(const ExperimentSpec& s, const Arm& arm, const std::string& sweep,
                           int seed) {
  TrainConfig c = makeConfig(s.preset, arm.stage, s.sets);
  if (!sweep.empty()) applyOverride(c, sweep);
  if (arm.sftWeight > 0) c.sft_weight = arm.sftWeight;
  c.seed = static_cast<uint64_t>(seed);
  validate(c);
  return c;
}

// The PIVOT transplant: a fresh MLLM (seeded) around the frozen encoder of run `encoderRun`.
TrainConfig transplantConfig(const ExperimentSpec& s, Stage stage, int64_t encoderRun,
                             bool original, int seed) {
  TrainConfig c = makeConfig(s.preset, stage, s.sets);
  c.vision_init = std::to_string(encoderRun);  // also on the instruct stage: it names the encoder
  c.freeze_vision = true;
  c.projector_init = original ? ProjectorInit::New  // the original encoder has no trained projector
                              : projectorInitFromName(s.transplantProjector);
  c.seed = static_cast<uint64_t>(seed);
  c.steps = stage == Stage::Align ? s.transplantAlignSteps : s.transplantInstructSteps;
  validate(c);
  return c;
}

// Trains, resumes or reuses one stage and tags it with the experiment.
class StageRunner {
 public:
  StageRunner(const ExperimentSpec& spec, ExperimentProgress& progress, int64_t experimentId,
              int total)
      : m_spec(spec),
        m_progress(progress),
        m_tag("exp-" + std::to_string(experimentId)),
        m_total(total) {}

  int64_t run(const TrainConfig& cfg, std::optional<int64_t> parent, const std::string& what,
              const std::string& name) {
    ++m_index;
    std::optional<RunInfo> unfinished;
    {
      RunStore store(storePath(m_spec.workspace));
      const auto want = comparable(toJson(cfg));
      for (const auto& r : store.runs()) {
        if (r.stage != stageName(cfg.stage) || r.parentId != parent) continue;
        // Through the current reader and writer, so a run stored before a config field existed
        // compares with that field's default.
        nlohmann::json stored;
        try {
          stored = comparable(toJson(trainConfigFromJson(nlohmann::json::parse(r.configJson))));
        } catch (const std::exception&) {
          continue;  // a run this version cannot read is not the stage asked for
        }
        if (stored != want) continue;
        const auto checkpoints = store.checkpoints(r.id);
        const bool usable = !checkpoints.empty() &&
                            fs::exists(fs::path(checkpoints.back().path) / "model.safetensors");
        if (r.status == "finished" && usable) {
          m_progress.onStage(m_index, m_total, what + " (run " + std::to_string(r.id) + ")", true);
          ++reused;
          tag(store, r);
          return r.id;
        }
        if (r.status != "finished" && !unfinished)
          unfinished = r;  // a finished run without files is retrained
      }
    }
    m_progress.onStage(
        m_index, m_total,
        what + (unfinished ? " (resuming run " + std::to_string(unfinished->id) + ")" : ""), false);
    TrainOptions opt;
    opt.workspace = m_spec.workspace;
    opt.parentRunId = parent;
    opt.runName = name;
    opt.sink = m_progress.stepSink(what);
    opt.stopRequested = m_spec.stopRequested;
    if (unfinished) opt.resumeRunId = unfinished->id;
    const auto result = train(cfg, opt);
    if (result.status == "stopped")
      throw ExperimentStopped(what + " (run " + std::to_string(result.runId) +
                              ") stopped at step " + std::to_string(result.step) +
                              " with a checkpoint; the same command resumes it");
    if (result.status != "finished")
      throw std::runtime_error(what + " (run " + std::to_string(result.runId) + ") " +
                               result.status + ": " + result.message);
    ++trained;
    RunStore store(storePath(m_spec.workspace));
    tag(store, *store.run(result.runId));
    return result.runId;
  }

  int trained = 0, reused = 0;

 private:
  void tag(RunStore& store, const RunInfo& r) {
    std::string tags = r.tags;
    if (("," + tags + ",").find("," + m_tag + ",") != std::string::npos) return;
    store.setTags(r.id, tags.empty() ? m_tag : tags + "," + m_tag);
  }

  const ExperimentSpec& m_spec;
  ExperimentProgress& m_progress;
  std::string m_tag;
  int m_total;
  int m_index = 0;
};

int64_t experimentRecord(const ExperimentSpec& spec) {
  RunStore store(storePath(spec.workspace));
  const std::string config = specJson(spec).dump();
  for (const auto& r : store.runs())
    if (r.stage == "experiment" && r.configJson == config) {
      store.claimRun(r.id, currentProcessOwner());
      store.setStatus(r.id, "running", "resumed");
      return r.id;
    }
  RunInfo info;
  info.preset = spec.preset;
  info.stage = "experiment";
  info.configJson = config;
  const int64_t id = store.createRun(info);
  store.rename(id, "experiment-" + std::to_string(id));
  store.claimRun(id, currentProcessOwner());
  store.setStatus(id, "running", "started");
  return id;
}

}  // namespace

void parseSweep(ExperimentSpec& spec, const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 >= text.size())
    throw std::runtime_error("bad --sweep '" + text + "' (expected key=v1,v2,...)");
  spec.sweepKey = text.substr(0, eq);
  spec.sweepValues.clear();
  std::stringstream values(text.substr(eq + 1));
  for (std::string v; std::getline(values, v, ',');)
    if (!v.empty()) spec.sweepValues.push_back(v);
  if (spec.sweepValues.empty())
    throw std::runtime_error("--sweep " + spec.sweepKey + " has no values");
}

void parseArms(ExperimentSpec& spec, const std::string& text) {
  spec.arms.clear();
  std::stringstream names(text);
  for (std::string name; std::getline(names, name, ',');) {
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    if (!name.empty()) spec.arms.push_back(name);
  }
}

ExperimentSpec resolvedSpec(const ExperimentSpec& in) {
  ExperimentSpec s = in;
  if (s.seeds < 1 || s.seeds > 50) throw std::runtime_error("--seeds must be 1..50");
  if (s.bases < 1 || s.bases > 20) throw std::runtime_error("--bases must be 1..20");
  if (s.workspace.empty()) throw std::runtime_error("no workspace given");
  try {
    (void)projectorInitFromName(s.transplantProjector);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("--transplant-projector: ") + e.what());
  }
  if (s.mixedSftWeight < 0) throw std::runtime_error("--mixed-sft-weight must be >= 0");
  for (size_t i = 0; i < s.arms.size(); ++i) {
    const auto& arm = s.arms[i];
    if (arm != "sft" && arm != "dpo" && arm != "grpo" && arm != "mpo")
      throw std::runtime_error("--arms: unknown arm '" + arm +
                               "' (expected sft, dpo, grpo or mpo)");
    if (std::find(s.arms.begin(), s.arms.begin() + static_cast<long>(i), arm) !=
        s.arms.begin() + static_cast<long>(i))
      throw std::runtime_error("--arms lists " + arm + " twice");
  }
  if (std::find(s.arms.begin(), s.arms.end(), "sft") == s.arms.end())
    throw std::runtime_error("--arms must include sft: every method is compared with it");
  if (s.arms.size() + (s.mixedSftWeight > 0 ? 1 : 0) < 2)
    throw std::runtime_error("--arms needs a method besides sft to compare with it");
  if (s.segmentationSeeds < 1) throw std::runtime_error("--seg-seeds must be at least 1");
  const TrainConfig align = makeConfig(s.preset, Stage::Align, s.sets);
  const TrainConfig instruct = makeConfig(s.preset, Stage::Instruct, s.sets);
  const bool mini = align.model.vision.image_size >= 48;  // larger encoders: larger probe sets
  auto orDefault = [](int& v, int def) {
    if (v <= 0) v = def;
  };
  // A transplant gets a third of stage 1a's steps and an eighth of stage 1b's: the study asks which
  // encoder gives the better MLLM for the same small budget, and transplants run once per seed and
  // encoder (9 of them for 3 seeds), so they dominate the experiment's time.
  orDefault(s.transplantAlignSteps, std::max(1, align.steps / 3));
  orDefault(s.transplantInstructSteps, std::max(1, instruct.steps / 8));
  orDefault(s.probeTrain, mini ? 1024 : 512);
  orDefault(s.probeVal, mini ? 512 : 256);
  orDefault(s.probeTest, mini ? 1024 : 512);
  orDefault(s.localisationSamples, mini ? 128 : 64);
  orDefault(s.vqaSamples, mini ? 384 : 192);  // 64 (32) questions per category: +-6 (+-9) points
  // Every stage's configuration is checked before anything is written.
  (void)pickDevice(
      makeConfig(s.preset, Stage::Pretrain, s.sets).device);  // device=cuda without CUDA
  for (const auto& sweep : sweepLabels(s))
    for (const auto& arm : armsOf(s)) {
      try {
        (void)stageTwoConfig(s, arm, sweep, 1);
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string(sweep.empty() ? "" : "--sweep " + sweep + ": ") +
                                 e.what());
      }
    }
  (void)transplantConfig(s, Stage::Align, 1, false, 1);
  (void)transplantConfig(s, Stage::Instruct, 1, false, 1);
  return s;
}

ExperimentOutcome runExperiment(const ExperimentSpec& requested, ExperimentProgress& progress) {
  const ExperimentSpec spec = resolvedSpec(requested);
  const auto sweeps = sweepLabels(spec);
  const auto arms = armsOf(spec);
  const int S = spec.seeds, V = static_cast<int>(sweeps.size()), A = static_cast<int>(arms.size());
  const int K = spec.bases;
  const int total = K * (3 + V * S * A + 2 * S + 2 * V * S * A);
  fs::create_directories(spec.workspace);

  ExperimentOutcome out;
  out.experimentId = experimentRecord(spec);
  out.reportDir = spec.out.empty() ? (fs::path(spec.workspace) / "experiments" /
                                      ("experiment-" + std::to_string(out.experimentId)))
                                         .string()
                                   : spec.out;
  StageRunner runner(spec, progress, out.experimentId, total);
  const auto fail = [&](const std::string& why) {
    RunStore(storePath(spec.workspace)).setStatus(out.experimentId, "failed", why);
    throw std::runtime_error(why);
  };
  const auto stopIfRequested = [&](const std::string& where) {
    if (!spec.stopRequested || !spec.stopRequested->load()) return;
    const std::string why = "stopped " + where + "; the same command resumes it";
    RunStore(storePath(spec.workspace)).setStatus(out.experimentId, "stopped", why);
    throw ExperimentStopped(why);
  };

  // --- training: the chain, each stage reused when it already ran
  // ------------------------------------
  StudyRuns runs;
  try {
    for (int b = 1; b <= K; ++b) {
      StudyRuns::Base& base = runs.bases[b];
      const std::string of = K > 1 ? "base " + std::to_string(b) + ", " : "";
      base.original = runner.run(baseConfig(spec, Stage::Pretrain, b), std::nullopt,
                                 of + "stage 0: encoder pre-training", "");
      const int64_t align =
          runner.run(baseConfig(spec, Stage::Align, b), base.original, of + "stage 1a: align", "");
      base.stage1 =
          runner.run(baseConfig(spec, Stage::Instruct, b), align, of + "stage 1b: instruct", "");
      for (const auto& sweep : sweeps)
        for (int seed = 1; seed <= S; ++seed)
          for (const auto& arm : arms) {
            const std::string label = armLabel(arm, sweep, seed);
            base.stageTwo[{sweep, seed, arm.encoder}] = runner.run(
                stageTwoConfig(spec, arm, sweep, seed), base.stage1, of + "stage 2: " + label, "");
          }
      const auto transplant = [&](int64_t encoderRun, bool original, int seed,
                                  const std::string& label) {
        const int64_t a =
            runner.run(transplantConfig(spec, Stage::Align, encoderRun, original, seed),
                       std::nullopt, of + "transplant " + label + ": align", "");
        return runner.run(transplantConfig(spec, Stage::Instruct, encoderRun, original, seed), a,
                          of + "transplant " + label + ": instruct", "");
      };
      for (int seed = 1; seed <= S; ++seed) {
        const int64_t t =
            transplant(base.original, true, seed, "original seed " + std::to_string(seed));
        for (const auto& sweep : sweeps) base.transplants[{sweep, seed, "original"}] = t;
        for (const auto& sweep : sweeps)
          for (const auto& arm : arms) {
            const std::string label = armLabel(arm, sweep, seed);
            base.transplants[{sweep, seed, arm.encoder}] =
                transplant(base.stageTwo.at({sweep, seed, arm.encoder}), false, seed, label);
          }
      }
    }
  } catch (const ExperimentStopped& e) {
    RunStore(storePath(spec.workspace)).setStatus(out.experimentId, "stopped", e.what());
    throw;
  } catch (const std::exception& e) {
    fail(e.what());
  }
  out.stagesTrained = runner.trained;
  out.stagesReused = runner.reused;

  // --- measurements
  // ------------------------------------------------------------------------------------
  progress.onMessage("measuring: probes, VQA by category, swap test, localisation, transplant VQA");
  MeasureSettings settings;
  settings.probeTrain = spec.probeTrain;
  settings.probeVal = spec.probeVal;
  settings.probeTest = spec.probeTest;
  settings.segmentationSeeds = spec.segmentationSeeds;
  settings.localisationSamples = spec.localisationSamples;
  auto load = [&](int64_t id) { return loadRunCheckpoint(spec.workspace, std::to_string(id)); };
  settings.vqaSamples = spec.vqaSamples;
  if (!fashionMnistInstalled())
    progress.onMessage(
        "Fashion-MNIST is not installed (dataset-fashion-mnist): its probe is skipped");
  auto& rows = out.rows;
  auto add = [&rows](std::vector<ResultRow> more) {
    rows.insert(rows.end(), more.begin(), more.end());
  };
  for (const auto& [b, base] : runs.bases) {
    const std::string of = K > 1 ? " (base " + std::to_string(b) + ")" : "";
    auto stage1 = load(base.stage1);
    const WorldConfig world = stage1.config.world;
    {
      auto original = load(base.original);
      add(probeEncoder(original.model, world, settings, resultKey("", 0, "original", b)));
    }
    add(probeEncoder(stage1.model, world, settings, resultKey("", 0, "stage1", b)));
    add(vqaRows(stage1.model, world, settings.vqaSamples, "vqa", resultKey("", 0, "stage1", b)));
    add(localisationRows(stage1.model, world, settings.localisationSamples, "localisation",
                         resultKey("", 0, "stage1", b)));
    const TensorMap stage1Vision = stateDict(*stage1.model->vision_tower);
    for (const auto& [key, id] : base.stageTwo) {
      const auto& [sweep, seed, encoder] = key;
      const ResultRow k = resultKey(sweep, seed, encoder, b);
      stopIfRequested("before measuring " + encoder + " seed " + std::to_string(seed) + of);
      progress.onMessage("measuring " + encoder + (sweep.empty() ? "" : " " + sweep) + " seed " +
                         std::to_string(seed) + of);
      auto m = load(id);
      add(probeEncoder(m.model, world, settings, k));
      add(vqaRows(m.model, world, settings.vqaSamples, "vqa", k));
      add(localisationRows(m.model, world, settings.localisationSamples, "localisation", k));
      // Swap test: this encoder under the base's stage-1 projector and LM.
      loadStateDict(*stage1.model->vision_tower, stateDict(*m.model->vision_tower), {""}, m.path);
      add(vqaRows(stage1.model, world, settings.vqaSamples, "swap_vqa", k));
      add(localisationRows(stage1.model, world, settings.localisationSamples, "swap_localisation",
                           k));
      loadStateDict(*stage1.model->vision_tower, stage1Vision, {""}, stage1.path);
    }
    for (const auto& [key, id] : base.transplants) {
      const auto& [sweep, seed, encoder] = key;
      stopIfRequested("before measuring the transplants" + of);
      auto m = load(id);
      add(vqaRows(m.model, world, settings.vqaSamples, "transplant_vqa",
                  resultKey(sweep, seed, encoder, b)));
    }
  }

  // --- report
  // -----------------------------------------------------------------------------------------
  fs::create_directories(out.reportDir);
  std::ofstream(fs::path(out.reportDir) / "spec.json") << specJson(spec).dump(2) << "\n";
  writeReport(out.reportDir, spec.workspace, runs, rows, progress);
  {
    RunStore store(storePath(spec.workspace));
    store.addArtifact(out.experimentId, "report", fs::absolute(out.reportDir).string());
    store.setStatus(out.experimentId, "finished",
                    std::to_string(runner.trained) + " stages trained, " +
                        std::to_string(runner.reused) + " reused; report " +
                        fs::absolute(out.reportDir).string());
  }
  return out;
}

}  // namespace pivot
