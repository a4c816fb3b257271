// Conversations to training text, as a tokenizer's Jinja chat_template would render them, for the
// ChatML family the paper's models use. Rather than interpret arbitrary Jinja, the workbench
// recognises the templates it has verified (byte for byte against a real Jinja engine, see
// tests/data/chat-templates) and renders them natively; any other template is an error that names
// the known ones and the --chat-format override, never a silent approximation.
//
// The rendering also says which bytes the model is trained on: the assistant turns' content and
// their closing <|im_end|> (so the model learns to stop), as LLaVA's and TRL's SFT mask it; the
// role headers, system and user turns, and Qwen3's empty think block stay prompt.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pivot {

class Tokenizer;

enum class ChatFormat {
  Qwen25,          // Qwen2.5: ChatML with a default system prompt when none is given
  Qwen3,           // Qwen3: ChatML; think blocks kept only after the last user query
  LlavaOneVision,  // LLaVA-OneVision (Qwen2): content lists, "<image>\n" before the text
  ChatMl,          // plain ChatML, no default system prompt (for templates not recognised)
};
const char* name(ChatFormat f);
const std::vector<std::string>& chatFormatNames();
ChatFormat chatFormatFromName(const std::string& name);  // throws naming the choices

// The format of a tokenizer_config.json chat_template, recognised by comparing it (whitespace
// aside) with the verified templates. Throws for an empty or unknown template, naming the known
// families and the --chat-format override.
ChatFormat recogniseChatTemplate(const std::string& jinja);

struct ContentPart {
  enum class Kind { Text, Image, Video } kind = Kind::Text;
  std::string text;
};

struct ChatMessage {
  std::string role;                      // system | user | assistant | tool
  std::vector<ContentPart> parts;        // a plain string content is one Text part
  bool contentIsList = false;            // the JSON gave a list of {type, ...} parts
  std::optional<std::string> reasoning;  // Qwen3's reasoning_content, when given
};

// The text of a message: its text parts joined (images and videos left out).
std::string messageText(const ChatMessage& m);

// A JSON list of {role, content}; content a string or a list of {"type": "text", "text": ...} /
// {"type": "image"} / {"type": "video"}. Errors name `source` and the message index.
std::vector<ChatMessage> parseChatMessages(const std::string& jsonText, const std::string& source);

struct ChatOptions {
  bool addGenerationPrompt = false;
  std::optional<bool> enableThinking;  // Qwen3: false adds an empty think block to the prompt
};

struct ChatRendering {
  std::string text;
  std::vector<std::pair<size_t, size_t>> trained;  // [begin, end) byte ranges of trained text
};

// Throws when a message does not fit the format (a content list for a string template, a string
// for LLaVA-OneVision, an unknown role), naming the message.
ChatRendering renderChat(ChatFormat format, const std::vector<ChatMessage>& messages,
                         const ChatOptions& options = {});

// The rendering as model input: ids, and for each id whether it is trained (its first byte lies
// in a trained range). Each `imagePlaceholder` in the text becomes `imageTokens` copies of
// `imageTokenId` (never trained); with imageTokens = 0 placeholders stay text.
struct TokenizedChat {
  std::vector<int64_t> ids;
  std::vector<uint8_t> trained;
};
struct ImageExpansion {
  std::string placeholder = "<image>";
  int64_t tokenId = -1;
  int imageTokens = 0;
};
TokenizedChat tokenizeChat(const Tokenizer& tokenizer, const ChatRendering& rendering,
                           const ImageExpansion& images = {});

}  // namespace pivot
