#include "text/unicode.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <unordered_map>

namespace pivot::unicode {
namespace {

// The bounds of the second byte of a sequence started by `lead`, and how many continuation bytes
// follow; 0 continuation bytes for a byte that cannot start a sequence (Unicode table 3-7).
struct Lead {
  int continuations;
  unsigned char low, high;
};

Lead leadOf(unsigned char b) {
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {2, 0x80, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};  // no surrogates
  if (b == 0xF0) return {3, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};  // nothing above U+10FFFF
  return {0, 0, 0};
}

// Length of the well-formed sequence at text[pos], or 0 with *badEnd = the end of the maximal
// ill-formed subpart (at least pos + 1).
size_t sequenceAt(std::string_view text, size_t pos, size_t* badEnd) {
  const auto b = static_cast<unsigned char>(text[pos]);
  if (b < 0x80) return 1;
  const Lead lead = leadOf(b);
  size_t j = pos + 1;
  for (int k = 0; k < lead.continuations; ++k, ++j) {
    const unsigned char low = k == 0 ? lead.low : 0x80, high = k == 0 ? lead.high : 0xBF;
    if (j >= text.size()) break;
    const auto c = static_cast<unsigned char>(text[j]);
    if (c < low || c > high) break;
    if (k + 1 == lead.continuations) return j + 1 - pos;
  }
  *badEnd = j;
  return 0;
}

}  // namespace

size_t firstInvalidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t badEnd = 0;
    const size_t n = sequenceAt(text, i, &badEnd);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

std::string nfc(std::string_view text) {
  bool ascii = true;
  for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) return std::string(text);  // ASCII is its own NFC
  const size_t bad = firstInvalidUtf8(text);
  if (bad != std::string_view::npos)
    throw std::runtime_error("text is not valid UTF-8 at byte " + std::to_string(bad));
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &out,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw std::runtime_error(std::string("NFC failed: ") + utf8proc_errmsg(n));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

std::string utf8Lossy(std::string_view bytes) {
  static const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t badEnd = 0;
    const size_t n = sequenceAt(bytes, i, &badEnd);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += kReplacement;
      i = badEnd;
    }
  }
  return out;
}

namespace {

std::string encodeUtf8(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

const std::unordered_map<char32_t, unsigned char>& byteOfCodePoint() {
  static const auto table = [] {
    std::unordered_map<char32_t, unsigned char> t;
    const auto& alphabet = byteLevelAlphabet();
    for (int b = 0; b < 256; ++b) {
      size_t length = 0;
      t[codePointAt(alphabet[static_cast<size_t>(b)], 0, &length)] = static_cast<unsigned char>(b);
    }
    return t;
  }();
  return table;
}

}  // namespace

const std::array<std::string, 256>& byteLevelAlphabet() {
  static const auto alphabet = [] {
    std::array<std::string, 256> a;
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b)
      a[static_cast<size_t>(b)] = encodeUtf8(printable(b) ? static_cast<char32_t>(b) : next++);
    return a;
  }();
  return alphabet;
}

bool appendByteLevelBytes(std::string_view spelled, std::string& bytes) {
  const auto& table = byteOfCodePoint();
  const size_t start = bytes.size();
  for (size_t i = 0; i < spelled.size();) {
    size_t length = 0;
    const char32_t cp = codePointAt(spelled, i, &length);
    auto it = length ? table.find(cp) : table.end();
    if (it == table.end()) {
      bytes.resize(start);
      return false;
    }
    bytes += static_cast<char>(it->second);
    i += length;
  }
  return true;
}

char32_t codePointAt(std::string_view text, size_t pos, size_t* length) {
  size_t badEnd = 0;
  const size_t n = sequenceAt(text, pos, &badEnd);
  *length = n;
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (n == 0) return 0;
  if (n == 1) return b0;
  char32_t cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(text[pos + k]) & 0x3F);
  return cp;
}

}  // namespace pivot::unicode
