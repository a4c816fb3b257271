#include "training/probes.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <map>
#include <stdexcept>

#include "data/idx_reader.h"
#include "training/batches.h"
#include "training/global_rng.h"

namespace pivot {

const std::vector<double> kProbeCGrid = {0.01, 0.03, 0.1, 0.316, 1.0, 3.16};

torch::Tensor patchFeatures(Mllm& model, const torch::Tensor& pixels, int layer,
                            bool afterProjector) {
  torch::NoGradGuard noGrad;
  model->eval();
  auto features = model->vision_tower->features(pixels, layer);  // (B, N, Dv)
  if (afterProjector) features = model->multi_modal_projector(features);
  return features.to(torch::kCPU);
}

torch::Tensor pooledFeatures(const torch::Tensor& patches) {
  auto mean = patches.mean(/*dim=*/1);  // (B, D)
  return mean / mean.norm(2, /*dim=*/-1, /*keepdim=*/true).clamp_min(1e-12);
}

double linearCka(const torch::Tensor& x, const torch::Tensor& y) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(0) == y.size(0),
              "linearCka needs (n, d) representations of the same n items, got ", x.sizes(),
              " and ", y.sizes());
  const auto centred = [](const torch::Tensor& t) {
    const auto d = t.to(torch::kFloat64);
    return d - d.mean(/*dim=*/0, /*keepdim=*/true);
  };
  const auto xc = centred(x), yc = centred(y);
  // The feature-space form: d x d products instead of n x n Gram matrices.
  const double cross = yc.t().mm(xc).pow(2).sum().item<double>();
  const double xx = xc.t().mm(xc).norm().item<double>();
  const double yy = yc.t().mm(yc).norm().item<double>();
  return xx > 0 && yy > 0 ? cross / (xx * yy) : 0.0;
}

void LogisticRegression::fit(const torch::Tensor& x, const torch::Tensor& y, int numClasses,
                             double C, int maxIterations) {
  const int64_t D = x.size(1);
  auto xd = x.to(torch::kFloat64), yd = y.to(torch::kInt64);
  auto w = torch::zeros({numClasses, D}, torch::kFloat64).requires_grad_(true);
  auto b = torch::zeros({numClasses}, torch::kFloat64).requires_grad_(true);
  torch::optim::LBFGS optimizer({w, b}, torch::optim::LBFGSOptions(1.0)
                                            .max_iter(maxIterations)
                                            .tolerance_grad(1e-9)
                                            .tolerance_change(1e-12)
                                            .history_size(20)
                                            .line_search_fn("strong_wolfe"));
  auto closure = [&] {
    optimizer.zero_grad();
    auto logits = torch::matmul(xd, w.t()) + b;
    auto loss = C * torch::nn::functional::cross_entropy(
                        logits, yd,
                        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) +
                0.5 * w.pow(2).sum();
    loss.backward();
    return loss;
  };
  optimizer.step(closure);
  weight = w.detach().to(torch::kFloat32);
  bias = b.detach().to(torch::kFloat32);
}

torch::Tensor LogisticRegression::predict(const torch::Tensor& x) const {
  return (torch::matmul(x.to(torch::kFloat32), weight.t()) + bias).argmax(/*dim=*/1);
}

double LogisticRegression::accuracy(const torch::Tensor& x, const torch::Tensor& y) const {
  return predict(x).eq(y.to(torch::kInt64)).to(torch::kFloat64).mean().item<double>();
}

LinearProbeResult linearProbe(const torch::Tensor& trainX, const torch::Tensor& trainY,
                              const torch::Tensor& valX, const torch::Tensor& valY,
                              const torch::Tensor& testX, const torch::Tensor& testY,
                              int numClasses, const std::vector<double>& grid) {
  LinearProbeResult r;
  LogisticRegression best;
  r.valAccuracy = -1;
  for (double C : grid) {  // C is chosen on validation; the test split is scored once, at the end
    LogisticRegression model;
    model.fit(trainX, trainY, numClasses, C);
    const double acc = model.accuracy(valX, valY);
    r.valByC.emplace_back(C, acc);
    if (acc > r.valAccuracy) {
      r.valAccuracy = acc;
      r.bestC = C;
      best = model;
    }
  }
  r.testAccuracy = best.accuracy(testX, testY);
  return r;
}

int probeTaskClasses(const std::string& task, const WorldConfig& world) {
  const int shapes = static_cast<int>(ShapesWorld::shapes().size()),
            colours = static_cast<int>(ShapesWorld::colours().size());
  if (task == "shape") return shapes;
  if (task == "colour") return colours;
  if (task == "conjunction") return shapes * colours;
  if (task == "count") return world.max_objects + 1;
  throw std::runtime_error("unknown probe task '" + task +
                           "' (expected shape, colour, conjunction or count)");
}

int64_t probeLabel(const std::string& task, const Sample& s) {
  const auto& objs = s.scene.objects;
  const auto largest =
      std::max_element(objs.begin(), objs.end(), [](const SceneObject& a, const SceneObject& b) {
        return a.radius < b.radius;  // ties: the first drawn
      });
  if (task == "count") return static_cast<int64_t>(objs.size());
  if (task == "shape") return largest->shape;
  if (task == "colour") return largest->colour;
  return largest->shape * static_cast<int64_t>(ShapesWorld::colours().size()) + largest->colour;
}

std::vector<int64_t> patchLabels(const std::vector<uint8_t>& classMask, int size, int grid) {
  const int cell = size / grid;
  std::vector<int64_t> labels(static_cast<size_t>(grid * grid), 0);
  std::map<int, int> counts;
  for (int gy = 0; gy < grid; ++gy)
    for (int gx = 0; gx < grid; ++gx) {
      counts.clear();
      for (int y = gy * cell; y < (gy + 1) * cell; ++y)
        for (int x = gx * cell; x < (gx + 1) * cell; ++x)
          ++counts[classMask[static_cast<size_t>(y * size + x)]];
      int best = 0, bestCount = -1;
      for (const auto& [cls, n] : counts)  // ascending class: ties keep the smaller id
        if (n > bestCount) {
          best = cls;
          bestCount = n;
        }
      labels[static_cast<size_t>(gy * grid + gx)] = best;
    }
  return labels;
}

SegmentationProbeResult segmentationProbe(const torch::Tensor& trainFeatures,
                                          const torch::Tensor& trainLabels,
                                          const torch::Tensor& testFeatures,
                                          const torch::Tensor& testLabels, int numClasses,
                                          uint64_t seed, int epochs, double lr, int batchSize) {
  const int64_t D = trainFeatures.size(2);
  // The MLP's initial weights and then its own copy of the seeded stream for the epochs' order:
  // the same numbers as seeding the global generator and drawing from it throughout, without
  // holding it while training.
  torch::nn::Sequential mlp;
  at::Generator shuffle;
  {
    std::lock_guard<std::mutex> rng(globalRngMutex());
    torch::manual_seed(seed);
    mlp = torch::nn::Sequential(torch::nn::Linear(D, D), torch::nn::GELU(),
                                torch::nn::Linear(D, numClasses));
    shuffle = at::detail::getDefaultCPUGenerator().clone();
  }
  torch::optim::Adam optimizer(mlp->parameters(), torch::optim::AdamOptions(lr));
  auto x = trainFeatures.reshape({-1, D}), y = trainLabels.reshape({-1});
  const int64_t n = x.size(0);
  for (int e = 0; e < epochs; ++e) {
    auto order = torch::randperm(n, shuffle);
    for (int64_t start = 0; start < n; start += batchSize) {
      auto idx = order.narrow(0, start, std::min<int64_t>(batchSize, n - start));
      auto loss = torch::nn::functional::cross_entropy(mlp->forward(x.index_select(0, idx)),
                                                       y.index_select(0, idx));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    }
  }
  torch::NoGradGuard noGrad;
  auto predicted = mlp->forward(testFeatures.reshape({-1, D})).argmax(1);
  auto truth = testLabels.reshape({-1});
  // Macro averages over the classes present in the test labels.
  double recallSum = 0, iouSum = 0;
  int present = 0;
  for (int c = 0; c < numClasses; ++c) {
    auto isC = truth.eq(c), predC = predicted.eq(c);
    const double support = isC.sum().item<double>();
    if (support == 0) continue;
    const double tp = (isC & predC).sum().item<double>();
    const double unionCount = (isC | predC).sum().item<double>();
    recallSum += tp / support;
    iouSum += tp / unionCount;
    ++present;
  }
  return {present ? recallSum / present : 0, present ? iouSum / present : 0};
}

torch::Tensor ShapesWorldFeatures::labels(const std::string& task) const {
  std::vector<int64_t> out;
  for (const auto& s : samples) out.push_back(probeLabel(task, s));
  return torch::tensor(out, torch::kInt64);
}

ShapesWorldFeatures shapesWorldFeatures(Mllm& model, const ShapesWorld& world, Split split,
                                        int count, int layer, bool afterProjector, int64_t first) {
  const auto& v = model->config.vision;
  const int grid = v.image_size / v.patch_size;
  const auto device = model->parameters().front().device();
  ShapesWorldFeatures f;
  std::vector<torch::Tensor> parts;
  std::vector<int64_t> cells;
  for (int start = 0; start < count; start += 128) {
    const size_t first = f.samples.size();
    for (int i = start; i < std::min(count, start + 128); ++i)
      f.samples.push_back(world.sample(split, first + i));
    std::vector<const Scene*> scenes;
    for (size_t i = first; i < f.samples.size(); ++i) {
      scenes.push_back(&f.samples[i].scene);
      const auto p = patchLabels(f.samples[i].scene.classMask, v.image_size, grid);
      cells.insert(cells.end(), p.begin(), p.end());
    }
    parts.push_back(patchFeatures(model, imageTensor(scenes).to(device), layer, afterProjector));
  }
  f.patches = torch::cat(parts);
  f.pooled = pooledFeatures(f.patches);
  f.patchLabels = torch::tensor(cells, torch::kInt64).view({count, grid * grid});
  return f;
}

torch::Tensor pooledImageFeatures(Mllm& model, const torch::Tensor& pixels, int layer,
                                  bool afterProjector) {
  const auto device = model->parameters().front().device();
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < pixels.size(0); start += 128)
    parts.push_back(pooledFeatures(patchFeatures(
        model, pixels.narrow(0, start, std::min<int64_t>(128, pixels.size(0) - start)).to(device),
        layer, afterProjector)));
  return torch::cat(parts);
}

SegmentationProbeSummary segmentationProbeOverSeeds(const ShapesWorldFeatures& train,
                                                    const ShapesWorldFeatures& test, int seeds) {
  std::vector<double> recalls, ious;
  for (int seed = 0; seed < seeds; ++seed) {
    const auto seg =
        segmentationProbe(train.patches, train.patchLabels, test.patches, test.patchLabels,
                          ShapesWorld::numClasses(), static_cast<uint64_t>(seed));
    recalls.push_back(seg.macroRecall);
    ious.push_back(seg.meanIoU);
  }
  return {summarise(recalls), summarise(ious)};
}

LabelledImages fashionMnist(bool testFile, int from, int count, int size) {
  const std::string dir = kFashionMnistDir;
  const std::string images =
      dir + (testFile ? "/t10k-images-idx3-ubyte.gz" : "/train-images-idx3-ubyte.gz");
  const std::string labels =
      dir + (testFile ? "/t10k-labels-idx1-ubyte.gz" : "/train-labels-idx1-ubyte.gz");
  const auto x = readIdx(images), y = readIdx(labels);
  if (x.dims.size() != 3 || y.dims.size() != 1 || x.dims[0] != y.dims[0])
    throw std::runtime_error(images + ": expected N x 28 x 28 images with N labels");
  if (from + count > x.dims[0])
    throw std::runtime_error(images + ": has " + std::to_string(x.dims[0]) + " images, asked for " +
                             std::to_string(from + count));
  const int64_t h = x.dims[1], w = x.dims[2];
  auto bytes =
      torch::from_blob(const_cast<uint8_t*>(x.data.data()) + static_cast<int64_t>(from) * h * w,
                       {count, 1, h, w}, torch::kUInt8)
          .to(torch::kFloat32) /
      255.0;
  auto resized =
      torch::nn::functional::interpolate(bytes, torch::nn::functional::InterpolateFuncOptions()
                                                    .size(std::vector<int64_t>{size, size})
                                                    .mode(torch::kBilinear)
                                                    .align_corners(false));
  LabelledImages out;
  out.pixels =
      ((resized.repeat({1, 3, 1, 1}) - 0.5) / 0.5).contiguous();  // (count, 3, S, S) in [-1, 1]
  out.labels = torch::from_blob(const_cast<uint8_t*>(y.data.data()) + from, {count}, torch::kUInt8)
                   .to(torch::kInt64);
  return out;
}

}  // namespace pivot

namespace pivot {

torch::Tensor pooledFileFeatures(Mllm& model, const std::vector<std::string>& paths,
                                 const ImageProcessorConfig& processor,
                                 const std::function<Rgb8(const std::string&)>& decode, int layer,
                                 bool afterProjector) {
  const auto device = model->parameters().front().device();
  const int64_t batch = 32;
  std::vector<torch::Tensor> parts;
  for (size_t start = 0; start < paths.size(); start += batch) {
    const size_t end = std::min(paths.size(), start + batch);
    auto pixels =
        torch::empty({static_cast<int64_t>(end - start), 3, processor.height, processor.width});
    for (size_t i = start; i < end; ++i) {
      const auto values = pixelValues(decode(paths[i]), processor);
      pixels[static_cast<int64_t>(i - start)].copy_(torch::from_blob(
          const_cast<float*>(values.data()), {3, processor.height, processor.width}));
    }
    parts.push_back(pooledFeatures(patchFeatures(model, pixels.to(device), layer, afterProjector)));
  }
  return torch::cat(parts);
}

}  // namespace pivot
