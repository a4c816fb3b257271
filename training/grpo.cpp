#include "training/grpo.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/generate.h"
#include "training/batches.h"
#include "training/losses.h"
#include "training/real_data.h"
#include "training/rewards.h"

namespace fs = std::filesystem;

namespace pivot {

MllmInputs completionBatch(const MllmInputs& prompts, const torch::Tensor& completionIds,
                           const std::vector<int64_t>& lengths, int64_t padId) {
  const int64_t N = prompts.inputIds.size(0), T = prompts.inputIds.size(1);
  const int64_t L = completionIds.size(1);
  const auto device = prompts.inputIds.device();
  auto lengthTensor = torch::tensor(lengths, torch::kInt64).to(device).unsqueeze(1);  // (N, 1)
  const auto completionMask =
      (torch::arange(L, torch::TensorOptions().dtype(torch::kInt64).device(device)).unsqueeze(0) <
       lengthTensor)
          .to(torch::kInt64);  // (N, L)
  MllmInputs in;
  in.pixels = prompts.pixels;
  in.inputIds =
      torch::cat({prompts.inputIds, completionIds.masked_fill(completionMask == 0, padId)}, 1);
  in.attentionMask = torch::cat({prompts.attentionMask.to(torch::kInt64), completionMask}, 1);
  // Position t predicts token t + 1: the completion's tokens are the targets of T - 1 .. T + L - 2.
  in.labels = torch::full({N, T + L}, -100, in.inputIds.options());
  in.labels.narrow(1, T - 1, L).copy_(completionIds.masked_fill(completionMask == 0, -100));
  in.prefixLen = torch::full({N}, T, in.inputIds.options());  // the prompt attends both ways
  in.logitsFrom = T - 1;
  return in;
}

std::optional<PackedCompletions> packCompletions(const MllmInputs& completions, int64_t G) {
  const int64_t N = completions.inputIds.size(0), T = completions.logitsFrom + 1;
  const int64_t L = completions.inputIds.size(1) - T;
  if (G < 2 || N % G != 0 || L < 1) return std::nullopt;
  const int64_t P = N / G;
  const auto ids = completions.inputIds.cpu().contiguous(),
             mask = completions.attentionMask.cpu().to(torch::kInt64).contiguous();
  const auto idsA = ids.accessor<int64_t, 2>(), maskA = mask.accessor<int64_t, 2>();
  for (int64_t g = 1; g < G; ++g)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t t = 0; t < T; ++t)
        if (idsA[g * P + p][t] != idsA[p][t] || maskA[g * P + p][t] != maskA[p][t])
          return std::nullopt;
  const int64_t width = T + G * L;
  auto packedIds = torch::zeros({P, width}, torch::kInt64),
       packedMask = torch::zeros({P, width}, torch::kInt64),
       positions = torch::zeros({P, width}, torch::kInt64),
       branch = torch::zeros({P, width}, torch::kInt64),
       predictedAt = torch::zeros({P, G * L}, torch::kInt64),
       tokens = torch::zeros({P, G * L}, torch::kInt64);
  auto outIds = packedIds.accessor<int64_t, 2>(), outMask = packedMask.accessor<int64_t, 2>(),
       outPos = positions.accessor<int64_t, 2>(), outBranch = branch.accessor<int64_t, 2>(),
       outAt = predictedAt.accessor<int64_t, 2>(), outTokens = tokens.accessor<int64_t, 2>();
  for (int64_t p = 0; p < P; ++p) {
    int64_t promptLength = 0;  // the prompt's real tokens: the positions run 0..promptLength - 1
    for (int64_t t = 0; t < T; ++t) {
      outIds[p][t] = idsA[p][t];
      outMask[p][t] = maskA[p][t];
      outPos[p][t] = std::max<int64_t>(0, promptLength + maskA[p][t] - 1);
      promptLength += maskA[p][t];
    }
    for (int64_t g = 0; g < G; ++g)
      for (int64_t l = 0; l < L; ++l) {
        const int64_t at = T + g * L + l, row = g * P + p;
        outIds[p][at] = idsA[row][T + l];
        outMask[p][at] = maskA[row][T + l];
        outPos[p][at] = promptLength + l;
        outBranch[p][at] = g + 1;
        // Relative to the logits' first position, T - 1: a completion's first token is predicted
        // by the prompt's last position, every later one by its own branch's previous token.
        outAt[p][g * L + l] = l == 0 ? 0 : at - T;
        outTokens[p][g * L + l] = idsA[row][T + l];
      }
  }
  const auto device = completions.inputIds.device();
  PackedCompletions out;
  out.in.pixels = completions.pixels;
  out.in.inputIds = packedIds.to(device);
  out.in.attentionMask = packedMask.to(device);
  out.in.positionIds = positions.to(device);
  out.in.branch = branch.to(device);
  out.in.labels = torch::full({P, width}, -100, out.in.inputIds.options());  // scored by hand
  out.in.prefixLen = torch::full({P}, T, out.in.inputIds.options());
  out.in.logitsFrom = T - 1;
  out.predictedAt = predictedAt.to(device);
  out.tokens = tokens.to(device);
  out.generations = G;
  out.length = L;
  return out;
}

CompletionScores scorePackedCompletions(const PackedCompletions& packed,
                                        const torch::Tensor& logits, const torch::Tensor& mask,
                                        bool entropy) {
  const int64_t P = logits.size(0), G = packed.generations, L = packed.length, V = logits.size(2);
  const auto logp = torch::log_softmax(logits.to(torch::kFloat32), -1)
                        .gather(1, packed.predictedAt.unsqueeze(-1).expand({P, G * L, V}));
  // (P, G L) -> completionBatch's (G P, L), then its last column (no token) back.
  const auto unpack = [&](const torch::Tensor& x) {
    const auto rows = x.view({P, G, L}).transpose(0, 1).reshape({G * P, L});
    return torch::cat({rows, torch::zeros({G * P, 1}, rows.options())}, 1) *
           mask.to(rows.scalar_type());
  };
  CompletionScores out;
  out.logps = unpack(logp.gather(2, packed.tokens.unsqueeze(-1)).squeeze(-1));
  if (entropy) out.entropy = unpack(-(logp.exp() * logp).sum(-1)).detach();
  return out;
}

namespace {

constexpr const char* kRolloutFile = "grpo_rollout.safetensors";  // beside a checkpoint
constexpr int kLoggedPrompts = 4;  // prompts (each with all G completions) per completions log

// One generation batch: P prompts x G completions in generation-major order (row g P + p is
// completion g of prompt p, so the P images serve every generation in turn), what the policy and
// the reference gave them when sampled, and what the rewards made of them.
struct Rollout {
  int64_t round = -1;
  MllmInputs inputs;
  std::optional<PackedCompletions> packed;  // `inputs` with each prompt once, when they allow
  torch::Tensor oldLogps;                   // (N, L + 1), num_iterations > 1 only
  torch::Tensor refLogps;                   // (N, L + 1), beta > 0 only
  torch::Tensor advantages;                 // (N)
  Scalars scalars;                          // the round's reward and completion metrics
  std::vector<CompletionRow> completions;   // logged at the round's first step (may be empty)
};

double maskedMean(const torch::Tensor& values, const torch::Tensor& mask) {
  const auto m = mask.to(values.scalar_type());
  return ((values * m).sum() / m.sum().clamp_min(1.0)).item<double>();
}

// Where a run's prompts come from and how its completions read: ShapesWorld's questions with the
// word tokenizer, or a real dataset's with the model folder's tokenizer and chat template.
struct PromptSource {
  std::function<GrpoPrompts(const std::vector<int64_t>& indices, int64_t generations)> prompts;
  std::function<std::string(const std::vector<int64_t>& ids)> decode;
  std::vector<int64_t> stopIds, suppressIds;
  int64_t padId = 0;
};

PromptSource shapesWorldPrompts(const ShapesWorld& world, const WordTokenizer& tok, int imageTokens,
                                torch::Device device) {
  PromptSource source;
  source.prompts = [&world, &tok, imageTokens, device](const std::vector<int64_t>& indices,
                                                       int64_t G) {
    std::vector<Sample> samples;
    for (auto index : indices) samples.push_back(world.sample(Split::Train, index));
    std::vector<const Sample*> rows;  // generation-major
    for (int64_t g = 0; g < G; ++g)
      for (const auto& s : samples) rows.push_back(&s);
    GrpoPrompts out;
    out.prompts = promptBatch(rows, tok, imageTokens, device);
    out.prompts.pixels = out.prompts.pixels.narrow(0, 0, static_cast<int64_t>(samples.size()));
    for (size_t p = 0; p < samples.size(); ++p) {
      out.references.push_back(samples[p].answer);
      out.questions.push_back(samples[p].question);
      out.categories.push_back(categoryName(samples[p].category));
      out.samples.push_back("train:" + std::to_string(indices[p]));
    }
    return out;
  };
  source.decode = [&tok](const std::vector<int64_t>& ids) {
    return tok.decode(ids, /*skipSpecialTokens=*/true);
  };
  source.stopIds = {WordTokenizer::kImEnd};
  source.suppressIds = WordTokenizer::neverGenerated();
  source.padId = WordTokenizer::kPad;
  return source;
}

PromptSource realDataPrompts(const RealData& data, const MllmConfig& model, torch::Device device) {
  PromptSource source;
  source.prompts = [&data, device](const std::vector<int64_t>& indices, int64_t G) {
    return data.grpoPrompts(indices, G, device);
  };
  source.decode = [&data](const std::vector<int64_t>& ids) {
    return data.batcher().tokenizer().decode(ids, /*skipSpecialTokens=*/true);
  };
  source.stopIds = data.batcher().stopIds();
  source.padId = data.batcher().tokenizer().padId().value_or(0);
  source.suppressIds = {model.image_token_id};
  return source;
}

class Grpo {
 public:
  Grpo(const TrainConfig& c, Mllm& policy, Mllm& reference, PromptSource source,
       torch::Device device)
      : m_cfg(c),
        m_policy(policy),
        m_reference(reference),
        m_source(std::move(source)),
        m_device(device) {}

  StepOutput step(int64_t step, const std::vector<int64_t>& promptIndices) {
    const int64_t round = step / m_cfg.num_iterations;
    const bool fresh = !m_rollout || m_rollout->round != round;
    if (fresh) m_rollout = sample(round, promptIndices, step);
    const Rollout& r = *m_rollout;

    const auto mask = r.inputs.targetLabels() != -100;
    double entropy = 0;
    const auto logps = completionLogProbs(m_policy, r, &entropy);
    GrpoSettings settings;
    settings.epsilonLow = m_cfg.epsilon;
    settings.epsilonHigh = m_cfg.epsilon_high;
    settings.beta = m_cfg.beta;
    settings.lossType = m_cfg.grpo_loss_type;
    settings.maxCompletionLength = m_cfg.max_completion_length;
    const auto loss = grpoLoss(logps, r.oldLogps, r.refLogps, r.advantages, mask, settings);

    StepOutput out;
    out.loss = loss.loss;
    out.scalars = r.scalars;
    if (m_cfg.beta > 0) out.scalars.push_back({"kl", loss.kl});
    out.scalars.push_back({"entropy", entropy});
    out.scalars.push_back({"clip_ratio/low_mean", loss.clipLow});
    out.scalars.push_back({"clip_ratio/high_mean", loss.clipHigh});
    out.scalars.push_back({"clip_ratio/region_mean", loss.clipRegion});
    out.scalars.push_back({"num_tokens", m_tokensSeen});
    out.tokens = r.inputs.attentionMask.sum().item<double>();
    // Token-level losses average over the batch's completion tokens: data-parallel ranks weight
    // their gradients by them (the others average over sequences, equal on every rank).
    if (m_cfg.grpo_loss_type == GrpoLoss::Bnpo || m_cfg.grpo_loss_type == GrpoLoss::Dapo)
      out.lossUnits = mask.sum().item<double>();
    if (fresh) out.completions = r.completions;
    return out;
  }

  // The rollout (and the token count) beside a checkpoint: a run resumed inside a round reuses
  // the very completions, old log-probs and advantages the uninterrupted run did.
  void save(const std::string& dir) const {
    TensorMap tensors = {{"tokens_seen", torch::tensor({m_tokensSeen}, torch::kFloat64)}};
    StringMap meta;
    if (m_rollout) {
      const Rollout& r = *m_rollout;
      tensors["pixels"] = r.inputs.pixels;
      tensors["input_ids"] = r.inputs.inputIds;
      tensors["attention_mask"] = r.inputs.attentionMask;
      tensors["labels"] = r.inputs.labels;
      tensors["prefix_len"] = r.inputs.prefixLen;
      tensors["advantages"] = r.advantages;
      if (r.oldLogps.defined()) tensors["old_logps"] = r.oldLogps;
      if (r.refLogps.defined()) tensors["ref_logps"] = r.refLogps;
      nlohmann::json scalars = nlohmann::json::array();
      for (const auto& [k, v] : r.scalars) scalars.push_back({k, v});
      meta = {{"round", std::to_string(r.round)},
              {"logits_from", std::to_string(r.inputs.logitsFrom)},
              {"scalars", scalars.dump()}};
    }
    saveSafetensors((fs::path(dir) / kRolloutFile).string(), tensors, meta);
  }

  void restore(const std::string& dir) {
    const auto path = (fs::path(dir) / kRolloutFile).string();
    if (!fs::exists(path)) return;
    StringMap meta;
    TensorMap t = loadSafetensors(path, &meta);
    m_tokensSeen = t.at("tokens_seen")[0].item<double>();
    if (!t.count("input_ids")) return;
    auto r = std::make_shared<Rollout>();
    const auto get = [&](const char* key) { return t.at(key).to(m_device); };
    r->round = std::stoll(meta.at("round"));
    r->inputs.pixels = get("pixels");
    r->inputs.inputIds = get("input_ids");
    r->inputs.attentionMask = get("attention_mask");
    r->inputs.labels = get("labels");
    r->inputs.prefixLen = get("prefix_len");
    r->inputs.logitsFrom = std::stoll(meta.at("logits_from"));
    r->advantages = get("advantages");
    if (t.count("old_logps")) r->oldLogps = get("old_logps");
    if (t.count("ref_logps")) r->refLogps = get("ref_logps");
    for (const auto& kv : nlohmann::json::parse(meta.at("scalars")))
      r->scalars.push_back({kv.at(0).get<std::string>(), kv.at(1).get<double>()});
    r->packed = packCompletions(r->inputs, m_cfg.num_generations);
    m_rollout = r;
  }

 private:
  // `model`'s log-probability of every completion token of the rollout, (N, L + 1) as
  // completionBatch lays them out, from the packed rows when there are some; `entropy` (when
  // given) receives the mean entropy of the distributions the tokens were drawn from.
  torch::Tensor completionLogProbs(Mllm& model, const Rollout& r, double* entropy) const {
    const auto labels = r.inputs.targetLabels();
    const auto mask = labels != -100;
    if (r.packed) {
      const auto scores =
          scorePackedCompletions(*r.packed, model->forward(r.packed->in), mask, entropy != nullptr);
      if (entropy) *entropy = maskedMean(scores.entropy, mask);
      return scores.logps;
    }
    const auto logits = model->forward(r.inputs);  // (N, L + 1, V)
    if (entropy) {
      torch::NoGradGuard noGrad;
      const auto logp = torch::log_softmax(logits.detach().to(torch::kFloat32), -1);
      *entropy = maskedMean(-(logp.exp() * logp).sum(-1), mask);
    }
    return tokenLogProbs(logits, labels);
  }

  // Samples the round's completions, scores them and computes what every update of the round
  // needs.
  std::shared_ptr<Rollout> sample(int64_t round, const std::vector<int64_t>& indices,
                                  int64_t step) {
    const int64_t P = static_cast<int64_t>(indices.size()), G = m_cfg.num_generations;
    const GrpoPrompts batch = m_source.prompts(indices, G);
    const MllmInputs& prompts = batch.prompts;  // row g P + p: prompt p; its P images once

    GenerationOptions gen;
    gen.maxNewTokens = m_cfg.max_completion_length;
    gen.temperature = m_cfg.temperature;
    gen.topK = m_cfg.top_k;
    gen.topP = m_cfg.top_p;
    gen.stopIds = m_source.stopIds;
    gen.padId = m_source.padId;
    gen.suppressIds = m_source.suppressIds;
    gen.seed = m_cfg.seed * 1000003ULL + static_cast<uint64_t>(round);  // reproducible rounds
    const Generation completions = generate(m_policy, prompts, gen);
    m_policy->train();  // generate() evaluates

    auto r = std::make_shared<Rollout>();
    r->round = round;
    r->inputs = completionBatch(prompts, completions.ids, completions.lengths, m_source.padId);
    r->packed = packCompletions(r->inputs, G);
    m_tokensSeen += r->inputs.attentionMask.sum().item<double>();

    // Rewards: each function on each completion's text (its stop token not part of the text).
    const int64_t N = P * G;
    const size_t F = m_cfg.reward_funcs.size();
    std::vector<std::string> texts(static_cast<size_t>(N));
    std::vector<std::vector<double>> perFunction(F, std::vector<double>(static_cast<size_t>(N)));
    std::vector<double> accuracy(static_cast<size_t>(N));
    const auto idsCpu = completions.ids.to(torch::kCPU).contiguous();
    const auto ids = idsCpu.accessor<int64_t, 2>();  // read token by token: no tensor per element
    for (int64_t n = 0; n < N; ++n) {
      const auto i = static_cast<size_t>(n);
      const int64_t length = completions.lengths[i];
      std::vector<int64_t> tokens;
      for (int64_t t = 0; t < length; ++t) tokens.push_back(ids[n][t]);
      if (completions.stopped[i] && !tokens.empty()) tokens.pop_back();
      texts[i] = m_source.decode(tokens);
      const std::string& reference = batch.references[static_cast<size_t>(n % P)];
      for (size_t f = 0; f < F; ++f)
        perFunction[f][i] = rewardOf(m_cfg.reward_funcs[f], texts[i], static_cast<int>(length),
                                     reference, m_cfg.max_completion_length);
      accuracy[i] = accuracyReward(texts[i], reference);
    }
    auto rewards = torch::zeros({N}, torch::kFloat64);
    for (size_t f = 0; f < F; ++f)
      rewards += (m_cfg.reward_weights.empty() ? 1.0 : m_cfg.reward_weights[f]) *
                 torch::tensor(perFunction[f], torch::kFloat64);
    // Groups are prompt-major for the advantages: row g P + p is element p G + g there.
    const auto byPrompt = rewards.view({G, P}).t().reshape({-1});
    const GroupAdvantages adv = groupAdvantages(byPrompt, G, m_cfg.scale_rewards);
    r->advantages = adv.advantages.view({P, G}).t().reshape({-1}).to(torch::kFloat32).to(m_device);

    {
      torch::NoGradGuard noGrad;
      if (m_cfg.num_iterations > 1) r->oldLogps = completionLogProbs(m_policy, *r, nullptr);
      if (m_cfg.beta > 0) r->refLogps = completionLogProbs(m_reference, *r, nullptr);
    }

    // The round's metrics, with TRL's names.
    const auto stdOf = [](const torch::Tensor& x) {
      return x.numel() > 1 ? x.std().item<double>() : 0.0;
    };
    Scalars& s = r->scalars;
    s.push_back({"reward", rewards.mean().item<double>()});
    s.push_back({"reward_std", adv.groupStd.mean().item<double>()});
    for (size_t f = 0; f < F; ++f) {
      const auto values = torch::tensor(perFunction[f], torch::kFloat64);
      const std::string key = std::string("rewards/") + name(m_cfg.reward_funcs[f]);
      s.push_back({key + "/mean", values.mean().item<double>()});
      s.push_back({key + "/std", stdOf(values)});
    }
    s.push_back({"frac_reward_zero_std", adv.fracZeroStd});
    std::vector<double> lengths(completions.lengths.begin(), completions.lengths.end());
    const auto lengthTensor = torch::tensor(lengths, torch::kFloat64);
    s.push_back({"completions/mean_length", lengthTensor.mean().item<double>()});
    s.push_back({"completions/min_length", lengthTensor.min().item<double>()});
    s.push_back({"completions/max_length", lengthTensor.max().item<double>()});
    const auto clipped = std::count(completions.stopped.begin(), completions.stopped.end(), false);
    s.push_back({"completions/clipped_ratio", static_cast<double>(clipped) / N});
    std::map<std::string, std::pair<double, int>> byCategory;  // accuracy per question category
    for (int64_t n = 0; n < N && !batch.categories.empty(); ++n) {
      auto& [sum, count] = byCategory[batch.categories[static_cast<size_t>(n % P)]];
      sum += accuracy[static_cast<size_t>(n)];
      ++count;
    }
    for (const auto& [category, sc] : byCategory)
      s.push_back({"accuracy/" + category, sc.first / sc.second});

    if (logsCompletions(step)) {
      const auto advantages = r->advantages.to(torch::kCPU);
      for (int64_t p = 0; p < std::min<int64_t>(P, kLoggedPrompts); ++p)
        for (int64_t g = 0; g < G; ++g) {
          const int64_t n = g * P + p;
          const auto i = static_cast<size_t>(n);
          CompletionRow row;
          row.step = step + 1;  // the step whose metrics these are
          row.prompt = p;
          row.generation = g;
          row.sample = batch.samples[static_cast<size_t>(p)];
          row.question = batch.questions[static_cast<size_t>(p)];
          row.reference = batch.references[static_cast<size_t>(p)];
          row.completion = texts[i];
          nlohmann::json each = nlohmann::json::object();
          for (size_t f = 0; f < F; ++f) each[name(m_cfg.reward_funcs[f])] = perFunction[f][i];
          row.rewardsJson = each.dump();
          row.reward = rewards[n].item<double>();
          row.advantage = advantages[n].item<double>();
          r->completions.push_back(std::move(row));
        }
    }
    return r;
  }

  // The first round, and every round whose steps reach a multiple of log_completions_steps.
  bool logsCompletions(int64_t step) const {
    const int64_t every = m_cfg.log_completions_steps;
    if (every <= 0) return false;
    if (step == 0) return true;
    const int64_t last = step + m_cfg.num_iterations;  // the round covers steps step+1 .. last
    return last / every > step / every;
  }

  const TrainConfig m_cfg;
  Mllm& m_policy;
  Mllm& m_reference;
  const PromptSource m_source;
  torch::Device m_device;
  std::shared_ptr<Rollout> m_rollout;
  double m_tokensSeen = 0;  // prompt + completion tokens sampled so far (TRL's num_tokens)
};

}  // namespace

TrainingMethod grpoMethod(const TrainConfig& config, Mllm& policy, Mllm& reference,
                          const ShapesWorld& world, const RealData* realData,
                          const WordTokenizer& tok, torch::Device device) {
  PromptSource source =
      realData ? realDataPrompts(*realData, config.model, device)
               : shapesWorldPrompts(world, tok, policy->config.vision.numPatches(), device);
  auto grpo = std::make_shared<Grpo>(config, policy, reference, std::move(source), device);
  TrainingMethod m;
  m.samplesPerStep = config.batch_size / config.num_generations;
  m.stepsPerBatch = config.num_iterations;
  m.step = [grpo](int64_t step, const std::vector<int64_t>& indices) {
    return grpo->step(step, indices);
  };
  m.saveState = [grpo](const std::string& dir) { grpo->save(dir); };
  m.restoreState = [grpo](const std::string& dir) { grpo->restore(dir); };
  return m;
}

}  // namespace pivot
