// What every tokenizer offers: the word-level one ShapesWorld speaks (text/word_tokenizer.h) and
// Hugging Face's byte-level BPE read from tokenizer.json (text/hf_tokenizer.h).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pivot {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual int64_t vocabSize() const = 0;  // the largest id + 1, added tokens included
  // Text to ids. No BOS or EOS is added; special tokens written in the text become their ids.
  std::vector<int64_t> encode(const std::string& text) const {
    return encodeWithOffsets(text, nullptr);
  }
  // The same, and (when tokenStarts is given) the byte offset in `text` where each token starts.
  // Offsets are exact for text the tokenizer's normaliser leaves unchanged (NFC text for Qwen).
  virtual std::vector<int64_t> encodeWithOffsets(const std::string& text,
                                                 std::vector<size_t>* tokenStarts) const = 0;
  // Ids to text; skipSpecialTokens drops the special tokens only (not other added tokens).
  virtual std::string decode(const std::vector<int64_t>& ids,
                             bool skipSpecialTokens = false) const = 0;
  // The vocabulary's spelling of one token (byte-level BPE writes a space as "Ġ"); throws for an
  // id outside the vocabulary.
  virtual std::string token(int64_t id) const = 0;
  // The id of a token spelled as the vocabulary spells it, if there is one.
  virtual std::optional<int64_t> tokenId(const std::string& token) const = 0;
};

}  // namespace pivot
