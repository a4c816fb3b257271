#include "training/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "store/run_store.h"
#include "store/workspace.h"
#include "torch_compat.h"
#include "training/batches.h"
#include "training/encoder_pretrain.h"
#include "training/evaluate.h"
#include "training/losses.h"
#include "training/run_checkpoint.h"
#include "training/schedule.h"

#ifndef PIVOT_GIT_COMMIT
#define PIVOT_GIT_COMMIT "unknown"
#endif

namespace fs = std::filesystem;

namespace pivot {
namespace {

constexpr int kStoreFlushSteps = 20;  // metrics reach the run store in batches of this many steps
constexpr const char* kHeadsFile = "contrastive_heads.safetensors";  // stage 0's discarded text tower

// HF-style initialisation: N(0, 0.02) weights, zero biases, unit norms.
void initWeights(torch::nn::Module& model) {
  torch::NoGradGuard noGrad;
  for (auto& p : model.named_parameters()) {
    const std::string& name = p.key();
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0) p.value().zero_();
    else if (name.find("norm") != std::string::npos) p.value().fill_(1.0);
    else p.value().normal_(0.0, 0.02);
  }
}

// Loads `dir`'s weights into `model`; a checkpoint of another architecture is a clear error.
void loadWeights(Mllm& model, const std::string& dir, const MllmConfig& expected) {
  const auto cfg = readCheckpointConfig(dir);
  if (toJson(mllmConfigFromJson(cfg)) != toJson(expected))
    throw std::runtime_error(dir + ": checkpoint of another architecture (model config differs: " +
                             toJson(mllmConfigFromJson(cfg)).dump() + ")");
  loadStateDict(*model, readCheckpointWeights(dir), {""}, dir + "/model.safetensors");
}

// Copies the vision tower (and, for "1+1", the first projector layer) of a checkpoint into `model`.
void transplantEncoder(Mllm& model, const std::string& dir, bool firstProjectorLayer) {
  const auto cfg = mllmConfigFromJson(readCheckpointConfig(dir));
  if (toJson(cfg.vision) != toJson(model->config.vision))
    throw std::runtime_error(dir + ": its vision tower has another architecture (" + toJson(cfg.vision).dump() + ")");
  const auto tensors = readCheckpointWeights(dir);
  loadStateDict(*model->vision_tower, tensors, {"vision_tower."}, dir + "/model.safetensors");
  if (firstProjectorLayer) {
    if (cfg.text.hidden_size != model->config.text.hidden_size)
      throw std::runtime_error(dir + ": projector_init=one_plus_one needs the same LM width as the source (" +
                               std::to_string(cfg.text.hidden_size) + ")");
    loadStateDict(*model->multi_modal_projector->linear_1, tensors, {"multi_modal_projector.linear_1."},
                  dir + "/model.safetensors");
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
    const bool frozenProjectorLayer =
        c.projector_init == "one_plus_one" && p.key().rfind("multi_modal_projector.linear_1.", 0) == 0;
    const bool trains = frozenProjectorLayer            ? false
                        : c.stage == Stage::Pretrain ? isVision
                        : c.stage == Stage::Align    ? (isProjector || (c.align_trains_lm && !isVision))
                                                     : (!isVision || c.trainsVision());
    p.value().set_requires_grad(trains);
    if (trains) (isVision ? g.vision : g.rest).push_back(p.value());
  }
  return g;
}

// Which checkpoints a run keeps: snapshots (evenly spaced, for the Inspect tab) and
// checkpoint_every steps stay; a checkpoint written only because checkpoint_minutes passed is
// replaced by the next one. Only the newest checkpoint keeps the optimizer state (what a resume
// needs): the older ones keep their weights, at a third of the size.
class CheckpointKeeper {
 public:
  CheckpointKeeper(RunStore& store, int64_t runId, std::string runDir, const TrainConfig& cfg)
      : m_store(store), m_runId(runId), m_runDir(std::move(runDir)), m_cfg(cfg),
        m_snapshots(snapshotSteps(cfg)), m_lastSave(std::chrono::steady_clock::now()) {}

  // Whether step `done` (optimiser steps done) should be saved now, before the final one.
  bool due(int64_t done) const {
    if (done >= m_cfg.steps) return false;
    if (isKept(done)) return true;
    return m_cfg.checkpoint_minutes > 0 &&
           std::chrono::steady_clock::now() - m_lastSave >= std::chrono::duration<double>(60.0 * m_cfg.checkpoint_minutes);
  }

  // Writes the checkpoint (through `write`, which returns its folder) and prunes the previous one.
  std::string save(int64_t done, const std::function<std::string(int64_t)>& write) {
    const std::string path = write(done);
    m_store.addCheckpoint(m_runId, done, path);
    m_lastSave = std::chrono::steady_clock::now();
    if (m_previous && m_previous->first != done) {
      std::error_code ec;
      if (isKept(m_previous->first)) {
        fs::remove(fs::path(m_previous->second) / "optimizer.pt", ec);
      } else {
        m_store.deleteCheckpoint(m_runId, m_previous->first);
        fs::remove_all(m_previous->second, ec);
      }
    }
    m_previous = {done, path};
    return path;
  }

  void resumedFrom(int64_t step, const std::string& path) { m_previous = {step, path}; }

 private:
  bool isKept(int64_t step) const {
    if (m_cfg.checkpoint_every > 0 && step % m_cfg.checkpoint_every == 0) return true;
    return std::binary_search(m_snapshots.begin(), m_snapshots.end(), static_cast<int>(step));
  }

  RunStore& m_store;
  int64_t m_runId;
  std::string m_runDir;
  const TrainConfig& m_cfg;
  std::vector<int> m_snapshots;
  std::chrono::steady_clock::time_point m_lastSave;
  std::optional<std::pair<int64_t, std::string>> m_previous;
};

// The names of the scalars that are not finite numbers (empty when all are).
std::string nonFiniteScalars(const Scalars& scalars) {
  std::string out;
  for (const auto& [k, v] : scalars)
    if (!std::isfinite(v)) out += (out.empty() ? "" : ", ") + k + " = " + (std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
  return out;
}

std::string ownerText(const RunOwner& o) {
  std::ostringstream t;
  t << "pid " << o.pid << " on " << o.host;
  if (o.heartbeat > 0) t << ", last heartbeat " << static_cast<int64_t>(unixNow() - o.heartbeat) << " s ago";
  return t.str();
}

// The run to resume, checked: it exists, is not finished and no live process trains it.
RunInfo runToResume(const RunStore& store, int64_t runId) {
  auto info = store.run(runId);
  if (!info) throw std::runtime_error("no run " + std::to_string(runId) + " to resume in " + store.path());
  if (info->status == "finished") throw std::runtime_error("run " + info->name + " already finished");
  if (runLiveness(*info) == Liveness::Alive && info->owner.pid != currentProcessOwner().pid)
    throw std::runtime_error("run " + info->name + " is live (" + ownerText(info->owner) +
                             "); stop it there before resuming it");
  return *info;
}

}  // namespace

TrainResult train(const TrainConfig& requested, const TrainOptions& options) {
  NullSink nullSink;
  MetricSink& sink = options.sink ? *options.sink : nullSink;

  // --- checks before anything is written: the configuration, the device, the run to resume ---------
  TrainConfig cfg = requested;
  std::unique_ptr<RunStore> storeHandle;
  std::optional<RunInfo> resumed;
  if (options.resumeRunId) {
    if (!fs::exists(storePath(options.workspace)))
      throw std::runtime_error("workspace " + options.workspace + " has no runs.sqlite");
    storeHandle = std::make_unique<RunStore>(storePath(options.workspace));
    resumed = runToResume(*storeHandle, *options.resumeRunId);
    cfg = trainConfigFromJson(nlohmann::json::parse(resumed->configJson));
  }
  validate(cfg);
  const torch::Device device = pickDevice(cfg.device);
  if (!storeHandle) {
    fs::create_directories(options.workspace);
    storeHandle = std::make_unique<RunStore>(storePath(options.workspace));
  }
  RunStore& store = *storeHandle;
  int64_t runId = resumed ? resumed->id : 0;
  std::optional<int64_t> parentId = resumed ? resumed->parentId : options.parentRunId;
  std::unique_ptr<RunLock> lock;  // held while this process trains the run
  if (resumed) lock = std::make_unique<RunLock>(runDirectory(options.workspace, runId), resumed->name, ownerText(resumed->owner));
  const std::string resumeFrom = resumed ? lastUsableCheckpoint(store, runId, /*resumable=*/true) : "";
  std::string parentCheckpoint;
  if (parentId) {
    auto parent = store.run(*parentId);
    if (!parent) throw std::runtime_error("no parent run " + std::to_string(*parentId));
    parentCheckpoint = lastUsableCheckpoint(store, *parentId);
    if (parentCheckpoint.empty())
      throw std::runtime_error("parent run " + parent->name + " has no checkpoint to start from");
  } else if (cfg.stage == Stage::Dpo) {
    sink.onMessage("warning: DPO without a parent run: the reference is the random initial model");
  }

  torch::set_num_threads(cfg.threads > 0 ? cfg.threads
                                         : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  torch::manual_seed(cfg.seed);

  // --- models --------------------------------------------------------------------------------------
  Mllm model(cfg.model);
  initWeights(*model);
  if (!parentCheckpoint.empty()) {
    loadWeights(model, parentCheckpoint, cfg.model);
  } else if (!cfg.vision_init.empty()) {  // PIVOT transplant: a trained encoder in a fresh model
    std::string source = cfg.vision_init;  // a checkpoint folder, or RUN[@STEP] in this workspace
    if (!fs::exists(fs::path(source) / "model.safetensors")) {
      try {
        source = resolveCheckpoint(store, cfg.vision_init).path;
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string("vision_init: ") + e.what());
      }
    }
    transplantEncoder(model, source, cfg.projector_init == "one_plus_one");
    sink.onMessage("vision tower" + std::string(cfg.projector_init == "one_plus_one" ? " and first projector layer" : "") +
                   " from " + source);
  }
  Mllm reference{nullptr};
  if (cfg.stage == Stage::Dpo) {  // frozen copy of the starting (stage-1) model
    reference = Mllm(cfg.model);
    loadStateDict(*reference, stateDict(*model), {""}, "policy");
    reference->eval();
    for (auto& p : reference->parameters()) p.set_requires_grad(false);
    reference->to(device);
  }
  model->to(device);
  model->train();
  // Stage 0 only: the text tower and heads of the image-text loss, discarded after the run (their
  // weights sit beside the checkpoint so that a stopped pre-training resumes).
  ContrastiveHeads heads{nullptr};
  if (cfg.stage == Stage::Pretrain) {
    heads = ContrastiveHeads(cfg.model.vision, cfg.model.text.vocab_size);
    initWeights(*heads);
    heads->logit_scale.data().fill_(std::log(10.0));
    heads->logit_bias.data().fill_(-10.0);
    heads->to(device);
    heads->train();
  }

  Groups groups = trainableGroups(model, cfg);
  if (heads) for (auto& p : heads->parameters()) groups.rest.push_back(p);
  std::vector<torch::optim::OptimizerParamGroup> paramGroups;
  auto adamw = [&](double lr) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr).weight_decay(cfg.weight_decay).betas({0.9, 0.999}).eps(1e-8));
  };
  paramGroups.emplace_back(groups.rest, adamw(cfg.lr));
  if (!groups.vision.empty()) paramGroups.emplace_back(groups.vision, adamw(cfg.vision_lr));
  torch::optim::AdamW optimizer(paramGroups, *adamw(cfg.lr));
  std::vector<torch::Tensor> trainable = groups.rest;
  trainable.insert(trainable.end(), groups.vision.begin(), groups.vision.end());

  int64_t startStep = 0;
  if (!resumeFrom.empty()) {
    loadWeights(model, resumeFrom, cfg.model);
    if (heads) loadStateDict(*heads, loadSafetensors((fs::path(resumeFrom) / kHeadsFile).string()), {""}, resumeFrom);
    readOptimizerState(resumeFrom, optimizer);
    startStep = readTrainerState(resumeFrom).at("step").get<int64_t>();
    store.deleteMetricsAfter(runId, startStep);
    sink.onMessage("resuming " + std::to_string(runId) + " from " + resumeFrom);
  }
  if (runId == 0) {
    RunInfo info;
    info.name = options.runName;
    info.preset = cfg.preset;
    info.stage = stageName(cfg.stage);
    info.parentId = parentId;
    info.configJson = toJson(cfg).dump();
    info.gitCommit = PIVOT_GIT_COMMIT;
    runId = store.createRun(info);
    lock = std::make_unique<RunLock>(runDirectory(options.workspace, runId), info.name, "");
  }
  store.claimRun(runId, currentProcessOwner());
  store.setStatus(runId, "running", "device " + device.str());

  // From here on the run exists: whatever goes wrong (a full disk, a damaged store) ends it as
  // "failed" with the reason, never as a "running" run that nobody trains.
  TrainResult result;
  result.runId = runId;
  result.checkpoint = resumeFrom;
  const auto fail = [&](const std::string& message) {
    result.status = "failed";
    result.message = message + (result.checkpoint.empty() ? "" : "; last good checkpoint: " + result.checkpoint);
    try {
      store.setStatus(runId, "failed", result.message);
    } catch (const std::exception& e) {
      result.message += " (the run store could not record it: " + std::string(e.what()) + ")";
    }
    sink.onMessage(result.message);
    return result;
  };
  try {
    sink.onRunStarted(runId, store.run(runId)->name, cfg.batch_size, device.str());
    const std::string runDir = runDirectory(options.workspace, runId);
    CheckpointKeeper keeper(store, runId, runDir, cfg);
    if (!resumeFrom.empty()) keeper.resumedFrom(startStep, resumeFrom);
    const auto saveAt = [&](int64_t step) {
      result.checkpoint = keeper.save(step, [&](int64_t done) {
        nlohmann::json state = {{"step", done}, {"run_id", runId}, {"stage", stageName(cfg.stage)}};
        const auto dir = writeCheckpoint(runDir, done, *model, checkpointConfig(cfg), &optimizer, state);
        if (heads) saveSafetensors((fs::path(dir) / kHeadsFile).string(), stateDict(*heads), {{"format", "pt"}});
        return dir;
      });
    };

    // --- data --------------------------------------------------------------------------------------
    const ShapesWorld world(cfg.world);
    const WordTokenizer tok = WordTokenizer::shapesWorld();
    const int imageTokens = cfg.model.vision.numPatches();
    DataOrder order(cfg.seed, cfg.dataset_size);
    StoreWriter writer(store, runId);

    // --- the loop: lr, forward, loss, backward, clip, step, report ---------------------------------
    sink.onMessage(std::string("run ") + std::to_string(runId) + ": " + stageName(cfg.stage) + ", " +
                   std::to_string(cfg.steps) + " steps of " + std::to_string(cfg.batch_size) + " on " +
                   device.str());
    int64_t step = startStep;
    for (; step < cfg.steps; ++step) {
      const auto stopping = [&] { return options.stopRequested && options.stopRequested->load(); };
      if (options.pauseRequested && options.pauseRequested->load() && !stopping()) {
        writer.flush();  // whoever watches sees every step done so far
        store.setStatus(runId, "paused", "paused at step " + std::to_string(step));
        for (int waited = 0; options.pauseRequested->load() && !stopping(); ++waited) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          if (waited % 1500 == 1499) store.heartbeat(runId);  // every 30 s
        }
        store.setStatus(runId, "running", "device " + device.str());
      }
      if (stopping()) break;
      const auto t0 = std::chrono::steady_clock::now();
      const double lr = learningRateAt(static_cast<int>(step), cfg.steps, cfg.lr, cfg.warmup_ratio, cfg.min_lr_ratio);
      const double visionLr = learningRateAt(static_cast<int>(step), cfg.steps, cfg.vision_lr, cfg.warmup_ratio, cfg.min_lr_ratio);
      optimizer.param_groups()[0].options().set_lr(lr);
      if (optimizer.param_groups().size() > 1) optimizer.param_groups()[1].options().set_lr(visionLr);

      std::vector<Sample> samples;
      for (auto index : order.indicesForStep(step, cfg.batch_size)) samples.push_back(world.sample(Split::Train, index));
      Scalars scalars;
      torch::Tensor loss;
      const int64_t B = static_cast<int64_t>(samples.size());
      double tokens = 0;
      if (cfg.stage == Stage::Pretrain) {
        auto pre = pretrainStep(model->vision_tower, heads, samples, tok, device, cfg.conjunction_weight);
        loss = pre.loss;
        scalars = pre.scalars;
      } else {
        std::vector<BatchRow> rows;
        const Response kind = cfg.stage == Stage::Align ? Response::Caption : Response::Chosen;
        for (const auto& s : samples) rows.push_back({&s, kind});
        if (cfg.stage == Stage::Dpo)
          for (const auto& s : samples) rows.push_back({&s, Response::Rejected});
        auto in = buildBatch(rows, tok, imageTokens, device);
        in.pixels = in.pixels.narrow(0, 0, static_cast<int64_t>(samples.size()));  // one image per pair
        tokens = in.attentionMask.sum().item<double>();
        auto logits = model->forward(in);  // (rows, T - logitsFrom, V)
        const auto labels = in.targetLabels();
        if (cfg.stage == Stage::Dpo) {
          auto policy = sequenceLogProbs(logits, labels);  // (2B): chosen then rejected
          torch::Tensor ref;
          {
            torch::NoGradGuard noGrad;
            ref = sequenceLogProbs(reference->forward(in), labels);
          }
          auto pc = policy.narrow(0, 0, B), pr = policy.narrow(0, B, B);
          auto rc = ref.narrow(0, 0, B), rr = ref.narrow(0, B, B);
          auto dpo = dpoLoss(pc, pr, rc, rr, cfg.beta, cfg.loss_type, cfg.label_smoothing);
          loss = dpo.loss;
          if (cfg.sft_weight > 0)
            loss = loss + cfg.sft_weight * sftLoss(logits.narrow(0, 0, B), labels.narrow(0, 0, B));
          scalars = {{"rewards/chosen", dpo.chosenRewards.mean().item<double>()},
                     {"rewards/rejected", dpo.rejectedRewards.mean().item<double>()},
                     {"rewards/margins", (dpo.chosenRewards - dpo.rejectedRewards).mean().item<double>()},
                     {"rewards/accuracies", (dpo.chosenRewards > dpo.rejectedRewards).to(torch::kFloat32).mean().item<double>()},
                     {"logps/chosen", pc.mean().item<double>()},
                     {"logps/rejected", pr.mean().item<double>()},
                     {"logps/ref_chosen", rc.mean().item<double>()},
                     {"logps/ref_rejected", rr.mean().item<double>()}};
        } else {
          loss = sftLoss(logits, labels);
          scalars = {{"logps/chosen", sequenceLogProbs(logits.detach(), labels).mean().item<double>()}};
        }
      }
      if (options.lossHook) options.lossHook(step, loss);
      const double lossValue = loss.item<double>();
      scalars.insert(scalars.begin(), {"loss", lossValue});
      // The NaN guard covers every logged value, not only the loss: a run whose rewards overflow is
      // as broken as one whose loss does, and SQLite cannot store the value.
      if (const auto bad = nonFiniteScalars(scalars); !bad.empty()) {
        writer.flush();
        result.step = step;
        return fail((scalars.front().first == "loss" && !std::isfinite(lossValue)
                         ? "loss became " + std::string(std::isnan(lossValue) ? "nan" : "inf")
                         : "non-finite value (" + bad + ")") +
                    " at step " + std::to_string(step + 1) + "; the run stopped before updating the weights");
      }
      optimizer.zero_grad();
      loss.backward();
      const double gradNorm = torch::nn::utils::clip_grad_norm_(
          trainable, cfg.grad_clip > 0 ? cfg.grad_clip : std::numeric_limits<double>::infinity());
      if (!std::isfinite(gradNorm)) {
        writer.flush();
        result.step = step;
        return fail("grad_norm became " + std::string(std::isnan(gradNorm) ? "nan" : "inf") + " at step " +
                    std::to_string(step + 1) + "; the run stopped before updating the weights");
      }
      optimizer.step();

      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      scalars.push_back({"learning_rate", lr});
      if (!groups.vision.empty()) scalars.push_back({"vision_learning_rate", visionLr});
      scalars.push_back({"grad_norm", gradNorm});
      scalars.push_back({"throughput/samples_per_s", static_cast<double>(B) / seconds});
      if (tokens > 0) scalars.push_back({"throughput/tokens_per_s", tokens / seconds});
      writer.add(step + 1, scalars);
      sink.onStep(step + 1, cfg.steps, scalars);
      if (keeper.due(step + 1)) {
        writer.flush();
        saveAt(step + 1);
      }
    }
    writer.flush();
    result.step = step;
    if (step < cfg.steps) {  // stop requested: keep what was learned, resumable
      saveAt(step);
      result.status = "stopped";
      result.message = "stopped at step " + std::to_string(step);
      store.setStatus(runId, "stopped", result.message);
      return result;
    }
    saveAt(step);
    if (cfg.eval_samples > 0) {
      const bool pretraining = cfg.stage == Stage::Pretrain;
      result.evaluation = pretraining ? evaluateRetrieval(model->vision_tower, heads, world, tok, Split::Val,
                                                          std::max(64, cfg.eval_samples), device)
                                      : evaluateVqa(model, world, tok, Split::Val, cfg.eval_samples, device);
      std::vector<EvaluationRow> rows;
      for (const auto& [k, v] : result.evaluation) rows.push_back({step, pretraining ? "retrieval/val" : "vqa/val", k, v});
      store.addEvaluation(runId, rows);
    }
    result.status = "finished";
    result.message = "finished " + std::to_string(step) + " steps";
    store.setStatus(runId, "finished", result.message);
    return result;
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

}  // namespace pivot
