// The few Unicode operations tokenizers need: NFC, lossy UTF-8 decoding, and GPT-2's byte-level
// alphabet (every byte spelled as one printable character, so BPE never sees a raw space).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pivot::unicode {

// Byte offset of the first byte that does not start or continue a well-formed UTF-8 sequence, or
// npos when the whole string is well formed.
size_t firstInvalidUtf8(std::string_view text);

// Canonical composition (NFC). Throws, naming the byte offset, for text that is not UTF-8.
std::string nfc(std::string_view text);

// Bytes to text as Hugging Face decodes them (Rust's from_utf8_lossy, WHATWG's decoder): every
// maximal ill-formed subsequence becomes one U+FFFD.
std::string utf8Lossy(std::string_view bytes);

// GPT-2's byte-level alphabet: byte b is written as the UTF-8 of one code point (printable Latin-1
// bytes as themselves, the others as U+0100 + k in byte order, so a space is "Ġ", a newline "Ċ").
const std::array<std::string, 256>& byteLevelAlphabet();
// Appends the bytes a byte-level string spells. False when a character is outside the alphabet
// (then nothing is appended).
bool appendByteLevelBytes(std::string_view spelled, std::string& bytes);

// The code point that starts at text[pos] and its byte length (0, returning 0, where the bytes
// there are not well-formed UTF-8).
char32_t codePointAt(std::string_view text, size_t pos, size_t* length);

}  // namespace pivot::unicode
