// A real model's training data: a dataset file (core/data/datasets) turned into batches with the
// model folder's tokenizer, chat template and image processor. The same filters as `pivot data
// check`; records the miniature trainer cannot use yet (no image, several images) are skipped and
// counted. Image decoding is passed in, so training stays free of OpenCV.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
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

class RealData {
 public:
  // Opens cfg.data with the tokenizer and processor of cfg.model_dir; throws naming the file for
  // a dataset of the wrong kind (sft needs instructions or preferences, dpo preferences) or one
  // with no usable record.
  RealData(const TrainConfig& cfg, ImageDecoder decode);

  int64_t size() const { return static_cast<int64_t>(m_kept.size()); }
  const std::string& summary() const { return m_summary; }
  // SFT rows: the chosen answer (or every assistant turn of an instruction record) trained.
  MllmInputs sftBatch(const std::vector<int64_t>& indices, torch::Device device) const;
  // DPO rows: the chosen conversations, then the rejected ones, one image per pair.
  MllmInputs dpoBatch(const std::vector<int64_t>& indices, torch::Device device) const;

 private:
  torch::Tensor images(const std::vector<DatasetRecord>& records) const;
  std::vector<DatasetRecord> records(const std::vector<int64_t>& indices) const;

  MllmConfig m_model;
  std::unique_ptr<ConversationDataset> m_data;
  std::unique_ptr<HfTokenizer> m_tokenizer;
  ChatFormat m_format = ChatFormat::ChatMl;
  ImageProcessorConfig m_processor;
  ImageDecoder m_decode;
  std::vector<size_t> m_kept;
  std::string m_summary;
};

}  // namespace pivot
