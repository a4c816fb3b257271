#include "training/real_data.h"

#include <filesystem>
#include <stdexcept>

#include "training/batches.h"

namespace pivot {

namespace fs = std::filesystem;

RealData::RealData(const TrainConfig& cfg, ImageDecoder decode)
    : m_model(cfg.model), m_decode(std::move(decode)) {
  if (!m_decode)
    throw std::runtime_error("this front end cannot decode images for real data (no decoder)");
  m_tokenizer = std::make_unique<HfTokenizer>(HfTokenizer::load(cfg.model_dir));
  m_format = cfg.chat_format.empty() ? recogniseChatTemplate(m_tokenizer->chatTemplate())
                                     : chatFormatFromName(cfg.chat_format);
  const fs::path processor = fs::path(cfg.model_dir) / "preprocessor_config.json";
  m_processor = imageProcessorConfigFromFile(processor.string());
  if (m_processor.width != m_model.vision.image_size || m_processor.height != m_model.vision.image_size)
    throw std::runtime_error(processor.string() + ": size " + std::to_string(m_processor.width) +
                             "x" + std::to_string(m_processor.height) +
                             " differs from the vision tower's image_size " +
                             std::to_string(m_model.vision.image_size));
  DatasetOptions options;
  options.imageRoot = cfg.image_root;
  m_data = std::make_unique<ConversationDataset>(ConversationDataset::open(cfg.data, options));

  ScanOptions scan;
  scan.tokenizer = m_tokenizer.get();
  scan.chatFormat = m_format;
  scan.maxLength = cfg.max_length;
  scan.skipBad = false;  // a bad record stops the run before it starts, naming file and line
  const ScanResult result = scanDataset(*m_data, scan);
  size_t noImage = 0, wrongKind = 0, badPlaceholder = 0;
  for (size_t i : result.kept) {
    const DatasetRecord r = m_data->record(i);
    if (r.images.size() != 1) {
      ++noImage;
      continue;
    }
    if (cfg.stage == Stage::Dpo && !r.isPreference()) {
      ++wrongKind;
      continue;
    }
    // The one image needs exactly one placeholder for its tokens to go.
    const std::string text = renderChat(m_format, recordConversation(r, m_format)).text;
    size_t placeholders = 0;
    for (size_t at = text.find("<image>"); at != std::string::npos; at = text.find("<image>", at + 1))
      ++placeholders;
    if (placeholders != 1) {
      ++badPlaceholder;
      continue;
    }
    m_kept.push_back(i);
  }
  m_summary = std::to_string(m_kept.size()) + " of " + std::to_string(m_data->size()) +
              " records of " + cfg.data + " (" + name(m_data->format()) + ", " + name(m_format) +
              " template)";
  for (const auto& [why, n] : result.skipped) m_summary += "; " + std::to_string(n) + " " + why;
  if (noImage) m_summary += "; " + std::to_string(noImage) + " without one image";
  if (wrongKind) m_summary += "; " + std::to_string(wrongKind) + " without a rejected answer";
  if (badPlaceholder)
    m_summary += "; " + std::to_string(badPlaceholder) + " without exactly one <image> placeholder";
  if (m_kept.empty()) throw std::runtime_error(cfg.data + ": no usable record: " + m_summary);
}

std::vector<DatasetRecord> RealData::records(const std::vector<int64_t>& indices) const {
  std::vector<DatasetRecord> out;
  for (int64_t i : indices) out.push_back(m_data->record(m_kept.at(static_cast<size_t>(i))));
  return out;
}

torch::Tensor RealData::images(const std::vector<DatasetRecord>& records) const {
  const int64_t side = m_model.vision.image_size;
  auto pixels = torch::empty({static_cast<int64_t>(records.size()), 3, side, side});
  for (size_t k = 0; k < records.size(); ++k) {
    const auto values = pixelValues(m_decode(records[k].images.at(0)), m_processor);
    pixels[static_cast<int64_t>(k)].copy_(
        torch::from_blob(const_cast<float*>(values.data()), {3, side, side}));
  }
  return pixels;
}

MllmInputs RealData::sftBatch(const std::vector<int64_t>& indices, torch::Device device) const {
  const auto rs = records(indices);
  ImageExpansion expansion{"<image>", m_model.image_token_id, m_model.imageTokens()};
  std::vector<TokenizedChat> rows;
  for (const auto& r : rs)
    rows.push_back(tokenizeChat(*m_tokenizer, renderChat(m_format, recordConversation(r, m_format)),
                                expansion));
  return chatBatch(rows, images(rs), m_tokenizer->padId().value_or(0), device);
}

MllmInputs RealData::dpoBatch(const std::vector<int64_t>& indices, torch::Device device) const {
  const auto rs = records(indices);
  ImageExpansion expansion{"<image>", m_model.image_token_id, m_model.imageTokens()};
  std::vector<TokenizedChat> rows;
  for (bool rejected : {false, true})
    for (const auto& r : rs)
      rows.push_back(tokenizeChat(
          *m_tokenizer, renderChat(m_format, recordConversation(r, m_format, rejected)), expansion));
  return chatBatch(rows, images(rs), m_tokenizer->padId().value_or(0), device);
}

}  // namespace pivot
