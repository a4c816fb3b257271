// core/text: the Hugging Face byte-level BPE tokenizer against an independent implementation
// (@huggingface/tokenizers, tests/data/tokenizer/reference.json over corpus.json), its added-token
// rules on a hand-built tokenizer whose ids are worked out by hand, UTF-8 handling, and errors.
#include <QtTest/QtTest>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "text/hf_tokenizer.h"
#include "text/unicode.h"
#include "text/word_tokenizer.h"

using namespace pivot;
using json = nlohmann::json;

namespace {

const std::string kQwenDir = PIVOT_SOURCE_DIR "/tests/data/qwen2.5-tokenizer";
const std::string kReference = PIVOT_SOURCE_DIR "/tests/data/tokenizer/reference.json";
const std::string kCorpus = PIVOT_SOURCE_DIR "/tests/data/tokenizer/corpus.json";

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

QString errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return QString::fromStdString(e.what());
  }
  return {};
}

}  // namespace

class TestText : public QObject {
  Q_OBJECT

 private Q_SLOTS:
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
};

QTEST_GUILESS_MAIN(TestText)
#include "test_text.moc"
