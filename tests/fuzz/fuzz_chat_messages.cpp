// A conversation file (pivot tokenize --chat, dataset records) rendered in every chat format:
// a clean error or a rendering whose trained ranges lie inside the text, in order.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "text/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<pivot::ChatMessage> messages;
  try {
    messages = pivot::parseChatMessages(input, "fuzz.json");
  } catch (const std::runtime_error&) {
    return 0;
  }
  for (const auto format : {pivot::ChatFormat::Qwen25, pivot::ChatFormat::Qwen3,
                            pivot::ChatFormat::LlavaOneVision, pivot::ChatFormat::ChatMl}) {
    for (bool prompt : {false, true}) {
      try {
        pivot::ChatOptions options;
        options.addGenerationPrompt = prompt;
        options.enableThinking = false;
        const auto r = pivot::renderChat(format, messages, options);
        size_t last = 0;
        for (const auto& [b, e] : r.trained) {
          if (b < last || e <= b || e > r.text.size()) __builtin_trap();
          last = e;
        }
      } catch (const std::runtime_error&) {
      }
    }
  }
  return 0;
}
