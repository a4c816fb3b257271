// Stage 0: the miniature's "off-the-shelf" vision encoder. SigLIP's recipe in small: the vision
// tower and a small text tower are trained with the pairwise sigmoid loss on ShapesWorld images and
// their captions; the text tower and both projection heads are then discarded.
//
// Why the image-text loss and not a supervised one: a supervised objective on shape/colour labels
// would hand the encoder exactly the labels its probes later measure, leaving nothing for SFT or
// DPO to change; captions name shapes, colours, sizes and sides together, as web alt-text does for
// SigLIP.
#pragma once
#include <functional>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/shapes_world.h"
#include "text/word_tokenizer.h"
#include "model/model_config.h"
#include "model/vision_transformer.h"
#include "training/metric_sink.h"

namespace pivot {

// Everything stage 0 trains besides the vision tower: a bidirectional text transformer of the
// vision tower's width (2 SigLIP blocks, learned positions, masked mean pooling), one linear head
// per modality, and SigLIP's learnable temperature and bias (initialised to log 10 and -10).
struct ContrastiveHeadsImpl : torch::nn::Module {
  ContrastiveHeadsImpl(const VisionConfig& vision, int64_t vocabSize, int64_t maxTextLength = 64);

  // (B, T) token ids and (B, T) 1/0 mask -> (B, D) L2-normalised text embeddings.
  torch::Tensor encodeText(const torch::Tensor& ids, const torch::Tensor& mask);
  // (B, N, D) last hidden state of the vision tower -> (B, D) L2-normalised image embeddings.
  torch::Tensor encodeImage(const torch::Tensor& lastHidden);

  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm final_layer_norm{nullptr};
  torch::nn::Linear text_head{nullptr}, image_head{nullptr};
  torch::nn::Linear conjunction_head{
      nullptr};  // pooled image -> which shape x colour pairs are present
  torch::Tensor logit_scale, logit_bias;
};
TORCH_MODULE(ContrastiveHeads);

// SigLIP's loss over a batch: logits = exp(t) * img . txt^T + b, target +1 for matching pairs and
// -1 otherwise; loss = -sum_ij log sigmoid(target_ij * logits_ij) / B. `sameText` (B, B) marks
// pairs whose captions are identical; they count as matches, not negatives.
torch::Tensor siglipLoss(const torch::Tensor& imageEmbeds, const torch::Tensor& textEmbeds,
                         const torch::Tensor& logitScale, const torch::Tensor& logitBias,
                         const torch::Tensor& sameText);
// The sum over pairs, before the division by B: the data-parallel loss adds blocks of it.
torch::Tensor siglipPairSum(const torch::Tensor& imageEmbeds, const torch::Tensor& textEmbeds,
                            const torch::Tensor& logitScale, const torch::Tensor& logitBias,
                            const torch::Tensor& sameText);

struct PretrainStep {
  torch::Tensor loss;
  Scalars scalars;  // siglip/loss, siglip/image_to_text_accuracy, siglip/logit_scale,
                    // siglip/logit_bias, and conjunction/loss, conjunction/accuracy when
                    // conjunctionWeight > 0
};

// (B, shapes x colours) 1/0: which conjunctions each scene holds.
torch::Tensor conjunctionTargets(const std::vector<Sample>& samples);

// The data-parallel ranks of a SigLIP step: SigLIP's loss couples every image with every caption of
// the global batch, so each rank sees the others' embeddings.
struct BatchPeers {
  int rank = 0, size = 1;
  // Every rank's tensor (equal shapes) concatenated along dim 0 in rank order; no gradient.
  std::function<torch::Tensor(const torch::Tensor&)> allGather;
};

// One stage-0 forward pass over `samples` (images and captions): the SigLIP loss, plus
// conjunctionWeight times a binary cross-entropy on which shape x colour pairs each scene holds.
// With `peers` (data parallel, `samples` this rank's slice of the global batch of N): this rank's
// images against all N captions, plus (for the gradient only) the other ranks' images against this
// rank's captions, over N, times the number of ranks. The ranks' mean of that is the
// single-process loss of the global batch, and the sum of their gradients its gradient.
PretrainStep pretrainStep(VisionTransformer& vision, ContrastiveHeads& heads,
                          const std::vector<Sample>& samples, const WordTokenizer& tok,
                          torch::Device device, double conjunctionWeight = 0.0,
                          const BatchPeers* peers = nullptr);

// Image-to-text retrieval top-1 within batches of `batchSize` held-out samples (chance:
// 1/batchSize).
Scalars evaluateRetrieval(VisionTransformer& vision, ContrastiveHeads& heads,
                          const ShapesWorld& world, const WordTokenizer& tok, Split split,
                          int numSamples, torch::Device device, int batchSize = 64);

}  // namespace pivot
