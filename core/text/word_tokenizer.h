// Word-level tokenizer with a Qwen-style chat template and an image placeholder, for ShapesWorld.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace pivot {

class WordTokenizer : public Tokenizer {
 public:
  static constexpr int64_t kPad = 0, kImStart = 1, kImEnd = 2, kImage = 3, kUnk = 4;
  // What an answer never contains (generation suppresses them): padding, a turn's start, and the
  // image placeholder, which would read as an image that is not there.
  static std::vector<int64_t> neverGenerated() { return {kPad, kImStart, kImage}; }

  // Vocabulary: the special tokens above, then `words` in the given order.
  explicit WordTokenizer(const std::vector<std::string>& words);
  // The tokenizer over every word ShapesWorld can write.
  static WordTokenizer shapesWorld();

  int64_t vocabSize() const override { return static_cast<int64_t>(m_words.size()); }
  // Splits on spaces; an unknown word throws naming it.
  std::vector<int64_t> encodeWithOffsets(const std::string& text,
                                         std::vector<size_t>* tokenStarts) const override;
  // Words joined by single spaces; the special tokens above are dropped with skipSpecialTokens.
  std::string decode(const std::vector<int64_t>& ids,
                     bool skipSpecialTokens = false) const override;
  std::string token(int64_t id) const override { return word(id); }
  std::optional<int64_t> tokenId(const std::string& token) const override;
  int64_t id(const std::string& word) const;  // throws for an unknown word
  const std::string& word(int64_t id) const { return m_words.at(static_cast<size_t>(id)); }

  // A typed question or answer as the vocabulary writes it: lower case, and the punctuation that
  // is a word of its own (",", "?", ".") split off: "What colour is it?" -> "what colour is it ?".
  std::string normalise(const std::string& text) const;
  // The words a text may use (the special tokens left out), sorted: "a, above, ...; punctuation
  // , . ?".
  std::string knownWords() const;

  // "<|im_start|> user <image> {question} <|im_end|> <|im_start|> assistant", the image placeholder
  // expanded to imageTokens copies, then the response "{answer} <|im_end|>".
  std::vector<int64_t> encodePrompt(const std::string& question, int imageTokens) const;
  std::vector<int64_t> encodeResponse(const std::string& answer) const;

  // The same tokenizer in Hugging Face's files, for a ShapesWorld model exported as a LLaVA folder:
  // tokenizer.json (a WordLevel model over this vocabulary, the WhitespaceSplit pre-tokenizer,
  // the five special tokens as added tokens; no decoder, so tokens decode joined by spaces, as
  // decode() does) and tokenizer_config.json (PreTrainedTokenizerFast, with a chat template that
  // renders the prompt and response above). As JSON text, so that core/text stays JSON-free.
  std::string hfTokenizerJson() const;
  std::string hfTokenizerConfigJson() const;

 private:
  std::vector<std::string> m_words;
  std::map<std::string, int64_t> m_ids;
};

}  // namespace pivot
