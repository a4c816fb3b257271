#include "text/word_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "data/shapes_world.h"

namespace pivot {

WordTokenizer::WordTokenizer(const std::vector<std::string>& words) {
  m_words = {"<pad>", "<|im_start|>", "<|im_end|>", "<image>", "<unk>"};
  m_words.insert(m_words.end(), words.begin(), words.end());
  for (size_t i = 0; i < m_words.size(); ++i) {
    if (!m_ids.emplace(m_words[i], static_cast<int64_t>(i)).second)
      throw std::runtime_error("tokenizer: duplicate word '" + m_words[i] + "'");
  }
}

WordTokenizer WordTokenizer::shapesWorld() { return WordTokenizer(ShapesWorld::vocabulary()); }

std::vector<int64_t> WordTokenizer::encodeWithOffsets(const std::string& text,
                                                      std::vector<size_t>* tokenStarts) const {
  std::vector<int64_t> ids;
  size_t at = 0;
  while (true) {
    at = text.find_first_not_of(" \t\n\r\v\f", at);
    if (at == std::string::npos) break;
    const size_t end = std::min(text.find_first_of(" \t\n\r\v\f", at), text.size());
    const std::string w = text.substr(at, end - at);
    auto it = m_ids.find(w);
    if (it == m_ids.end())
      throw std::runtime_error("tokenizer: unknown word '" + w + "' in \"" + text +
                               "\" (known words: " + knownWords() + ")");
    ids.push_back(it->second);
    if (tokenStarts) tokenStarts->push_back(at);
    at = end;
  }
  return ids;
}

std::string WordTokenizer::decode(const std::vector<int64_t>& ids, bool skipSpecialTokens) const {
  std::string out;
  for (auto id : ids) {
    if (skipSpecialTokens && id >= 0 && id < kUnk) continue;
    if (!out.empty()) out += ' ';
    out += (id >= 0 && id < vocabSize()) ? m_words[static_cast<size_t>(id)] : "<unk>";
  }
  return out;
}

std::string WordTokenizer::normalise(const std::string& text) const {
  std::string out;
  for (const char c : text) {
    const std::string one(1, c);
    if (std::ispunct(static_cast<unsigned char>(c)) && m_ids.count(one))
      out += " " + one + " ";
    else
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::string joined;  // single spaces, none at either end
  std::istringstream words(out);
  for (std::string w; words >> w;) joined += (joined.empty() ? "" : " ") + w;
  return joined;
}

std::string WordTokenizer::knownWords() const {
  std::vector<std::string> words(m_words.begin() + kUnk + 1, m_words.end());
  std::sort(words.begin(), words.end());
  std::string out, punctuation;
  for (const auto& w : words)
    if (w.size() == 1 && std::ispunct(static_cast<unsigned char>(w[0])))
      punctuation += " " + w;
    else
      out += (out.empty() ? "" : ", ") + w;
  return punctuation.empty() ? out : out + "; punctuation" + punctuation;
}

std::optional<int64_t> WordTokenizer::tokenId(const std::string& token) const {
  auto it = m_ids.find(token);
  if (it == m_ids.end()) return std::nullopt;
  return it->second;
}

int64_t WordTokenizer::id(const std::string& word) const {
  auto it = m_ids.find(word);
  if (it == m_ids.end()) throw std::runtime_error("tokenizer: unknown word '" + word + "'");
  return it->second;
}

std::vector<int64_t> WordTokenizer::encodePrompt(const std::string& question,
                                                 int imageTokens) const {
  std::vector<int64_t> ids = {kImStart, id("user")};
  ids.insert(ids.end(), static_cast<size_t>(imageTokens), kImage);
  auto q = encode(question);
  ids.insert(ids.end(), q.begin(), q.end());
  ids.insert(ids.end(), {kImEnd, kImStart, id("assistant")});
  return ids;
}

std::vector<int64_t> WordTokenizer::encodeResponse(const std::string& answer) const {
  auto ids = encode(answer);
  ids.push_back(kImEnd);
  return ids;
}

namespace {

nlohmann::json addedToken(int64_t id, const std::string& content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

}  // namespace

std::string WordTokenizer::hfTokenizerJson() const {
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  for (size_t i = 0; i < m_words.size(); ++i) {
    vocab[m_words[i]] = static_cast<int64_t>(i);
    if (static_cast<int64_t>(i) <= kUnk)
      added.push_back(addedToken(static_cast<int64_t>(i), m_words[i]));
  }
  const nlohmann::json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
      {"post_processor", nullptr},
      {"decoder", nullptr},
      {"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}}}};
  return j.dump(2) + "\n";
}

std::string WordTokenizer::hfTokenizerConfigJson() const {
  // The tokens in order, separated by spaces (WhitespaceSplit ignores how many):
  // <|im_start|> user <image> question <|im_end|> <|im_start|> assistant answer <|im_end|>.
  // tests/data/shapesworld-tokenizer holds python3-jinja2's renderings of it.
  const std::string chatTemplate =
      "{%- for message in messages -%}"
      "<|im_start|> {{ message['role'] }} "
      "{%- if message['content'] is string %} {{ message['content'] }}"
      "{%- else %}{%- for part in message['content'] %}"
      "{%- if part['type'] == 'image' %} <image>{%- elif part['type'] == 'text' %} "
      "{{ part['text'] }}{%- endif %}{%- endfor %}{%- endif %} <|im_end|> "
      "{% endfor %}"
      "{%- if add_generation_prompt %}<|im_start|> assistant{%- endif %}";
  nlohmann::json decoder = nlohmann::json::object();
  for (int64_t id = 0; id <= kUnk; ++id) {
    auto token = addedToken(id, m_words[static_cast<size_t>(id)]);
    token.erase("id");
    decoder[std::to_string(id)] = token;
  }
  const nlohmann::json j = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                            {"pad_token", "<pad>"},
                            {"unk_token", "<unk>"},
                            {"eos_token", "<|im_end|>"},
                            {"added_tokens_decoder", decoder},
                            {"chat_template", chatTemplate},
                            {"clean_up_tokenization_spaces", false},
                            {"model_max_length", 4096}};
  return j.dump(2) + "\n";
}

}  // namespace pivot
