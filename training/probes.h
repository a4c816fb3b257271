// Encoder probes on frozen features (the README's "Encoder probes": the paper's findings 2 and 3):
//   linear probe        L2-normalised mean of the patch tokens of a chosen layer (no CLS), or after
//                       the projector; multinomial logistic regression with an L2 penalty, C chosen
//                       on a validation split from {0.01, 0.03, 0.1, 0.316, 1, 3.16}, top-1 on test
//   segmentation probe  a 2-layer MLP classifies each patch token (label: the majority class of the
//                       patch's pixels), 5 epochs, LR 1e-3; patch-level macro recall and mIoU
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "data/image_processor.h"
#include "data/shapes_world.h"
#include "model/mllm.h"
#include "results/results_table.h"

namespace pivot {

// Features of frozen encoders. layer: HF hidden-state index (-2 = penultimate); afterProjector
// takes the projector's output instead. Returns (B, N, D) on CPU.
torch::Tensor patchFeatures(Mllm& model, const torch::Tensor& pixels, int layer,
                            bool afterProjector);
// Mean over patch tokens, L2-normalised: (B, N, D) -> (B, D).
torch::Tensor pooledFeatures(const torch::Tensor& patches);

// Frozen features of ShapesWorld samples [first, first + count) of a split, computed once and
// shared by every probe task, every C and every segmentation seed.
struct ShapesWorldFeatures {
  std::vector<Sample> samples;
  torch::Tensor patches;                                // (B, N, D)
  torch::Tensor pooled;                                 // (B, D) pooledFeatures(patches)
  torch::Tensor patchLabels;                            // (B, N) majority class per patch
  torch::Tensor labels(const std::string& task) const;  // (B) probeLabel of each sample
};
ShapesWorldFeatures shapesWorldFeatures(Mllm& model, const ShapesWorld& world, Split split,
                                        int count, int layer, bool afterProjector,
                                        int64_t first = 0);
// pooledFeatures of any images (B, 3, S, S) in [-1, 1], encoded in batches.
torch::Tensor pooledImageFeatures(Mllm& model, const torch::Tensor& pixels, int layer,
                                  bool afterProjector);

// Linear CKA (Kornblith et al., 2019) of two representations of the same n items, (n, d1) and
// (n, d2): ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc, in float64.
// 1 for a representation with itself; invariant to rotations and isotropic scaling of either; near
// 0 for unrelated ones (for n >> d).
double linearCka(const torch::Tensor& x, const torch::Tensor& y);

// Multinomial logistic regression, as scikit-learn's: minimises
//   C * sum_i cross_entropy(W x_i + b, y_i) + 0.5 * ||W||^2   (bias not penalised), by L-BFGS.
struct LogisticRegression {
  torch::Tensor weight, bias;  // (K, D), (K)
  void fit(const torch::Tensor& x, const torch::Tensor& y, int numClasses, double C,
           int maxIterations = 200);
  torch::Tensor predict(const torch::Tensor& x) const;
  double accuracy(const torch::Tensor& x, const torch::Tensor& y) const;
};

extern const std::vector<double> kProbeCGrid;

struct LinearProbeResult {
  double bestC = 0, valAccuracy = 0, testAccuracy = 0;
  std::vector<std::pair<double, double>> valByC;  // (C, validation accuracy)
};
LinearProbeResult linearProbe(const torch::Tensor& trainX, const torch::Tensor& trainY,
                              const torch::Tensor& valX, const torch::Tensor& valY,
                              const torch::Tensor& testX, const torch::Tensor& testY,
                              int numClasses, const std::vector<double>& grid = kProbeCGrid);

// ShapesWorld probe labels: "shape" / "colour" of the largest object, "conjunction" of both,
// "count".
int probeTaskClasses(const std::string& task,
                     const WorldConfig& world);  // throws for an unknown task
int64_t probeLabel(const std::string& task, const Sample& s);

// (g, g) patch labels: the majority class of each patch's pixels (ties: the smaller class id).
std::vector<int64_t> patchLabels(const std::vector<uint8_t>& classMask, int size, int grid);

struct SegmentationProbeResult {
  double macroRecall = 0, meanIoU = 0;
};
// features (B, N, D), labels (B, N); trains on the first, scores on the second pair.
SegmentationProbeResult segmentationProbe(const torch::Tensor& trainFeatures,
                                          const torch::Tensor& trainLabels,
                                          const torch::Tensor& testFeatures,
                                          const torch::Tensor& testLabels, int numClasses,
                                          uint64_t seed, int epochs = 5, double lr = 1e-3,
                                          int batchSize = 64);

// The segmentation probe trained once per probe seed 0..seeds-1 on the same frozen features: macro
// recall and mIoU summarised over the seeds (mean, sample std).
struct SegmentationProbeSummary {
  Summary macroRecall, meanIoU;
};
SegmentationProbeSummary segmentationProbeOverSeeds(const ShapesWorldFeatures& train,
                                                    const ShapesWorldFeatures& test, int seeds);

// Fashion-MNIST (Debian's dataset-fashion-mnist, kFashionMnistDir): 28 x 28 grey images resized
// to the encoder's input and repeated over three channels, images [from, from + count) of the
// training file or of the test file. Train and validation come from disjoint ranges of the training
// file, test from the test file, so C is never chosen on test. Throws naming the file.
struct LabelledImages {
  torch::Tensor pixels, labels;  // (count, 3, size, size) in [-1, 1], (count) int64
};
LabelledImages fashionMnist(bool testFile, int from, int count, int size);

// Pooled features of image files (an ImageFolder split): each decoded by `decode`, preprocessed by
// `processor` (the model's SigLIP processor), encoded in batches of 32. Throws naming the file.
torch::Tensor pooledFileFeatures(Mllm& model, const std::vector<std::string>& paths,
                                 const ImageProcessorConfig& processor,
                                 const std::function<Rgb8(const std::string&)>& decode, int layer,
                                 bool afterProjector);

}  // namespace pivot
