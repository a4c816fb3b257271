#include "text/chat_template.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "text/tokenizer.h"
#include "text/unicode.h"

namespace pivot {

std::string messageText(const ChatMessage& m) {
  std::string text;
  for (const auto& p : m.parts)
    if (p.kind == ContentPart::Kind::Text) text += p.text;
  return text;
}
namespace {

struct FormatName {
  ChatFormat format;
  const char* name;
};
constexpr FormatName kFormatNames[] = {
    {ChatFormat::Qwen25, "qwen2.5"},
    {ChatFormat::Qwen3, "qwen3"},
    {ChatFormat::LlavaOneVision, "llava-onevision"},
    {ChatFormat::ChatMl, "chatml"},
};

// FNV-1a over the template with all whitespace removed: the verified templates' fingerprints
// (tests/data/chat-templates/*.jinja; test_text checks each file is recognised as its family).
uint64_t fingerprint(const std::string& jinja) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : jinja) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
    h = (h ^ c) * 1099511628211ull;
  }
  return h;
}

struct KnownTemplate {
  uint64_t fingerprint;
  ChatFormat format;
  const char* origin;
};
constexpr KnownTemplate kKnownTemplates[] = {
    {0x2bfa7d4e9336df4dull, ChatFormat::Qwen25, "Qwen2.5 Instruct tokenizer_config.json"},
    {0x2eaba2124ec0fa42ull, ChatFormat::Qwen3, "Qwen3 tokenizer_config.json"},
    {0x0a7f09d9ead1dfdfull, ChatFormat::LlavaOneVision,
     "llava-hf LLaVA-OneVision chat_template.json"},
};

const std::string kQwen25DefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

std::string joinFormatNames() {
  std::string s;
  for (const auto& f : kFormatNames) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

// Python's str.strip / lstrip / rstrip of one character.
std::string lstripChar(std::string s, char c) {
  s.erase(0, std::min(s.find_first_not_of(c), s.size()));
  return s;
}
std::string rstripChar(std::string s, char c) {
  const size_t last = s.find_last_not_of(c);
  s.erase(last == std::string::npos ? 0 : last + 1);
  return s;
}
std::string stripChar(const std::string& s, char c) { return lstripChar(rstripChar(s, c), c); }

// Builds the text and its trained ranges.
class Writer {
 public:
  void prompt(const std::string& s) { m_out.text += s; }
  void trained(const std::string& s) {
    if (s.empty()) return;
    const size_t begin = m_out.text.size();
    m_out.text += s;
    if (!m_out.trained.empty() && m_out.trained.back().second == begin)
      m_out.trained.back().second = m_out.text.size();
    else
      m_out.trained.emplace_back(begin, m_out.text.size());
  }
  ChatRendering take() { return std::move(m_out); }

 private:
  ChatRendering m_out;
};

std::string where(size_t index, const ChatMessage& m) {
  return "message " + std::to_string(index) + " (" + m.role + ")";
}

// The content of a string-content template (Qwen2.5, Qwen3, ChatML).
const std::string& textOf(const ChatMessage& m, size_t index, ChatFormat format) {
  static const std::string empty;
  if (m.contentIsList || m.parts.size() > 1)
    throw std::runtime_error(where(index, m) + ": the " + std::string(name(format)) +
                             " template takes text content; write the image as <image> in the "
                             "text instead of a content list");
  return m.parts.empty() ? empty : m.parts[0].text;
}

void checkRole(const ChatMessage& m, size_t index, bool toolAllowed) {
  if (m.role == "system" || m.role == "user" || m.role == "assistant") return;
  if (toolAllowed && m.role == "tool") return;
  throw std::runtime_error(where(index, m) + ": unknown role; expected system, user, assistant" +
                           std::string(toolAllowed ? " or tool" : ""));
}

// Tool results, as both Qwen templates write them: consecutive tool turns share one user turn.
void writeToolTurn(Writer& w, const std::vector<ChatMessage>& messages, size_t i,
                   const std::string& content) {
  if (i == 0 || messages[i - 1].role != "tool") w.prompt("<|im_start|>user");
  w.prompt("\n<tool_response>\n" + content + "\n</tool_response>");
  if (i + 1 == messages.size() || messages[i + 1].role != "tool") w.prompt("<|im_end|>\n");
}

ChatRendering renderQwen(ChatFormat format, const std::vector<ChatMessage>& messages,
                         const ChatOptions& options) {
  Writer w;
  const bool firstIsSystem = !messages.empty() && messages[0].role == "system";
  if (firstIsSystem)
    w.prompt("<|im_start|>system\n" + textOf(messages[0], 0, format) + "<|im_end|>\n");
  else if (format == ChatFormat::Qwen25)
    w.prompt("<|im_start|>system\n" + kQwen25DefaultSystem + "<|im_end|>\n");

  // Qwen3 keeps reasoning only after the last real user query (not a tool response).
  size_t lastQuery = messages.empty() ? 0 : messages.size() - 1;
  for (size_t k = messages.size(); k-- > 0;) {
    if (messages[k].role != "user") continue;
    const std::string& c = textOf(messages[k], k, format);
    const std::string open = "<tool_response>", close = "</tool_response>";
    const bool toolResponse = c.compare(0, open.size(), open) == 0 && c.size() >= close.size() &&
                              c.compare(c.size() - close.size(), close.size(), close) == 0;
    if (!toolResponse) {
      lastQuery = k;
      break;
    }
  }

  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    checkRole(m, i, /*toolAllowed=*/true);
    const std::string& content = textOf(m, i, format);
    if (m.role == "user" || (m.role == "system" && i > 0)) {
      w.prompt("<|im_start|>" + m.role + "\n" + content + "<|im_end|>\n");
    } else if (m.role == "tool") {
      writeToolTurn(w, messages, i, content);
    } else if (m.role == "assistant") {
      w.prompt("<|im_start|>assistant\n");
      if (format != ChatFormat::Qwen3) {
        w.trained(content + "<|im_end|>");
        w.prompt("\n");
        continue;
      }
      std::string answer = content, reasoning;
      if (m.reasoning) {
        reasoning = *m.reasoning;
      } else if (content.find("</think>") != std::string::npos) {
        answer = lstripChar(content.substr(content.rfind("</think>") + 8), '\n');
        const std::string before = rstripChar(content.substr(0, content.find("</think>")), '\n');
        const size_t open = before.rfind("<think>");
        reasoning = lstripChar(open == std::string::npos ? before : before.substr(open + 7), '\n');
      }
      if (i > lastQuery && (i + 1 == messages.size() || !reasoning.empty())) {
        const std::string think = "<think>\n" + stripChar(reasoning, '\n') + "\n</think>\n\n";
        if (reasoning.empty())
          w.prompt(think);  // the empty block is scaffolding, not something the model says
        else
          w.trained(think);
        answer = lstripChar(answer, '\n');
      }
      w.trained(answer + "<|im_end|>");
      w.prompt("\n");
    }
  }
  if (options.addGenerationPrompt) {
    w.prompt("<|im_start|>assistant\n");
    if (format == ChatFormat::Qwen3 && options.enableThinking && !*options.enableThinking)
      w.prompt("<think>\n\n</think>\n\n");
  }
  return w.take();
}

ChatRendering renderLlavaOneVision(const std::vector<ChatMessage>& messages,
                                   const ChatOptions& options) {
  Writer w;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    checkRole(m, i, /*toolAllowed=*/false);
    if (!m.contentIsList)
      throw std::runtime_error(where(i, m) +
                               ": the llava-onevision template takes content lists "
                               "([{\"type\": \"image\"}, {\"type\": \"text\", \"text\": ...}])");
    w.prompt("<|im_start|>" + m.role + "\n");
    // Images first, then videos, then the text parts, whatever their order in the list.
    for (const auto& p : m.parts)
      if (p.kind == ContentPart::Kind::Image) w.prompt("<image>\n");
    for (const auto& p : m.parts)
      if (p.kind == ContentPart::Kind::Video) w.prompt("<video>\n");
    const std::string text = messageText(m);
    if (m.role == "assistant") {
      w.trained(text + "<|im_end|>");
    } else {
      w.prompt(text + "<|im_end|>");
    }
    w.prompt("\n");
  }
  if (options.addGenerationPrompt) w.prompt("<|im_start|>assistant\n");
  return w.take();
}

}  // namespace

const char* name(ChatFormat f) {
  for (const auto& n : kFormatNames)
    if (n.format == f) return n.name;
  return "?";
}

const std::vector<std::string>& chatFormatNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& n : kFormatNames) v.emplace_back(n.name);
    return v;
  }();
  return names;
}

ChatFormat chatFormatFromName(const std::string& s) {
  for (const auto& n : kFormatNames)
    if (s == n.name) return n.format;
  throw std::runtime_error("unknown chat format '" + s + "' (expected " + joinFormatNames() + ")");
}

ChatFormat recogniseChatTemplate(const std::string& jinja) {
  if (jinja.empty())
    throw std::runtime_error("the tokenizer has no chat_template; pass --chat-format (" +
                             joinFormatNames() + ")");
  const uint64_t f = fingerprint(jinja);
  for (const auto& k : kKnownTemplates)
    if (k.fingerprint == f) return k.format;
  throw std::runtime_error(
      "the tokenizer's chat_template is not one this workbench has verified (it renders the "
      "templates of Qwen2.5, Qwen3 and LLaVA-OneVision exactly); pass --chat-format (" +
      joinFormatNames() + ") to render the conversation in one of those formats");
}

std::vector<ChatMessage> parseChatMessages(const std::string& jsonText, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(jsonText);
  } catch (const nlohmann::json::exception& e) {  // a syntax error, a number out of range
    throw std::runtime_error(source + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_array()) throw std::runtime_error(source + ": must be a JSON list of {role, content}");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& m = j[i];
    const std::string at = source + ": message " + std::to_string(i);
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw std::runtime_error(at + ": needs a \"role\" string");
    ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    const auto content = m.value("content", nlohmann::json());
    if (content.is_string()) {
      msg.parts.push_back({ContentPart::Kind::Text, content.get<std::string>()});
    } else if (content.is_array()) {
      msg.contentIsList = true;
      for (size_t k = 0; k < content.size(); ++k) {
        const auto& p = content[k];
        // A "type" that is not a string is no known part (json::value would throw type_error).
        const std::string type = p.is_object() && p.contains("type") && p["type"].is_string()
                                     ? p["type"].get<std::string>()
                                     : std::string();
        if (type == "text" && p.contains("text") && p["text"].is_string())
          msg.parts.push_back({ContentPart::Kind::Text, p["text"].get<std::string>()});
        else if (type == "image")
          msg.parts.push_back({ContentPart::Kind::Image, ""});
        else if (type == "video")
          msg.parts.push_back({ContentPart::Kind::Video, ""});
        else
          throw std::runtime_error(at + ": content[" + std::to_string(k) +
                                   "] must be {\"type\": \"text\", \"text\": ...}, "
                                   "{\"type\": \"image\"} or {\"type\": \"video\"}");
      }
    } else if (!content.is_null()) {
      throw std::runtime_error(at + ": \"content\" must be a string or a list of parts");
    }
    if (m.contains("reasoning_content") && m["reasoning_content"].is_string())
      msg.reasoning = m["reasoning_content"].get<std::string>();
    messages.push_back(std::move(msg));
  }
  return messages;
}

ChatRendering renderChat(ChatFormat format, const std::vector<ChatMessage>& messages,
                         const ChatOptions& options) {
  switch (format) {
    case ChatFormat::LlavaOneVision:
      return renderLlavaOneVision(messages, options);
    case ChatFormat::Qwen25:
    case ChatFormat::Qwen3:
    case ChatFormat::ChatMl:
      return renderQwen(format, messages, options);
  }
  throw std::logic_error("renderChat: unknown format");
}

TokenizedChat tokenizeChat(const Tokenizer& tokenizer, const ChatRendering& rendering,
                           const ImageExpansion& images) {
  // NFC first, piece by piece, so the tokenizer's offsets are exact and the trained ranges move
  // with their text (the template's own text is ASCII, so no composition crosses a boundary).
  std::string text;
  std::vector<std::pair<size_t, size_t>> trained;
  size_t last = 0;
  for (const auto& [b, e] : rendering.trained) {
    text += unicode::nfc(rendering.text.substr(last, b - last));
    const size_t begin = text.size();
    text += unicode::nfc(rendering.text.substr(b, e - b));
    trained.emplace_back(begin, text.size());
    last = e;
  }
  text += unicode::nfc(rendering.text.substr(last));

  TokenizedChat out;
  auto isTrained = [&](size_t at) {
    for (const auto& [b, e] : trained)
      if (at >= b && at < e) return true;
    return false;
  };
  auto encodeSpan = [&](size_t begin, size_t end) {
    std::vector<size_t> starts;
    const auto ids = tokenizer.encodeWithOffsets(text.substr(begin, end - begin), &starts);
    for (size_t k = 0; k < ids.size(); ++k) {
      out.ids.push_back(ids[k]);
      out.trained.push_back(isTrained(begin + starts[k]) ? 1 : 0);
    }
  };
  size_t from = 0;
  if (images.imageTokens > 0 && !images.placeholder.empty()) {
    for (size_t at = text.find(images.placeholder); at != std::string::npos;
         at = text.find(images.placeholder, from)) {
      encodeSpan(from, at);
      out.ids.insert(out.ids.end(), static_cast<size_t>(images.imageTokens), images.tokenId);
      out.trained.insert(out.trained.end(), static_cast<size_t>(images.imageTokens), 0);
      from = at + images.placeholder.size();
    }
  }
  encodeSpan(from, text.size());
  return out;
}

}  // namespace pivot
