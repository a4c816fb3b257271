// core/text: the Hugging Face byte-level BPE tokenizer against an independent implementation
// (@huggingface/tokenizers, tests/data/tokenizer/reference.json over corpus.json), its added-token
// rules on a hand-built tokenizer whose ids are worked out by hand, UTF-8 handling, and errors.
#include <QtTest/QtTest>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "text/chat_template.h"
#include "text/hf_tokenizer.h"
#include "text/unicode.h"
#include "text/word_tokenizer.h"
#include "test_util.h"

using namespace pivot;
using json = nlohmann::json;

namespace {

const std::string kQwenDir = PIVOT_SOURCE_DIR "/tests/data/qwen2.5-tokenizer";
const std::string kReference = PIVOT_SOURCE_DIR "/tests/data/tokenizer/reference.json";
const std::string kCorpus = PIVOT_SOURCE_DIR "/tests/data/tokenizer/corpus.json";
const std::string kTemplates = PIVOT_SOURCE_DIR "/tests/data/chat-templates/";

std::string readText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const HfTokenizer& qwen() {
  static const HfTokenizer tokenizer = HfTokenizer::load(kQwenDir);
  return tokenizer;
}

// A byte-level BPE small enough to work out by hand: the 256 byte tokens (ids 0-255 in byte
// order, so 'a' = 97 and the space 'Ġ' = 32), three merges, added tokens far above.
json tinyTokenizer() {
  json vocab = json::object();
  const auto& alphabet = unicode::byteLevelAlphabet();
  for (int b = 0; b < 256; ++b) vocab[alphabet[static_cast<size_t>(b)]] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab["Ġa"] = 258;
  return {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 300}, {"content", "<s>"}, {"special", true}},
        {{"id", 301}, {"content", "[L]"}, {"special", false}, {"lstrip", true}},
        {{"id", 302}, {"content", "[R]"}, {"special", false}, {"rstrip", true}},
        {{"id", 303}, {"content", "word"}, {"special", false}, {"single_word", true}},
        {{"id", 304}, {"content", "é!"}, {"special", false}, {"normalized", true}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", R"( ?\p{L}+|\s+|[^\s\p{L}]+)"}}},
           {"behavior", "Isolated"}},
          {{"type", "ByteLevel"}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", "ab c", "Ġ a"}}}},
  };
}

HfTokenizer tiny(const json& j = tinyTokenizer(), const std::string& config = "") {
  return HfTokenizer::fromJson(j.dump(), config, "tiny/tokenizer.json");
}

std::vector<int64_t> ids(std::initializer_list<int64_t> l) { return l; }

}  // namespace

class TestText : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  // A ShapesWorld model's exported tokenizer files: the WordLevel vocabulary is the word
  // tokenizer's, id for id; the chat template is the one python3-jinja2 rendered into the
  // fixture, and every rendering reads back as the trainer's own prompt and response ids.
  void shapesWorldTokenizerExportsAsHuggingFaceFiles() {
    const WordTokenizer words = WordTokenizer::shapesWorld();
    const json tokenizer = json::parse(words.hfTokenizerJson());
    QCOMPARE(tokenizer["model"]["type"].get<std::string>(), std::string("WordLevel"));
    QCOMPARE(tokenizer["pre_tokenizer"]["type"].get<std::string>(), std::string("WhitespaceSplit"));
    QCOMPARE(static_cast<int64_t>(tokenizer["model"]["vocab"].size()), words.vocabSize());
    for (const auto& [word, id] : tokenizer["model"]["vocab"].items())
      QCOMPARE(id.get<int64_t>(), words.id(word));
    QCOMPARE(tokenizer["added_tokens"].size(), size_t{5});
    for (const auto& added : tokenizer["added_tokens"])
      QCOMPARE(added["id"].get<int64_t>(), words.id(added["content"].get<std::string>()));

    const std::string dir = PIVOT_SOURCE_DIR "/tests/data/shapesworld-tokenizer/";
    const json config = json::parse(words.hfTokenizerConfigJson());
    QCOMPARE(config["chat_template"].get<std::string>(), readText(dir + "chat_template.jinja"));
    const json renderings = json::parse(readText(dir + "renderings.json"));
    QCOMPARE(renderings.size(), size_t{3});
    for (const auto& r : renderings) {
      const auto question = r["question"].get<std::string>(),
                 answer = r["answer"].get<std::string>();
      auto expected = words.encodePrompt(question, /*imageTokens=*/1);
      QCOMPARE(words.encode(r["generation_prompt"].get<std::string>()), expected);
      const auto response = words.encodeResponse(answer);
      expected.insert(expected.end(), response.begin(), response.end());
      QCOMPARE(words.encode(r["conversation"].get<std::string>()), expected);
    }
  }

  // Every text of the corpus: the ids, the tokens, the decodings (whole, without special tokens,
  // and id by id, where a split character must become U+FFFD) equal the JS implementation's, and
  // decode(encode(x)) is NFC(x).
  void qwenMatchesTheIndependentImplementation() {
    const json corpus = json::parse(readText(kCorpus));
    const json reference = json::parse(readText(kReference));
    QCOMPARE(reference["entries"].size(), corpus.size());
    for (size_t i = 0; i < corpus.size(); ++i) {
      const std::string name = corpus[i]["name"];
      const std::string text = corpus[i]["text"];
      const json& ref = reference["entries"][i];
      QCOMPARE(ref["name"].get<std::string>(), name);
      const auto got = qwen().encode(text);
      if (got != ref["ids"].get<std::vector<int64_t>>()) {
        std::ostringstream diff;
        diff << name << ": ids differ; got";
        for (size_t k = 0; k < std::min<size_t>(got.size(), 40); ++k) diff << ' ' << got[k];
        diff << " want " << ref["ids"].dump().substr(0, 300);
        QFAIL(diff.str().c_str());
      }
      std::vector<std::string> tokens;
      for (auto id : got) tokens.push_back(qwen().token(id));
      QVERIFY2(tokens == ref["tokens"].get<std::vector<std::string>>(), name.c_str());
      QCOMPARE(qwen().decode(got), ref["decoded"].get<std::string>());
      QCOMPARE(qwen().decode(got, /*skipSpecialTokens=*/true),
               ref["decoded_skip_special"].get<std::string>());
      QCOMPARE(qwen().decode(got), ref["nfc"].get<std::string>());
      for (size_t k = 0; k < got.size(); ++k)
        QCOMPARE(qwen().decode({got[k]}), ref["decoded_each"][k].get<std::string>());
    }
  }

  // What a user relies on without reading the reference: special tokens are single ids, the
  // non-special added tokens survive skip_special_tokens, no BOS is added, and the config's names.
  void qwenSpecialTokens() {
    const auto imStart = qwen().tokenId("<|im_start|>");
    QVERIFY(imStart);
    QCOMPARE(*imStart, int64_t{151644});
    QCOMPARE(qwen().vocabSize(), int64_t{151665});
    QCOMPARE(qwen().encode("<|im_start|>"), ids({151644}));
    QVERIFY(qwen().isSpecial(151644));
    QVERIFY(!qwen().isSpecial(151657));  // <tool_call>
    QCOMPARE(qwen().decode({151644, 151657, 151645}, true), std::string("<tool_call>"));
    QCOMPARE(qwen().eosId().value_or(-1), int64_t{151645});
    QCOMPARE(qwen().padId().value_or(-1), int64_t{151643});
    QVERIFY(!qwen().bosId());
    QVERIFY(qwen().chatTemplate().find("<|im_start|>") != std::string::npos);
    QCOMPARE(qwen().encode("Hi")[0], *qwen().tokenId("Hi"));  // nothing before the text
  }

  // Newer files (Qwen3's) store merges as ["a", "b"] pairs: the same ids either way.
  void mergesAsPairsGiveTheSameIds() {
    json j = json::parse(readText(kQwenDir + "/tokenizer.json"));
    for (auto& m : j["model"]["merges"]) {
      const std::string s = m;
      const size_t space = s.find(' ', 1);
      m = json::array({s.substr(0, space), s.substr(space + 1)});
    }
    const HfTokenizer pairs = HfTokenizer::fromJson(j.dump(), "", "pairs/tokenizer.json");
    const json corpus = json::parse(readText(kCorpus));
    for (const auto& entry : corpus)
      QCOMPARE(pairs.encode(entry["text"]), qwen().encode(entry["text"]));
  }

  // The hand-built tokenizer: merges by rank, the pre-tokenizer's pieces, added-token rules.
  void bpeMergesByRankWithinPieces() {
    const HfTokenizer t = tiny();
    QCOMPARE(t.encode("abc"), ids({257}));        // a b -> ab (rank 0), ab c -> abc (rank 1)
    QCOMPARE(t.encode("abab"), ids({256, 256}));  // both "a b" pairs, left first
    QCOMPARE(t.encode("cab"), ids({99, 256}));    // c stays, ab merges
    QCOMPARE(t.encode(" abc"), ids({32, 257}));   // "a b" (rank 0) before "Ġ a" (rank 2)
    QCOMPARE(t.encode(" a"), ids({258}));
  }

  void addedTokensFollowTheirFlags() {
    const HfTokenizer t = tiny();
    QCOMPARE(t.encode("a<s>b"), ids({97, 300, 98}));
    QCOMPARE(t.decode({97, 300, 98}), std::string("a<s>b"));
    QCOMPARE(t.decode({97, 300, 98}, true), std::string("ab"));
    QCOMPARE(t.decode({97, 301, 98}, true), std::string("a[L]b"));  // not special: kept
    QCOMPARE(t.encode("a  [L]"), ids({97, 301}));                   // lstrip eats the spaces
    QCOMPARE(t.encode("[R]  a"), ids({302, 97}));                   // rstrip eats the spaces
    QCOMPARE(t.encode("a word"), ids({97, 32, 303}));               // a whole word
    QCOMPARE(t.encode("swordy").size(), size_t{6});                 // inside a word: plain text
    // "normalized": matched after NFC, so the decomposed e + U+0301 finds it too.
    QCOMPARE(t.encode("\xC3\xA9!"), ids({304}));
    QCOMPARE(t.encode("e\xCC\x81!"), ids({304}));
    QCOMPARE(t.vocabSize(), int64_t{305});
    QVERIFY(errorOf([&] { t.token(280); }).contains("no token has id 280"));
    QVERIFY(errorOf([&] { t.decode({999}); }).contains("999"));
  }

  void utf8IsDecodedAsHuggingFaceDoes() {
    const std::string fffd = "\xEF\xBF\xBD";
    QCOMPARE(unicode::utf8Lossy("a\xE2\x82"), "a" + fffd);  // truncated: one
    QCOMPARE(unicode::utf8Lossy("\xF0\x9F\x98"
                                "A"),
             fffd + "A");                                              // maximal subpart
    QCOMPARE(unicode::utf8Lossy("\xC0\xAF"), fffd + fffd);             // overlong: each byte
    QCOMPARE(unicode::utf8Lossy("\xED\xA0\x80"), fffd + fffd + fffd);  // a surrogate
    QCOMPARE(unicode::utf8Lossy("\xE2\x82\xAC"), std::string("\xE2\x82\xAC"));  // the euro sign
    QCOMPARE(unicode::nfc("e\xCC\x81"), std::string("\xC3\xA9"));
    QCOMPARE(unicode::firstInvalidUtf8("ok\xFFno"), size_t{2});
    QCOMPARE(unicode::byteLevelAlphabet()[' '], std::string("\xC4\xA0"));   // Ġ
    QCOMPARE(unicode::byteLevelAlphabet()['\n'], std::string("\xC4\x8A"));  // Ċ
    QVERIFY(errorOf([] { qwen().encode("bad \xC3 byte"); }).contains("not valid UTF-8 at byte 4"));
  }

  // A file this reader cannot honour is an error naming the file and the field.
  void unsupportedOrBrokenFilesNameTheField() {
    json j = tinyTokenizer();
    j["model"]["type"] = "Unigram";
    QVERIFY(errorOf([&] { tiny(j); }).contains("tiny/tokenizer.json: field 'model.type'"));
    j = tinyTokenizer();
    j["normalizer"] = {{"type", "NFKC"}};
    QVERIFY(errorOf([&] { tiny(j); }).contains("'normalizer.type' is \"NFKC\""));
    j = tinyTokenizer();
    j["model"]["merges"].push_back("x zz");
    QVERIFY(errorOf([&] { tiny(j); }).contains("'model.merges[3]'"));
    j = tinyTokenizer();
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
    QVERIFY(errorOf([&] { tiny(j); }).contains("pre_tokenizer.pretokenizers[0].pattern.Regex"));
    j = tinyTokenizer();
    j["pre_tokenizer"] = {{"type", "Whitespace"}};
    QVERIFY(errorOf([&] { tiny(j); }).contains("'pre_tokenizer.type' is \"Whitespace\""));
    // One corrupt id must not size the id table (review row 1.13: 6.4 GB, or std::bad_alloc).
    j = tinyTokenizer();
    j["model"]["vocab"]["ab"] = 200000000;
    QVERIFY2(errorOf([&] { tiny(j); })
                 .contains("tiny/tokenizer.json: field 'model.vocab[\"ab\"]' is id 200000000, far "
                           "beyond the 259 tokens of model.vocab"),
             qPrintable(errorOf([&] { tiny(j); })));
    j = tinyTokenizer();
    j["added_tokens"][0]["id"] = 1000000000;
    QVERIFY(errorOf([&] { tiny(j); }).contains("field 'added_tokens[0].id' is id 1000000000"));
    QVERIFY(errorOf([] {
              HfTokenizer::fromJson("{\n\"model\":\n{,", "", "x/tokenizer.json");
            }).contains("x/tokenizer.json: line 3"));
    QVERIFY(errorOf([] {
              HfTokenizer::load("/nonexistent");
            }).contains("/nonexistent/tokenizer.json: cannot be read"));
    QVERIFY(errorOf([] {
              tiny(tinyTokenizer(), R"({"eos_token": "<nope>"})");
            }).contains("tiny/tokenizer_config.json: field 'eos_token' names \"<nope>\""));
  }

  // Every conversation rendered by every verified template equals the Jinja engine's rendering
  // byte for byte (tests/data/chat-templates/renderings.json, made by python3-jinja2).
  void chatTemplatesMatchJinja() {
    const json conversations = json::parse(readText(kTemplates + "conversations.json"));
    const json renderings = json::parse(readText(kTemplates + "renderings.json"))["renderings"];
    QVERIFY(renderings.size() >= 18);
    for (const auto& r : renderings) {
      const std::string conversation = r["conversation"], templ = r["template"];
      const auto it = std::find_if(conversations.begin(), conversations.end(),
                                   [&](const json& c) { return c["name"] == conversation; });
      QVERIFY(it != conversations.end());
      const ChatFormat format = recogniseChatTemplate(readText(kTemplates + templ + ".jinja"));
      ChatOptions options;
      options.addGenerationPrompt = it->value("add_generation_prompt", false);
      if (it->contains("kwargs") && (*it)["kwargs"].contains("enable_thinking"))
        options.enableThinking = (*it)["kwargs"]["enable_thinking"].get<bool>();
      const auto messages = parseChatMessages((*it)["messages"].dump(), conversation);
      const std::string label = conversation + " / " + templ;
      QVERIFY2(renderChat(format, messages, options).text == r["text"].get<std::string>(),
               (label + ": rendering differs from Jinja's").c_str());
    }
  }

  void chatTemplatesAreRecognisedOrRefused() {
    QCOMPARE(recogniseChatTemplate(readText(kTemplates + "qwen2.5.jinja")), ChatFormat::Qwen25);
    QCOMPARE(recogniseChatTemplate(readText(kTemplates + "qwen3.jinja")), ChatFormat::Qwen3);
    QCOMPARE(recogniseChatTemplate(readText(kTemplates + "llava-onevision.jinja")),
             ChatFormat::LlavaOneVision);
    QCOMPARE(recogniseChatTemplate(qwen().chatTemplate()), ChatFormat::Qwen25);
    // Re-indented: still the same template.
    std::string reindented = readText(kTemplates + "qwen3.jinja");
    reindented.insert(reindented.find("{%- for message in messages %}"), "\n\n   ");
    QCOMPARE(recogniseChatTemplate(reindented), ChatFormat::Qwen3);
    // One changed word: refused, naming the override.
    std::string changed = readText(kTemplates + "qwen2.5.jinja");
    changed.replace(changed.find("helpful"), 7, "careful");
    const QString error = errorOf([&] { recogniseChatTemplate(changed); });
    QVERIFY2(error.contains("--chat-format") &&
                 error.contains("qwen2.5, qwen3, llava-onevision, chatml"),
             qPrintable(error));
    QVERIFY(errorOf([] { recogniseChatTemplate(""); }).contains("no chat_template"));
    QCOMPARE(chatFormatFromName("qwen3"), ChatFormat::Qwen3);
    QVERIFY(errorOf([] { chatFormatFromName("llama"); }).contains("unknown chat format 'llama'"));
  }

  // Only the assistant's answers and their <|im_end|> are trained; the image placeholder becomes
  // the image token repeated, never trained.
  void chatLabelsMaskThePrompt() {
    const auto messages = parseChatMessages(
        R"([{"role": "user", "content": "<image>\nWhat colour is the square?"},
            {"role": "assistant", "content": "The square is red."},
            {"role": "user", "content": "And the circle?"},
            {"role": "assistant", "content": "Blue."}])",
        "pair.json");
    const ChatRendering r = renderChat(ChatFormat::Qwen25, messages);
    ImageExpansion images;
    images.tokenId = 151655;  // <|image_pad|>, standing in for a LLaVA image token
    images.imageTokens = 16;
    const TokenizedChat t = tokenizeChat(qwen(), r, images);
    QCOMPARE(t.ids.size(), t.trained.size());
    std::vector<int64_t> trained, prompt;
    for (size_t k = 0; k < t.ids.size(); ++k) (t.trained[k] ? trained : prompt).push_back(t.ids[k]);
    QCOMPARE(qwen().decode(trained), std::string("The square is red.<|im_end|>Blue.<|im_end|>"));
    QCOMPARE(std::count(t.ids.begin(), t.ids.end(), int64_t{151655}), 16L);
    // Prompt + trained, in order, is the whole rendering with the placeholder expanded.
    std::string expanded = r.text;
    std::string pads;
    for (int k = 0; k < 16; ++k) pads += "<|image_pad|>";
    expanded.replace(expanded.find("<image>"), 7, pads);
    QCOMPARE(qwen().decode(t.ids), expanded);
    // Without expansion the placeholder stays text (Qwen has no <image> token).
    const TokenizedChat plain = tokenizeChat(qwen(), r);
    QCOMPARE(qwen().decode(plain.ids), r.text);

    // Qwen3: the empty think block before the last answer is scaffolding; real reasoning trains.
    const auto reasoning = parseChatMessages(
        R"([{"role": "user", "content": "2 + 2?"},
            {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
            {"role": "user", "content": "times 3?"},
            {"role": "assistant", "content": "12"}])",
        "reasoning.json");
    const ChatRendering q3 = renderChat(ChatFormat::Qwen3, reasoning);
    std::string q3Trained;
    for (const auto& [b, e] : q3.trained) q3Trained += q3.text.substr(b, e - b) + "|";
    QCOMPARE(q3Trained, std::string("4<|im_end|>|12<|im_end|>|"));
    QVERIFY(q3.text.find("<think>\n\n</think>\n\n12") != std::string::npos);
  }

  void chatMessagesThatDoNotFitAreErrors() {
    const auto list = parseChatMessages(
        R"([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}])",
        "l.json");
    QVERIFY(errorOf([&] {
              renderChat(ChatFormat::Qwen25, list);
            }).contains("message 0 (user): the qwen2.5 template takes text content"));
    // Found by fuzz_chat_messages: a part whose "type" is a number is the same clear error as an
    // unknown type, not nlohmann's type_error.
    QVERIFY(errorOf([] {
              parseChatMessages(R"([{"role": "user", "content": [{"type": 6666666666666666666}]}])",
                                "n.json");
            }).contains("n.json: message 0: content[0] must be"));
    const auto text = parseChatMessages(R"([{"role": "user", "content": "Hi"}])", "t.json");
    QVERIFY(
        errorOf([&] { renderChat(ChatFormat::LlavaOneVision, text); }).contains("content lists"));
    const auto role = parseChatMessages(R"([{"role": "robot", "content": "Hi"}])", "r.json");
    QVERIFY(errorOf([&] { renderChat(ChatFormat::ChatMl, role); }).contains("unknown role"));
    QVERIFY(errorOf([] {
              parseChatMessages(R"([{"content": "Hi"}])", "x.json");
            }).contains("x.json: message 0: needs a \"role\""));
    QVERIFY(errorOf([] {
              parseChatMessages(R"([{"role": "user", "content": [{"type": "audio"}]}])", "y.json");
            }).contains("y.json: message 0: content[0]"));
  }

  // Offsets: each token's first byte in the text (exact for NFC text).
  void offsetsPointAtTheTokens() {
    const std::string text = "Hello <|im_end|> wörld  42";
    std::vector<size_t> starts;
    const auto got = qwen().encodeWithOffsets(text, &starts);
    QCOMPARE(starts.size(), got.size());
    for (size_t k = 0; k < got.size(); ++k) {
      const size_t end = k + 1 < got.size() ? starts[k + 1] : text.size();
      QCOMPARE(qwen().decode({got[k]}), text.substr(starts[k], end - starts[k]));
    }
  }

  // The ShapesWorld tokenizer behind the same interface.
  void wordTokenizerIsATokenizer() {
    const WordTokenizer words = WordTokenizer::shapesWorld();
    const Tokenizer& t = words;
    const auto encoded = t.encode("red");
    QCOMPARE(encoded.size(), size_t{1});
    QCOMPARE(t.token(encoded[0]), std::string("red"));
    QCOMPARE(t.decode({WordTokenizer::kImStart, encoded[0]}, true), std::string("red"));
    QVERIFY(!t.tokenId("no-such-word"));
  }

  // Issue 30: a typed question in everyday spelling reads as the miniature writes its questions,
  // and a word it does not know is refused with the words it does.
  void miniatureQuestionsAreNormalisedAndUnknownWordsListed() {
    const WordTokenizer words = WordTokenizer::shapesWorld();
    QCOMPARE(words.normalise("What colour is the circle?"),
             std::string("what colour is the circle ?"));
    QCOMPARE(words.normalise("  Is there a RED square,  or a circle?  "),
             std::string("is there a red square , or a circle ?"));
    QCOMPARE(words.normalise("what colour is the circle ?"),
             std::string("what colour is the circle ?"));  // already normal: unchanged
    QCOMPARE(words.normalise("red."), std::string("red ."));
    QCOMPARE(words.normalise("well-known!"), std::string("well-known!"));  // not words: kept
    (void)words.encode(words.normalise("What colour is the circle?"));
    const std::string known = words.knownWords();
    QVERIFY(known.find("<pad>") == std::string::npos && known.find("<unk>") == std::string::npos);
    QVERIFY(known.find("circle") != std::string::npos);
    QVERIFY2(known.rfind("a, above, an, ", 0) == 0, known.c_str());
    const std::string tail = "; punctuation , . ?";
    QVERIFY2(known.size() > tail.size() && known.substr(known.size() - tail.size()) == tail,
             known.c_str());
    try {
      (void)words.encode("what hue is it ?");
      QFAIL("an unknown word was accepted");
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      QVERIFY2(what.find("unknown word 'hue'") != std::string::npos, e.what());
      QVERIFY2(what.find("(known words: " + known + ")") != std::string::npos, e.what());
    }
  }
};

QTEST_GUILESS_MAIN(TestText)
#include "test_text.moc"
