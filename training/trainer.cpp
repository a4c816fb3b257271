#include "training/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "store/run_store.h"
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

constexpr int kStoreFlushSteps = 20;
constexpr const char* kHeadsFile = "contrastive_heads.safetensors";  // stage 0's discarded text tower  // metrics reach the run store in batches of this many steps

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

std::string lastCheckpoint(const RunStore& store, int64_t runId) {
  const auto cps = store.checkpoints(runId);
  for (auto it = cps.rbegin(); it != cps.rend(); ++it)
    if (fs::exists(fs::path(it->path) / "model.safetensors")) return it->path;
  return "";
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

}  // namespace

std::string storePath(const std::string& workspace) {
  return (fs::path(workspace) / "runs.sqlite").string();
}

std::string runDirectory(const std::string& workspace, int64_t runId) {
  return (fs::path(workspace) / "checkpoints" / ("run-" + std::to_string(runId))).string();
}

TrainResult train(const TrainConfig& requested, const TrainOptions& options) {
  NullSink nullSink;
  MetricSink& sink = options.sink ? *options.sink : nullSink;
  fs::create_directories(options.workspace);
  RunStore store(storePath(options.workspace));

  // --- the run: new, or an existing one to resume -------------------------------------------------
  TrainConfig cfg = requested;
  int64_t runId = 0;
  std::optional<int64_t> parentId = options.parentRunId;
  std::string resumeFrom;
  if (options.resumeRunId) {
    auto info = store.run(*options.resumeRunId);
    if (!info) throw std::runtime_error("no run " + std::to_string(*options.resumeRunId) + " to resume");
    if (info->status == "finished") throw std::runtime_error("run " + info->name + " already finished");
    cfg = trainConfigFromJson(nlohmann::json::parse(info->configJson));
    runId = info->id;
    parentId = info->parentId;
    resumeFrom = lastCheckpoint(store, runId);
  }
  validate(cfg);
  std::string parentCheckpoint;
  if (parentId) {
    auto parent = store.run(*parentId);
    if (!parent) throw std::runtime_error("no parent run " + std::to_string(*parentId));
    parentCheckpoint = lastCheckpoint(store, *parentId);
    if (parentCheckpoint.empty())
      throw std::runtime_error("parent run " + parent->name + " has no checkpoint to start from");
  } else if (cfg.stage == Stage::Dpo) {
    sink.onMessage("warning: DPO without a parent run: the reference is the random initial model");
  }

  const torch::Device device = pickDevice(cfg.device);
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
  }
  store.setStatus(runId, "running", "device " + device.str());
  sink.onRunStarted(runId, store.run(runId)->name, cfg.batch_size, device.str());
  const std::string runDir = runDirectory(options.workspace, runId);
  fs::create_directories(runDir);

  TrainResult result;
  result.runId = runId;
  result.checkpoint = resumeFrom;
  const auto saveAt = [&](int64_t step) {
    nlohmann::json state = {{"step", step}, {"run_id", runId}, {"stage", stageName(cfg.stage)}};
    result.checkpoint = writeCheckpoint(runDir, step, *model, checkpointConfig(cfg), &optimizer, state);
    if (heads) saveSafetensors((fs::path(result.checkpoint) / kHeadsFile).string(), stateDict(*heads), {{"format", "pt"}});
    store.addCheckpoint(runId, step, result.checkpoint);
  };

  // --- data ----------------------------------------------------------------------------------------
  const ShapesWorld world(cfg.world);
  const WordTokenizer tok = WordTokenizer::shapesWorld();
  const int imageTokens = cfg.model.vision.numPatches();
  DataOrder order(cfg.seed, cfg.dataset_size);
  StoreWriter writer(store, runId);

  // --- the loop: lr, forward, loss, backward, clip, step, report -----------------------------------
  sink.onMessage(std::string("run ") + std::to_string(runId) + ": " + stageName(cfg.stage) + ", " +
                 std::to_string(cfg.steps) + " steps of " + std::to_string(cfg.batch_size) + " on " +
                 device.str());
  int64_t step = startStep;
  for (; step < cfg.steps; ++step) {
    const auto stopping = [&] { return options.stopRequested && options.stopRequested->load(); };
    if (options.pauseRequested && options.pauseRequested->load() && !stopping()) {
      writer.flush();  // whoever watches sees every step done so far
      store.setStatus(runId, "paused", "paused at step " + std::to_string(step));
      while (options.pauseRequested->load() && !stopping())
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
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
    if (!std::isfinite(lossValue)) {
      writer.flush();
      result.status = "failed";
      result.step = step;
      result.message = "loss became " + std::string(std::isnan(lossValue) ? "nan" : "inf") +
                       " at step " + std::to_string(step + 1) + "; the run stopped before updating the weights" +
                       (result.checkpoint.empty() ? "" : "; last good checkpoint: " + result.checkpoint);
      store.setStatus(runId, "failed", result.message);
      sink.onMessage(result.message);
      return result;
    }
    optimizer.zero_grad();
    loss.backward();
    const double gradNorm = torch::nn::utils::clip_grad_norm_(
        trainable, cfg.grad_clip > 0 ? cfg.grad_clip : std::numeric_limits<double>::infinity());
    optimizer.step();

    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    scalars.insert(scalars.begin(), {"loss", lossValue});
    scalars.push_back({"learning_rate", lr});
    if (!groups.vision.empty()) scalars.push_back({"vision_learning_rate", visionLr});
    scalars.push_back({"grad_norm", gradNorm});
    scalars.push_back({"throughput/samples_per_s", static_cast<double>(B) / seconds});
    if (tokens > 0) scalars.push_back({"throughput/tokens_per_s", tokens / seconds});
    writer.add(step + 1, scalars);
    sink.onStep(step + 1, cfg.steps, scalars);
    if (cfg.checkpoint_every > 0 && (step + 1) % cfg.checkpoint_every == 0 && step + 1 < cfg.steps) {
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
}

}  // namespace pivot
