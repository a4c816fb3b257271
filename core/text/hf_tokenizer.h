// A Hugging Face tokenizer read from tokenizer.json (+ tokenizer_config.json): byte-level BPE as
// the Qwen2 / Qwen2.5 / Qwen3 (and GPT-2, Llama-3) families write it. The pipeline is HF's:
//   1. added tokens are cut out of the raw text (leftmost-longest; <|im_start|> becomes one id),
//   2. the rest is normalised (NFC) and added tokens marked "normalized" are cut out of that,
//   3. the pre-tokenizer splits it with the file's regex (run by Oniguruma, HF's own engine),
//   4. each piece is spelled in the byte-level alphabet and merged by BPE rank.
// Decoding maps tokens back to bytes and turns ill-formed UTF-8 into U+FFFD, as HF does.
// Anything the file asks for that this reader does not implement is an error naming the field,
// never a silent approximation.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace pivot {

struct AddedToken {
  int64_t id = -1;
  std::string content;
  bool special = false;     // dropped by decode(..., skipSpecialTokens = true)
  bool lstrip = false;      // swallows the whitespace on its left
  bool rstrip = false;      // ... and on its right
  bool singleWord = false;  // matches only between non-word characters
  bool normalized = false;  // matched in the normalised text instead of the raw text
};

class HfTokenizer : public Tokenizer {
 public:
  // DIR/tokenizer.json, and DIR/tokenizer_config.json when it exists. Errors name file and field.
  static HfTokenizer load(const std::string& directory);
  // The two files' contents; `source` names them in errors. configJson may be empty.
  static HfTokenizer fromJson(const std::string& tokenizerJson, const std::string& configJson,
                              const std::string& source);

  int64_t vocabSize() const override;
  std::vector<int64_t> encodeWithOffsets(const std::string& text,
                                         std::vector<size_t>* tokenStarts) const override;
  std::string decode(const std::vector<int64_t>& ids,
                     bool skipSpecialTokens = false) const override;
  std::string token(int64_t id) const override;
  std::optional<int64_t> tokenId(const std::string& token) const override;

  const std::vector<AddedToken>& addedTokens() const;
  bool isSpecial(int64_t id) const;
  // From tokenizer_config.json (empty / nullopt when the file does not say).
  const std::string& chatTemplate() const;
  std::optional<int64_t> eosId() const;
  std::optional<int64_t> padId() const;
  std::optional<int64_t> bosId() const;

 private:
  struct Impl;
  explicit HfTokenizer(std::shared_ptr<const Impl> impl);
  static std::shared_ptr<const Impl> readTokenizer(const std::string& tokenizerJson,
                                                   const std::string& configJson,
                                                   const std::string& source);
  std::shared_ptr<const Impl> m;  // immutable once loaded, so copies share it
};

}  // namespace pivot
