// Real datasets as conversations: LLaVA instruction files, MMPR / PIVOT preference files (and
// MMPR's meta.json over many of them), and TRL's conversational vision preference records. Files
// are indexed (data/record_index.h), never loaded whole; a record is parsed when asked for, and a
// bad one is an error naming file and line. Torch- and Qt-free.
//
//   llava       a JSON array (or JSONL) of {"id", "image", "conversations": [{"from": "human" |
//               "gpt", "value": "<image>\nWhat ..."}]}
//   preference  JSONL of {"image", "question" or "prompt", "chosen", "rejected"} (MMPR, PIVOT)
//   trl         JSONL of {"images": [...], "prompt": [messages], "chosen": [messages],
//               "rejected": [messages]} with content lists ({"type": "image"}, {"type": "text"})
//   mmpr-meta   MMPR's meta.json: {"source": {"root": IMAGE_DIR, "annotation": FILE.jsonl}, ...}
// Image paths resolve against the image root (default: the data file's folder; for meta.json each
// source's root, itself relative to meta.json's folder).
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/record_index.h"
#include "text/chat_template.h"

namespace pivot {

class Tokenizer;

enum class DatasetFormat { Llava, Preference, Trl, MmprMeta };
const char* name(DatasetFormat f);
DatasetFormat datasetFormatFromName(const std::string& name);  // throws naming the choices

struct DatasetRecord {
  std::string where;  // FILE:LINE (record I)
  std::string id;
  std::vector<std::string> images;  // resolved paths
  // llava: the whole dialogue (every assistant turn is trained); preference / trl: the prompt.
  std::vector<ChatMessage> conversation;
  std::vector<ChatMessage> chosen, rejected;  // preference / trl: the two answers
  bool isPreference() const { return !chosen.empty(); }
};

struct DatasetOptions {
  std::optional<DatasetFormat> format;  // none: recognised from the file
  std::string imageRoot;                // empty: the data file's folder
  bool checkImages = true;              // a missing or unreadable image is a bad record
};

class ConversationDataset {
 public:
  // Throws naming the file for one that cannot be read or is not a dataset of a known format.
  static ConversationDataset open(const std::string& path, const DatasetOptions& options = {});

  DatasetFormat format() const { return m_format; }
  size_t size() const { return m_size; }
  bool indexFromCache() const;  // every file's index came from its cache
  // Record i, parsed and checked; throws "FILE:LINE (record I): why" for a bad one.
  DatasetRecord record(size_t i) const;
  // What a checkpoint records of the data it was trained on, so that a resume can say when the
  // data changed: per file its records, bytes and a hash of three 64 KB samples (start, middle,
  // end), e.g. "data.jsonl: 59 records, 20412 bytes, 5f0c9a1e2b7d4c36".
  std::string fingerprint() const;

 private:
  struct Source {
    RecordIndex index;
    std::string imageRoot;
  };
  DatasetFormat m_format = DatasetFormat::Llava;
  std::vector<Source> m_sources;
  std::vector<size_t> m_firstRecord;  // of each source, in the global numbering
  size_t m_size = 0;
  bool m_checkImages = true;
};

// The conversation a chat template renders for a record: its dialogue (llava) or its prompt
// followed by the chosen (or rejected) answer. LLaVA-OneVision's template takes content lists,
// so there each "<image>" placeholder becomes an image part.
std::vector<ChatMessage> recordConversation(const DatasetRecord& record, ChatFormat format,
                                            bool rejected = false);

// Why a record cannot be batched as `format` renders it, or "" when it can: each image fills one
// <image> placeholder of the rendered conversation, in order, so their counts must match (a
// text-only record has neither). Training and `pivot data check` both ask this.
std::string imagePlaceholderProblem(const DatasetRecord& record, ChatFormat format);

// One pass over a dataset with the paper's filters: records with more than maxImages images (the
// paper's stage 1b used single-image instructions: maxImages 1; 0 keeps every count), answers
// containing "<image>", records whose <image> placeholders do not match their images, and (given
// a tokenizer) prompt + chosen longer than maxLength tokens are skipped and counted. A bad record
// (malformed, a role the template does not know, a missing image or, given decodeImage, one that
// does not decode) throws "FILE:LINE (record I): why", or with skipBad is counted. Throws
// std::invalid_argument for maxLength <= 0 or maxImages < 0.
struct ScanOptions {
  const Tokenizer* tokenizer = nullptr;
  ChatFormat chatFormat = ChatFormat::ChatMl;
  int maxLength = 1500;
  int maxImages = 0;
  bool skipBad = false;
  // Decodes an image file, throwing for one that does not decode (the front end's decoder; data/
  // has no image library). Null: images are only checked to be readable files.
  std::function<void(const std::string& path)> decodeImage;
};
struct ScanResult {
  std::vector<size_t> kept;
  std::map<std::string, size_t> skipped;  // reason -> count
  std::vector<int> lengths;               // tokens of prompt + chosen, per kept record (tokenizer)
  std::string firstBad;                   // the first bad record's error, with skipBad
};
ScanResult scanDataset(const ConversationDataset& data, const ScanOptions& options);

}  // namespace pivot
