#include "training/encoder_pretrain.h"

#include <cmath>

#include "training/batches.h"

namespace pivot {
namespace {

struct TextBatch {
  torch::Tensor ids, mask, sameText;
};

TextBatch captionBatch(const std::vector<Sample>& samples, const WordTokenizer& tok,
                       torch::Device device) {
  const int64_t B = static_cast<int64_t>(samples.size());
  std::vector<std::vector<int64_t>> rows;
  int64_t T = 1;
  for (const auto& s : samples) {
    rows.push_back(tok.encode(s.caption));
    T = std::max<int64_t>(T, static_cast<int64_t>(rows.back().size()));
  }
  auto ids = torch::full({B, T}, WordTokenizer::kPad, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kInt64);
  auto same = torch::zeros({B, B}, torch::kBool);
  for (int64_t b = 0; b < B; ++b) {
    const auto& r = rows[static_cast<size_t>(b)];
    for (size_t t = 0; t < r.size(); ++t) {
      ids[b][static_cast<int64_t>(t)] = r[t];
      mask[b][static_cast<int64_t>(t)] = 1;
    }
    for (int64_t c = 0; c < B; ++c)
      if (samples[static_cast<size_t>(b)].caption == samples[static_cast<size_t>(c)].caption)
        same[b][c] = true;
  }
  return {ids.to(device), mask.to(device), same.to(device)};
}

}  // namespace

ContrastiveHeadsImpl::ContrastiveHeadsImpl(const VisionConfig& vision, int64_t vocabSize,
                                           int64_t maxTextLength) {
  VisionConfig text = vision;  // same width, heads and MLP as the vision blocks
  const int64_t D = vision.hidden_size;
  token_embedding = register_module("token_embedding", torch::nn::Embedding(vocabSize, D));
  position_embedding =
      register_module("position_embedding", torch::nn::Embedding(maxTextLength, D));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < 2; ++i) layers->push_back(SiglipEncoderLayer(text));
  final_layer_norm = register_module(
      "final_layer_norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(vision.layer_norm_eps)));
  text_head = register_module("text_head", torch::nn::Linear(D, D));
  image_head = register_module("image_head", torch::nn::Linear(D, D));
  conjunction_head =
      register_module("conjunction_head", torch::nn::Linear(D, ShapesWorld::numClasses() - 1));
  logit_scale = register_parameter("logit_scale", torch::full({1}, std::log(10.0)));
  logit_bias = register_parameter("logit_bias", torch::full({1}, -10.0));
}

torch::Tensor ContrastiveHeadsImpl::encodeText(const torch::Tensor& ids,
                                               const torch::Tensor& mask) {
  const int64_t T = ids.size(1);
  TORCH_CHECK(T <= position_embedding->weight.size(0), "caption of ", T,
              " tokens is longer than the text tower's ", position_embedding->weight.size(0));
  auto x = token_embedding(ids) + position_embedding(torch::arange(T, ids.options())).unsqueeze(0);
  // Padded keys get a large negative score; padded queries are dropped by the pooling below.
  auto additive = (1.0 - mask.to(x.scalar_type())).mul(-1e9).view({ids.size(0), 1, 1, T});
  for (size_t i = 0; i < layers->size(); ++i)
    x = layers->at<SiglipEncoderLayerImpl>(i).forward(x, additive);
  x = final_layer_norm(x);
  auto m = mask.to(x.scalar_type()).unsqueeze(-1);         // (B, T, 1)
  auto pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0);  // (B, D)
  return torch::nn::functional::normalize(text_head(pooled),
                                          torch::nn::functional::NormalizeFuncOptions().dim(-1));
}

torch::Tensor ContrastiveHeadsImpl::encodeImage(const torch::Tensor& lastHidden) {
  return torch::nn::functional::normalize(image_head(lastHidden.mean(1)),
                                          torch::nn::functional::NormalizeFuncOptions().dim(-1));
}

torch::Tensor siglipPairSum(const torch::Tensor& imageEmbeds, const torch::Tensor& textEmbeds,
                            const torch::Tensor& logitScale, const torch::Tensor& logitBias,
                            const torch::Tensor& sameText) {
  auto logits =
      torch::matmul(imageEmbeds, textEmbeds.t()) * logitScale.exp() + logitBias;  // (B, B')
  auto target = sameText.to(logits.scalar_type()) * 2.0 - 1.0;
  return -torch::nn::functional::logsigmoid(target * logits).sum();
}

torch::Tensor siglipLoss(const torch::Tensor& imageEmbeds, const torch::Tensor& textEmbeds,
                         const torch::Tensor& logitScale, const torch::Tensor& logitBias,
                         const torch::Tensor& sameText) {
  return siglipPairSum(imageEmbeds, textEmbeds, logitScale, logitBias, sameText) /
         imageEmbeds.size(0);
}

namespace {

// A number per caption, equal for equal captions: which pairs across ranks are matches.
torch::Tensor captionKeys(const std::vector<Sample>& samples) {
  std::vector<int64_t> keys;
  for (const auto& s : samples)
    keys.push_back(static_cast<int64_t>(std::hash<std::string>{}(s.caption) >> 1));
  return torch::tensor(keys, torch::kInt64);
}

// This rank's share of the global batch's SigLIP loss (pretrainStep's comment).
torch::Tensor dataParallelSiglip(const torch::Tensor& img, const torch::Tensor& txt,
                                 ContrastiveHeads& heads, const std::vector<Sample>& samples,
                                 const BatchPeers& peers) {
  const int64_t b = img.size(0);
  const auto allImg = peers.allGather(img.detach());
  const auto allTxt = peers.allGather(txt.detach());
  const auto myKeys = captionKeys(samples).to(img.device());
  const auto allKeys = peers.allGather(myKeys);
  const int64_t n = allImg.size(0), from = peers.rank * b;
  const auto others = [&](const torch::Tensor& t) {
    return torch::cat({t.narrow(0, 0, from), t.narrow(0, from + b, n - from - b)});
  };
  // Rows: this rank's images against every caption, this rank's own ones live. Over the ranks the
  // rows hold every pair once: the loss's value, and the gradient of the images, t and b.
  const auto texts =
      torch::cat({allTxt.narrow(0, 0, from), txt, allTxt.narrow(0, from + b, n - from - b)});
  const auto rows = siglipPairSum(img, texts, heads->logit_scale, heads->logit_bias,
                                  myKeys.unsqueeze(1) == allKeys.unsqueeze(0));
  // Columns: the other ranks' images against this rank's captions, for the gradient of these
  // captions alone (their pairs' values are in the other ranks' rows; t and b are constants here).
  const auto cols =
      siglipPairSum(others(allImg), txt, heads->logit_scale.detach(), heads->logit_bias.detach(),
                    others(allKeys).unsqueeze(1) == myKeys.unsqueeze(0));
  return (rows + (cols - cols.detach())) / static_cast<double>(n) * static_cast<double>(peers.size);
}

}  // namespace

torch::Tensor conjunctionTargets(const std::vector<Sample>& samples) {
  const int64_t K = ShapesWorld::numClasses() - 1;  // class 0 is the background
  auto t = torch::zeros({static_cast<int64_t>(samples.size()), K});
  for (size_t b = 0; b < samples.size(); ++b)
    for (const auto& o : samples[b].scene.objects)
      t[static_cast<int64_t>(b)]
       [o.shape * static_cast<int64_t>(ShapesWorld::colours().size()) + o.colour] = 1.0;
  return t;
}

PretrainStep pretrainStep(VisionTransformer& vision, ContrastiveHeads& heads,
                          const std::vector<Sample>& samples, const WordTokenizer& tok,
                          torch::Device device, double conjunctionWeight, const BatchPeers* peers) {
  std::vector<const Scene*> scenes;
  for (const auto& s : samples) scenes.push_back(&s.scene);
  const auto text = captionBatch(samples, tok, device);
  auto hidden = vision->forward(imageTensor(scenes).to(device));
  auto img = heads->encodeImage(hidden);
  auto txt = heads->encodeText(text.ids, text.mask);
  PretrainStep out;
  auto siglip = peers && peers->size > 1
                    ? dataParallelSiglip(img, txt, heads, samples, *peers)
                    : siglipLoss(img, txt, heads->logit_scale, heads->logit_bias, text.sameText);
  out.loss = siglip;
  Scalars extra;
  if (conjunctionWeight > 0) {
    const auto targets = conjunctionTargets(samples).to(device);
    auto logits = heads->conjunction_head(hidden.mean(1));
    auto bce = torch::binary_cross_entropy_with_logits(logits, targets);
    out.loss = out.loss + conjunctionWeight * bce;
    torch::NoGradGuard noGrad;
    extra = {{"conjunction/loss", bce.item<double>()},
             {"conjunction/accuracy", ((logits > 0).to(torch::kFloat32) == targets)
                                          .all(1)
                                          .to(torch::kFloat32)
                                          .mean()
                                          .item<double>()}};
  }
  torch::NoGradGuard noGrad;
  // A retrieval is right when the best-scoring caption is the image's own (or an identical one).
  auto best = torch::matmul(img, txt.t()).argmax(1);
  auto hit = text.sameText.gather(1, best.unsqueeze(1)).to(torch::kFloat32).mean();
  out.scalars = {{"siglip/loss", siglip.item<double>()},
                 {"siglip/image_to_text_accuracy", hit.item<double>()},
                 {"siglip/logit_scale", heads->logit_scale.exp().item<double>()},
                 {"siglip/logit_bias", heads->logit_bias.item<double>()}};
  out.scalars.insert(out.scalars.end(), extra.begin(), extra.end());
  return out;
}

Scalars evaluateRetrieval(VisionTransformer& vision, ContrastiveHeads& heads,
                          const ShapesWorld& world, const WordTokenizer& tok, Split split,
                          int numSamples, torch::Device device, int batchSize) {
  torch::NoGradGuard noGrad;
  const bool wasTraining = vision->is_training();
  vision->eval();
  heads->eval();
  double hits = 0, lossSum = 0;
  int batches = 0, scored = 0;
  for (int start = 0; start + batchSize <= numSamples; start += batchSize) {
    std::vector<Sample> samples;
    for (int i = start; i < start + batchSize; ++i) samples.push_back(world.sample(split, i));
    const auto step = pretrainStep(vision, heads, samples, tok, device);
    hits += step.scalars[1].second * batchSize;  // siglip/image_to_text_accuracy
    lossSum += step.scalars[0].second;           // siglip/loss
    scored += batchSize;
    ++batches;
  }
  if (wasTraining) vision->train(), heads->train();
  if (batches == 0) return {};
  return {{"retrieval/image_to_text_accuracy", hits / scored},
          {"retrieval/chance", 1.0 / batchSize},
          {"retrieval/siglip_loss", lossSum / batches},
          {"retrieval/samples", static_cast<double>(scored)}};
}

}  // namespace pivot
