#include "training/real_data.h"

#include <filesystem>
#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>

#include "training/batches.h"

namespace pivot {

namespace fs = std::filesystem;

void checkTokenizerFitsModel(const HfTokenizer& tokenizer, const MllmConfig& model,
                             const std::string& tokenizerFolder) {
  const int64_t tokens = tokenizer.vocabSize(), vocab = model.text.vocab_size;
  const std::string file = (fs::path(tokenizerFolder) / "tokenizer.json").string();
  if (tokens > vocab)
    throw std::runtime_error(
        file + " has " + std::to_string(tokens) +
        " tokens but the model's text_config.vocab_size is " + std::to_string(vocab) +
        ", so its embedding cannot look up ids " + std::to_string(vocab) +
        " and above: give the model a vocab_size of at least " + std::to_string(tokens) +
        " (in the config.json `pivot model init` reads), or use the tokenizer the model was "
        "trained with");
}

ConversationBatcher::ConversationBatcher(const MllmConfig& model, const std::string& modelDir,
                                         const std::string& chatFormat, ImageDecoder decode)
    : m_model(model), m_decode(std::move(decode)) {
  if (!m_decode)
    throw std::runtime_error("this front end cannot decode images for real data (no decoder)");
  m_tokenizer = std::make_shared<HfTokenizer>(HfTokenizer::load(modelDir));
  checkTokenizerFitsModel(*m_tokenizer, m_model, modelDir);
  m_format = chatFormat.empty() ? recogniseChatTemplate(m_tokenizer->chatTemplate())
                                : chatFormatFromName(chatFormat);
  const fs::path processor = fs::path(modelDir) / "preprocessor_config.json";
  m_processor = imageProcessorConfigFromFile(processor.string());
  if (m_processor.width != m_model.vision.image_size ||
      m_processor.height != m_model.vision.image_size)
    throw std::runtime_error(processor.string() + ": size " + std::to_string(m_processor.width) +
                             "x" + std::to_string(m_processor.height) +
                             " differs from the vision tower's image_size " +
                             std::to_string(m_model.vision.image_size));
}

torch::Tensor ConversationBatcher::images(const std::vector<DatasetRecord>& records) const {
  const int64_t side = m_model.vision.image_size;
  int64_t count = 0;
  for (const auto& r : records) count += static_cast<int64_t>(r.images.size());
  auto pixels = torch::empty({count, 3, side, side});
  int64_t k = 0;
  for (const auto& r : records)
    for (const auto& path : r.images) {
      Rgb8 image;
      try {
        image = decode(r, path);
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(std::string(e.what()) +
                                 " (`pivot data check` finds such records; skip_bad=true, or "
                                 "--skip-bad with --resume, replaces them)");
      }
      const auto values = pixelValues(image, m_processor);
      pixels[k++].copy_(torch::from_blob(const_cast<float*>(values.data()), {3, side, side}));
    }
  return pixels;
}

Rgb8 ConversationBatcher::decode(const DatasetRecord& record, const std::string& path) const {
  try {
    return m_decode(path);
  } catch (const std::exception& e) {
    const std::string why = e.what();
    throw std::runtime_error(record.where + ": image " +
                             (why.rfind(path, 0) == 0 ? why : path + ": " + why));
  }
}

bool ConversationBatcher::imagesDecode(const DatasetRecord& record, std::string* why) const {
  try {
    for (const auto& path : record.images) (void)decode(record, path);
    return true;
  } catch (const std::runtime_error& e) {
    if (why) *why = e.what();
    return false;
  }
}

MllmInputs ConversationBatcher::batch(const std::vector<DatasetRecord>& records, bool withRejected,
                                      torch::Device device) const {
  const ImageExpansion expansion{"<image>", m_model.image_token_id, m_model.imageTokens()};
  std::vector<TokenizedChat> rows;
  for (bool rejected : {false, true}) {
    if (rejected && !withRejected) break;
    for (const auto& r : records)
      rows.push_back(tokenizeChat(*m_tokenizer,
                                  renderChat(m_format, recordConversation(r, m_format, rejected)),
                                  expansion));
  }
  return chatBatch(rows, images(records), m_tokenizer->padId().value_or(0), device);
}

MllmInputs ConversationBatcher::sft(const std::vector<DatasetRecord>& records,
                                    torch::Device device) const {
  return batch(records, false, device);
}

MllmInputs ConversationBatcher::dpo(const std::vector<DatasetRecord>& records,
                                    torch::Device device) const {
  return batch(records, true, device);
}

namespace {

// A photo with a typed question, and the answer when there is one, as a dataset record.
DatasetRecord photoRecord(const std::string& image, const std::string& question,
                          const std::string* answer) {
  DatasetRecord record;
  record.where = image;
  record.images = {image};
  ChatMessage user;
  user.role = "user";
  user.parts.push_back({ContentPart::Kind::Text, "<image>\n" + question});
  record.conversation = {user};
  if (answer) {
    ChatMessage assistant;
    assistant.role = "assistant";
    assistant.parts.push_back({ContentPart::Kind::Text, *answer});
    record.chosen = {assistant};
  }
  return record;
}

}  // namespace

MllmInputs ConversationBatcher::photoQuestion(const std::string& image, const std::string& question,
                                              const std::string& answer,
                                              torch::Device device) const {
  return sft({photoRecord(image, question, &answer)}, device);
}

MllmInputs ConversationBatcher::photoPrompt(const std::string& image, const std::string& question,
                                            torch::Device device) const {
  const DatasetRecord record = photoRecord(image, question, nullptr);
  ChatOptions options;
  options.addGenerationPrompt = true;
  const ImageExpansion expansion{"<image>", m_model.image_token_id, m_model.imageTokens()};
  const auto row = tokenizeChat(
      *m_tokenizer, renderChat(m_format, recordConversation(record, m_format), options), expansion);
  const auto T = static_cast<int64_t>(row.ids.size());
  MllmInputs in;
  in.pixels = images({record}).to(device);
  in.inputIds = torch::tensor(row.ids, torch::kInt64).view({1, T}).to(device);
  in.attentionMask = torch::ones({1, T}, torch::kInt64).to(device);
  return in;
}

RecordPrompt recordPrompt(const DatasetRecord& record) {
  RecordPrompt out;
  out.prompt = record;
  out.prompt.chosen.clear();
  out.prompt.rejected.clear();
  auto& conversation = out.prompt.conversation;
  if (record.isPreference()) {
    out.reference = messageText(record.chosen.back());
  } else {  // an instruction dialogue: the prompt ends before its last answer
    while (!conversation.empty() && conversation.back().role == "assistant") {
      if (out.reference.empty()) out.reference = messageText(conversation.back());
      conversation.pop_back();
    }
  }
  for (auto it = conversation.rbegin(); it != conversation.rend(); ++it)
    if (it->role == "user") {
      out.question = messageText(*it);
      const std::string image = "<image>";
      for (size_t at; (at = out.question.find(image)) != std::string::npos;)
        out.question.erase(at, image.size() + (at + image.size() < out.question.size() &&
                                                       out.question[at + image.size()] == '\n'
                                                   ? 1
                                                   : 0));
      break;
    }
  return out;
}

GrpoPrompts ConversationBatcher::grpoPrompts(const std::vector<DatasetRecord>& records,
                                             int64_t repeats, torch::Device device) const {
  ChatOptions options;
  options.addGenerationPrompt = true;
  const ImageExpansion expansion{"<image>", m_model.image_token_id, m_model.imageTokens()};
  GrpoPrompts out;
  std::vector<DatasetRecord> prompts;
  std::vector<std::vector<int64_t>> rows;
  size_t T = 0;
  for (const auto& r : records) {
    RecordPrompt p = recordPrompt(r);
    rows.push_back(
        tokenizeChat(*m_tokenizer,
                     renderChat(m_format, recordConversation(p.prompt, m_format), options),
                     expansion)
            .ids);
    T = std::max(T, rows.back().size());
    out.references.push_back(p.reference);
    out.questions.push_back(p.question);
    out.categories.push_back("");
    out.samples.push_back(r.images.empty() ? r.where : r.images.front());
    prompts.push_back(std::move(p.prompt));
  }
  const auto P = static_cast<int64_t>(records.size());
  const int64_t pad = m_tokenizer->padId().value_or(0);
  auto ids = torch::full({repeats * P, static_cast<int64_t>(T)}, pad, torch::kInt64);
  auto mask = torch::zeros({repeats * P, static_cast<int64_t>(T)}, torch::kInt64);
  for (int64_t g = 0; g < repeats; ++g)
    for (int64_t p = 0; p < P; ++p) {
      const auto& row = rows[static_cast<size_t>(p)];
      const auto from = static_cast<int64_t>(T - row.size());  // left padding
      const auto n = static_cast<int64_t>(row.size());
      ids[g * P + p].narrow(0, from, n).copy_(torch::tensor(row, torch::kInt64));
      mask[g * P + p].narrow(0, from, n).fill_(1);
    }
  out.prompts.pixels = images(prompts).to(device);
  out.prompts.inputIds = ids.to(device);
  out.prompts.attentionMask = mask.to(device);
  return out;
}

std::vector<int64_t> ConversationBatcher::stopIds() const {
  std::vector<int64_t> out;
  if (const auto eos = m_tokenizer->eosId()) out.push_back(*eos);
  for (const char* end : {"<|im_end|>", "<|endoftext|>"})
    if (const auto id = m_tokenizer->tokenId(end)) out.push_back(*id);
  return out;
}

RealData::RealData(const TrainConfig& cfg, ImageDecoder decode, Notify notify)
    : m_batcher(cfg.model, cfg.model_dir, cfg.chat_format, std::move(decode)),
      m_skipBad(cfg.skip_bad),
      m_notify(std::move(notify)) {
  DatasetOptions options;
  options.imageRoot = cfg.image_root;
  m_data = std::make_unique<ConversationDataset>(ConversationDataset::open(cfg.data, options));

  ScanOptions scan;
  scan.tokenizer = &m_batcher.tokenizer();
  scan.chatFormat = m_batcher.format();
  scan.maxLength = cfg.max_length;
  scan.maxImages = cfg.max_images;
  // A bad record stops the run before it starts, naming file and line, unless skip_bad counts it.
  // Images are decoded as batches need them (a full pass would decode the whole dataset first).
  scan.skipBad = cfg.skip_bad;
  const ScanResult result = scanDataset(*m_data, scan);
  std::map<std::string, size_t> unusable;
  for (size_t i : result.kept) {
    const DatasetRecord r = m_data->record(i);
    std::string why;
    if (cfg.isPreference() && !r.isPreference()) why = "without a rejected answer";
    if (why.empty() && cfg.stage == Stage::Grpo) {  // a prompt with an answer to check against
      const RecordPrompt p = recordPrompt(r);
      if (p.reference.empty())
        why = "without an answer to check completions against";
      else if (!imagePlaceholderProblem(p.prompt, m_batcher.format()).empty())
        why = "whose images are not all in the prompt";
    }
    if (!why.empty()) {
      ++unusable[why];
      continue;
    }
    m_kept.push_back(i);
  }
  m_summary = std::to_string(m_kept.size()) + " of " + std::to_string(m_data->size()) +
              " records of " + cfg.data + " (" + name(m_data->format()) + ", " +
              name(m_batcher.format()) + " template)";
  for (const auto& [why, n] : result.skipped) m_summary += "; " + std::to_string(n) + " " + why;
  for (const auto& [why, n] : unusable) m_summary += "; " + std::to_string(n) + " " + why;
  if (!result.firstBad.empty()) m_summary += "; the first bad one: " + result.firstBad;
  if (m_kept.empty()) throw std::runtime_error(cfg.data + ": no usable record: " + m_summary);
}

std::vector<DatasetRecord> RealData::records(const std::vector<int64_t>& indices) const {
  std::vector<DatasetRecord> out;
  for (int64_t i : indices) {
    size_t k = m_kept.at(static_cast<size_t>(i));
    if (m_skipBad) k = usableRecord(k);
    out.push_back(m_data->record(k));
  }
  return out;
}

// With skip_bad, a record whose images do not decode is replaced by the next kept record whose
// images do (in the dataset's order, wrapping): the batch keeps its size, and a resumed run
// replaces it the same way. Each bad record is decoded, reported and remembered once.
size_t RealData::usableRecord(size_t record) const {
  std::lock_guard<std::mutex> lock(m_badMutex);
  auto at = std::lower_bound(m_kept.begin(), m_kept.end(), record);
  for (size_t tried = 0; tried < m_kept.size(); ++tried) {
    if (at == m_kept.end()) at = m_kept.begin();
    const size_t candidate = *at;
    if (!m_bad.count(candidate)) {
      if (m_good.count(candidate)) return candidate;
      std::string why;
      if (m_batcher.imagesDecode(m_data->record(candidate), &why)) {
        m_good.insert(candidate);
        return candidate;
      }
      m_bad.insert(candidate);
      if (m_notify) m_notify("skip_bad: " + why);
    }
    ++at;
  }
  throw std::runtime_error(
      "skip_bad: no record of " + std::to_string(m_kept.size()) +
      " kept has images that decode; `pivot data check` decodes each image and names the bad ones");
}

MllmInputs RealData::sftBatch(const std::vector<int64_t>& indices, torch::Device device) const {
  return m_batcher.sft(records(indices), device);
}

MllmInputs RealData::dpoBatch(const std::vector<int64_t>& indices, torch::Device device) const {
  return m_batcher.dpo(records(indices), device);
}

GrpoPrompts RealData::grpoPrompts(const std::vector<int64_t>& indices, int64_t generations,
                                  torch::Device device) const {
  return m_batcher.grpoPrompts(records(indices), generations, device);
}

}  // namespace pivot
