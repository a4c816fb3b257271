#include "training/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "io/checkpoint.h"
#include "io/hf_llava.h"
#include "io/state_dict.h"
#include "store/run_store.h"
#include "store/workspace.h"
#include "torch_compat.h"
#include "training/batches.h"
#include "training/checkpoint_keeper.h"
#include "training/distributed.h"
#include "training/encoder_pretrain.h"
#include "training/evaluate.h"
#include "training/global_rng.h"
#include "training/losses.h"
#include "training/real_data.h"
#include "training/run_checkpoint.h"
#include "training/schedule.h"
#include "training/steps.h"

#ifndef PIVOT_GIT_COMMIT
#define PIVOT_GIT_COMMIT "unknown"
#endif

namespace fs = std::filesystem;

namespace pivot {
namespace {

constexpr int kStoreFlushSteps = 20;  // metrics reach the run store in batches of this many steps
constexpr const char* kHeadsFile =
    "contrastive_heads.safetensors";  // stage 0's discarded text tower

// HF-style initialisation: N(0, 0.02) weights, zero biases, unit norms.
void initWeights(torch::nn::Module& model) {
  torch::NoGradGuard noGrad;
  for (auto& p : model.named_parameters()) {
    const std::string& name = p.key();
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0)
      p.value().zero_();
    else if (name.find("norm") != std::string::npos)
      p.value().fill_(1.0);
    else
      p.value().normal_(0.0, 0.02);
  }
}

// Loads `dir`'s weights into `model`; a checkpoint of another architecture is a clear error.
void loadWeights(Mllm& model, const std::string& dir, const MllmConfig& expected) {
  MllmConfig stored;
  try {
    stored = mllmConfigFromJson(readCheckpointConfig(dir));
  } catch (const std::runtime_error& e) {
    const std::string why = e.what();
    throw std::runtime_error(why.rfind(dir, 0) == 0 ? why : dir + "/config.json: " + why);
  }
  if (toJson(stored) != toJson(expected))
    throw std::runtime_error(dir + ": checkpoint of another architecture (model config differs: " +
                             toJson(stored).dump() + ")");
  loadStateDict(*model, readCheckpointWeights(dir), {""}, dir + "/model.safetensors");
}

// Copies the vision tower (and, for "1+1", the first projector layer) of a checkpoint into `model`.
void transplantEncoder(Mllm& model, const std::string& dir, bool firstProjectorLayer) {
  const VisionEncoderSource source = readVisionEncoder(dir);
  if (toJson(source.vision) != toJson(model->config.vision))
    throw std::runtime_error(dir + ": its vision tower has another architecture (" +
                             toJson(source.vision).dump() + ")");
  loadStateDict(*model->vision_tower, source.tower, {""}, dir);
  if (firstProjectorLayer) {
    if (source.projectorFirstLayer.empty())
      throw std::runtime_error(dir +
                               ": projector_init=one_plus_one needs a source with a "
                               "projector (a LLaVA folder or a run), this is a " +
                               source.kind + " encoder");
    if (source.textHiddenSize != model->config.text.hidden_size ||
        source.featureLayers != model->config.vision_feature_layers)
      throw std::runtime_error(dir + ": projector_init=one_plus_one needs the source's LM width (" +
                               std::to_string(source.textHiddenSize) +
                               ") and vision_feature_layer");
    loadStateDict(*model->multi_modal_projector->linear_1, source.projectorFirstLayer, {""}, dir);
  }
}

// Buffers metrics and writes them to the run store in one transaction per flush.
class StoreWriter {
 public:
  StoreWriter(RunStore& store, int64_t runId) : m_store(store), m_runId(runId) {}
  void add(int64_t step, const Scalars& scalars) {
    const double now = unixNow();
    for (const auto& [k, v] : scalars) m_points.push_back({step, k, v, now});
    if (++m_pending >= kStoreFlushSteps) flush();
  }
  void flush() {
    m_store.appendMetrics(m_runId, m_points);
    m_points.clear();
    m_pending = 0;
  }

 private:
  RunStore& m_store;
  int64_t m_runId;
  std::vector<MetricPoint> m_points;
  int m_pending = 0;
};

struct Groups {
  std::vector<torch::Tensor> vision, rest;
};

// Which parameters train in each stage: 0 the vision tower only; 1a the projector (and the LM when
// align_trains_lm); later stages everything, the vision tower at its own learning rate (frozen when
// vision_lr is 0).
Groups trainableGroups(Mllm& model, const TrainConfig& c) {
  Groups g;
  for (auto& p : model->named_parameters()) {
    const bool isVision = p.key().rfind("vision_tower.", 0) == 0;
    const bool isProjector = p.key().rfind("multi_modal_projector.", 0) == 0;
    const bool frozenProjectorLayer = c.projector_init == ProjectorInit::OnePlusOne &&
                                      p.key().rfind("multi_modal_projector.linear_1.", 0) == 0;
    const bool trains = frozenProjectorLayer         ? false
                        : c.stage == Stage::Pretrain ? isVision
                        : c.stage == Stage::Align
                            ? (isProjector || (c.align_trains_lm && !isVision))
                            : (!isVision || c.trainsVision());
    p.value().set_requires_grad(trains);
    if (trains) (isVision ? g.vision : g.rest).push_back(p.value());
  }
  return g;
}

// The names of the scalars that are not finite numbers (empty when all are).
std::string nonFiniteScalars(const Scalars& scalars) {
  std::string out;
  for (const auto& [k, v] : scalars)
    if (!std::isfinite(v))
      out += (out.empty() ? "" : ", ") + k + " = " +
             (std::isnan(v) ? "nan"
              : v > 0       ? "inf"
                            : "-inf");
  return out;
}

// The run to resume, checked: it exists, is not finished and no live process trains it.
RunInfo runToResume(const RunStore& store, int64_t runId) {
  auto info = store.run(runId);
  if (!info)
    throw std::runtime_error("no run " + std::to_string(runId) + " to resume in " + store.path());
  if (info->status == RunStatus::Finished)
    throw std::runtime_error("run " + info->name + " already finished");
  if (info->status == RunStatus::Unknown)  // a newer version's state: resuming could undo it
    throw std::runtime_error("run " + info->name + ": " + info->message +
                             "; resume it with the version that wrote it");
  if (runLiveness(*info) == Liveness::Alive && info->owner.pid != currentProcessOwner().pid)
    throw std::runtime_error("run " + info->name + " is live (" + ownerText(info->owner) +
                             "): another process trains it; stop it there, or wait for it");
  return *info;
}

// What a run starts from, checked before anything is written: its configuration (a resumed run's
// own), the device, the run to resume and its last resumable checkpoint, the parent's checkpoint.
struct RunPlan {
  TrainConfig config;
  torch::Device device = torch::kCPU;
  std::unique_ptr<RunStore> store;
  std::optional<RunInfo> resumed;
  std::optional<int64_t> parentId;
  std::string resumeFrom, parentCheckpoint;
  std::unique_ptr<RealData> realData;  // a real model's data, opened before anything is written
};

// The parent's checkpoint a run starts from: the step asked for, else the parent's newest, which
// must be whole. An older one is never taken silently (the newest's folder deleted, say): the
// error names it and how to ask for it.
CheckpointInfo parentCheckpointFor(const RunStore& store, const RunInfo& parent,
                                   std::optional<int64_t> step) {
  const auto checkpoints = store.checkpoints(parent.id);
  const auto whole = [](const CheckpointInfo& c) {
    return fs::exists(fs::path(c.path) / "model.safetensors");
  };
  if (checkpoints.empty())
    throw std::runtime_error("parent run " + parent.name + " has no checkpoint to start from");
  if (step) {
    std::string have;
    for (const auto& c : checkpoints) {
      if (c.step == *step) {
        if (!whole(c))
          throw std::runtime_error("parent run " + parent.name + "'s checkpoint at step " +
                                   std::to_string(c.step) + " has no model.safetensors (" + c.path +
                                   ")");
        return c;
      }
      have += (have.empty() ? "" : ", ") + std::to_string(c.step);
    }
    throw std::runtime_error("parent run " + parent.name + " has no checkpoint at step " +
                             std::to_string(*step) + " (have: " + have + ")");
  }
  if (whole(checkpoints.back())) return checkpoints.back();
  std::string hint;
  for (auto it = checkpoints.rbegin(); it != checkpoints.rend() && hint.empty(); ++it)
    if (whole(*it))
      hint = "; to start from its newest whole one, name it: --from " + parent.name + "@" +
             std::to_string(it->step);
  throw std::runtime_error("parent run " + parent.name + "'s newest checkpoint (step " +
                           std::to_string(checkpoints.back().step) + ", " +
                           checkpoints.back().path + ") has no model.safetensors" + hint);
}

RunPlan planRun(const TrainConfig& requested, const TrainOptions& options, MetricSink& sink) {
  RunPlan plan;
  plan.config = requested;
  if (options.resumeRunId) {
    if (!fs::exists(storePath(options.workspace)))
      throw std::runtime_error("workspace " + options.workspace + " has no runs.sqlite");
    plan.store = std::make_unique<RunStore>(storePath(options.workspace));
    plan.resumed = runToResume(*plan.store, *options.resumeRunId);
    plan.config = trainConfigFromJson(nlohmann::json::parse(plan.resumed->configJson));
    if (options.skipBad) plan.config.skip_bad = true;
  }
  // Checked here, not per --set: model_dir and data are given one after the other.
  if (plan.config.realModel() && plan.config.data.empty())
    throw std::runtime_error("model_dir needs data (a data file)");
  if (!plan.config.realModel() && !plan.config.data.empty())
    throw std::runtime_error("data needs model_dir (a real model)");
  if (plan.config.realModel()) {  // the architecture is the folder's, whatever the preset says
    const std::string configPath = (fs::path(plan.config.model_dir) / "config.json").string();
    plan.config.model = llavaConfigFromHf(readJsonFile(configPath), configPath);
  }
  validate(plan.config);
  plan.device = pickDevice(plan.config.device);  // device=cuda without CUDA: before any write
  if (plan.config.realModel()) {  // a bad record is bad input: reported before any write
    plan.realData = std::make_unique<RealData>(
        plan.config, options.decodeImage, [&sink](const std::string& m) { sink.onMessage(m); });
    sink.onMessage("data: " + plan.realData->summary());
  }
  if (!plan.store) {
    fs::create_directories(options.workspace);
    plan.store = std::make_unique<RunStore>(storePath(options.workspace));
  }
  plan.parentId = plan.resumed ? plan.resumed->parentId : options.parentRunId;
  if (plan.resumed)
    plan.resumeFrom = lastUsableCheckpoint(*plan.store, plan.resumed->id, /*resumable=*/true);
  if (plan.realData && !plan.resumeFrom.empty()) {
    // The checkpoint names the data it was trained on; a resume on other data is allowed (a fixed
    // record, a moved folder) but never silent.
    const std::string was = readTrainerState(plan.resumeFrom).value("data_fingerprint", "");
    const std::string now = plan.realData->fingerprint();
    if (!was.empty() && was != now)
      sink.onMessage("warning: the data changed since checkpoint " + plan.resumeFrom + " (" + was +
                     "; now " + now + "): the run continues on the data as it is now");
  }
  if (plan.parentId) {
    auto parent = plan.store->run(*plan.parentId);
    if (!parent) throw std::runtime_error("no parent run " + std::to_string(*plan.parentId));
    const CheckpointInfo from =
        parentCheckpointFor(*plan.store, *parent, plan.resumed ? std::nullopt : options.parentStep);
    plan.parentCheckpoint = from.path;
    if (!plan.resumed)
      sink.onMessage("starting from run " + parent->name + " at step " + std::to_string(from.step));
  } else if (plan.config.needsReference() && !plan.config.realModel()) {
    sink.onMessage(std::string("warning: ") + stageName(plan.config.stage) +
                   " without a parent run: the reference is the random initial model");
  }
  return plan;
}

// The models of a run: the policy (from the parent's checkpoint, a transplanted encoder, or fresh),
// the frozen reference copy of it (DPO, MPO, GRPO's KL), stage 0's discarded text tower and heads.
struct RunModels {
  Mllm model{nullptr};
  Mllm reference{nullptr};
  ContrastiveHeads heads{nullptr};
};

bool isModelFolder(const std::string& path) {
  return fs::exists(fs::path(path) / "model.safetensors") ||
         fs::exists(fs::path(path) / "model.safetensors.index.json");
}

// The folder vision_init names: a model folder, or RUN[@STEP] of this workspace.
std::string visionInitSource(const RunStore& store, const std::string& visionInit) {
  if (isModelFolder(visionInit)) return visionInit;
  try {
    return resolveCheckpoint(store, visionInit).path;
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("vision_init: ") + e.what());
  }
}

RunModels buildModels(const TrainConfig& cfg, const RunStore& store,
                      const std::string& parentCheckpoint, torch::Device device, MetricSink& sink) {
  RunModels m;
  m.model = Mllm(cfg.model);
  initWeights(*m.model);
  if (!parentCheckpoint.empty()) {
    loadWeights(m.model, parentCheckpoint, cfg.model);
  } else if (cfg.realModel()) {  // a Hugging Face LLaVA folder's weights
    HfLlava folder = loadHfLlava(cfg.model_dir);
    m.model = folder.model;
    sink.onMessage("model " + cfg.model_dir + " (" + folder.report.layout + " layout)");
  }
  // PIVOT transplant: a trained encoder in a fresh model (ShapesWorld's, or a real model folder
  // whose LM is new, e.g. one `pivot model init` wrote from a config).
  if (parentCheckpoint.empty() && !cfg.vision_init.empty()) {
    const std::string source = visionInitSource(store, cfg.vision_init);
    transplantEncoder(m.model, source, cfg.projector_init == ProjectorInit::OnePlusOne);
    sink.onMessage("vision tower" +
                   std::string(cfg.projector_init == ProjectorInit::OnePlusOne
                                   ? " and first projector layer"
                                   : "") +
                   " from " + source);
  }
  if (cfg.needsReference()) {  // frozen copy of the starting (stage-1) model
    m.reference = Mllm(cfg.model);
    loadStateDict(*m.reference, stateDict(*m.model), {""}, "policy");
    m.reference->eval();
    for (auto& p : m.reference->parameters()) p.set_requires_grad(false);
    m.reference->to(device);
  }
  m.model->to(device);
  m.model->train();
  // Stage 0 only: the text tower and heads of the image-text loss, discarded after the run (their
  // weights sit beside the checkpoint so that a stopped pre-training resumes).
  if (cfg.stage == Stage::Pretrain) {
    m.heads = ContrastiveHeads(cfg.model.vision, cfg.model.text.vocab_size);
    initWeights(*m.heads);
    m.heads->logit_scale.data().fill_(std::log(10.0));
    m.heads->logit_bias.data().fill_(-10.0);
    m.heads->to(device);
    m.heads->train();
  }
  return m;
}

// AdamW over the trainable parameters: projector + LM (and stage 0's heads) at lr, the vision
// tower as a second group at vision_lr.
struct Optimisation {
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> parameters;  // everything that trains, for gradient clipping
  bool visionGroup = false;
};

Optimisation makeOptimizer(RunModels& m, const TrainConfig& cfg) {
  Groups groups = trainableGroups(m.model, cfg);
  if (m.heads)
    for (auto& p : m.heads->parameters()) groups.rest.push_back(p);
  const auto adamw = [&](double lr) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(lr)
                                                            .weight_decay(cfg.weight_decay)
                                                            .betas({0.9, 0.999})
                                                            .eps(1e-8));
  };
  std::vector<torch::optim::OptimizerParamGroup> paramGroups;
  paramGroups.emplace_back(groups.rest, adamw(cfg.lr));
  if (!groups.vision.empty()) paramGroups.emplace_back(groups.vision, adamw(cfg.vision_lr));
  Optimisation o;
  o.optimizer = std::make_unique<torch::optim::AdamW>(paramGroups, *adamw(cfg.lr));
  o.parameters = groups.rest;
  o.parameters.insert(o.parameters.end(), groups.vision.begin(), groups.vision.end());
  o.visionGroup = !groups.vision.empty();
  return o;
}

// Weights, heads, optimizer and method state of a resumable checkpoint; returns the steps it had
// done.
int64_t restore(const std::string& dir, RunModels& models, Optimisation& opt,
                const TrainingMethod& method, const TrainConfig& cfg, ProcessGroup* group) {
  loadWeights(models.model, dir, cfg.model);
  if (models.heads)
    loadStateDict(*models.heads, loadSafetensors((fs::path(dir) / kHeadsFile).string()), {""}, dir);
  readOptimizerState(dir, *opt.optimizer);
  method.restoreState(group && !group->leader()
                          ? (fs::path(dir) / ("rank-" + std::to_string(group->rank()))).string()
                          : dir);
  return readTrainerState(dir).at("step").get<int64_t>();
}

// Held-out scores of a finished run, stored as its evaluation: image-to-text retrieval for stage 0,
// VQA by category for the MLLM stages.
Scalars evaluateFinished(const TrainConfig& cfg, RunModels& models, const ShapesWorld& world,
                         const WordTokenizer& tok, torch::Device device, RunStore& store,
                         int64_t runId, int64_t step) {
  const bool pretraining = cfg.stage == Stage::Pretrain;
  const Scalars scores =
      pretraining ? evaluateRetrieval(models.model->vision_tower, models.heads, world, tok,
                                      Split::Val, std::max(64, cfg.eval_samples), device)
                  : evaluateVqa(models.model, world, tok, Split::Val, cfg.eval_samples, device);
  std::vector<EvaluationRow> rows;
  for (const auto& [k, v] : scores)
    rows.push_back({step, pretraining ? "retrieval/val" : "vqa/val", k, v});
  store.addEvaluation(runId, rows);
  return scores;
}

// Holds the loop while a pause is requested (flushing first, so whoever watches sees every step),
// with a heartbeat every 30 s; returns whether a stop was requested meanwhile.
bool waitWhilePaused(const TrainOptions& options, RunStore& store, int64_t runId, int64_t step,
                     StoreWriter& writer, const std::string& runningMessage) {
  const auto stopping = [&] { return options.stopRequested && options.stopRequested->load(); };
  if (!options.pauseRequested || !options.pauseRequested->load() || stopping()) return stopping();
  writer.flush();
  store.setStatus(runId, RunStatus::Paused, "paused at step " + std::to_string(step));
  for (int waited = 0; options.pauseRequested->load() && !stopping(); ++waited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (waited % 1500 == 1499) store.heartbeat(runId);
  }
  store.setStatus(runId, RunStatus::Running, runningMessage);
  return stopping();
}

// --- data parallel (training/distributed.h) --------------------------------------------------

// A run trained on K processes resumes on K: each rank's slice and method state depend on it.
void checkWorldSize(const RunPlan& plan, int worldSize) {
  if (plan.resumeFrom.empty()) return;
  const int was = readTrainerState(plan.resumeFrom).value("world_size", 1);
  if (was != worldSize)
    throw std::runtime_error(
        "run " + plan.resumed->name + " was trained on " + std::to_string(was) + " process" +
        (was == 1 ? "" : "es") + "; resume it on as many (" +
        (was == 1 ? std::string("without --nproc") : "--nproc " + std::to_string(was)) + "), not " +
        std::to_string(worldSize));
}

// What rank 0 tells the others once the run exists: its id and what it starts from.
void shareLeaderPlan(ProcessGroup& group, const RunPlan& plan, int64_t runId) {
  group.shareFromLeader(nlohmann::json{{"run_id", runId},
                                       {"config", toJson(plan.config)},
                                       {"resume_from", plan.resumeFrom},
                                       {"parent_checkpoint", plan.parentCheckpoint}}
                            .dump());
}

// A rank > 0 takes rank 0's plan; it reads the store (a transplant's encoder) but never writes it.
RunPlan followLeader(ProcessGroup& group, const TrainOptions& options, int64_t& runId) {
  // Rank 0 may still be evaluating the previous stage of a chain, or building a large model.
  const auto j = nlohmann::json::parse(group.shareFromLeader("", std::chrono::hours(6)));
  RunPlan plan;
  runId = j.at("run_id").get<int64_t>();
  plan.config = trainConfigFromJson(j.at("config"));
  plan.device = pickDevice(plan.config.device);
  plan.resumeFrom = j.at("resume_from").get<std::string>();
  plan.parentCheckpoint = j.at("parent_checkpoint").get<std::string>();
  plan.store = std::make_unique<RunStore>(storePath(options.workspace), RunStore::Access::ReadOnly);
  if (plan.config.realModel())
    plan.realData = std::make_unique<RealData>(plan.config, options.decodeImage);
  return plan;
}

// Every rank starts from rank 0's weights (they were loaded from the same files; this makes it
// so), and ranks > 0 draw their own random numbers (GRPO's sampling).
void startFromLeader(ProcessGroup& group, RunModels& models, uint64_t seed) {
  torch::NoGradGuard noGrad;
  std::vector<torch::Tensor> tensors;
  for (auto& t : models.model->parameters()) tensors.push_back(t);
  for (auto& t : models.model->buffers()) tensors.push_back(t);
  if (models.heads)
    for (auto& t : models.heads->parameters()) tensors.push_back(t);
  for (auto& t : tensors) {
    std::vector<torch::Tensor> one{t.data()};
    group.broadcast(one, 0);
  }
  if (!group.leader()) torch::manual_seed(seed + 1000003ULL * static_cast<uint64_t>(group.rank()));
}

// One step's numbers over all ranks: the loss of the global batch, whether any rank saw a
// non-finite value, this rank's share of the loss units (its gradient's weight), and on rank 0
// the logged scalars averaged over ranks with those shares as weights.
struct ReducedStep {
  double loss = 0, share = 1, tokens = 0;
  bool nonFinite = false;
  Scalars scalars;
};

ReducedStep reduceStep(ProcessGroup* group, double loss, const StepOutput& out, double units) {
  ReducedStep r{loss, 1.0, out.tokens,
                !std::isfinite(loss) || !nonFiniteScalars(out.scalars).empty(), out.scalars};
  if (!group) return r;
  const auto sums = group->allReduceSum({loss * units, units, r.nonFinite ? 1.0 : 0.0, out.tokens});
  r.loss = sums[0] / sums[1];
  r.share = units / sums[1];
  r.nonFinite = sums[2] > 0 || !std::isfinite(r.loss);
  r.tokens = sums[3];
  std::ostringstream line;
  line.precision(17);
  line << units << "\n";
  for (const auto& [k, v] : out.scalars) line << k << "\t" << v << "\n";
  const auto lines = group->gatherToLeader(line.str());
  if (!group->leader()) return r;
  std::vector<std::string> order;
  std::map<std::string, std::pair<double, double>> sum;  // name -> (sum of w v, sum of w)
  for (const auto& text : lines) {
    std::istringstream in(text);
    std::string row;
    std::getline(in, row);
    const double w = std::stod(row);
    while (std::getline(in, row)) {
      const auto tab = row.find('\t');
      const std::string name = row.substr(0, tab);
      if (!sum.count(name)) order.push_back(name);
      sum[name].first += w * std::stod(row.substr(tab + 1));
      sum[name].second += w;
    }
  }
  r.scalars.clear();
  for (const auto& name : order) r.scalars.push_back({name, sum[name].first / sum[name].second});
  return r;
}

// Where rank > 0 keeps its method state in a checkpoint folder (GRPO's rollout is per rank).
std::string rankStateDir(const std::string& checkpointDir, ProcessGroup* group) {
  if (!group || group->leader()) return checkpointDir;
  const auto dir = fs::path(checkpointDir) / ("rank-" + std::to_string(group->rank()));
  fs::create_directories(dir);
  return dir.string();
}

// Whether any rank's flag is set: stops and checkpoints are decided together.
bool anyRank(ProcessGroup* group, bool flag) {
  if (!group) return flag;
  return group->allReduceSum({flag ? 1.0 : 0.0})[0] > 0;
}

// The run's row in the store: its configuration, parent and the commit that trains it.
int64_t createRunRecord(RunStore& store, const TrainConfig& cfg, std::optional<int64_t> parentId,
                        const std::string& name) {
  RunInfo info;
  info.name = name;
  info.preset = cfg.preset;
  info.stage = stageName(cfg.stage);
  info.parentId = parentId;
  info.configJson = toJson(cfg).dump();
  info.gitCommit = PIVOT_GIT_COMMIT;
  return store.createRun(info);
}

// Threads: `threads`, else every core, shared by the processes of this machine.
void useCores(const TrainConfig& cfg, const TrainOptions& options) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int local = options.group ? options.group->env().localWorldSize : 1;
  torch::set_num_threads(options.threads > 0 ? options.threads
                         : cfg.threads > 0   ? cfg.threads
                                             : std::max(1, cores / local));
}

// Every rank takes an equal slice of a step's samples (GRPO: prompts, so whole groups).
void checkBatchSplits(const TrainingMethod& method, const TrainConfig& cfg, ProcessGroup* group) {
  if (!group || method.samplesPerStep % group->size() == 0) return;
  throw std::runtime_error("a global batch of " + std::to_string(method.samplesPerStep) +
                           (cfg.stage == Stage::Grpo ? " prompts" : "") +
                           " does not split evenly over " + std::to_string(group->size()) +
                           " processes (batch_size " + std::to_string(cfg.batch_size) + ")");
}

// What one run's steps and checkpoints work with, once the run exists.
struct RunContext {
  const TrainConfig& cfg;
  torch::Device device;
  RunStore& store;
  int64_t runId;
  RunModels& models;
  Optimisation& opt;
  const TrainingMethod& method;
  ProcessGroup* group;          // null: one process
  bool leader;                  // rank 0 (or the only process): writes the store and checkpoints
  std::string dataFingerprint;  // a real model's data (RealData::fingerprint), else empty
};

// Rank 0 writes the checkpoint (weights, optimiser, heads, method state) through the keeper; then
// every other rank adds its method state to the folder. Returns the folder.
std::string saveRunCheckpoint(const RunContext& c, CheckpointKeeper* keeper,
                              const std::string& runDir, int64_t done) {
  const auto writeRankStates = [&](const std::string& dir) {
    if (!c.group) return dir;
    const std::string shared = c.group->shareFromLeader(dir);
    if (!c.leader) c.method.saveState(rankStateDir(shared, c.group));
    c.group->barrier();
    return shared;
  };
  if (!c.leader) return writeRankStates("");
  return keeper->save(done, [&](int64_t at) {
    nlohmann::json state = {{"step", at},
                            {"run_id", c.runId},
                            {"stage", stageName(c.cfg.stage)},
                            {"world_size", c.group ? c.group->size() : 1}};
    if (!c.dataFingerprint.empty()) state["data_fingerprint"] = c.dataFingerprint;
    const auto dir = writeCheckpoint(runDir, at, *c.models.model, checkpointConfig(c.cfg),
                                     c.opt.optimizer.get(), state);
    if (c.models.heads)
      saveSafetensors((fs::path(dir) / kHeadsFile).string(), stateDict(*c.models.heads),
                      {{"format", "pt"}});
    c.method.saveState(dir);
    return writeRankStates(dir);
  });
}

// One optimiser step: learning rates, this rank's slice of the global batch, the method's step,
// the values reduced over ranks, backward with the gradients summed over ranks, clip, update.
// `failure` says why the run must stop before updating (a non-finite value), else it is empty.
struct StepRecord {
  Scalars scalars;
  std::string failure;
};

StepRecord trainOneStep(const RunContext& c, int64_t at, DataOrder& order,
                        const TrainOptions& options) {
  const TrainConfig& cfg = c.cfg;
  const auto t0 = std::chrono::steady_clock::now();
  const double lr =
      learningRateAt(static_cast<int>(at), cfg.steps, cfg.lr, cfg.warmup_ratio, cfg.min_lr_ratio);
  const double visionLr = learningRateAt(static_cast<int>(at), cfg.steps, cfg.vision_lr,
                                         cfg.warmup_ratio, cfg.min_lr_ratio);
  c.opt.optimizer->param_groups()[0].options().set_lr(lr);
  if (c.opt.visionGroup) c.opt.optimizer->param_groups()[1].options().set_lr(visionLr);

  // Every rank draws the single-process run's global batch and trains on its slice of it.
  const auto global = order.indicesForStep(at / c.method.stepsPerBatch, c.method.samplesPerStep);
  const auto indices = c.group ? rankSlice(global, c.group->rank(), c.group->size()) : global;
  StepOutput out;
  {
    AutocastScope autocast(cfg.dtype == Precision::Bf16, c.device);  // forward passes only
    out = c.method.step(at, indices);
  }
  if (options.lossHook) options.lossHook(at, out.loss);
  const auto reduced = reduceStep(c.group, out.loss.item<double>(), out,
                                  out.lossUnits > 0 ? out.lossUnits : indices.size());
  StepRecord record;
  Scalars& scalars = record.scalars;
  scalars = reduced.scalars;
  scalars.insert(scalars.begin(), {"loss", reduced.loss});
  const std::string where =
      " at step " + std::to_string(at + 1) + "; the run stopped before updating the weights";
  // The NaN guard covers every logged value, not only the loss: a run whose rewards overflow is
  // as broken as one whose loss does, and SQLite cannot store the value.
  if (reduced.nonFinite) {
    const auto bad = nonFiniteScalars(scalars);
    record.failure = (!std::isfinite(reduced.loss)
                          ? "loss became " + std::string(std::isnan(reduced.loss) ? "nan" : "inf")
                          : "non-finite value (" + (bad.empty() ? "on another rank" : bad) + ")") +
                     where;
    return record;
  }
  // GRPO's logged completions, once their values are known to be finite (the store refuses NaN).
  if (c.leader && !out.completions.empty()) c.store.addCompletions(c.runId, out.completions);
  double allReduceSeconds = 0;
  const auto sumGradients = [&] {
    const auto a0 = std::chrono::steady_clock::now();
    allReduceGradients(*c.group, c.opt.parameters);
    allReduceSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - a0).count();
  };
  // Data parallel: each rank's loss weighted by its share of the units, gradients summed.
  const double gradNorm =
      c.group ? applyUpdate(out.loss * reduced.share, *c.opt.optimizer, c.opt.parameters,
                            cfg.grad_clip, sumGradients)
              : applyUpdate(out.loss, *c.opt.optimizer, c.opt.parameters, cfg.grad_clip);
  if (!std::isfinite(gradNorm)) {
    record.failure =
        "grad_norm became " + std::string(std::isnan(gradNorm) ? "nan" : "inf") + where;
    return record;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  scalars.push_back({"learning_rate", lr});
  if (c.opt.visionGroup) scalars.push_back({"vision_learning_rate", visionLr});
  scalars.push_back({"grad_norm", gradNorm});
  scalars.push_back({"throughput/samples_per_s", static_cast<double>(global.size()) / seconds});
  if (reduced.tokens > 0) scalars.push_back({"throughput/tokens_per_s", reduced.tokens / seconds});
  if (c.group) scalars.push_back({"ddp/allreduce_ms", 1000 * allReduceSeconds});
  return record;
}

}  // namespace

TrainResult train(const TrainConfig& requested, const TrainOptions& options) {
  NullSink nullSink;
  MetricSink& sink = options.sink ? *options.sink : nullSink;
  ProcessGroup* group = options.group;  // null: one process
  const bool leader = !group || group->leader();

  // Rank 0 plans the run (every check, the run to resume, the parent's checkpoint); the other ranks
  // take its plan once it has created the run.
  int64_t runId = 0;
  RunPlan plan;
  if (leader) {
    plan = planRun(requested, options, sink);
    checkWorldSize(plan, group ? group->size() : 1);
    runId = plan.resumed ? plan.resumed->id : 0;
  } else {
    validate(requested);  // bad input fails on every rank alike
    plan = followLeader(*group, options, runId);
  }
  const TrainConfig& cfg = plan.config;
  if (group && plan.device.is_cuda())  // one GPU per process on a machine
    plan.device =
        torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(group->env().localRank));
  const torch::Device device = plan.device;
  RunStore& store = *plan.store;
  const std::string& resumeFrom = plan.resumeFrom;
  std::unique_ptr<RunLock> lock;  // held while this process trains the run
  if (plan.resumed)
    lock = std::make_unique<RunLock>(runDirectory(options.workspace, runId), plan.resumed->name,
                                     ownerText(plan.resumed->owner));

  // --- models, optimiser, the step function of this run's method
  // ------------------------------------
  useCores(cfg, options);
  RunModels models = [&] {
    std::lock_guard<std::mutex> rng(globalRngMutex());  // the initial weights: this run's seed
    torch::manual_seed(cfg.seed);
    return buildModels(cfg, store, plan.parentCheckpoint, device, sink);
  }();
  Optimisation opt = makeOptimizer(models, cfg);
  const WordTokenizer tok = WordTokenizer::shapesWorld();
  const ShapesWorld world(cfg.world);
  const std::unique_ptr<RealData>& realData = plan.realData;
  const TrainingMethod method = methodForRun(cfg, models.model, models.reference, models.heads,
                                             world, realData.get(), tok, device, group);
  checkBatchSplits(method, cfg, group);  // before the run exists

  const int64_t startStep =
      resumeFrom.empty() ? 0 : restore(resumeFrom, models, opt, method, cfg, group);
  if (leader && !resumeFrom.empty()) {
    store.deleteMetricsAfter(runId,
                             startStep);  // a resumed run repeats the steps after its checkpoint
    sink.onMessage("resuming " + std::to_string(runId) + " from " + resumeFrom);
  }
  if (runId == 0) {
    runId = createRunRecord(store, cfg, plan.parentId, options.runName);
    if (!plan.parentCheckpoint.empty())  // which of the parent's checkpoints, for the record
      store.addArtifact(runId, "parent-checkpoint", plan.parentCheckpoint);
    lock = std::make_unique<RunLock>(runDirectory(options.workspace, runId), options.runName, "");
  }
  if (group) {
    if (leader) shareLeaderPlan(*group, plan, runId);
    startFromLeader(*group, models, cfg.seed);
  }
  const std::string runningMessage =
      "device " + device.str() +
      (group ? ", " + std::to_string(group->size()) + " processes (" + group->backend() + ")" : "");
  if (leader) {
    store.claimRun(runId, currentProcessOwner());
    store.setStatus(runId, RunStatus::Running, runningMessage);
  }

  // From here on the run exists: whatever goes wrong (a full disk, a damaged store, a lost peer)
  // ends it as "failed" with the reason, never as a "running" run that nobody trains.
  TrainResult result;
  result.runId = runId;
  result.checkpoint = resumeFrom;
  const auto fail = [&](const std::string& message) {
    result.status = RunStatus::Failed;
    result.message =
        message + (result.checkpoint.empty() ? "" : "; last good checkpoint: " + result.checkpoint);
    try {
      if (leader) store.setStatus(runId, RunStatus::Failed, result.message);
    } catch (const std::exception& e) {
      result.message += " (the run store could not record it: " + std::string(e.what()) + ")";
    }
    sink.onMessage(result.message);
    return result;
  };
  try {
    if (leader) sink.onRunStarted(runId, store.run(runId)->name, cfg.batch_size, device.str());
    const std::string runDir = runDirectory(options.workspace, runId);
    std::optional<CheckpointKeeper> keeper;
    if (leader) keeper.emplace(store, runId, cfg);
    if (keeper && !resumeFrom.empty()) keeper->resumedFrom(startStep, resumeFrom);
    const RunContext ctx{
        cfg, device, store, runId,  models,
        opt, method, group, leader, realData ? realData->fingerprint() : std::string()};
    const auto saveAt = [&](int64_t done) {
      result.checkpoint = saveRunCheckpoint(ctx, keeper ? &*keeper : nullptr, runDir, done);
    };
    DataOrder order(cfg.seed, realData ? realData->size() : cfg.dataset_size);
    StoreWriter writer(store, runId);

    // --- the loop: lr, forward, loss, backward, clip, step, report
    // ---------------------------------
    sink.onMessage(std::string("run ") + std::to_string(runId) + ": " + stageName(cfg.stage) +
                   ", " + std::to_string(cfg.steps) + " steps of " +
                   std::to_string(cfg.batch_size) + " on " + device.str() +
                   (group ? " x " + std::to_string(group->size()) + " processes" : ""));
    int64_t at = startStep;
    for (; at < cfg.steps; ++at) {
      const bool stopHere =
          (leader && waitWhilePaused(options, store, runId, at, writer, runningMessage)) ||
          (options.stopRequested && options.stopRequested->load());
      if (anyRank(group, stopHere)) break;
      if (group) group->markProgress(at);
      const StepRecord step = trainOneStep(ctx, at, order, options);
      if (!step.failure.empty()) {
        if (leader) writer.flush();
        result.step = at;
        return fail(step.failure);
      }
      if (leader) {
        writer.add(at + 1, step.scalars);
        sink.onStep(at + 1, cfg.steps, step.scalars);
      }
      if (anyRank(group, keeper && keeper->due(at + 1))) {
        if (leader) writer.flush();
        saveAt(at + 1);
      }
    }
    if (leader) writer.flush();
    result.step = at;
    saveAt(at);
    if (at < cfg.steps) {  // stop requested: keep what was learned, resumable
      result.status = RunStatus::Stopped;
      result.message = "stopped at step " + std::to_string(at);
      if (leader) store.setStatus(runId, RunStatus::Stopped, result.message);
      return result;
    }
    if (leader && cfg.eval_samples > 0 && !realData)  // held-out VQA is ShapesWorld's
      result.evaluation = evaluateFinished(cfg, models, world, tok, device, store, runId, at);
    result.status = RunStatus::Finished;
    result.message = "finished " + std::to_string(at) + " steps";
    if (leader) store.setStatus(runId, RunStatus::Finished, result.message);
    return result;
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

void checkVisionInit(const std::string& workspace, const std::string& visionInit) {
  if (visionInit.empty() || isModelFolder(visionInit)) return;
  const std::string path = storePath(workspace);
  if (!fs::exists(path))
    throw std::runtime_error("vision_init: '" + visionInit +
                             "' is neither a model folder nor a run (this workspace has no runs)");
  (void)visionInitSource(RunStore(path, RunStore::Access::ReadOnly), visionInit);
}

}  // namespace pivot
