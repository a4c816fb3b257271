// `pivot tokenize`: what a Hugging Face tokenizer makes of a text or a conversation, and
// `pivot bench tokenizer`: encode speed against Hugging Face's JS implementation on the same text.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/text_file.h"
#include "commands.h"
#include "text/chat_template.h"
#include "text/hf_tokenizer.h"

namespace pivot::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string readAll(std::istream& in) {
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A token's text for a terminal: JSON string escaping makes newlines and tabs visible.
std::string shown(const std::string& text) { return json(text).dump(); }

void printTokens(const HfTokenizer& tokenizer, const std::vector<int64_t>& ids,
                 const std::vector<uint8_t>* trained, const TokenizeArgs& args) {
  if (args.idsOnly) {
    for (size_t k = 0; k < ids.size(); ++k) std::cout << (k ? " " : "") << ids[k];
    std::cout << "\n";
    return;
  }
  for (size_t k = 0; k < ids.size(); ++k) {
    const std::string token = tokenizer.token(ids[k]);
    const std::string text = tokenizer.decode({ids[k]});
    if (args.json) {
      json line = {{"id", ids[k]}, {"token", token}, {"text", text}};
      if (trained) line["trained"] = (*trained)[k] != 0;
      std::cout << line.dump() << "\n";
    } else {
      std::printf("%8lld  %-24s %s%s\n", static_cast<long long>(ids[k]), shown(token).c_str(),
                  shown(text).c_str(), trained && (*trained)[k] ? "  [trained]" : "");
    }
  }
}

}  // namespace

int cmdTokenize(const TokenizeArgs& args) {
  const HfTokenizer tokenizer = HfTokenizer::load(args.tokenizer);
  if (!args.chat.empty()) {
    const ChatFormat format = args.chatFormat.empty()
                                  ? recogniseChatTemplate(tokenizer.chatTemplate())
                                  : chatFormatFromName(args.chatFormat);
    const auto messages = parseChatMessages(readTextFile(args.chat), args.chat);
    ChatOptions options;
    options.addGenerationPrompt = args.addGenerationPrompt;
    const ChatRendering rendering = renderChat(format, messages, options);
    const TokenizedChat tokens = tokenizeChat(tokenizer, rendering);
    if (args.json) {
      std::cout << json({{"format", name(format)},
                         {"text", rendering.text},
                         {"ids", tokens.ids},
                         {"trained", tokens.trained}})
                       .dump()
                << "\n";
      return 0;
    }
    std::cout << "format: " << name(format) << "\n" << rendering.text;
    if (!rendering.text.empty() && rendering.text.back() != '\n') std::cout << "\n";
    std::cout << "--- " << tokens.ids.size() << " tokens ("
              << std::count(tokens.trained.begin(), tokens.trained.end(), 1) << " trained)\n";
    printTokens(tokenizer, tokens.ids, &tokens.trained, args);
    return 0;
  }
  if (!args.textGiven)
    throw std::runtime_error("pivot tokenize: give a TEXT, '-' for standard input, or --chat FILE");
  const std::string text = args.text == "-" ? readAll(std::cin) : args.text;
  printTokens(tokenizer, tokenizer.encode(text), nullptr, args);
  return 0;
}

namespace {

// The benchmark text: the tokenizer test corpus (prose, code, numbers, CJK, emoji, ...) repeated
// with numbered variations until it reaches `bytes`, so caches see new pieces throughout.
std::string benchmarkText(size_t bytes) {
  const json corpus = json::parse(
      readTextFile(std::string(PIVOT_SOURCE_DIR) + "/tests/data/tokenizer/corpus.json"));
  std::string text;
  for (size_t round = 0; text.size() < bytes; ++round)
    for (const auto& entry : corpus) {
      const std::string t = entry["text"];
      if (t.size() > 400) continue;  // the long-word stress cases would dominate
      text += t + " #" + std::to_string(round) + "\n";
    }
  return text;
}

// Hugging Face's JS tokenizers on the same text, in node: {"load_s", "encode_s", "tokens"}.
std::optional<json> runJsReference(const std::string& node, const std::string& module,
                                   const std::string& tokenizerDir, const std::string& textPath) {
  const fs::path script = fs::temp_directory_path() / "pivot-bench-tokenizer.mjs";
  std::ofstream(script) << R"(import { readFileSync } from "node:fs";
const [moduleUrl, dir, textPath] = process.argv.slice(2);
const { Tokenizer } = await import(moduleUrl);
const text = readFileSync(textPath, "utf8");
let t0 = performance.now();
const tokenizer = new Tokenizer(JSON.parse(readFileSync(dir + "/tokenizer.json", "utf8")),
                                JSON.parse(readFileSync(dir + "/tokenizer_config.json", "utf8")));
const load = (performance.now() - t0) / 1000;
tokenizer.encode(text.slice(0, 100000), { add_special_tokens: false });  // warm-up
t0 = performance.now();
const { ids } = tokenizer.encode(text, { add_special_tokens: false });
const encode = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ load_s: load, encode_s: encode, tokens: ids.length }));
)";
  const std::string command = node + " " + script.string() + " 'file://" + module + "' '" +
                              tokenizerDir + "' '" + textPath + "' 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return std::nullopt;
  std::string out;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  const int status = pclose(pipe);
  fs::remove(script);
  if (status != 0) {
    std::cerr << "bench: the JS reference failed:\n" << out;
    return std::nullopt;
  }
  return json::parse(out.substr(out.rfind('{')));
}

}  // namespace

int cmdBenchTokenizer(const TokenizerBenchArgs& args) {
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  const std::string text = benchmarkText(static_cast<size_t>(args.megabytes * 1e6));
  auto t0 = Clock::now();
  const HfTokenizer tokenizer = HfTokenizer::load(args.tokenizer);
  const double load = seconds(t0, Clock::now());
  tokenizer.encode(text.substr(0, 100000));  // the same warm-up as the JS side
  t0 = Clock::now();
  const auto ids = tokenizer.encode(text);
  const double encode = seconds(t0, Clock::now());
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf("tokenizer bench: %.1f MB of text (the test corpus, varied), one core\n", mb);
  std::printf("  C++ (pivot)            load %.3f s   encode %7.2f MB/s   %zu tokens\n", load,
              mb / encode, ids.size());

  const std::string module = args.jsModule.empty()
                                 ? std::string(PIVOT_SOURCE_DIR) +
                                       "/tests/data/tokenizer/node_modules/@huggingface/"
                                       "tokenizers/dist/tokenizers.mjs"
                                 : args.jsModule;
  if (!fs::exists(module)) {
    std::printf(
        "  JS reference: %s not found; install it with\n"
        "    cd tests/data/tokenizer && npm install --no-save @huggingface/tokenizers@0.2.0\n",
        module.c_str());
    return 0;
  }
  const fs::path textPath = fs::temp_directory_path() / "pivot-bench-tokenizer.txt";
  std::ofstream(textPath, std::ios::binary) << text;
  const auto js = runJsReference(args.node, module, args.tokenizer, textPath.string());
  fs::remove(textPath);
  if (!js) return 1;
  const double jsEncode = (*js)["encode_s"];
  std::printf("  JS (@huggingface/tokenizers) load %.3f s   encode %7.2f MB/s   %lld tokens\n",
              (*js)["load_s"].get<double>(), mb / jsEncode,
              static_cast<long long>((*js)["tokens"].get<int64_t>()));
  std::printf("  C++ / JS encode speed: %.2fx (goal >= 3x)%s\n", jsEncode / encode,
              (*js)["tokens"].get<size_t>() == ids.size() ? "" : "  [token counts differ!]");
  return 0;
}

}  // namespace pivot::cli
