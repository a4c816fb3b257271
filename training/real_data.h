// A real model's training data: a dataset file (core/data/datasets) turned into batches with the
// model folder's tokenizer, chat template and image processor. The same filters as `pivot data
// check`; records whose <image> placeholders do not match their images are skipped and counted.
// Image decoding is passed in, so training stays free of OpenCV.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "config/train_config.h"
#include "data/datasets.h"
#include "data/image_processor.h"
#include "model/mllm.h"
#include "text/chat_template.h"
#include "text/hf_tokenizer.h"

namespace pivot {

using ImageDecoder = std::function<Rgb8(const std::string& path)>;

// GRPO's prompts for P records (or ShapesWorld samples), each repeated for G generations in turn:
// row g P + p is prompt p, LEFT-padded, ending in the generation prompt; the P prompts' images
// once. Per prompt: the reference answer the accuracy reward checks against, the question, its
// category ("" where there is none: real data) and where it came from (a ShapesWorld
// "split:index", or a record's image file).
struct GrpoPrompts {
  MllmInputs prompts;
  std::vector<std::string> references, questions, categories, samples;
};

// A record as a GRPO prompt: its conversation up to its last answer, and that answer (the chosen
// one of a preference record, else the last assistant turn) as the reference.
struct RecordPrompt {
  DatasetRecord prompt;
  std::string reference, question;  // the question: the last user turn's text
};
RecordPrompt recordPrompt(const DatasetRecord& record);

// Throws, naming the tokenizer's file and the fix, when the tokenizer has ids at or past the
// model's vocab_size: they would index past the embedding at the first step (the config reader
// already refuses an image token outside the vocabulary). `pivot model init --tokenizer` checks
// before it writes anything.
void checkTokenizerFitsModel(const HfTokenizer& tokenizer, const MllmConfig& model,
                             const std::string& tokenizerFolder);

// Conversations to model inputs for one real model: its tokenizer, chat template and image
// processor (from its folder), and a decoder for the image files. Shared by training (RealData)
// and by attribution on a photo with a typed question (`pivot explain`).
class ConversationBatcher {
 public:
  ConversationBatcher(const MllmConfig& model, const std::string& modelDir,
                      const std::string& chatFormat, ImageDecoder decode);

  ChatFormat format() const { return m_format; }
  const HfTokenizer& tokenizer() const { return *m_tokenizer; }
  // Whether every image of the record decodes; `why` receives the first failure, naming the
  // record and the file. Records are batched only when their <image> placeholders match their
  // images (data/datasets.h's imagePlaceholderProblem): text-only records and records with
  // several images are batched, their images in order, each filling its placeholder.
  bool imagesDecode(const DatasetRecord& record, std::string* why = nullptr) const;
  // SFT rows: the chosen answer (or every assistant turn of an instruction record) trained.
  MllmInputs sft(const std::vector<DatasetRecord>& records, torch::Device device) const;
  // DPO rows: the chosen conversations, then the rejected ones, one image per pair.
  MllmInputs dpo(const std::vector<DatasetRecord>& records, torch::Device device) const;
  // One photo with a typed question and answer, as the model reads them (the answer's tokens
  // trained): what a gradient map of a real model explains (`pivot explain`, the Inspect tab).
  MllmInputs photoQuestion(const std::string& image, const std::string& question,
                           const std::string& answer, torch::Device device) const;
  // The photo and question alone, ending in the template's generation prompt: what a model answers
  // (model/generate.h). One row, no padding, no labels.
  MllmInputs photoPrompt(const std::string& image, const std::string& question,
                         torch::Device device) const;
  // The tokens that end an answer: the tokenizer's end of sequence and the template's turn end.
  std::vector<int64_t> stopIds() const;
  // GRPO's prompts (see GrpoPrompts): each record up to its last answer, `repeats` times in turn.
  GrpoPrompts grpoPrompts(const std::vector<DatasetRecord>& records, int64_t repeats,
                          torch::Device device) const;

 private:
  torch::Tensor images(const std::vector<DatasetRecord>& records) const;
  Rgb8 decode(const DatasetRecord& record, const std::string& path) const;  // errors name both
  MllmInputs batch(const std::vector<DatasetRecord>& records, bool withRejected,
                   torch::Device device) const;

  MllmConfig m_model;
  std::shared_ptr<HfTokenizer> m_tokenizer;
  ChatFormat m_format = ChatFormat::ChatMl;
  ImageProcessorConfig m_processor;
  ImageDecoder m_decode;
};

class RealData {
 public:
  using Notify = std::function<void(const std::string& message)>;
  // Opens cfg.data with the tokenizer and processor of cfg.model_dir; throws naming the file for
  // a dataset of the wrong kind (sft needs instructions or preferences, dpo preferences), one with
  // no usable record, or (without cfg.skip_bad) a bad record. With skip_bad, bad records are
  // counted in the summary and records whose images do not decode are replaced when a batch
  // meets them, each reported once through `notify`.
  RealData(const TrainConfig& cfg, ImageDecoder decode, Notify notify = nullptr);

  int64_t size() const { return static_cast<int64_t>(m_kept.size()); }
  const std::string& summary() const { return m_summary; }
  std::string fingerprint() const { return m_data->fingerprint(); }  // see ConversationDataset
  MllmInputs sftBatch(const std::vector<int64_t>& indices, torch::Device device) const;
  MllmInputs dpoBatch(const std::vector<int64_t>& indices, torch::Device device) const;
  GrpoPrompts grpoPrompts(const std::vector<int64_t>& indices, int64_t generations,
                          torch::Device device) const;
  const ConversationBatcher& batcher() const { return m_batcher; }

 private:
  std::vector<DatasetRecord> records(const std::vector<int64_t>& indices) const;
  size_t usableRecord(size_t record) const;

  ConversationBatcher m_batcher;
  std::unique_ptr<ConversationDataset> m_data;
  std::vector<size_t> m_kept;  // dataset indices, increasing
  std::string m_summary;
  bool m_skipBad = false;
  Notify m_notify;
  mutable std::mutex m_badMutex;
  mutable std::set<size_t> m_bad, m_good;  // records whose images were decoded (skip_bad)
};

}  // namespace pivot
