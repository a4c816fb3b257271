#include "training/batches.h"

#include <algorithm>

namespace pivot {

std::string promptText(const Sample& s, Response r) {
  return r == Response::Caption ? "describe the image ." : s.question;
}

torch::Tensor imageTensor(const std::vector<const Scene*>& scenes) {
  const int64_t B = static_cast<int64_t>(scenes.size());
  const int64_t S = scenes.front()->size;
  auto bytes = torch::empty({B, S, S, 3}, torch::kUInt8);
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(bytes[b].data_ptr(), scenes[static_cast<size_t>(b)]->rgb.data(),
                static_cast<size_t>(S * S * 3));
  auto x = bytes.permute({0, 3, 1, 2}).to(torch::kFloat32) / 255.0;  // (B, 3, H, W) in [0, 1]
  return (x - 0.5) / 0.5;
}

MllmInputs promptBatch(const std::vector<const Sample*>& samples, const WordTokenizer& tok,
                       int imageTokens, torch::Device device) {
  std::vector<std::vector<int64_t>> prompts;
  std::vector<const Scene*> scenes;
  size_t T = 0;
  for (const Sample* s : samples) {
    prompts.push_back(tok.encodePrompt(promptText(*s, Response::Chosen), imageTokens));
    scenes.push_back(&s->scene);
    T = std::max(T, prompts.back().size());
  }
  const auto B = static_cast<int64_t>(samples.size());
  auto ids = torch::full({B, static_cast<int64_t>(T)}, WordTokenizer::kPad, torch::kInt64);
  auto mask = torch::zeros({B, static_cast<int64_t>(T)}, torch::kInt64);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<size_t>(b)];
    const auto from = static_cast<int64_t>(T - p.size());  // left padding
    for (size_t t = 0; t < p.size(); ++t) {
      ids[b][from + static_cast<int64_t>(t)] = p[t];
      mask[b][from + static_cast<int64_t>(t)] = 1;
    }
  }
  MllmInputs in;
  in.pixels = imageTensor(scenes).to(device);
  in.inputIds = ids.to(device);
  in.attentionMask = mask.to(device);
  return in;
}

MllmInputs buildBatch(const std::vector<BatchRow>& rows, const WordTokenizer& tok, int imageTokens,
                      torch::Device device) {
  const int64_t B = static_cast<int64_t>(rows.size());
  std::vector<std::vector<int64_t>> prompts, responses;
  int64_t T = 0;
  for (const auto& r : rows) {
    prompts.push_back(tok.encodePrompt(promptText(*r.sample, r.response), imageTokens));
    const std::string& text = r.response == Response::Caption  ? r.sample->caption
                              : r.response == Response::Chosen ? r.sample->answer
                                                               : r.sample->rejected;
    responses.push_back(tok.encodeResponse(text));
    T = std::max<int64_t>(T, static_cast<int64_t>(prompts.back().size() + responses.back().size()));
  }
  auto ids = torch::full({B, T}, WordTokenizer::kPad, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kInt64);
  auto labels = torch::full({B, T}, -100, torch::kInt64);
  auto prefix = torch::empty({B}, torch::kInt64);
  auto idsA = ids.accessor<int64_t, 2>();
  auto maskA = mask.accessor<int64_t, 2>();
  auto labelsA = labels.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<size_t>(b)];
    const auto& r = responses[static_cast<size_t>(b)];
    const int64_t P = static_cast<int64_t>(p.size()), R = static_cast<int64_t>(r.size());
    for (int64_t t = 0; t < P + R; ++t) {
      idsA[b][t] = t < P ? p[static_cast<size_t>(t)] : r[static_cast<size_t>(t - P)];
      maskA[b][t] = 1;
    }
    // Position t predicts token t + 1: the response tokens are predicted from P - 1 .. P + R - 2.
    for (int64_t t = 0; t < R; ++t) labelsA[b][P - 1 + t] = r[static_cast<size_t>(t)];
    prefix[b] = P;
  }
  std::vector<const Scene*> scenes;
  for (const auto& r : rows) scenes.push_back(&r.sample->scene);
  MllmInputs in;
  in.pixels = imageTensor(scenes).to(device);
  in.inputIds = ids.to(device);
  in.attentionMask = mask.to(device);
  in.labels = labels.to(device);
  in.prefixLen = prefix.to(device);
  in.logitsFrom = prefix.min().item<int64_t>() - 1;  // nothing before it is ever a target
  return in;
}

MllmInputs chatBatch(const std::vector<TokenizedChat>& rows, const torch::Tensor& pixels,
                     int64_t padId, torch::Device device) {
  const int64_t B = static_cast<int64_t>(rows.size());
  int64_t T = 0;
  for (const auto& r : rows) {
    if (r.ids.size() != r.trained.size())
      throw std::invalid_argument("chatBatch: ids and trained flags differ in length");
    if (std::find(r.trained.begin(), r.trained.end(), 1) == r.trained.end())
      throw std::invalid_argument("chatBatch: a conversation has no trained token (no answer)");
    T = std::max<int64_t>(T, static_cast<int64_t>(r.ids.size()));
  }
  auto ids = torch::full({B, T}, padId, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kInt64);
  auto labels = torch::full({B, T}, -100, torch::kInt64);
  auto prefix = torch::empty({B}, torch::kInt64);
  auto idsA = ids.accessor<int64_t, 2>();
  auto maskA = mask.accessor<int64_t, 2>();
  auto labelsA = labels.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& r = rows[static_cast<size_t>(b)];
    int64_t firstTrained = -1;
    for (size_t t = 0; t < r.ids.size(); ++t) {
      idsA[b][static_cast<int64_t>(t)] = r.ids[t];
      maskA[b][static_cast<int64_t>(t)] = 1;
      if (!r.trained[t]) continue;
      if (t == 0) throw std::invalid_argument("chatBatch: the first token cannot be a target");
      labelsA[b][static_cast<int64_t>(t) - 1] = r.ids[t];
      if (firstTrained < 0) firstTrained = static_cast<int64_t>(t);
    }
    prefix[b] = firstTrained;
  }
  MllmInputs in;
  in.pixels = pixels.to(device);
  in.inputIds = ids.to(device);
  in.attentionMask = mask.to(device);
  in.labels = labels.to(device);
  in.prefixLen = prefix.to(device);
  in.logitsFrom = prefix.min().item<int64_t>() - 1;
  return in;
}

std::optional<PackedPairs> packPairs(const MllmInputs& pairs, int64_t imageTokenId) {
  const int64_t B = pairs.inputIds.size(0) / 2;
  if (B == 0 || pairs.inputIds.size(0) != 2 * B || !pairs.prefixLen.defined()) return std::nullopt;
  const auto device = pairs.inputIds.device();
  const auto ids = pairs.inputIds.cpu(), labels = pairs.labels.cpu(),
             prefix = pairs.prefixLen.cpu();
  const auto lengths = pairs.attentionMask.cpu().sum(1);
  const auto idsA = ids.accessor<int64_t, 2>(), labelsA = labels.accessor<int64_t, 2>();
  const auto prefixA = prefix.accessor<int64_t, 1>(), lengthsA = lengths.accessor<int64_t, 1>();
  int64_t T = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t P = prefixA[b];
    if (prefixA[b + B] != P || P < 1 || lengthsA[b] < P || lengthsA[b + B] < P) return std::nullopt;
    for (int64_t t = 0; t < P; ++t)
      if (idsA[b][t] != idsA[b + B][t]) return std::nullopt;
    for (int64_t row : {b, b + B})
      for (int64_t t = P; t < lengthsA[row]; ++t)
        if (idsA[row][t] == imageTokenId) return std::nullopt;
    T = std::max(T, lengthsA[b] + lengthsA[b + B] - P);
  }
  const int64_t pad = imageTokenId == 0 ? 1 : 0;  // any token but an image's: masked out
  auto packedIds = torch::full({B, T}, pad, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kInt64), positions = torch::zeros({B, T}, torch::kInt64),
       branch = torch::zeros({B, T}, torch::kInt64);
  auto chosen = torch::full({B, T}, -100, torch::kInt64), rejected = chosen.clone();
  auto outIds = packedIds.accessor<int64_t, 2>(), outMask = mask.accessor<int64_t, 2>(),
       outPos = positions.accessor<int64_t, 2>(), outBranch = branch.accessor<int64_t, 2>(),
       outChosen = chosen.accessor<int64_t, 2>(), outRejected = rejected.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t P = prefixA[b], chosenEnd = lengthsA[b], rejectedLength = lengthsA[b + B];
    const int64_t shift = chosenEnd - P;  // a rejected token at t >= P sits at t + shift
    for (int64_t t = 0; t < chosenEnd; ++t) {
      outIds[b][t] = idsA[b][t];
      outPos[b][t] = t;
      outBranch[b][t] = t < P ? 0 : 1;
      outChosen[b][t] = labelsA[b][t];
    }
    for (int64_t t = P; t < rejectedLength; ++t) {
      outIds[b][t + shift] = idsA[b + B][t];
      outPos[b][t + shift] = t;
      outBranch[b][t + shift] = 2;
    }
    for (int64_t t = 0; t < rejectedLength; ++t)  // position t predicts token t + 1
      if (labelsA[b + B][t] != -100) outRejected[b][t < P ? t : t + shift] = labelsA[b + B][t];
    for (int64_t t = 0; t < chosenEnd + rejectedLength - P; ++t) outMask[b][t] = 1;
  }
  PackedPairs p;
  p.in.pixels = pairs.pixels;
  p.in.inputIds = packedIds.to(device);
  p.in.attentionMask = mask.to(device);
  p.in.labels = chosen.to(device);
  p.in.prefixLen = pairs.prefixLen.narrow(0, 0, B);
  p.in.logitsFrom = pairs.logitsFrom;
  p.in.positionIds = positions.to(device);
  p.in.branch = branch.to(device);
  p.chosenLabels = p.in.targetLabels();
  p.rejectedLabels = rejected.to(device).narrow(1, p.in.logitsFrom, T - p.in.logitsFrom);
  return p;
}

DataOrder::DataOrder(uint64_t seed, int64_t datasetSize) : m_seed(seed), m_size(datasetSize) {}

const std::vector<int64_t>& DataOrder::epochOrder(int64_t epoch) {
  if (epoch != m_cachedEpoch) {
    m_order.resize(static_cast<size_t>(m_size));
    for (int64_t i = 0; i < m_size; ++i) m_order[static_cast<size_t>(i)] = i;
    SplitMix64 rng(m_seed * 1000003ull + static_cast<uint64_t>(epoch));
    for (int64_t i = m_size - 1; i > 0; --i)  // Fisher-Yates
      std::swap(m_order[static_cast<size_t>(i)],
                m_order[static_cast<size_t>(rng.uniform(static_cast<int>(i + 1)))]);
    m_cachedEpoch = epoch;
  }
  return m_order;
}

std::vector<int64_t> DataOrder::indicesForStep(int64_t step, int64_t batchSize) {
  std::vector<int64_t> out;
  for (int64_t b = 0; b < batchSize; ++b) {
    const int64_t flat = step * batchSize + b;
    out.push_back(epochOrder(flat / m_size)[static_cast<size_t>(flat % m_size)]);
  }
  return out;
}

}  // namespace pivot
