#include "data/datasets.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "text/tokenizer.h"

namespace pivot {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct FormatName {
  DatasetFormat format;
  const char* name;
};
constexpr FormatName kFormatNames[] = {
    {DatasetFormat::Llava, "llava"},
    {DatasetFormat::Preference, "preference"},
    {DatasetFormat::Trl, "trl"},
    {DatasetFormat::MmprMeta, "mmpr-meta"},
};

const std::string kImage = "<image>";

json parseRecord(const std::string& bytes, const std::string& where) {
  try {
    json j = json::parse(bytes);
    if (!j.is_object()) throw std::runtime_error(where + ": a record must be a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw std::runtime_error(where + ": not valid JSON (" + e.what() + ")");
  }
}

std::string stringField(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    throw std::runtime_error(where + ": missing text field '" + key + "'");
  return it->get<std::string>();
}

std::string folderOf(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

std::string resolve(const std::string& root, const std::string& path) {
  return fs::path(path).is_absolute() ? path : (fs::path(root) / path).lexically_normal().string();
}

// Messages of TRL records: {role, content} with string or list content, as chat files have.
std::vector<ChatMessage> messagesField(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array())
    throw std::runtime_error(where + ": missing message list '" + key + "'");
  return parseChatMessages(it->dump(), where + ": '" + std::string(key) + "'");
}

std::vector<std::string> imagesOf(const json& j, const std::string& root,
                                  const std::string& where) {
  std::vector<std::string> images;
  auto add = [&](const json& v) {
    if (v.is_string())
      images.push_back(resolve(root, v.get<std::string>()));
    else if (v.is_object() && v.contains("path") && v["path"].is_string())  // {"path", "bytes"}
      images.push_back(resolve(root, v["path"].get<std::string>()));
    else
      throw std::runtime_error(where + ": an image must be a path");
  };
  for (const char* key : {"image", "images"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (it->is_array())
      for (const auto& v : *it) add(v);
    else
      add(*it);
  }
  return images;
}

// A record's "id", string or number, as text ("" when it has none).
std::string recordId(const json& j) {
  auto it = j.find("id");
  if (it == j.end() || !(it->is_string() || it->is_number())) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

ChatMessage textMessage(const std::string& role, const std::string& text) {
  ChatMessage m;
  m.role = role;
  m.parts.push_back({ContentPart::Kind::Text, text});
  return m;
}

// MMPR / PIVOT: the question carries no <image> when the record has one; LLaVA's convention puts
// the placeholder first.
DatasetRecord preferenceRecord(const json& j, const std::string& root, const std::string& where) {
  DatasetRecord r;
  r.where = where;
  r.id = recordId(j);
  r.images = imagesOf(j, root, where);
  std::string question;
  if (j.contains("question"))
    question = stringField(j, "question", where);
  else if (j.contains("prompt"))
    question = stringField(j, "prompt", where);
  else
    throw std::runtime_error(where + ": missing text field 'question' (or 'prompt')");
  // A question without placeholders shows its images first, one placeholder each (MMPR's
  // multi-image records write none).
  if (question.find(kImage) == std::string::npos)
    for (size_t i = 0; i < r.images.size(); ++i) question = kImage + "\n" + question;
  r.conversation.push_back(textMessage("user", question));
  r.chosen.push_back(textMessage("assistant", stringField(j, "chosen", where)));
  r.rejected.push_back(textMessage("assistant", stringField(j, "rejected", where)));
  return r;
}

DatasetRecord llavaRecord(const json& j, const std::string& root, const std::string& where) {
  DatasetRecord r;
  r.where = where;
  r.id = recordId(j);
  r.images = imagesOf(j, root, where);
  auto it = j.find("conversations");
  if (it == j.end() || !it->is_array() || it->empty())
    throw std::runtime_error(where + ": missing 'conversations' list");
  for (size_t k = 0; k < it->size(); ++k) {
    const json& turn = (*it)[k];
    const std::string at = where + ": conversations[" + std::to_string(k) + "]";
    if (!turn.is_object()) throw std::runtime_error(at + ": must be {from, value}");
    const std::string from = stringField(turn, "from", at);
    const std::string role = from == "human" || from == "user"      ? "user"
                             : from == "gpt" || from == "assistant" ? "assistant"
                             : from == "system"                     ? "system"
                                                                    : "";
    if (role.empty())
      throw std::runtime_error(at + ": 'from' is \"" + from + "\" (expected human, gpt or system)");
    r.conversation.push_back(textMessage(role, stringField(turn, "value", at)));
  }
  return r;
}

DatasetRecord trlRecord(const json& j, const std::string& root, const std::string& where) {
  DatasetRecord r;
  r.where = where;
  r.images = imagesOf(j, root, where);
  r.conversation = messagesField(j, "prompt", where);
  r.chosen = messagesField(j, "chosen", where);
  r.rejected = messagesField(j, "rejected", where);
  if (r.chosen.empty() || r.rejected.empty())
    throw std::runtime_error(where + ": 'chosen' and 'rejected' need an assistant message");
  return r;
}

// Recognises a file's format from its layout and first record.
DatasetFormat recognise(const RecordIndex& index) {
  if (index.layout() == RecordIndex::Layout::JsonArray) return DatasetFormat::Llava;
  if (index.size() == 0) return DatasetFormat::Preference;
  const json first = parseRecord(index.read(0), index.where(0));
  if (first.contains("conversations")) return DatasetFormat::Llava;
  if (first.contains("chosen") && first["chosen"].is_array()) return DatasetFormat::Trl;
  if (first.contains("chosen")) return DatasetFormat::Preference;
  bool meta = !first.empty();
  for (const auto& [key, value] : first.items())
    meta = meta && value.is_object() && value.contains("annotation");
  if (meta) return DatasetFormat::MmprMeta;
  throw std::runtime_error(index.where(0) +
                           ": not a dataset this workbench reads (expected llava 'conversations', "
                           "preference 'chosen'/'rejected', TRL message lists, or MMPR meta.json)");
}

int firstByte(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot be read");
  int c;
  do c = in.get();
  while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
  return c;
}

bool containsImagePlaceholder(const std::vector<ChatMessage>& messages) {
  for (const auto& m : messages)
    for (const auto& p : m.parts)
      if (p.kind == ContentPart::Kind::Text && p.text.find(kImage) != std::string::npos)
        return true;
  return false;
}

}  // namespace

const char* name(DatasetFormat f) {
  for (const auto& n : kFormatNames)
    if (n.format == f) return n.name;
  return "?";
}

DatasetFormat datasetFormatFromName(const std::string& s) {
  for (const auto& n : kFormatNames)
    if (s == n.name) return n.format;
  throw std::runtime_error("unknown dataset format '" + s +
                           "' (expected llava, preference, trl or mmpr-meta)");
}

ConversationDataset ConversationDataset::open(const std::string& path,
                                              const DatasetOptions& options) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw std::runtime_error(path +
                             ": is a directory; give a .json or .jsonl data file or a meta.json");
  if (!options.imageRoot.empty() && !fs::is_directory(options.imageRoot, ec))
    throw std::runtime_error("image root " + options.imageRoot + ": no such folder");
  ConversationDataset data;
  data.m_checkImages = options.checkImages;
  const std::string root = options.imageRoot.empty() ? folderOf(path) : options.imageRoot;
  // A meta.json is one small object; a LLaVA file (an array, maybe 1 GB) must not be parsed
  // whole, so only a small file that starts with '{' is tried as one.
  const bool looksLikeMeta =
      options.format.value_or(DatasetFormat::MmprMeta) == DatasetFormat::MmprMeta &&
      firstByte(path) == '{' && fs::file_size(path) < (16u << 20);
  if (looksLikeMeta || options.format == DatasetFormat::MmprMeta) {
    // meta.json is one small object: read whole, then index each annotation file.
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + ": cannot be read");
    json meta;
    try {
      meta = json::parse(in);
    } catch (const json::exception& e) {
      if (options.format == DatasetFormat::MmprMeta)
        throw std::runtime_error(path + ": not valid JSON (" + e.what() + ")");
    }
    // Every value an object: no record of the other formats looks so (their fields are text or
    // lists), so a source without its annotation is named below instead of read as JSONL.
    const bool isMeta =
        meta.is_object() && !meta.empty() &&
        std::all_of(meta.begin(), meta.end(), [](const json& v) { return v.is_object(); });
    if (isMeta) {
      data.m_format = DatasetFormat::MmprMeta;
      const std::string metaFolder = folderOf(path);
      for (const auto& [source, entry] : meta.items()) {
        const std::string where = path + ": source '" + source + "'";
        const std::string annotation = stringField(entry, "annotation", where);
        const std::string sourceRoot =
            entry.contains("root") ? stringField(entry, "root", where) : std::string(".");
        data.m_sources.push_back(
            {RecordIndex::open(resolve(metaFolder, annotation)),
             resolve(options.imageRoot.empty() ? metaFolder : options.imageRoot, sourceRoot)});
      }
    } else if (options.format == DatasetFormat::MmprMeta) {
      throw std::runtime_error(path + ": not an MMPR meta.json ({source: {root, annotation}})");
    }
  }
  if (data.m_sources.empty()) {
    data.m_sources.push_back({RecordIndex::open(path), root});
    data.m_format = options.format ? *options.format : recognise(data.m_sources[0].index);
    if (data.m_format == DatasetFormat::MmprMeta)
      throw std::runtime_error(path + ": an MMPR meta.json is a single JSON object, not JSONL");
  }
  for (const auto& s : data.m_sources) {
    data.m_firstRecord.push_back(data.m_size);
    data.m_size += s.index.size();
  }
  return data;
}

bool ConversationDataset::indexFromCache() const {
  return std::all_of(m_sources.begin(), m_sources.end(),
                     [](const Source& s) { return s.index.fromCache(); });
}

DatasetRecord ConversationDataset::record(size_t i) const {
  if (i >= m_size)
    throw std::out_of_range("record " + std::to_string(i) + " of " + std::to_string(m_size));
  const size_t s = static_cast<size_t>(
      std::upper_bound(m_firstRecord.begin(), m_firstRecord.end(), i) - m_firstRecord.begin() - 1);
  const Source& source = m_sources[s];
  const size_t local = i - m_firstRecord[s];
  const std::string where = source.index.where(local);
  const json j = parseRecord(source.index.read(local), where);
  DatasetRecord r;
  switch (m_format) {
    case DatasetFormat::Llava:
      r = llavaRecord(j, source.imageRoot, where);
      break;
    case DatasetFormat::Preference:
    case DatasetFormat::MmprMeta:
      r = preferenceRecord(j, source.imageRoot, where);
      break;
    case DatasetFormat::Trl:
      r = trlRecord(j, source.imageRoot, where);
      break;
  }
  if (m_checkImages)
    for (const auto& image : r.images) {
      std::error_code ec;
      const auto status = fs::status(image, ec);
      if (!fs::exists(status)) throw std::runtime_error(where + ": image " + image + " is missing");
      if (!fs::is_regular_file(status))
        throw std::runtime_error(where + ": image " + image + " is not a file");
      if (!std::ifstream(image, std::ios::binary))
        throw std::runtime_error(where + ": image " + image + " cannot be read");
    }
  return r;
}

std::string ConversationDataset::fingerprint() const {
  std::string out;
  for (const auto& source : m_sources) {
    std::ifstream in(source.index.path(), std::ios::binary);
    const auto bytes = static_cast<uint64_t>(fs::file_size(source.index.path()));
    uint64_t hash = 1469598103934665603ull;  // FNV-1a
    constexpr uint64_t kSample = 64 * 1024;
    for (const uint64_t at : {uint64_t{0}, bytes / 2, bytes > kSample ? bytes - kSample : 0}) {
      std::string block(kSample, '\0');
      in.clear();
      in.seekg(static_cast<std::streamoff>(at));
      in.read(block.data(), static_cast<std::streamsize>(kSample));
      block.resize(static_cast<size_t>(in.gcount()));
      for (unsigned char c : block) hash = (hash ^ c) * 1099511628211ull;
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
    out += (out.empty() ? "" : "; ") + fs::path(source.index.path()).filename().string() + ": " +
           std::to_string(source.index.size()) + " records, " + std::to_string(bytes) + " bytes, " +
           hex;
  }
  return out;
}

std::vector<ChatMessage> recordConversation(const DatasetRecord& record, ChatFormat format,
                                            bool rejected) {
  std::vector<ChatMessage> messages = record.conversation;
  const auto& answer = rejected ? record.rejected : record.chosen;
  messages.insert(messages.end(), answer.begin(), answer.end());
  if (format != ChatFormat::LlavaOneVision) return messages;
  // Content lists: "<image>" placeholders become image parts (the template writes them first).
  for (auto& m : messages) {
    if (m.contentIsList) continue;
    std::vector<ContentPart> parts;
    for (const auto& p : m.parts) {
      size_t from = 0;
      for (size_t at = p.text.find(kImage); at != std::string::npos;
           at = p.text.find(kImage, from)) {
        if (at > from) parts.push_back({ContentPart::Kind::Text, p.text.substr(from, at - from)});
        parts.push_back({ContentPart::Kind::Image, ""});
        from = at + kImage.size();
        if (from < p.text.size() && p.text[from] == '\n') ++from;  // the template adds its own
      }
      if (from < p.text.size()) parts.push_back({ContentPart::Kind::Text, p.text.substr(from)});
    }
    m.parts = std::move(parts);
    m.contentIsList = true;
  }
  return messages;
}

namespace {

// The rule of imagePlaceholderProblem on a conversation already rendered.
std::string placeholderProblem(const std::string& rendered, size_t images) {
  size_t placeholders = 0;
  for (size_t at = rendered.find(kImage); at != std::string::npos;
       at = rendered.find(kImage, at + 1))
    ++placeholders;
  if (placeholders == images) return "";
  return "whose <image> placeholders do not match their images one to one";
}

}  // namespace

std::string imagePlaceholderProblem(const DatasetRecord& record, ChatFormat format) {
  return placeholderProblem(renderChat(format, recordConversation(record, format)).text,
                            record.images.size());
}

namespace {

// A record as the scan checks it, rendered once for every check that reads the rendering.
struct CheckedRecord {
  DatasetRecord record;
  ChatRendering rendering;
};

// Record i, its conversation rendered (a role the template does not know throws here, naming the
// record) and, given a decoder, its images decoded.
CheckedRecord checkedRecord(const ConversationDataset& data, size_t i, const ScanOptions& options) {
  CheckedRecord checked;
  DatasetRecord& r = checked.record;
  r = data.record(i);
  try {
    checked.rendering = renderChat(options.chatFormat, recordConversation(r, options.chatFormat));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(r.where + ": " + e.what());
  }
  if (options.decodeImage)
    for (const auto& image : r.images) {
      try {
        options.decodeImage(image);
      } catch (const std::exception& e) {
        const std::string why = e.what();
        // Decoders name the file first; the record's place goes before it.
        throw std::runtime_error(r.where + ": image " +
                                 (why.rfind(image, 0) == 0 ? why : image + ": " + why));
      }
    }
  return checked;
}

// Why a readable record is left out ("" to keep it); lengthOut receives its token count.
std::string filtered(const CheckedRecord& checked, const ScanOptions& options, int& lengthOut) {
  const DatasetRecord& r = checked.record;
  if (options.maxImages > 0 && r.images.size() > static_cast<size_t>(options.maxImages))
    return "more than " + std::to_string(options.maxImages) + " image" +
           (options.maxImages == 1 ? "" : "s");
  std::vector<ChatMessage> answers = r.chosen;
  if (!r.isPreference())
    for (const auto& m : r.conversation)
      if (m.role == "assistant") answers.push_back(m);
  answers.insert(answers.end(), r.rejected.begin(), r.rejected.end());
  if (containsImagePlaceholder(answers)) return "<image> in an answer";
  if (std::string why = placeholderProblem(checked.rendering.text, r.images.size()); !why.empty())
    return why;
  if (options.tokenizer) {
    try {
      lengthOut = static_cast<int>(tokenizeChat(*options.tokenizer, checked.rendering).ids.size());
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(r.where + ": " + e.what());
    }
    if (lengthOut > options.maxLength)
      return "longer than " + std::to_string(options.maxLength) + " tokens";
  }
  return "";
}

}  // namespace

ScanResult scanDataset(const ConversationDataset& data, const ScanOptions& options) {
  if (options.maxLength <= 0)
    throw std::invalid_argument("max_length must be positive, got " +
                                std::to_string(options.maxLength));
  if (options.maxImages < 0)
    throw std::invalid_argument("max_images must be 0 (any) or positive, got " +
                                std::to_string(options.maxImages));
  ScanResult result;
  for (size_t i = 0; i < data.size(); ++i) {
    std::string skippedBecause;
    int length = 0;
    try {
      skippedBecause = filtered(checkedRecord(data, i, options), options, length);
    } catch (const std::runtime_error& e) {
      if (!options.skipBad) throw;
      const std::string why = e.what();
      ++result.skipped[why.find(": image ") != std::string::npos ? "missing or unreadable image"
                                                                 : "malformed record"];
      if (result.firstBad.empty()) result.firstBad = why;
      continue;
    }
    if (!skippedBecause.empty()) {
      ++result.skipped[skippedBecause];
      continue;
    }
    if (options.tokenizer) result.lengths.push_back(length);
    result.kept.push_back(i);
  }
  return result;
}

}  // namespace pivot
