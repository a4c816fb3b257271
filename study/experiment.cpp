#include "study/experiment.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "store/run_store.h"
#include "store/workspace.h"
#include "study/measurements.h"
#include "study/report.h"
#include "study/task_graph.h"
#include "training/run_checkpoint.h"
#include "training/steps.h"
#include "training/chain.h"
#include "training/trainer.h"
#include "io/state_dict.h"
#include "torch_compat.h"

namespace fs = std::filesystem;

namespace pivot {
namespace {

// The --set assignments that change what trains: an experiment run again with other threads or on
// another device is the same experiment (its stages are the same stages, chain.h).
std::vector<std::string> trainingSets(const std::vector<std::string>& sets) {
  std::vector<std::string> kept;
  for (const auto& assignment : sets)
    if (!isExecutionSetting(assignment.substr(0, assignment.find('=')))) kept.push_back(assignment);
  return kept;
}

nlohmann::json specJson(const ExperimentSpec& s) {
  nlohmann::json j = {{"preset", s.preset},
                      {"seeds", s.seeds},
                      {"sets", trainingSets(s.sets)},
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
  if (!s.transplants)
    j["transplants"] = false;  // absent when they run: older experiments stay found
  if (!s.tuneLrScales.empty()) j["tune_lr_scales"] = s.tuneLrScales;  // absent: no tuning
  if (s.bases != 1) {
    j["bases"] = s.bases;  // absent for one base: older experiments stay found
    // Several bases: stage-2 seeds and evaluation items nested in each base (baseSeedOffset,
    // baseFirstItem); an experiment run before that trained other runs, so it is another one.
    j["nested_seeds_and_items"] = true;
  }
  return j;
}

// The caller's progress display, called from one thread at a time: stages run side by side.
class SerialProgress final : public ExperimentProgress {
 public:
  explicit SerialProgress(ExperimentProgress& inner) : m_inner(inner) {}
  void onStage(int index, int total, const std::string& what, bool reused) override {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_inner.onStage(index, total, what, reused);
  }
  void onMessage(const std::string& message) override {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_inner.onMessage(message);
  }
  std::unique_ptr<MetricSink> stepSink(int index, const std::string& what) override {
    std::lock_guard<std::mutex> lock(m_mutex);
    return std::make_unique<LockedSink>(m_inner.stepSink(index, what), m_mutex);
  }

 private:
  struct LockedSink final : MetricSink {
    LockedSink(std::unique_ptr<MetricSink> inner, std::mutex& mutex)
        : inner(std::move(inner)), mutex(mutex) {}
    void onRunStarted(int64_t runId, const std::string& name, int64_t batchSize,
                      const std::string& device) override {
      std::lock_guard<std::mutex> lock(mutex);
      if (inner) inner->onRunStarted(runId, name, batchSize, device);
    }
    void onStep(int64_t step, int64_t total, const Scalars& scalars) override {
      std::lock_guard<std::mutex> lock(mutex);
      if (inner) inner->onStep(step, total, scalars);
    }
    void onMessage(const std::string& message) override {
      std::lock_guard<std::mutex> lock(mutex);
      if (inner) inner->onMessage(message);
    }
    std::unique_ptr<MetricSink> inner;
    std::mutex& mutex;
  };
  ExperimentProgress& m_inner;
  std::mutex m_mutex;
};

void append(std::vector<ResultRow>& rows, const std::vector<ResultRow>& more) {
  rows.insert(rows.end(), more.begin(), more.end());
}

// This worker thread's CPU threads. ATen sets a new thread's OpenMP team size from the last value
// any thread chose, lazily at its first parallel operation; reading it first settles that, so the
// value set here stays this thread's.
void useThreads(int threads) {
  (void)at::get_num_threads();
  at::set_num_threads(threads);
}

// Trains, resumes or reuses one stage and records it as the experiment's. Called from several
// worker threads at once, for different stages.
class StageRunner {
 public:
  StageRunner(const ExperimentSpec& spec, ExperimentProgress& progress, int64_t experimentId,
              int total, const std::atomic<bool>* halt)
      : m_spec(spec),
        m_progress(progress),
        m_experimentId(experimentId),
        m_total(total),
        m_halt(halt) {}

  int64_t run(const TrainConfig& cfg, std::optional<int64_t> parent, int index,
              const std::string& what, int threads) {
    const StoredStage stored = findStoredStage(m_spec.workspace, cfg, parent);
    if (stored.finished) {
      m_progress.onStage(index, m_total, what + " (run " + std::to_string(*stored.finished) + ")",
                         true);
      ++reused;
      RunStore(storePath(m_spec.workspace)).addExperimentRun(m_experimentId, *stored.finished);
      return *stored.finished;
    }
    const std::optional<int64_t> unfinished = stored.unfinished;
    m_progress.onStage(
        index, m_total,
        what + (unfinished ? " (resuming run " + std::to_string(*unfinished) + ")" : ""), false);
    JoiningSink sink(m_progress.stepSink(index, what), m_spec.workspace, m_experimentId);
    TrainOptions opt;
    opt.workspace = m_spec.workspace;
    opt.parentRunId = parent;
    opt.sink = &sink;
    opt.stopRequested = m_halt;
    opt.threads = threads;
    opt.resumeRunId = unfinished;
    const auto result = train(cfg, opt);
    if (result.status == RunStatus::Stopped)
      throw ExperimentStopped(what + " (run " + std::to_string(result.runId) +
                              ") stopped at step " + std::to_string(result.step) +
                              " with a checkpoint; the same command resumes it");
    if (result.status != RunStatus::Finished)
      throw std::runtime_error(what + " (run " + std::to_string(result.runId) + ") " +
                               name(result.status) + ": " + result.message);
    ++trained;
    return result.runId;
  }

  std::atomic<int> trained{0}, reused{0};

 private:
  // Records a run as the experiment's the moment it exists, so a stage that stops, fails or
  // crashes is still the experiment's (the tree shows it there; the same command resumes it).
  struct JoiningSink final : MetricSink {
    JoiningSink(std::unique_ptr<MetricSink> inner, std::string workspace, int64_t experimentId)
        : inner(std::move(inner)), workspace(std::move(workspace)), experimentId(experimentId) {}
    void onRunStarted(int64_t runId, const std::string& name, int64_t batchSize,
                      const std::string& device) override {
      RunStore(storePath(workspace)).addExperimentRun(experimentId, runId);
      if (inner) inner->onRunStarted(runId, name, batchSize, device);
    }
    void onStep(int64_t step, int64_t total, const Scalars& scalars) override {
      if (inner) inner->onStep(step, total, scalars);
    }
    void onMessage(const std::string& message) override {
      if (inner) inner->onMessage(message);
    }
    std::unique_ptr<MetricSink> inner;
    std::string workspace;
    int64_t experimentId;
  };

  const ExperimentSpec& m_spec;
  ExperimentProgress& m_progress;
  int64_t m_experimentId;
  int m_total;
  const std::atomic<bool>* m_halt;
};

// Tuning (ExperimentSpec::tuneLrScales): the candidates of each swept value and arm are stages of
// base 1, seed 1; each decision is made once, when the first stage that needs it starts (after
// every candidate finished), from each candidate's held-out objective against the base's stage-1
// model on validation items from kTuningFirstItem on, which no measurement reads. Thread-safe:
// stages running side by side may ask at once.
class ArmTuning {
 public:
  ArmTuning(const ExperimentSpec& spec, const std::vector<int64_t>& runIds)
      : m_spec(spec), m_runIds(runIds) {}

  // The stages of base 1's stage-1 model and of an arm's candidates, one per scale in order.
  void addCandidates(const std::string& sweep, const StudyArm& arm, int stage1,
                     std::vector<int> stages) {
    m_stage1 = stage1;
    m_decisions[{sweep, arm.name}] = Decision{arm, std::move(stages), {}};
  }
  std::vector<int> candidateStages(const std::string& sweep, const std::string& arm) const {
    return m_decisions.at({sweep, arm}).stages;
  }
  // The learning-rate scale every base trains this arm with.
  double scale(const std::string& sweep, const std::string& arm) {
    std::lock_guard<std::mutex> lock(m_mutex);
    Decision& d = m_decisions.at({sweep, arm});
    if (d.candidates.empty()) decide(sweep, d);
    for (const auto& c : d.candidates)
      if (c.chosen) return c.lrScale;
    throw std::logic_error("a tuning decision without a choice");
  }
  // Every candidate of every decision, deciding those no stage asked for.
  std::vector<TuningCandidate> candidates() {
    std::vector<TuningCandidate> all;
    for (const auto& [key, d] : m_decisions) {
      (void)scale(key.first, key.second);
      all.insert(all.end(), d.candidates.begin(), d.candidates.end());
    }
    return all;
  }

 private:
  struct Decision {
    StudyArm arm;
    std::vector<int> stages;                  // one per scale, in tuneLrScales' order
    std::vector<TuningCandidate> candidates;  // empty until decided
  };

  // Base 1's stage-1 model, every objective's reference, loaded at the first decision.
  LoadedCheckpoint& reference() {
    if (!m_reference)
      m_reference = loadRunCheckpoint(m_spec.workspace, std::to_string(runOf(m_stage1)));
    return *m_reference;
  }
  int64_t runOf(int stage) const { return m_runIds[static_cast<size_t>(stage)]; }

  void decide(const std::string& sweep, Decision& d) {
    LoadedCheckpoint& stage1 = reference();
    const ShapesWorld world(stage1.config.world);
    std::vector<Sample> samples;
    for (int i = 0; i < m_spec.vqaSamples; ++i)
      samples.push_back(world.sample(Split::Val, kTuningFirstItem + i));
    const auto device = stage1.model->parameters().front().device();
    size_t best = 0;
    for (size_t i = 0; i < d.stages.size(); ++i) {
      const double scale = m_spec.tuneLrScales[i];
      const TrainConfig cfg = stageTwoConfig(m_spec, d.arm, sweep, 1, 1, scale);
      auto policy = loadRunCheckpoint(m_spec.workspace, std::to_string(runOf(d.stages[i])));
      TuningCandidate c;
      c.sweep = sweep;
      c.arm = d.arm.name;
      c.lrScale = scale;
      c.lr = cfg.lr;
      c.visionLr = cfg.vision_lr;
      c.run = runOf(d.stages[i]);
      c.objective = heldOutObjectiveName(cfg);
      c.value = heldOutObjective(cfg, policy.model, stage1.model, samples,
                                 WordTokenizer::shapesWorld(), device);
      d.candidates.push_back(c);
      if (c.value < d.candidates[best].value) best = i;  // ties: the first (the smaller) scale
    }
    d.candidates[best].chosen = true;
  }

  const ExperimentSpec& m_spec;
  const std::vector<int64_t>& m_runIds;
  int m_stage1 = -1;
  std::optional<LoadedCheckpoint> m_reference;
  std::map<std::pair<std::string, std::string>, Decision> m_decisions;  // (sweep, arm)
  std::mutex m_mutex;
};

// The study's stages as a graph: each waits for the run it starts from, a transplant also for the
// stage-2 run whose encoder it takes. A stage's configuration is made when it starts, as it names
// runs (the transplant's vision_init) that exist only then.
struct StageGraph {
  struct Node {
    std::function<TrainConfig()> config;
    int parent = -1;  // the stage whose run this one starts from; -1: none
    std::vector<int> after;
    std::string what;
    bool critical = false;  // a base's stages 0, 1a, 1b: everything else of the base waits for them
  };
  std::vector<Node> stages;
  std::vector<int64_t> runIds;  // filled as stages finish

  int add(std::function<TrainConfig()> config, int parent, std::vector<int> after, std::string what,
          bool critical = false) {
    if (parent >= 0) after.push_back(parent);
    stages.push_back({std::move(config), parent, std::move(after), std::move(what), critical});
    runIds.push_back(0);
    return static_cast<int>(stages.size()) - 1;
  }
};

// Which stage of the graph holds each run of the study, per base.
struct StudyStages {
  struct Base {
    int original = -1, stage1 = -1;
    std::map<StudyRuns::Key, int> stageTwo, transplants;
  };
  std::map<int, Base> bases;
};

void buildStudyGraph(const ExperimentSpec& spec, StageGraph& g, StudyStages& where,
                     ArmTuning* tuning) {
  const auto sweeps = sweepLabels(spec);
  const auto arms = armsOf(spec);
  const auto& runIds = g.runIds;  // read when a stage starts, after the ones it waits for
  for (int b = 1; b <= spec.bases; ++b) {
    StudyStages::Base& base = where.bases[b];
    const std::string of = spec.bases > 1 ? "base " + std::to_string(b) + ", " : "";
    const auto chainStage = [&spec, b](Stage stage) {
      return [&spec, b, stage] { return baseConfig(spec, stage, b); };
    };
    base.original =
        g.add(chainStage(Stage::Pretrain), -1, {}, of + "stage 0: encoder pre-training", true);
    const int align =
        g.add(chainStage(Stage::Align), base.original, {}, of + "stage 1a: align", true);
    base.stage1 = g.add(chainStage(Stage::Instruct), align, {}, of + "stage 1b: instruct", true);
    if (tuning && b == 1)  // the candidates: base 1, seed 1, one stage-2 run per scale
      for (const auto& sweep : sweeps)
        for (const auto& arm : arms) {
          std::vector<int> candidates;
          for (const double scale : spec.tuneLrScales) {
            std::ostringstream what;
            what << of << "tuning: " << armLabel(arm, sweep, 1) << " lr x" << scale;
            candidates.push_back(
                g.add([&spec, arm, sweep,
                       scale] { return stageTwoConfig(spec, arm, sweep, 1, 1, scale); },
                      base.stage1, {}, what.str()));
          }
          tuning->addCandidates(sweep, arm, base.stage1, candidates);
        }
    for (const auto& sweep : sweeps)
      for (int seed = 1; seed <= spec.seeds; ++seed)
        for (const auto& arm : arms)
          base.stageTwo[{sweep, seed, arm.name}] = g.add(
              [&spec, arm, sweep, seed, b, tuning] {
                return stageTwoConfig(spec, arm, sweep, seed, b,
                                      tuning ? tuning->scale(sweep, arm.name) : 1.0);
              },
              base.stage1, tuning ? tuning->candidateStages(sweep, arm.name) : std::vector<int>{},
              of + "stage 2: " + armLabel(arm, sweep, seed));
    const auto transplant = [&](int encoder, bool original, int seed, const std::string& label) {
      const auto config = [&spec, &runIds, encoder, original, seed, b](Stage stage) {
        return [&spec, &runIds, encoder, original, seed, b, stage] {
          return transplantConfig(spec, stage, runIds[static_cast<size_t>(encoder)], original, seed,
                                  b);
        };
      };
      const int a =
          g.add(config(Stage::Align), -1, {encoder}, of + "transplant " + label + ": align");
      return g.add(config(Stage::Instruct), a, {encoder},
                   of + "transplant " + label + ": instruct");
    };
    for (int seed = 1; spec.transplants && seed <= spec.seeds; ++seed) {
      const int t = transplant(base.original, true, seed, "original seed " + std::to_string(seed));
      for (const auto& sweep : sweeps) base.transplants[{sweep, seed, "original"}] = t;
      for (const auto& sweep : sweeps)
        for (const auto& arm : arms)
          base.transplants[{sweep, seed, arm.name}] = transplant(
              base.stageTwo.at({sweep, seed, arm.name}), false, seed, armLabel(arm, sweep, seed));
    }
  }
}

// The experiment's row: the one with the same spec (the same command again resumes it), or new.
int64_t experimentRecord(const ExperimentSpec& spec) {
  RunStore store(storePath(spec.workspace));
  const std::string specText = specJson(spec).dump();
  for (const auto& e : store.experiments())
    if (e.specJson == specText) {
      // The same command running now (another window or shell): two would train the same runs.
      if (ownerLiveness(e.status, e.owner) == Liveness::Alive &&
          e.owner.pid != currentProcessOwner().pid)
        throw std::runtime_error("experiment " + std::to_string(e.id) +
                                 " with this spec is running in this workspace (" +
                                 ownerText(e.owner) +
                                 "); wait for it, stop it, or use another --workspace");
      store.claimExperiment(e.id, currentProcessOwner());
      store.setExperimentStatus(e.id, RunStatus::Running, "resumed");
      return e.id;
    }
  ExperimentInfo info;
  info.preset = spec.preset;
  info.specJson = specText;
  const int64_t id = store.createExperiment(info);
  store.claimExperiment(id, currentProcessOwner());
  store.setExperimentStatus(id, RunStatus::Running, "started");
  return id;
}

}  // namespace

ExperimentSpec resolvedSpec(const ExperimentSpec& in) {
  if (in.workspace.empty()) throw std::runtime_error("no workspace given");
  ExperimentSpec s = checkedSpec(in);
  if (s.jobs == 0) s.jobs = defaultStudyJobs();
  (void)pickDevice(baseConfig(s, Stage::Pretrain, 1).device);  // device=cuda without CUDA
  return s;
}

// How the stages used the CPU, as the report's Machine section says it.
std::string threadsUse(int fixedThreads, int jobs, int cores) {
  if (fixedThreads > 0)
    return std::to_string(fixedThreads) + " per stage (threads=" + std::to_string(fixedThreads) +
           "), " + std::to_string(jobs) + " stage(s) at a time";
  if (jobs > 1)
    return std::to_string(jobs) + " stages side by side, " +
           std::to_string(std::max(1, cores / jobs)) +
           " each (a lone stage-0/1 chain, or a stage with nothing beside it: " +
           std::to_string(cores) + ")";
  return std::to_string(cores) + ", one stage at a time";
}

// A measurement of the study: the stages whose runs it reads, and what it returns.
struct Measurement {
  std::vector<int> after;
  std::function<std::vector<ResultRow>()> measure;
};

// What is measured on each model of the study, one task per model (a base's original and stage-1
// models together), each once the stages it reads have finished: `runIds` is read then. The tasks
// hold copies of what they need but `serial` and `runIds`, which outlive them; their rows are
// joined in this order.
std::vector<Measurement> measurementTasks(const ExperimentSpec& spec, const StudyStages& where,
                                          const std::vector<int64_t>& runIds,
                                          SerialProgress& serial) {
  MeasureSettings settings;
  settings.probeTrain = spec.probeTrain;
  settings.probeVal = spec.probeVal;
  settings.probeTest = spec.probeTest;
  settings.segmentationSeeds = spec.segmentationSeeds;
  settings.localisationSamples = spec.localisationSamples;
  settings.vqaSamples = spec.vqaSamples;
  const auto load = [workspace = spec.workspace, &runIds](int stage) {
    return loadRunCheckpoint(workspace, std::to_string(runIds[static_cast<size_t>(stage)]));
  };
  const int K = spec.bases;
  std::vector<Measurement> measures;
  for (const auto& [b, base] : where.bases) {
    settings.firstItem = baseFirstItem(b);
    const std::string of = K > 1 ? " (base " + std::to_string(b) + ")" : "";
    const int bb = b, original = base.original, stage1 = base.stage1;
    measures.push_back({{original, stage1}, [=, &serial] {
                          serial.onMessage("measuring the original and stage-1 models" + of);
                          std::vector<ResultRow> rows;
                          auto stage1Model = load(stage1);
                          const WorldConfig world = stage1Model.config.world;
                          {
                            auto originalModel = load(original);
                            const ResultRow k = resultKey("", 0, "original", bb);
                            append(rows, probeEncoder(originalModel.model, world, settings, k));
                            // How far stage 1 moved the encoder from stage 0's.
                            append(rows, displacementRows(originalModel.model, stage1Model.model,
                                                          world, settings, k));
                          }
                          const ResultRow k = resultKey("", 0, "stage1", bb);
                          append(rows, probeEncoder(stage1Model.model, world, settings, k));
                          append(rows, answerRows(stage1Model.model, world, settings, "", k));
                          return rows;
                        }});
    for (const auto& [key, stage] : base.stageTwo) {
      const auto& [sweep, seed, encoder] = key;
      const ResultRow k = resultKey(sweep, seed, encoder, b);
      const std::string label =
          encoder + (sweep.empty() ? "" : " " + sweep) + " seed " + std::to_string(seed) + of;
      const int trained = stage;
      measures.push_back({{trained, stage1}, [=, &serial] {
                            serial.onMessage("measuring " + label);
                            std::vector<ResultRow> rows;
                            auto m = load(trained);
                            const WorldConfig world = m.config.world;
                            append(rows, probeEncoder(m.model, world, settings, k));
                            append(rows, answerRows(m.model, world, settings, "", k));
                            // How far this arm moved the encoder from stage 1's; then the swap
                            // test: this encoder under the base's stage-1 projector and LM.
                            auto swapped = load(stage1);
                            append(rows,
                                   displacementRows(m.model, swapped.model, world, settings, k));
                            loadStateDict(*swapped.model->vision_tower,
                                          stateDict(*m.model->vision_tower), {""}, m.path);
                            append(rows, answerRows(swapped.model, world, settings, "swap_", k));
                            return rows;
                          }});
    }
    for (const auto& [key, stage] : base.transplants) {
      const auto& [sweep, seed, encoder] = key;
      const ResultRow k = resultKey(sweep, seed, encoder, b);
      const int transplant = stage;
      measures.push_back({{transplant}, [=] {
                            auto m = load(transplant);
                            return vqaRows(m.model, m.config.world, settings.vqaSamples,
                                           "transplant_vqa", k, settings.firstItem);
                          }});
    }
  }
  return measures;
}

ExperimentOutcome runExperiment(const ExperimentSpec& requested, ExperimentProgress& progress) {
  const ExperimentSpec spec = resolvedSpec(requested);
  fs::create_directories(spec.workspace);
  StageGraph graph;
  StudyStages where;
  std::optional<ArmTuning> tuning;
  if (!spec.tuneLrScales.empty()) tuning.emplace(spec, graph.runIds);
  buildStudyGraph(spec, graph, where, tuning ? &*tuning : nullptr);

  ExperimentOutcome out;
  out.experimentId = experimentRecord(spec);
  out.reportDir = spec.out.empty() ? (fs::path(spec.workspace) / "experiments" /
                                      ("experiment-" + std::to_string(out.experimentId)))
                                         .string()
                                   : spec.out;
  SerialProgress serial(progress);
  // Stops every stage in progress: the caller's stop, or a stage that failed.
  std::atomic<bool> halt{false};
  TaskGraphOptions sideBySide;
  sideBySide.workers = spec.jobs;
  sideBySide.cores = machineCores();
  sideBySide.halt = &halt;
  sideBySide.stop = spec.stopRequested;
  // threads=N among the overrides fixes every stage's and measurement's threads.
  const int fixedThreads = makeConfig(spec.preset, Stage::Pretrain, spec.sets).threads;
  const auto threadsFor = [fixedThreads](int offered) {
    return fixedThreads > 0 ? fixedThreads : offered;
  };
  const auto markExperiment = [&](RunStatus status, const std::string& why) {
    RunStore(storePath(spec.workspace)).setExperimentStatus(out.experimentId, status, why);
  };
  // Runs a graph of tasks; a stop (or a stage that stopped) marks the experiment stopped, any
  // other failure marks it failed, naming the stage.
  const auto runAll = [&](const std::vector<Task>& tasks, const std::string& phase) {
    try {
      if (!runTaskGraph(tasks, sideBySide))
        throw ExperimentStopped("stopped " + phase + "; the same command resumes it");
    } catch (const ExperimentStopped& e) {
      markExperiment(RunStatus::Stopped, e.what());
      throw;
    } catch (const std::exception& e) {
      markExperiment(RunStatus::Failed, e.what());
      throw std::runtime_error(e.what());
    }
  };

  // --- one graph: every stage once the runs it starts from exist (reused when it already ran),
  // every measurement once the runs it reads exist, so measuring fills the cores that training
  // leaves idle; the rows are joined in the measurements' order, so results.csv does not depend on
  // timing
  // ------------------------------------------------------------------------------------------
  if (!fashionMnistInstalled())
    serial.onMessage(
        "Fashion-MNIST is not installed (dataset-fashion-mnist): its probe is skipped");
  StageRunner runner(spec, serial, out.experimentId, static_cast<int>(graph.stages.size()), &halt);
  const auto measures = measurementTasks(spec, where, graph.runIds, serial);
  std::vector<std::vector<ResultRow>> measured(measures.size());
  {
    std::vector<Task> tasks;
    for (size_t i = 0; i < graph.stages.size(); ++i)
      tasks.push_back({graph.stages[i].after,
                       [&, i](int threads) {
                         const auto& node = graph.stages[i];
                         const int stageThreads = threadsFor(threads);
                         useThreads(stageThreads);
                         const TrainConfig cfg = node.config();
                         const auto parent =
                             node.parent >= 0 ? std::optional<int64_t>(
                                                    graph.runIds[static_cast<size_t>(node.parent)])
                                              : std::nullopt;
                         graph.runIds[i] = runner.run(cfg, parent, static_cast<int>(i) + 1,
                                                      node.what, stageThreads);
                       },
                       graph.stages[i].critical});
    for (size_t i = 0; i < measures.size(); ++i)
      tasks.push_back({measures[i].after, [&, i](int threads) {
                         useThreads(threadsFor(threads));
                         measured[i] = measures[i].measure();
                       }});
    runAll(tasks, "before every stage was trained and measured");
  }
  for (const auto& rows : measured) append(out.rows, rows);
  out.stagesTrained = runner.trained;
  out.stagesReused = runner.reused;
  StudyRuns runs;
  for (const auto& [b, stages] : where.bases) {
    const auto run = [&](int stage) { return graph.runIds[static_cast<size_t>(stage)]; };
    StudyRuns::Base& base = runs.bases[b];
    base.original = run(stages.original);
    base.stage1 = run(stages.stage1);
    for (const auto& [key, stage] : stages.stageTwo) base.stageTwo[key] = run(stage);
    for (const auto& [key, stage] : stages.transplants) base.transplants[key] = run(stage);
  }
  if (tuning) runs.tuning = tuning->candidates();

  // --- report
  // -----------------------------------------------------------------------------------------
  fs::create_directories(out.reportDir);
  std::ofstream(fs::path(out.reportDir) / "spec.json") << specJson(spec).dump(2) << "\n";
  writeReport(out.reportDir, spec.workspace, runs, out.rows,
              threadsUse(fixedThreads, spec.jobs, sideBySide.cores),
              spec.sweepKey == "dose" ? doseDescription(spec) : "", serial);
  {
    RunStore store(storePath(spec.workspace));
    store.setExperimentReport(out.experimentId, fs::absolute(out.reportDir).string());
    store.setExperimentStatus(out.experimentId, RunStatus::Finished,
                              std::to_string(runner.trained) + " stages trained, " +
                                  std::to_string(runner.reused) + " reused; report " +
                                  fs::absolute(out.reportDir).string());
  }
  return out;
}

}  // namespace pivot
