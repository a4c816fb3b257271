#include "visualization/attribution.h"

#include <cmath>
#include <stdexcept>

#include "training/losses.h"

namespace pivot {
namespace {

// Chosen rows then rejected rows, sharing one image per pair (as the trainer batches DPO).
MllmInputs concatPairs(const MllmInputs& c, const MllmInputs& r) {
  const int64_t T = std::max(c.inputIds.size(1), r.inputIds.size(1));
  auto pad = [T](const torch::Tensor& t, int64_t value) {
    return torch::constant_pad_nd(t, {0, T - t.size(1)}, value);
  };
  MllmInputs out;
  out.pixels = c.pixels;
  out.inputIds = torch::cat({pad(c.inputIds, 0), pad(r.inputIds, 0)});
  out.attentionMask = torch::cat({pad(c.attentionMask, 0), pad(r.attentionMask, 0)});
  out.labels = torch::cat({pad(c.labels, -100), pad(r.labels, -100)});
  out.prefixLen = torch::cat({c.prefixLen, r.prefixLen});
  out.logitsFrom = std::min(c.logitsFrom, r.logitsFrom);
  return out;
}

// Attention rollout over the layers that produce the features (Abnar & Zuidema 2020). SigLIP has no
// CLS token, so a token's score is the attention it receives, averaged over all query tokens.
torch::Tensor rollout(Mllm& model, const torch::Tensor& pixels, const AttributionOptions& o) {
  torch::NoGradGuard noGrad;
  auto& vt = model->vision_tower;
  const int used = vt->resolveLayer(model->config.deepestFeatureLayer());  // layers run
  for (int i = 0; i < used; ++i)
    vt->encoder->layers->at<SiglipEncoderLayerImpl>(i).self_attn->keepAttention = true;
  vt->features(pixels, model->config.vision_feature_layers);
  const int64_t B = pixels.size(0), N = vt->config.numPatches();
  auto eye = torch::eye(N, pixels.options()).unsqueeze(0);  // (1, N, N)
  auto result = eye.expand({B, N, N}).clone();
  for (int i = 0; i < used; ++i) {
    auto& attn = vt->encoder->layers->at<SiglipEncoderLayerImpl>(i).self_attn;
    auto a = attn->lastAttention;  // (B, nh, N, N)
    attn->keepAttention = false;
    attn->lastAttention = torch::Tensor();
    torch::Tensor fused = o.headFusion == "min"   ? std::get<0>(a.min(1))
                          : o.headFusion == "max" ? std::get<0>(a.max(1))
                                                  : a.mean(1);  // (B, N, N)
    if (o.discardRatio > 0) {  // drop the weakest entries, keep the diagonal
      const int64_t k = static_cast<int64_t>(o.discardRatio * static_cast<double>(N * N));
      if (k > 0) {
        auto flat = fused.reshape({B, N * N});
        auto threshold = std::get<0>(flat.kthvalue(k, /*dim=*/1, /*keepdim=*/true));  // (B, 1)
        fused = (flat * (flat > threshold).to(flat.scalar_type())).view({B, N, N});
        fused = torch::maximum(fused, a.mean(1) * eye);
      }
    }
    auto layer = (fused + eye);
    layer = layer / layer.sum(/*dim=*/-1, /*keepdim=*/true);
    result = torch::bmm(layer, result);  // (B, N, N)
  }
  return result.mean(/*dim=*/1);  // (B, N)
}

}  // namespace

AttributionTarget attributionTargetFromName(const std::string& name) {
  if (name == "logprob") return AttributionTarget::AnswerLogProb;
  if (name == "sft") return AttributionTarget::SftLoss;
  if (name == "dpo") return AttributionTarget::DpoLoss;
  throw std::runtime_error("unknown target '" + name + "' (expected sft, dpo or logprob)");
}

torch::Tensor tokensToGrid(const torch::Tensor& scores) {
  const int64_t N = scores.size(1);
  int64_t g = static_cast<int64_t>(std::floor(std::sqrt(static_cast<double>(N))));
  while ((g + 1) * (g + 1) <= N) ++g;
  const int64_t special = N - g * g;  // e.g. a CLS token in front
  TORCH_CHECK(g > 0 && special <= 8, "cannot infer a square token grid from ", N, " tokens");
  return scores.narrow(1, special, g * g).reshape({scores.size(0), g, g});
}

torch::Tensor normaliseMaps(const torch::Tensor& grids, bool suppressBorder, double gamma) {
  auto m = grids.to(torch::kFloat32).clone();  // (B, g, g)
  const int64_t g = m.size(1);
  if (suppressBorder && g >= kMinGridForBorderSuppression) {
    auto interior = m.narrow(1, 1, g - 2).narrow(2, 1, g - 2);
    auto floor = std::get<0>(interior.reshape({m.size(0), -1}).min(1)).view({-1, 1, 1});
    auto border = torch::ones_like(m, torch::kBool);
    border.narrow(1, 1, g - 2).narrow(2, 1, g - 2).fill_(false);
    m = torch::where(border, floor.expand_as(m), m);  // the border gets the interior's minimum
  }
  auto flat = m.reshape({m.size(0), -1});
  auto lo = std::get<0>(flat.min(1, true)), hi = std::get<0>(flat.max(1, true));
  auto range = hi - lo;
  auto normed =
      torch::where(range > 0, (flat - lo) / range.clamp_min(1e-12), torch::zeros_like(flat));
  return normed.pow(gamma).view_as(m);
}

std::vector<float> mapValues(const torch::Tensor& maps, int64_t b) {
  auto m = maps[b].to(torch::kFloat32).contiguous();
  return std::vector<float>(m.data_ptr<float>(), m.data_ptr<float>() + m.numel());
}

namespace {

// Per visual token, (B, N): the gradient's norm (the paper's map) or a CAM of the activations `a`.
torch::Tensor scoresOf(const AttributionOptions& o, const torch::Tensor& grads,
                       const torch::Tensor& a) {
  switch (o.method) {
    case AttributionMethod::GradMap:
      return o.l2 ? grads.norm(2, /*dim=*/-1) : grads.abs().sum(/*dim=*/-1);
    case AttributionMethod::GradCam:
      return torch::relu((grads.mean(/*dim=*/1, /*keepdim=*/true) * a).sum(/*dim=*/-1));
    case AttributionMethod::HiResCam:
      return torch::relu((grads * a).sum(/*dim=*/-1));
    default:  // LayerCAM
      return torch::relu((torch::relu(grads) * a).sum(/*dim=*/-1));
  }
}

}  // namespace

TokenMaps explainPerToken(Mllm& model, const MllmInputs& in, const AttributionOptions& o) {
  if (o.method == AttributionMethod::Rollout)
    throw std::runtime_error("per-token maps need a gradient method (rollout has no target)");
  const bool wasTraining = model->is_training();
  model->eval();
  const bool cam = o.method != AttributionMethod::GradMap;
  auto& vt = model->vision_tower;
  if (cam) vt->captureLayer = vt->resolveLayer(o.layer);
  MllmInputs one = in;  // row 0 alone
  for (auto* t : {&one.pixels, &one.inputIds, &one.attentionMask, &one.labels, &one.prefixLen,
                  &one.positionIds, &one.branch})
    if (t->defined()) *t = t->narrow(0, 0, 1);
  torch::Tensor visual;
  const auto logits =
      model->forward(one, &visual, cam ? MllmImpl::Visual::Recorded : MllmImpl::Visual::Leaf);
  const torch::Tensor wrt = cam ? vt->captured : visual;
  vt->captureLayer = -1;
  const auto labels = one.targetLabels();
  const auto perToken = tokenLogProbs(logits, labels)[0];  // (T')
  TokenMaps out;
  std::vector<torch::Tensor> scores;
  std::vector<double> logProbs;
  for (int64_t t = 0; t < labels.size(1); ++t) {
    const int64_t id = labels[0][t].item<int64_t>();
    if (id == -100) continue;
    out.positions.push_back(t);
    out.tokenIds.push_back(id);
    logProbs.push_back(perToken[t].item<double>());
    if (!wrt.defined()) {  // a layer above the feature layer: it never sees the answer
      scores.push_back(torch::zeros({1, vt->config.numPatches()}));
      continue;
    }
    auto grads = torch::autograd::grad({perToken[t]}, {wrt}, {}, /*retain_graph=*/true,
                                       /*create_graph=*/false, /*allow_unused=*/true)[0];
    if (!grads.defined()) grads = torch::zeros_like(wrt);
    scores.push_back(scoresOf(o, grads, wrt.detach()).detach().to(torch::kCPU));
  }
  if (!wrt.defined()) out.warnings.push_back("the layer lies above the feature layer: zero maps");
  if (wasTraining) model->train();
  if (scores.empty()) throw std::runtime_error("the answer has no trained token to explain");
  out.logProbs = torch::tensor(logProbs, torch::kFloat64);
  out.maps = normaliseMaps(tokensToGrid(torch::cat(scores).to(torch::kFloat32)), o.suppressBorder,
                           o.gamma);
  return out;
}

AttributionResult explain(Mllm& model, const MllmInputs& in, const AttributionOptions& o,
                          const MllmInputs* rejected) {
  AttributionResult result;
  const bool wasTraining = model->is_training();
  model->eval();
  torch::Tensor scores;  // (B, N)
  if (o.method == AttributionMethod::Rollout) {
    scores = rollout(model, in.pixels, o);
  } else {
    const bool cam = o.method != AttributionMethod::GradMap;
    auto& vt = model->vision_tower;
    if (cam) vt->captureLayer = vt->resolveLayer(o.layer);
    const bool dpo = o.target == AttributionTarget::DpoLoss;
    if (dpo && !rejected) throw std::runtime_error("the DPO target needs the rejected answers");
    const MllmInputs batch = dpo ? concatPairs(in, *rejected) : in;
    torch::Tensor visual;
    // The visual tokens' own map needs no gradient through the tower: they enter as a leaf.
    auto logits =
        model->forward(batch, &visual, cam ? MllmImpl::Visual::Recorded : MllmImpl::Visual::Leaf);
    auto logp = sequenceLogProbs(logits, batch.targetLabels());  // (rows)
    torch::Tensor score;  // higher = more evidence for the (chosen) answer
    if (o.target == AttributionTarget::AnswerLogProb) {
      score = logp.sum();
    } else if (o.target == AttributionTarget::SftLoss) {
      score = -sftLoss(logits, batch.targetLabels());
    } else {  // DPO at policy == reference: the reference log-probs are the policy's, detached
      const int64_t B = in.inputIds.size(0);
      auto pc = logp.narrow(0, 0, B), pr = logp.narrow(0, B, B);
      score = -dpoLoss(pc, pr, pc.detach(), pr.detach(), o.beta, DpoLoss::Sigmoid).loss;
    }
    const torch::Tensor wrt = cam ? vt->captured : visual;
    vt->captureLayer = -1;
    if (!wrt.defined()) {
      result.warnings.push_back("layer " + std::to_string(o.layer) +
                                " lies above the feature layer (" +
                                std::to_string(model->config.deepestFeatureLayer()) +
                                "): it never influences the answer, so its gradients are zero");
      scores = torch::zeros({in.pixels.size(0), vt->config.numPatches()});
    } else {
      auto grads = torch::autograd::grad({score}, {wrt}, {}, /*retain_graph=*/false,
                                         /*create_graph=*/false, /*allow_unused=*/true)[0];
      if (!grads.defined() || grads.abs().max().item<double>() == 0) {
        result.warnings.push_back(std::string(attributionMethodName(o.method)) +
                                  ": all gradients are zero, the map carries no information");
        grads = torch::zeros_like(wrt);
      }
      scores = scoresOf(o, grads, wrt.detach());
    }
  }
  if (wasTraining) model->train();
  result.raw = tokensToGrid(scores.detach().to(torch::kCPU).to(torch::kFloat32));
  result.maps = normaliseMaps(result.raw, o.suppressBorder, o.gamma);
  return result;
}

}  // namespace pivot
