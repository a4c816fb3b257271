#include "model/mllm.h"

#include "model/linear.h"

namespace pivot {

ProjectorImpl::ProjectorImpl(int64_t visionDim, int64_t textDim, bool bias) {
  linear_1 = register_module(
      "linear_1", torch::nn::Linear(torch::nn::LinearOptions(visionDim, textDim).bias(bias)));
  linear_2 = register_module(
      "linear_2", torch::nn::Linear(torch::nn::LinearOptions(textDim, textDim).bias(bias)));
}

torch::Tensor ProjectorImpl::forward(const torch::Tensor& x) {
  return linear(linear_2,
                torch::gelu(linear(linear_1, x)));  // LLaVA's mlp2x_gelu uses exact (erf) GELU
}

MllmImpl::MllmImpl(const MllmConfig& c) : config(c) {
  vision_tower = register_module("vision_tower", VisionTransformer(c.vision));
  multi_modal_projector = register_module(
      "multi_modal_projector",
      Projector(c.vision.hidden_size * static_cast<int64_t>(c.vision_feature_layers.size()),
                c.text.hidden_size, c.multimodal_projector_bias));
  language_model = register_module("language_model", CausalLM(c.text));
}

torch::Tensor MllmImpl::visualTokens(const torch::Tensor& pixels) {
  auto features = vision_tower->features(pixels, config.vision_feature_layers);  // (B, N, Dv*k)
  if (config.drop_first_vision_token)  // LLaVA's "default" strategy: a CLIP-style class token
    features = features.narrow(1, 1, features.size(1) - 1);
  return multi_modal_projector(features);  // (B, N, Dt)
}

torch::Tensor MllmImpl::spliceEmbeddings(const torch::Tensor& inputIds,
                                         const torch::Tensor& visual) {
  auto embeds = language_model->embed(inputIds);                     // (B, T, Dt)
  auto isImage = (inputIds == config.image_token_id).unsqueeze(-1);  // (B, T, 1)
  const int64_t placeholders = isImage.sum().item<int64_t>();
  TORCH_CHECK(placeholders == visual.size(0) * visual.size(1), "input holds ", placeholders,
              " image tokens but the images give ", visual.size(0) * visual.size(1));
  // Row-major order of the mask matches (B, N): sample b's N tokens fill its N placeholders.
  return embeds.masked_scatter(isImage.expand_as(embeds), visual.to(embeds.scalar_type()));
}

torch::Tensor MllmImpl::forward(const MllmInputs& in, torch::Tensor* visualOut, Visual mode) {
  return language_model->forwardEmbeds(
      embedInputs(in, visualOut, mode), in.attentionMask, in.positionIds,
      config.prefix_bidirectional ? in.prefixLen : torch::Tensor(), in.logitsFrom, in.branch);
}

torch::Tensor MllmImpl::embedInputs(const MllmInputs& in, torch::Tensor* visualOut, Visual mode) {
  const int64_t images = in.pixels.defined() ? in.pixels.size(0) : 0;
  const int64_t perImage = config.imageTokens();
  const int64_t placeholders = (in.inputIds == config.image_token_id).sum().item<int64_t>();
  torch::Tensor embeds;
  if (images == 0) {  // text only
    TORCH_CHECK(placeholders == 0, "the input holds ", placeholders, " image tokens but no image");
    embeds = language_model->embed(in.inputIds);
  } else {
    torch::Tensor visual;  // (I, N, Dt)
    if (mode == Visual::Leaf) {
      {
        torch::NoGradGuard noGrad;
        visual = visualTokens(in.pixels);
      }
      visual.requires_grad_(true);
    } else {
      visual = visualTokens(in.pixels);
    }
    if (visualOut) *visualOut = visual;
    const int64_t copies = placeholders / (images * perImage);
    TORCH_CHECK(copies >= 1 && copies * images * perImage == placeholders, "the input holds ",
                placeholders, " image tokens, not a whole number of copies of the ", images,
                " images' ", images * perImage);
    if (copies > 1) visual = visual.repeat({copies, 1, 1});  // (k I, N, Dt)
    embeds = spliceEmbeddings(in.inputIds, visual);
  }
  return embeds;
}

torch::Tensor tokenLogProbs(const torch::Tensor& logits, const torch::Tensor& labels) {
  auto valid = labels != -100;
  auto safe = labels.masked_fill(valid.logical_not(), 0);
  auto logp = torch::log_softmax(logits.to(torch::kFloat32), /*dim=*/-1);  // (B, T, V)
  auto picked = logp.gather(/*dim=*/-1, safe.unsqueeze(-1)).squeeze(-1);   // (B, T)
  return picked * valid.to(picked.scalar_type());
}

torch::Tensor sequenceLogProbs(const torch::Tensor& logits, const torch::Tensor& labels) {
  return tokenLogProbs(logits, labels).sum(/*dim=*/-1);
}

}  // namespace pivot
