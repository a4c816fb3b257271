// Text through a byte-level BPE tokenizer with Qwen2.5's pre-tokenizer regex and added tokens:
// never a crash, invalid UTF-8 refused, and decode(encode(x)) == NFC(x) for every valid text.
// (The "normalized" added token is Greek: an added token spelled in the byte-level alphabet, such
// as "é", decodes as those bytes, as HF's ByteLevel decoder does, and would not round-trip.)
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "text/hf_tokenizer.h"
#include "text/unicode.h"

namespace {

const pivot::HfTokenizer& tokenizer() {
  static const pivot::HfTokenizer t = [] {
    nlohmann::json vocab = nlohmann::json::object();
    const auto& alphabet = pivot::unicode::byteLevelAlphabet();
    for (int b = 0; b < 256; ++b) vocab[alphabet[static_cast<size_t>(b)]] = b;
    vocab["ab"] = 256;
    vocab["abc"] = 257;
    vocab
        ["\xC4\xA0"
         "a"] = 258;
    const nlohmann::json j = {
        {"added_tokens",
         {{{"id", 300}, {"content", "<|im_end|>"}, {"special", true}},
          {{"id", 301}, {"content", "[L]"}, {"lstrip", true}, {"rstrip", true}},
          {{"id", 302}, {"content", "w"}, {"single_word", true}},
          {{"id", 303}, {"content", "\xCE\xAC"}, {"normalized", true}}}},
        {"normalizer", {{"type", "NFC"}}},
        {"pre_tokenizer",
         {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern",
              {{"Regex",
                R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
             {"behavior", "Isolated"}},
            {{"type", "ByteLevel"}, {"use_regex", false}}}}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", "ab c", "\xC4\xA0 a"}}}},
    };
    return pivot::HfTokenizer::fromJson(j.dump(), "", "fuzz/tokenizer.json");
  }();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool valid = pivot::unicode::firstInvalidUtf8(text) == std::string::npos;
  try {
    std::vector<size_t> starts;
    const auto ids = tokenizer().encodeWithOffsets(text, &starts);
    if (!valid || starts.size() != ids.size()) __builtin_trap();
    for (size_t k = 1; k < starts.size(); ++k)
      if (starts[k] < starts[k - 1] || starts[k] > text.size()) __builtin_trap();
    // Added tokens cut the text before NFC (as in HF), so a combining mark after one ("w" + U+0301)
    // does not compose with it, and "[L]" swallows whitespace: texts with either need not
    // round-trip.
    if (text.find("[L]") == std::string::npos && text.find('w') == std::string::npos &&
        text.find("<|im_end|>") == std::string::npos &&
        tokenizer().decode(ids) != pivot::unicode::nfc(text))
      __builtin_trap();
  } catch (const std::runtime_error&) {
    if (valid) __builtin_trap();  // only invalid UTF-8 may be refused
  }
  return 0;
}
