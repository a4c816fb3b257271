#include "text/hf_tokenizer.h"

#include <oniguruma.h>
#include <utf8proc.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "config/text_file.h"
#include "text/unicode.h"

namespace pivot {
namespace {

using json = nlohmann::json;

// GPT-2's pre-tokenizer pattern, which a ByteLevel pre-tokenizer with use_regex applies.
const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::runtime_error fieldError(const std::string& source, const std::string& field,
                              const std::string& why) {
  return std::runtime_error(source + ": field '" + field + "' " + why);
}

json parseJson(const std::string& text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann counts bytes; a reader wants the line.
    const size_t at = std::min(static_cast<size_t>(e.byte), text.size());
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<long>(at), '\n');
    throw std::runtime_error(source + ": line " + std::to_string(line) + ": not valid JSON (" +
                             e.what() + ")");
  } catch (const json::exception& e) {  // e.g. a number too large for a double
    throw std::runtime_error(source + ": not valid JSON (" + e.what() + ")");
  }
}

// Rust's char::is_whitespace (Unicode White_Space).
bool isWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Rust's char::is_alphanumeric (letters and numbers), for single_word added tokens.
bool isWordCharacter(char32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// The code point that ends just before byte `end` (0 at the start of the text).
char32_t codePointBefore(std::string_view text, size_t end) {
  if (end == 0) return 0;
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  size_t length = 0;
  return unicode::codePointAt(text, start, &length);
}

size_t lengthBefore(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return end - start;
}

// A compiled Oniguruma pattern. Searching is thread-safe; each search brings its own region.
class OnigPattern {
 public:
  OnigPattern(const std::string& pattern, const std::string& source, const std::string& field) {
    static std::once_flag initialised;
    std::call_once(initialised, [] {
      OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
      onig_initialize(encodings, 1);
    });
    OnigErrorInfo info;
    const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
    const int r = onig_new(&m_regex, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                           ONIG_SYNTAX_DEFAULT, &info);
    if (r != ONIG_NORMAL) {
      OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
      onig_error_code_to_str(message, r, &info);
      throw fieldError(
          source, field,
          "is not a pattern Oniguruma accepts: " + std::string(reinterpret_cast<char*>(message)));
    }
  }
  ~OnigPattern() { onig_free(m_regex); }
  OnigPattern(const OnigPattern&) = delete;
  OnigPattern& operator=(const OnigPattern&) = delete;

  // Every non-overlapping match, left to right, as [begin, end) byte ranges.
  std::vector<std::pair<size_t, size_t>> findAll(std::string_view text) const {
    std::vector<std::pair<size_t, size_t>> matches;
    OnigRegion* region = onig_region_new();
    const auto* begin = reinterpret_cast<const OnigUChar*>(text.data());
    const auto* end = begin + text.size();
    size_t from = 0;
    while (from <= text.size()) {
      const int r = onig_search(m_regex, begin, end, begin + from, end, region, ONIG_OPTION_NONE);
      if (r < 0) break;  // ONIG_MISMATCH (errors cannot occur on valid UTF-8)
      const auto b = static_cast<size_t>(region->beg[0]), e = static_cast<size_t>(region->end[0]);
      if (e > b) {
        matches.emplace_back(b, e);
        from = e;
      } else {  // an empty match: step over one character
        size_t length = 0;
        unicode::codePointAt(text, b, &length);
        from = b + std::max<size_t>(length, 1);
      }
      onig_region_clear(region);
    }
    onig_region_free(region, 1);
    return matches;
  }

 private:
  regex_t* m_regex = nullptr;
};

// The added tokens matched in one pass, and which bytes can start one of them.
struct AddedTokenMatcher {
  std::vector<const AddedToken*> tokens;
  std::array<bool, 256> startsToken{};
};

// A piece of text on its way through the pipeline: either an added token's id, or text.
struct Segment {
  std::string text;
  int64_t addedId = -1;
  size_t offset = 0;  // where it starts in the text it was cut from
};

// A pre-tokenized piece and where it starts in its segment.
struct Piece {
  size_t offset;
  std::string text;
};

}  // namespace

struct HfTokenizer::Impl {
  std::string source;
  std::unordered_map<std::string, int32_t> vocab;  // byte-level spelling -> id (model + added)
  std::vector<std::string> spelling;               // id -> spelling ("" where no token)
  // (left id, right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  std::array<int32_t, 256> byteIds{};
  bool ignoreMerges = false;

  bool nfcNormalizer = false;
  std::unique_ptr<OnigPattern> splitPattern;  // null: the whole text is one piece
  std::string splitLiteral;                   // a Split on a String instead of a Regex
  bool splitRemovesMatches = false;           // behavior "Removed" (else "Isolated")
  std::unique_ptr<OnigPattern> byteLevelPattern;
  bool addPrefixSpace = false;
  bool cleanUpSpaces = false;

  std::vector<AddedToken> added;
  std::unordered_map<int64_t, size_t> addedIndex;  // id -> index in `added`
  AddedTokenMatcher rawAdded, normalizedAdded;     // matched before / after normalisation
  std::string chatTemplate;
  std::optional<int64_t> eos, pad, bos;

  mutable std::mutex cacheMutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;  // piece bytes -> ids

  std::vector<Segment> splitOnAdded(std::string text, bool normalizedPass) const;
  std::vector<Piece> preTokenize(const std::string& text) const;
  void bpe(const std::string& bytes, std::vector<int64_t>& out) const;
  std::vector<int32_t> mergePiece(const std::string& bytes) const;
};

namespace {

// Leftmost-longest search for added tokens in `text`, honouring lstrip / rstrip / single_word.
std::vector<Segment> cutAddedTokens(const std::string& text, const AddedTokenMatcher& matcher) {
  std::vector<Segment> out;
  if (matcher.tokens.empty()) {
    out.push_back({text, -1, 0});
    return out;
  }
  size_t gapStart = 0, i = 0;
  while (i < text.size()) {
    if (!matcher.startsToken[static_cast<unsigned char>(text[i])]) {  // most bytes: one lookup
      ++i;
      continue;
    }
    const AddedToken* best = nullptr;
    for (const AddedToken* t : matcher.tokens) {
      if (t->content.size() <= (best ? best->content.size() : 0)) continue;
      if (text.compare(i, t->content.size(), t->content) != 0) continue;
      if (t->singleWord) {
        size_t length = 0;
        const size_t after = i + t->content.size();
        const bool wordBefore = i > 0 && isWordCharacter(codePointBefore(text, i));
        const bool wordAfter =
            after < text.size() && isWordCharacter(unicode::codePointAt(text, after, &length));
        if (wordBefore || wordAfter) continue;
      }
      best = t;
    }
    if (!best) {
      ++i;
      continue;
    }
    size_t start = i, end = i + best->content.size();
    if (best->lstrip)
      while (start > gapStart && isWhitespace(codePointBefore(text, start)))
        start -= lengthBefore(text, start);
    if (best->rstrip) {
      size_t length = 0;
      while (end < text.size() && isWhitespace(unicode::codePointAt(text, end, &length)) && length)
        end += length;
    }
    if (start > gapStart) out.push_back({text.substr(gapStart, start - gapStart), -1, gapStart});
    out.push_back({"", best->id, i});
    gapStart = i = end;
  }
  if (gapStart < text.size()) out.push_back({text.substr(gapStart), -1, gapStart});
  return out;
}

}  // namespace

std::vector<Segment> HfTokenizer::Impl::splitOnAdded(std::string text, bool normalizedPass) const {
  return cutAddedTokens(text, normalizedPass ? normalizedAdded : rawAdded);
}

std::vector<Piece> HfTokenizer::Impl::preTokenize(const std::string& text) const {
  // The Split pre-tokenizer ...
  std::vector<Piece> splits;
  if (splitPattern || !splitLiteral.empty()) {
    std::vector<std::pair<size_t, size_t>> matches;
    if (splitPattern) {
      matches = splitPattern->findAll(text);
    } else {
      for (size_t at = text.find(splitLiteral); at != std::string::npos;
           at = text.find(splitLiteral, at + splitLiteral.size()))
        matches.emplace_back(at, at + splitLiteral.size());
    }
    size_t last = 0;
    for (const auto& [b, e] : matches) {
      if (b > last) splits.push_back({last, text.substr(last, b - last)});
      if (!splitRemovesMatches) splits.push_back({b, text.substr(b, e - b)});
      last = e;
    }
    if (last < text.size()) splits.push_back({last, text.substr(last)});
  } else if (!text.empty()) {
    splits.push_back({0, text});
  }
  // ... then ByteLevel, which may add a prefix space to each split and split it again.
  if (!addPrefixSpace && !byteLevelPattern) return splits;
  std::vector<Piece> pieces;
  for (auto& split : splits) {
    std::string& s = split.text;
    size_t shift = 0;  // an added prefix space has no place in the text: it starts at the split
    if (addPrefixSpace && (s.empty() || s[0] != ' ')) {
      s.insert(s.begin(), ' ');
      shift = 1;
    }
    auto at = [&](size_t b) { return split.offset + (b > shift ? b - shift : 0); };
    if (!byteLevelPattern) {
      pieces.push_back({split.offset, std::move(s)});
      continue;
    }
    size_t last = 0;
    for (const auto& [b, e] : byteLevelPattern->findAll(s)) {
      if (b > last) pieces.push_back({at(last), s.substr(last, b - last)});
      pieces.push_back({at(b), s.substr(b, e - b)});
      last = e;
    }
    if (last < s.size()) pieces.push_back({at(last), s.substr(last)});
  }
  return pieces;
}

// BPE on one piece as HF's Word::merge_all does it: repeatedly merge the adjacent pair with the
// lowest rank (the leftmost among equals), over a linked list so long pieces stay O(n log n).
std::vector<int32_t> HfTokenizer::Impl::mergePiece(const std::string& bytes) const {
  const size_t n = bytes.size();
  std::vector<int32_t> id(n);
  std::vector<int> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) {
    id[i] = byteIds[static_cast<unsigned char>(bytes[i])];
    prev[i] = static_cast<int>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int>(i + 1) : -1;
  }
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto key = [](int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  };
  auto consider = [&](int left) {
    if (left < 0 || next[static_cast<size_t>(left)] < 0) return;
    auto it = merges.find(key(id[static_cast<size_t>(left)],
                              id[static_cast<size_t>(next[static_cast<size_t>(left)])]));
    if (it != merges.end()) queue.push({it->second.first, left, it->second.second});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(static_cast<int>(i));
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    const auto pos = static_cast<size_t>(c.pos);
    if (!alive[pos] || next[pos] < 0) continue;
    const auto right = static_cast<size_t>(next[pos]);
    auto it = merges.find(key(id[pos], id[right]));
    if (it == merges.end() || it->second.second != c.merged) continue;  // stale entry
    id[pos] = c.merged;
    alive[right] = false;
    next[pos] = next[right];
    if (next[right] >= 0) prev[static_cast<size_t>(next[right])] = c.pos;
    consider(prev[pos]);
    consider(c.pos);
  }
  std::vector<int32_t> out;
  for (int i = n ? 0 : -1; i >= 0; i = next[static_cast<size_t>(i)])
    out.push_back(id[static_cast<size_t>(i)]);
  return out;
}

void HfTokenizer::Impl::bpe(const std::string& bytes, std::vector<int64_t>& out) const {
  if (bytes.empty()) return;
  if (ignoreMerges) {  // Llama-3 style: a piece that is itself a token is taken whole
    std::string spelled;
    for (unsigned char b : bytes) spelled += unicode::byteLevelAlphabet()[b];
    auto it = vocab.find(spelled);
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  constexpr size_t kCachedPieceBytes = 64, kCacheEntries = 200000;
  const bool cacheable = bytes.size() <= kCachedPieceBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cacheMutex);
    auto it = cache.find(bytes);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = mergePiece(bytes);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cacheMutex);
    if (cache.size() >= kCacheEntries) cache.clear();
    cache.emplace(bytes, std::move(ids));
  }
}

namespace {

// A token named in tokenizer_config.json: a string or {"content": "..."}.
std::optional<std::string> configToken(const json& config, const char* key,
                                       const std::string& source) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  throw fieldError(source, key, "must be a token string or {\"content\": ...}");
}

bool flag(const json& j, const char* key, const std::string& source, const std::string& field) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return false;
  if (!it->is_boolean()) throw fieldError(source, field + "." + key, "must be true or false");
  return it->get<bool>();
}

std::string typeOf(const json& j, const std::string& source, const std::string& field) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw fieldError(source, field + ".type", "is missing");
  return j["type"].get<std::string>();
}

}  // namespace

HfTokenizer::HfTokenizer(std::shared_ptr<const Impl> impl) : m(std::move(impl)) {}

HfTokenizer HfTokenizer::load(const std::string& directory) {
  const std::string tokenizerPath = directory + "/tokenizer.json";
  const std::string configPath = directory + "/tokenizer_config.json";
  std::ifstream probe(configPath);
  return fromJson(readTextFile(tokenizerPath), probe ? readTextFile(configPath) : std::string(),
                  tokenizerPath);
}

HfTokenizer HfTokenizer::fromJson(const std::string& tokenizerJson, const std::string& configJson,
                                  const std::string& source) {
  try {
    return HfTokenizer(readTokenizer(tokenizerJson, configJson, source));
  } catch (const json::exception& e) {  // a value of the wrong type where a field is read loosely
    throw std::runtime_error(source + ": a field has the wrong type (" + e.what() + ")");
  }
}

std::shared_ptr<const HfTokenizer::Impl> HfTokenizer::readTokenizer(
    const std::string& tokenizerJson, const std::string& configJson, const std::string& source) {
  auto impl = std::make_shared<Impl>();
  impl->source = source;
  const json root = parseJson(tokenizerJson, source);
  if (!root.is_object()) throw std::runtime_error(source + ": not a tokenizer.json object");

  // The model: BPE over the byte-level alphabet.
  if (!root.contains("model")) throw fieldError(source, "model", "is missing");
  const json& model = root["model"];
  const std::string modelType = model.contains("type") ? typeOf(model, source, "model") : "BPE";
  if (modelType != "BPE")
    throw fieldError(source, "model.type",
                     "is \"" + modelType + "\"; only byte-level \"BPE\" tokenizers are supported");
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"] != 0)
    throw fieldError(source, "model.dropout", "must be null (BPE dropout is for training)");
  if (flag(model, "byte_fallback", source, "model"))
    throw fieldError(source, "model.byte_fallback",
                     "is true (SentencePiece-style BPE), which is not supported");
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = model.find(affix);
    if (it != model.end() && !it->is_null() && *it != "")
      throw fieldError(source, std::string("model.") + affix, "must be empty for byte-level BPE");
  }
  impl->ignoreMerges = flag(model, "ignore_merges", source, "model");
  if (!model.contains("vocab") || !model["vocab"].is_object())
    throw fieldError(source, "model.vocab", "must be an object of token -> id");
  int64_t maxId = -1;
  impl->vocab.reserve(model["vocab"].size() + 64);
  // Ids index a dense table (id -> spelling): a tokenizer's run 0..N-1 with few gaps, so one
  // corrupt id far beyond them is an error here, not gigabytes of table.
  const int64_t idLimit = 2 * static_cast<int64_t>(model["vocab"].size()) + 65536;
  const auto tooLarge = [&](int64_t id) {
    return "is id " + std::to_string(id) + ", far beyond the " +
           std::to_string(model["vocab"].size()) + " tokens of model.vocab (ids run 0..N-1)";
  };
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX)
      throw fieldError(source, "model.vocab[\"" + it.key() + "\"]", "must be a non-negative id");
    if (it.value().get<int64_t>() >= idLimit)
      throw fieldError(source, "model.vocab[\"" + it.key() + "\"]",
                       tooLarge(it.value().get<int64_t>()));
    const auto id = it.value().get<int32_t>();
    impl->vocab.emplace(it.key(), id);
    maxId = std::max<int64_t>(maxId, id);
  }

  // Added tokens (special or not), which may extend the id range past the model's vocabulary.
  auto addToken = [&](AddedToken t, const std::string& field, const std::string& where) {
    if (t.id < 0 || t.id > INT32_MAX) throw fieldError(where, field + ".id", "must be an id");
    if (t.id >= idLimit) throw fieldError(where, field + ".id", tooLarge(t.id));
    if (t.content.empty()) throw fieldError(where, field + ".content", "must not be empty");
    auto known = impl->addedIndex.find(t.id);
    if (known != impl->addedIndex.end()) {
      if (impl->added[known->second].content != t.content)
        throw fieldError(where, field,
                         "gives id " + std::to_string(t.id) + " to \"" + t.content +
                             "\" but it is \"" + impl->added[known->second].content + "\"");
      return;
    }
    impl->addedIndex[t.id] = impl->added.size();
    impl->vocab[t.content] = static_cast<int32_t>(t.id);
    maxId = std::max(maxId, t.id);
    impl->added.push_back(std::move(t));
  };
  auto readAdded = [&](const json& a, const std::string& field, int64_t id) {
    AddedToken t;
    t.id = id;
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string())
      throw fieldError(source, field + ".content", "is missing");
    t.content = a["content"].get<std::string>();
    t.special = flag(a, "special", source, field);
    t.lstrip = flag(a, "lstrip", source, field);
    t.rstrip = flag(a, "rstrip", source, field);
    t.singleWord = flag(a, "single_word", source, field);
    t.normalized = flag(a, "normalized", source, field);
    return t;
  };
  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    const json& list = root["added_tokens"];
    if (!list.is_array()) throw fieldError(source, "added_tokens", "must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      if (!list[i].contains("id") || !list[i]["id"].is_number_integer())
        throw fieldError(source, field + ".id", "is missing");
      addToken(readAdded(list[i], field, list[i]["id"].get<int64_t>()), field, source);
    }
  }

  // Merges: "a b" strings (older files) or ["a", "b"] pairs (newer ones), in rank order.
  if (!model.contains("merges") || !model["merges"].is_array())
    throw fieldError(source, "model.merges", "must be a list");
  const json& merges = model["merges"];
  impl->merges.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    std::string left, right;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ', 1);
      if (space == std::string::npos)
        throw fieldError(source, "model.merges[" + std::to_string(rank) + "]",
                         "must be \"left right\": \"" + s + "\"");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      throw fieldError(source, "model.merges[" + std::to_string(rank) + "]",
                       "must be \"left right\" or [\"left\", \"right\"]");
    }
    auto l = impl->vocab.find(left), r = impl->vocab.find(right),
         merged = impl->vocab.find(left + right);
    if (l == impl->vocab.end() || r == impl->vocab.end() || merged == impl->vocab.end())
      throw fieldError(source, "model.merges[" + std::to_string(rank) + "]",
                       "merges \"" + left + "\" and \"" + right +
                           "\", but the vocabulary lacks one of them or their concatenation");
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(l->second)) << 32) |
                         static_cast<uint32_t>(r->second);
    impl->merges.emplace(key, std::make_pair(static_cast<int32_t>(rank), merged->second));
  }

  const auto& alphabet = unicode::byteLevelAlphabet();
  for (size_t b = 0; b < 256; ++b) {
    auto it = impl->vocab.find(alphabet[b]);
    if (it == impl->vocab.end())
      throw fieldError(source, "model.vocab",
                       "lacks the byte-level token \"" + alphabet[b] + "\" for byte " +
                           std::to_string(b) + "; only byte-level BPE is supported");
    impl->byteIds[b] = it->second;
  }

  // Normaliser: none or NFC (alone or in a Sequence).
  if (root.contains("normalizer") && !root["normalizer"].is_null()) {
    const json& n = root["normalizer"];
    std::vector<std::pair<json, std::string>> steps;
    if (typeOf(n, source, "normalizer") == "Sequence") {
      for (size_t i = 0; i < n.value("normalizers", json::array()).size(); ++i)
        steps.emplace_back(n["normalizers"][i],
                           "normalizer.normalizers[" + std::to_string(i) + "]");
    } else {
      steps.emplace_back(n, "normalizer");
    }
    for (const auto& [step, field] : steps) {
      const std::string type = typeOf(step, source, field);
      if (type != "NFC")
        throw fieldError(source, field + ".type",
                         "is \"" + type + "\"; supported normalizers: NFC (or none)");
      impl->nfcNormalizer = true;
    }
  }

  // Pre-tokenizer: an optional Split, then ByteLevel (alone, or in a Sequence).
  if (!root.contains("pre_tokenizer") || root["pre_tokenizer"].is_null())
    throw fieldError(source, "pre_tokenizer", "is missing; byte-level BPE needs a ByteLevel one");
  {
    const json& p = root["pre_tokenizer"];
    std::vector<std::pair<json, std::string>> steps;
    if (typeOf(p, source, "pre_tokenizer") == "Sequence") {
      const json list = p.value("pretokenizers", json::array());
      for (size_t i = 0; i < list.size(); ++i)
        steps.emplace_back(list[i], "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]");
    } else {
      steps.emplace_back(p, "pre_tokenizer");
    }
    bool sawByteLevel = false;
    for (const auto& [step, field] : steps) {
      const std::string type = typeOf(step, source, field);
      if (type == "Split" && !sawByteLevel && !impl->splitPattern && impl->splitLiteral.empty()) {
        const std::string behavior = step.value("behavior", std::string("Isolated"));
        if (behavior != "Isolated" && behavior != "Removed")
          throw fieldError(source, field + ".behavior",
                           "is \"" + behavior + "\"; supported: Isolated, Removed");
        impl->splitRemovesMatches = behavior == "Removed";
        if (flag(step, "invert", source, field))
          throw fieldError(source, field + ".invert", "is true, which is not supported");
        const json pattern = step.value("pattern", json());
        if (pattern.contains("Regex") && pattern["Regex"].is_string())
          impl->splitPattern = std::make_unique<OnigPattern>(pattern["Regex"].get<std::string>(),
                                                             source, field + ".pattern.Regex");
        else if (pattern.contains("String") && pattern["String"].is_string() &&
                 !pattern["String"].get<std::string>().empty())
          impl->splitLiteral = pattern["String"].get<std::string>();
        else
          throw fieldError(source, field + ".pattern",
                           "must be {\"Regex\": ...} or {\"String\": ...}");
      } else if (type == "ByteLevel" && !sawByteLevel) {
        sawByteLevel = true;
        impl->addPrefixSpace = flag(step, "add_prefix_space", source, field);
        if (step.value("use_regex", true))
          impl->byteLevelPattern = std::make_unique<OnigPattern>(kGpt2Pattern, source, field);
      } else {
        throw fieldError(source, field + ".type",
                         "is \"" + type +
                             "\"; supported pre-tokenizers: one Split (Regex or String) followed "
                             "by ByteLevel");
      }
    }
    if (!sawByteLevel)
      throw fieldError(source, "pre_tokenizer",
                       "has no ByteLevel step; only byte-level BPE is supported");
  }

  if (root.contains("decoder") && !root["decoder"].is_null()) {
    const std::string type = typeOf(root["decoder"], source, "decoder");
    if (type != "ByteLevel")
      throw fieldError(source, "decoder.type", "is \"" + type + "\"; supported: ByteLevel");
  }
  if (root.contains("post_processor") && !root["post_processor"].is_null()) {
    const std::string type = typeOf(root["post_processor"], source, "post_processor");
    if (type != "ByteLevel")
      throw fieldError(source, "post_processor.type",
                       "is \"" + type + "\"; supported: ByteLevel (no BOS/EOS added)");
  }

  // tokenizer_config.json: the chat template, named special tokens, extra added tokens.
  if (!configJson.empty()) {
    const std::string configSource =
        source.size() > 14 && source.compare(source.size() - 14, 14, "tokenizer.json") == 0
            ? source.substr(0, source.size() - 14) + "tokenizer_config.json"
            : source + " (tokenizer_config.json)";
    const json config = parseJson(configJson, configSource);
    if (!config.is_object()) throw std::runtime_error(configSource + ": not a JSON object");
    if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
      for (auto it = config["added_tokens_decoder"].begin();
           it != config["added_tokens_decoder"].end(); ++it) {
        const std::string field = "added_tokens_decoder[\"" + it.key() + "\"]";
        int64_t id = -1;
        try {
          id = std::stoll(it.key());
        } catch (const std::exception&) {
          throw fieldError(configSource, field, "must be keyed by an integer id");
        }
        addToken(readAdded(it.value(), field, id), field, configSource);
      }
    }
    auto tmpl = config.find("chat_template");
    if (tmpl != config.end() && !tmpl->is_null()) {
      if (tmpl->is_string()) {
        impl->chatTemplate = tmpl->get<std::string>();
      } else if (tmpl->is_array()) {  // named templates: take "default"
        for (const auto& named : *tmpl) {
          // Only string fields count (json::value would throw type_error on anything else).
          const auto text = [&](const char* key) {
            return named.is_object() && named.contains(key) && named[key].is_string()
                       ? named[key].get<std::string>()
                       : std::string();
          };
          if (text("name") == "default") impl->chatTemplate = text("template");
        }
      } else {
        throw fieldError(configSource, "chat_template",
                         "must be a string or a list of {name, template}");
      }
    }
    auto idOf = [&](const char* key) -> std::optional<int64_t> {
      auto name = configToken(config, key, configSource);
      if (!name) return std::nullopt;
      auto it = impl->vocab.find(*name);
      if (it == impl->vocab.end())
        throw fieldError(configSource, key, "names \"" + *name + "\", which is not a token");
      return it->second;
    };
    impl->eos = idOf("eos_token");
    impl->pad = idOf("pad_token");
    impl->bos = idOf("bos_token");
    impl->cleanUpSpaces = flag(config, "clean_up_tokenization_spaces", configSource, "");
  }
  impl->spelling.assign(static_cast<size_t>(maxId + 1), std::string());
  for (const auto& [text, id] : impl->vocab) impl->spelling[static_cast<size_t>(id)] = text;
  for (const auto& t : impl->added) impl->spelling[static_cast<size_t>(t.id)] = t.content;
  std::sort(impl->added.begin(), impl->added.end(),
            [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  impl->addedIndex.clear();
  for (size_t i = 0; i < impl->added.size(); ++i) impl->addedIndex[impl->added[i].id] = i;
  for (const auto& t : impl->added) {
    AddedTokenMatcher& m = t.normalized ? impl->normalizedAdded : impl->rawAdded;
    m.tokens.push_back(&t);
    m.startsToken[static_cast<unsigned char>(t.content[0])] = true;
  }
  return impl;
}

int64_t HfTokenizer::vocabSize() const { return static_cast<int64_t>(m->spelling.size()); }

std::vector<int64_t> HfTokenizer::encodeWithOffsets(const std::string& text,
                                                    std::vector<size_t>* tokenStarts) const {
  const size_t bad = unicode::firstInvalidUtf8(text);
  if (bad != std::string::npos)
    throw std::runtime_error("tokenizer: text is not valid UTF-8 at byte " + std::to_string(bad));
  std::vector<int64_t> ids;
  // Offsets: a token starts where its piece starts plus the bytes of the tokens before it in
  // the piece (one byte per byte-level character). Inside a segment the normaliser changed,
  // positions are clamped to the segment.
  auto recordStarts = [&](size_t from, size_t pieceStart, size_t limit) {
    if (!tokenStarts) return;
    size_t at = pieceStart;
    for (size_t k = from; k < ids.size(); ++k) {
      tokenStarts->push_back(std::min(at, limit));
      for (unsigned char c : m->spelling[static_cast<size_t>(ids[k])]) at += (c & 0xC0) != 0x80;
    }
  };
  for (auto& raw : m->splitOnAdded(text, /*normalizedPass=*/false)) {
    if (raw.addedId >= 0) {
      ids.push_back(raw.addedId);
      if (tokenStarts) tokenStarts->push_back(raw.offset);
      continue;
    }
    const size_t rawEnd = raw.offset + raw.text.size();
    std::string normalized = m->nfcNormalizer ? unicode::nfc(raw.text) : raw.text;
    for (auto& part : m->splitOnAdded(std::move(normalized), /*normalizedPass=*/true)) {
      const size_t partStart = raw.offset + part.offset;
      if (part.addedId >= 0) {
        ids.push_back(part.addedId);
        if (tokenStarts) tokenStarts->push_back(std::min(partStart, rawEnd));
        continue;
      }
      for (const auto& piece : m->preTokenize(part.text)) {
        const size_t from = ids.size();
        m->bpe(piece.text, ids);
        recordStarts(from, partStart + piece.offset, rawEnd);
      }
    }
  }
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int64_t>& ids, bool skipSpecialTokens) const {
  // Per token, as HF's ByteLevel decoder: a token spelled wholly in the byte-level alphabet gives
  // those bytes, any other (an added token such as "<think>\n") its own UTF-8. The bytes of the
  // whole sequence are then decoded lossily, so a split character becomes U+FFFD only if it stays
  // incomplete.
  std::string bytes;
  for (int64_t id : ids) {
    if (skipSpecialTokens && isSpecial(id)) continue;
    if (id < 0 || id >= vocabSize() || m->spelling[static_cast<size_t>(id)].empty()) token(id);
    const std::string& spelled = m->spelling[static_cast<size_t>(id)];  // token() threw if absent
    if (!unicode::appendByteLevelBytes(spelled, bytes)) bytes += spelled;
  }
  std::string text = unicode::utf8Lossy(bytes);
  if (m->cleanUpSpaces) {  // transformers' clean_up_tokenization
    for (const char* pair : {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"}) {
      const std::string from = pair;
      const std::string to = from == " ' " ? "'" : from.substr(1);
      for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at))
        text.replace(at, from.size(), to);
    }
  }
  return text;
}

std::string HfTokenizer::token(int64_t id) const {
  if (id < 0 || id >= vocabSize() || m->spelling[static_cast<size_t>(id)].empty())
    throw std::out_of_range("tokenizer: no token has id " + std::to_string(id));
  return m->spelling[static_cast<size_t>(id)];
}

std::optional<int64_t> HfTokenizer::tokenId(const std::string& token) const {
  auto it = m->vocab.find(token);
  if (it == m->vocab.end()) return std::nullopt;
  return it->second;
}

const std::vector<AddedToken>& HfTokenizer::addedTokens() const { return m->added; }

bool HfTokenizer::isSpecial(int64_t id) const {
  auto it = m->addedIndex.find(id);
  return it != m->addedIndex.end() && m->added[it->second].special;
}

const std::string& HfTokenizer::chatTemplate() const { return m->chatTemplate; }
std::optional<int64_t> HfTokenizer::eosId() const { return m->eos; }
std::optional<int64_t> HfTokenizer::padId() const { return m->pad; }
std::optional<int64_t> HfTokenizer::bosId() const { return m->bos; }

}  // namespace pivot
