// From ShapesWorld samples to model inputs: chat-template token rows, right padding, labels on the
// response only, and the seeded order in which a run visits its dataset.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <vector>

#include "data/shapes_world.h"
#include "text/word_tokenizer.h"
#include "model/mllm.h"
#include "text/chat_template.h"

namespace pivot {

// What the assistant says in a row: the caption (stage 1a), or the chosen / rejected answer.
enum class Response { Caption, Chosen, Rejected };

struct BatchRow {
  const Sample* sample;
  Response response;
};

// The prompt of a row: captions answer "describe the image ."; the rest answer the question.
std::string promptText(const Sample& s, Response r);

// (B, 3, H, W) float in [-1, 1]: SigLIP preprocessing with mean = std = 0.5.
torch::Tensor imageTensor(const std::vector<const Scene*>& scenes);

MllmInputs buildBatch(const std::vector<BatchRow>& rows, const WordTokenizer& tok, int imageTokens,
                      torch::Device device);

// The questions alone, ready to be answered by generation (model/generate.h): each row the prompt
// up to "<|im_start|> assistant", LEFT-padded with <pad> so that every row's answer starts at the
// same position; no labels.
MllmInputs promptBatch(const std::vector<const Sample*>& samples, const WordTokenizer& tok,
                       int imageTokens, torch::Device device);

// Rendered conversations (text/chat_template: ids with the image placeholder already expanded,
// and which ids are trained) as model inputs for any tokenizer: right padding with padId, labels
// only where a token is trained (position t - 1 predicts a trained token t), the prefix up to the
// first trained token. pixels: (I, C, H, W) with I dividing the number of rows.
MllmInputs chatBatch(const std::vector<TokenizedChat>& rows, const torch::Tensor& pixels,
                     int64_t padId, torch::Device device);

// Preference pairs in half the rows. `pairs` holds 2B rows, the chosen responses then the rejected
// ones, pair b's two rows starting with the same prompt (its first prefixLen tokens), its images
// held once. Packed, row b is the prompt once, then the chosen response, then the rejected one,
// which sees the prompt but not the chosen response and whose positions continue the prompt's: the
// same log-probabilities as the 2B rows, for about half the language model's work, since the
// prompt (the image tokens above all) is most of a row. The labels are split in two, each aligned
// with the packed logits (positions >= in.logitsFrom): the rejected response's first token is
// predicted by the prompt's last position, like the chosen one's. Empty when the two rows of a pair
// do not start with the same prompt, or their responses hold image placeholders.
struct PackedPairs {
  MllmInputs in;                               // B rows
  torch::Tensor chosenLabels, rejectedLabels;  // (B, T - in.logitsFrom)
};
std::optional<PackedPairs> packPairs(const MllmInputs& pairs, int64_t imageTokenId);

// Sample indices of training step `step` (0-based): epochs of a seeded permutation of the dataset.
class DataOrder {
 public:
  DataOrder(uint64_t seed, int64_t datasetSize);
  std::vector<int64_t> indicesForStep(int64_t step, int64_t batchSize);

 private:
  const std::vector<int64_t>& epochOrder(int64_t epoch);
  uint64_t m_seed;
  int64_t m_size;
  int64_t m_cachedEpoch = -1;
  std::vector<int64_t> m_order;
};

}  // namespace pivot
