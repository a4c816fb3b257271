// tokenizer.json (and tokenizer_config.json after a NUL) as a user's folder hands them to
// HfTokenizer: a clean error or a tokenizer that encodes and decodes without crashing.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "text/chat_template.h"
#include "text/hf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string tokenizerJson = input.substr(0, nul);
  const std::string configJson = nul == std::string::npos ? "" : input.substr(nul + 1);
  try {
    const auto t = pivot::HfTokenizer::fromJson(tokenizerJson, configJson, "fuzz/tokenizer.json");
    const auto ids = t.encode("Hello w\xC3\xB6rld  <|im_end|>\n\t42 'll");
    t.decode(ids, true);
    for (auto id : ids) t.token(id);
    try {
      pivot::recogniseChatTemplate(t.chatTemplate());
    } catch (const std::runtime_error&) {
    }
  } catch (const std::runtime_error&) {
  } catch (const std::out_of_range&) {
  }
  return 0;
}
