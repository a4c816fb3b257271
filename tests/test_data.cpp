// core/data datasets: LLaVA, preference (MMPR / PIVOT), TRL and MMPR meta.json files written by the
// test, broken ones (the error names file and line), the paper's filters, and the record index of
// a large generated file against a full parse.
#include <QTemporaryDir>
#include <fcntl.h>
#include <sys/stat.h>

#include <QtTest/QtTest>

#include <QThread>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "config/text_file.h"
#include "data/datasets.h"
#include "data/image_folder.h"
#include "data/record_index.h"
#include "text/chat_template.h"
#include "text/hf_tokenizer.h"
#include "test_util.h"

using namespace pivot;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

void writeText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
}

const HfTokenizer& qwen() {
  static const HfTokenizer t = HfTokenizer::load(PIVOT_SOURCE_DIR "/tests/data/qwen2.5-tokenizer");
  return t;
}

std::string textOf(const ChatMessage& m) { return m.parts.empty() ? "" : m.parts[0].text; }

}  // namespace

class TestData : public QObject {
  Q_OBJECT
  QTemporaryDir m_dir;
  std::string path(const char* name) { return m_dir.filePath(name).toStdString(); }

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(m_dir.isValid());
    // The record indexes' cache goes to the user's cache folder: here, inside the test's folder.
    qputenv("XDG_CACHE_HOME", m_dir.filePath("cache").toUtf8());
    fs::create_directories(path("images/coco"));
    for (const char* image : {"images/coco/1.jpg", "images/coco/2.jpg", "a.png", "b.png"})
      writeText(path(image), "not really an image, but a readable file");
  }

  // ImageFolder: classes in sorted order, images by extension, a 3:1:1 split by path hash that
  // adding images never reshuffles, the three-folder layout, balanced caps and clear errors.
  void imageFolderLayouts() {
    const std::string root = path("folder");
    for (const char* cls : {"zebra", "ant", "cat"})
      for (int k = 0; k < 25; ++k)
        writeText(root + "/" + cls + "/" + std::to_string(k) + (k % 2 ? ".JPG" : ".png"), "x");
    writeText(root + "/ant/notes.txt", "not an image");
    const ImageFolder folder = openImageFolder(root);
    QCOMPARE(folder.classes, std::vector<std::string>({"ant", "cat", "zebra"}));
    QCOMPARE(folder.train.size() + folder.val.size() + folder.test.size(), size_t{75});
    QVERIFY(folder.train.size() > folder.val.size() && folder.train.size() > folder.test.size());
    for (size_t i = 0; i < folder.val.size(); ++i) {  // labels follow the class folder
      const auto& cls = folder.classes[static_cast<size_t>(folder.val.labels[i])];
      QVERIFY(folder.val.paths[i].find("/" + cls + "/") != std::string::npos);
    }
    writeText(root + "/cat/new.png", "x");  // one more image: every other stays in its split
    const ImageFolder grown = openImageFolder(root);
    for (const auto* split : {&folder.test})
      for (const auto& p : split->paths)
        QVERIFY(std::find(grown.test.paths.begin(), grown.test.paths.end(), p) !=
                grown.test.paths.end());
    const auto capped = firstImages(folder.train, 6);  // two per class, round-robin
    QCOMPARE(capped.labels, std::vector<int64_t>({0, 1, 2, 0, 1, 2}));

    const std::string split = path("presplit");
    for (const char* s : {"train", "val", "test"})
      for (const char* cls : {"a", "b"}) writeText(split + "/" + s + "/" + cls + "/1.jpg", "x");
    const ImageFolder given = openImageFolder(split);
    QCOMPARE(given.train.size(), size_t{2});
    QVERIFY(given.test.paths[1].find("presplit/test/b/1.jpg") != std::string::npos);
    fs::create_directories(split + "/val/c");
    QVERIFY(errorOf([&] {
              openImageFolder(split);
            }).contains("presplit/val: its class folders differ from train/'s"));
    fs::remove_all(split + "/test");
    QVERIFY(errorOf([&] { openImageFolder(split); }).contains("has train/ but no test/"));
    fs::create_directories(path("empty/a"));
    fs::create_directories(path("empty/b"));
    QVERIFY(errorOf([&] {
              openImageFolder(path("empty"));
            }).contains("empty/a: class folder without images"));
    QVERIFY(errorOf([&] { openImageFolder(path("nowhere")); }).contains("nowhere: no such folder"));
  }

  void llavaInstructionFile() {
    const std::string file = path("llava.json");
    writeText(file, R"([
  {"id": "000001", "image": "images/coco/1.jpg",
   "conversations": [{"from": "human", "value": "<image>\nWhat is on the table?"},
                     {"from": "gpt", "value": "A red cup."},
                     {"from": "human", "value": "And beside it?"},
                     {"from": "gpt", "value": "A spoon, 'silver' [shiny]."}]},
  {"id": 2, "conversations": [{"from": "human", "value": "Text only {no image}"},
                              {"from": "gpt", "value": "Fine."}]}
])");
    const auto data = ConversationDataset::open(file);
    QCOMPARE(data.format(), DatasetFormat::Llava);
    QCOMPARE(data.size(), size_t{2});
    const DatasetRecord r = data.record(0);
    QCOMPARE(r.id, std::string("000001"));
    QCOMPARE(r.images.size(), size_t{1});
    QCOMPARE(r.images[0], path("images/coco/1.jpg"));
    QCOMPARE(r.conversation.size(), size_t{4});
    QCOMPARE(r.conversation[1].role, std::string("assistant"));
    QCOMPARE(textOf(r.conversation[3]), std::string("A spoon, 'silver' [shiny]."));
    QVERIFY(!r.isPreference());
    QCOMPARE(data.record(1).id, std::string("2"));
    QVERIFY2(QString::fromStdString(data.record(1).where).endsWith("llava.json:7 (record 1)"),
             data.record(1).where.c_str());
    // SFT trains every assistant turn, and only those.
    const auto rendering =
        renderChat(ChatFormat::Qwen25, recordConversation(r, ChatFormat::Qwen25));
    std::string trained;
    for (const auto& [b, e] : rendering.trained) trained += rendering.text.substr(b, e - b);
    QCOMPARE(trained, std::string("A red cup.<|im_end|>A spoon, 'silver' [shiny].<|im_end|>"));
    // LLaVA-OneVision takes content lists: the placeholder becomes an image part.
    const auto ov =
        renderChat(ChatFormat::LlavaOneVision, recordConversation(r, ChatFormat::LlavaOneVision));
    QVERIFY2(ov.text.rfind("<|im_start|>user\n<image>\nWhat is on the table?<|im_end|>\n", 0) == 0,
             ov.text.c_str());
  }

  void preferenceTrlAndMetaFiles() {
    writeText(
        path("pref.jsonl"),
        R"({"image": "a.png", "question": "Which colour?", "chosen": "Red.", "rejected": "Blue."}
{"image": "b.png", "prompt": "<image>\nHow many?", "chosen": "Two.", "rejected": "Three."}

{"question": "No image here?", "chosen": "Yes.", "rejected": "No."}
)");
    auto data = ConversationDataset::open(path("pref.jsonl"));
    QCOMPARE(data.format(), DatasetFormat::Preference);
    QCOMPARE(data.size(), size_t{3});  // the blank line is not a record
    auto r = data.record(0);
    QVERIFY(r.isPreference());
    QCOMPARE(textOf(r.conversation[0]), std::string("<image>\nWhich colour?"));
    QCOMPARE(textOf(r.chosen[0]), std::string("Red."));
    QCOMPARE(textOf(r.rejected[0]), std::string("Blue."));
    QCOMPARE(textOf(data.record(1).conversation[0]), std::string("<image>\nHow many?"));
    QCOMPARE(textOf(data.record(2).conversation[0]), std::string("No image here?"));
    QVERIFY(QString::fromStdString(data.record(2).where).endsWith("pref.jsonl:4 (record 2)"));

    writeText(
        path("trl.jsonl"),
        R"({"images": ["a.png"], "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]}], "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "Red."}]}], "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "Blue."}]}]}
)");
    data = ConversationDataset::open(path("trl.jsonl"));
    QCOMPARE(data.format(), DatasetFormat::Trl);
    r = data.record(0);
    QCOMPARE(r.images[0], path("a.png"));
    const auto rendering = renderChat(ChatFormat::LlavaOneVision,
                                      recordConversation(r, ChatFormat::LlavaOneVision, true));
    QCOMPARE(rendering.text, std::string("<|im_start|>user\n<image>\nColour?<|im_end|>\n"
                                         "<|im_start|>assistant\nBlue.<|im_end|>\n"));

    // MMPR: meta.json names each source's annotation file and image root.
    fs::create_directories(path("mmpr/annotations"));
    writeText(path("mmpr/annotations/coco.jsonl"),
              R"({"image": "1.jpg", "question": "Q1", "chosen": "C1", "rejected": "R1"}
{"image": "2.jpg", "question": "Q2", "chosen": "C2", "rejected": "R2"}
)");
    writeText(path("mmpr/annotations/text.jsonl"),
              R"({"question": "Q3", "chosen": "C3", "rejected": "R3"}
)");
    writeText(path("mmpr/meta.json"), R"({
  "coco": {"root": "../images/coco", "annotation": "annotations/coco.jsonl", "repeat_time": 1},
  "text": {"root": ".", "annotation": "annotations/text.jsonl"}
})");
    data = ConversationDataset::open(path("mmpr/meta.json"));
    QCOMPARE(data.format(), DatasetFormat::MmprMeta);
    QCOMPARE(data.size(), size_t{3});
    QCOMPARE(data.record(1).images[0], path("images/coco/2.jpg"));
    QCOMPARE(textOf(data.record(2).chosen[0]), std::string("C3"));
    QVERIFY(QString::fromStdString(data.record(2).where).contains("text.jsonl:1 (record 0)"));
    // A source without its annotation is named (review row 2.26), not read as a JSONL record;
    // a folder or a missing image root is said plainly (2.31).
    writeText(path("mmpr/meta_noann.json"), R"({"srcA": {"root": "imgs"}})");
    QVERIFY2(errorOf([&] {
               ConversationDataset::open(path("mmpr/meta_noann.json"));
             }).contains("meta_noann.json: source 'srcA': missing text field 'annotation'"),
             qPrintable(errorOf([&] { ConversationDataset::open(path("mmpr/meta_noann.json")); })));
    QVERIFY(errorOf([&] {
              ConversationDataset::open(path("mmpr"));
            }).contains("mmpr: is a directory; give a .json or .jsonl data file"));
    DatasetOptions nowhere;
    nowhere.imageRoot = path("no-such-folder");
    QVERIFY(errorOf([&] {
              ConversationDataset::open(path("mmpr/meta.json"), nowhere);
            }).contains("no-such-folder: no such folder"));
  }

  // Each broken record is an error naming file and line; with skipBad a counted skip.
  void brokenRecordsNameFileAndLine() {
    writeText(path("broken.jsonl"),
              R"({"image": "a.png", "question": "Fine", "chosen": "Yes.", "rejected": "No."}
{"image": "a.png", "question": "Broken", "chosen": "Yes.",
{"image": "a.png", "question": "No rejected", "chosen": "Yes."}
{"image": "gone.png", "question": "Q", "chosen": "Yes.", "rejected": "No."}
{"images": ["a.png", "b.png"], "question": "Two images", "chosen": "Yes.", "rejected": "No."}
{"question": "Q", "chosen": "Look: <image>", "rejected": "No."}
)");
    const auto data = ConversationDataset::open(path("broken.jsonl"));
    QCOMPARE(data.size(), size_t{6});
    QVERIFY(errorOf([&] { data.record(1); }).contains("broken.jsonl:2 (record 1): not valid JSON"));
    QVERIFY(errorOf([&] {
              data.record(2);
            }).contains("broken.jsonl:3 (record 2): missing text field 'rejected'"));
    QVERIFY(errorOf([&] { data.record(3); }).contains("broken.jsonl:4 (record 3): image "));
    QVERIFY(errorOf([&] { data.record(3); }).contains("gone.png is missing"));

    ScanOptions options;
    QVERIFY(errorOf([&] { scanDataset(data, options); }).contains("broken.jsonl:2 (record 1)"));
    options.skipBad = true;
    options.maxImages = 1;  // the paper's single-image filter
    const ScanResult scan = scanDataset(data, options);
    QCOMPARE(scan.kept, std::vector<size_t>({0}));
    QCOMPARE(scan.skipped.at("malformed record"), size_t{2});
    QCOMPARE(scan.skipped.at("missing or unreadable image"), size_t{1});
    QCOMPARE(scan.skipped.at("more than 1 image"), size_t{1});
    QCOMPARE(scan.skipped.at("<image> in an answer"), size_t{1});
    QVERIFY(QString::fromStdString(scan.firstBad).contains("broken.jsonl:2"));
    options.maxImages = 0;  // any number: the two-image record is kept
    QCOMPARE(scanDataset(data, options).kept.size(), size_t{2});

    // Not a dataset at all, or a truncated array: the error names the file and line.
    writeText(path("truncated.json"), "[\n {\"id\": 1, \"conversations\": []},\n {\"id\": 2,");
    QVERIFY(errorOf([&] {
              ConversationDataset::open(path("truncated.json"));
            }).contains("truncated.json:3: the file ends inside a record"));
    // A record missing a ']' fails at its own line, not at the end of the file (review row 2.5).
    writeText(
        path("unbalanced.json"),
        "[\n {\"id\": 1, \"conversations\": []},\n"
        " {\"id\": 2, \"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}\n"
        " },\n {\"id\": 3, \"conversations\": []},\n {\"id\": 4, \"conversations\": []}\n]\n");
    QVERIFY2(errorOf([&] {
               ConversationDataset::open(path("unbalanced.json"));
             }).contains("unbalanced.json:4: '}' where ']' closes the record's list"),
             qPrintable(errorOf([&] { ConversationDataset::open(path("unbalanced.json")); })));
    writeText(path("numbers.json"), "[1, 2, 3]");
    QVERIFY(errorOf([&] {
              ConversationDataset::open(path("numbers.json"));
            }).contains("numbers.json:1: a record of the top-level array is not a JSON object"));
    writeText(path("other.jsonl"), "{\"text\": \"a plain corpus\"}\n");
    QVERIFY(errorOf([&] {
              ConversationDataset::open(path("other.jsonl"));
            }).contains("other.jsonl:1 (record 0): not a dataset this workbench reads"));
    QVERIFY(
        errorOf([&] { datasetFormatFromName("csv"); }).contains("unknown dataset format 'csv'"));
  }

  // The paper's max_length filter counts prompt + chosen tokens of the rendered conversation.
  void maxLengthFilterCountsTokens() {
    std::string longAnswer;
    for (int k = 0; k < 300; ++k) longAnswer += "word ";
    writeText(
        path("lengths.jsonl"),
        json({{"question", "Short?"}, {"chosen", "Yes."}, {"rejected", "No."}}).dump() + "\n" +
            json({{"question", "Long?"}, {"chosen", longAnswer}, {"rejected", "No."}}).dump() +
            "\n");
    const auto data = ConversationDataset::open(path("lengths.jsonl"));
    ScanOptions options;
    options.tokenizer = &qwen();
    options.chatFormat = ChatFormat::Qwen25;
    options.maxLength = 100;
    const ScanResult scan = scanDataset(data, options);
    QCOMPARE(scan.kept, std::vector<size_t>({0}));
    QCOMPARE(scan.skipped.at("longer than 100 tokens"), size_t{1});
    // The kept record's length is its rendered prompt + chosen, tokenised.
    const auto rendering =
        renderChat(ChatFormat::Qwen25, recordConversation(data.record(0), ChatFormat::Qwen25));
    QCOMPARE(scan.lengths,
             std::vector<int>({static_cast<int>(qwen().encode(rendering.text).size())}));
  }

  // A large generated file: the index finds every record a full parse finds, at the same bytes,
  // and a second open reads the cached index; a changed file is indexed again.
  void indexOfALargeFileAgreesWithAFullParse() {
    std::mt19937 rng(7);
    const char* pieces[] = {"plain", "quote \" inside", "brackets ] } [ {",   "back\\slash",
                            "中文",  "emoji 👍",         "newline\nin string", "comma, colon: yes"};
    json all = json::array();
    for (int i = 0; i < 20000; ++i) {
      json conversations = json::array();
      for (unsigned k = 0; k < 1 + rng() % 3; ++k) {
        conversations.push_back({{"from", "human"}, {"value", pieces[rng() % 8]}});
        conversations.push_back({{"from", "gpt"}, {"value", pieces[rng() % 8]}});
      }
      all.push_back(
          {{"id", i}, {"conversations", conversations}, {"nested", {{"a", {1, 2, {3}}}}}});
    }
    // Mixed layout: some records pretty-printed over many lines, some compact.
    std::string text = "[\n";
    for (size_t i = 0; i < all.size(); ++i)
      text += (i % 7 == 0 ? all[i].dump(2) : all[i].dump()) + (i + 1 < all.size() ? ",\n" : "\n");
    text += "]\n";
    const std::string file = path("large.json");
    writeText(file, text);
    fs::remove(RecordIndex::cachePath(file));

    const RecordIndex index = RecordIndex::open(file);
    QVERIFY(!index.fromCache());
    QCOMPARE(index.size(), all.size());
    const json parsed = json::parse(text);
    size_t line = 2;
    for (size_t i = 0; i < index.size(); ++i) {
      QCOMPARE(json::parse(index.read(i)), parsed[i]);
      QCOMPARE(index.entry(i).line, static_cast<uint32_t>(line));
      line += std::count(
                  text.begin() + static_cast<long>(index.entry(i).offset),
                  text.begin() + static_cast<long>(index.entry(i).offset + index.entry(i).length),
                  '\n') +
              1;
    }
    const RecordIndex again = RecordIndex::open(file);
    QVERIFY(again.fromCache());
    QCOMPARE(again.size(), index.size());
    QCOMPARE(again.entry(12345).offset, index.entry(12345).offset);
    // The file changes: the cache no longer matches and the index is rebuilt.
    writeText(file, "[" + all[0].dump() + "]");
    const RecordIndex changed = RecordIndex::open(file);
    QVERIFY(!changed.fromCache());
    QCOMPARE(changed.size(), size_t{1});
  }

  // The index cache is used only when it proves whole and matches the file (review rows 2.34-2.39):
  // a lowered count, a wrong entry, a huge count or a same-size replacement with the old
  // modification time restored all mean a fresh pass, and it is never written beside the data.
  void indexCacheIsValidatedAndKeptOutOfTheDataFolder() {
    const std::string file = path("cached.jsonl");
    std::string text;
    for (int i = 0; i < 1000; ++i) text += "{\"id\": " + std::to_string(1000 + i) + "}\n";
    writeText(file, text);
    QCOMPARE(RecordIndex::open(file).size(), size_t{1000});
    QVERIFY(!fs::exists(file + ".pivot-index"));  // not beside the data
    const std::string cache = RecordIndex::cachePath(file);
    QVERIFY(QString::fromStdString(cache).startsWith(m_dir.filePath("cache")));
    QVERIFY(RecordIndex::open(file).fromCache());
    const std::string good = readTextFile(cache);
    const auto damaged = [&](const std::function<void(std::string&)>& damage) {
      std::string bytes = good;
      damage(bytes);
      writeText(cache, bytes);
      const RecordIndex index = RecordIndex::open(file);
      return !index.fromCache() && index.size() == 1000 && index.read(999) == "{\"id\": 1999}";
    };
    const size_t countAt = 8 + 40 + 1;
    QVERIFY(damaged([&](std::string& b) { b[countAt] = static_cast<char>(600 & 0xff); }));
    QVERIFY(damaged([&](std::string& b) { b[countAt + 6] = 1; }));  // a count of ~2^48
    QVERIFY(damaged([&](std::string& b) { b[countAt + 8 + 16 * 500] ^= 0x10; }));  // an offset
    QVERIFY(damaged([&](std::string& b) { b.resize(b.size() - 16); }));
    QVERIFY(damaged([&](std::string& b) { b = "PIVIDX01"; }));  // the old format
    // The same count, entries in order, but each record moved: only the checksum tells.
    RecordIndex::Layout layout;
    std::vector<RecordIndex::Entry> entries;
    QVERIFY(RecordIndex::parseCache(good, RecordIndex::stampOf(file), layout, entries));
    for (auto& e : entries) e.offset += 1;
    std::string forged = RecordIndex::serialiseCache(RecordIndex::stampOf(file), layout, entries);
    forged[forged.size() - 1] ^= 1;
    QVERIFY(!RecordIndex::parseCache(forged, RecordIndex::stampOf(file), layout, entries));
    // A same-size replacement (as `cp` writes it) with the old modification time put back.
    QVERIFY(RecordIndex::open(file).fromCache());
    struct stat before {};
    QCOMPARE(::stat(file.c_str(), &before), 0);
    QThread::msleep(30);  // file times tick with the kernel's coarse clock
    std::string other = text;
    for (size_t i = 0; i + 1 < other.size(); ++i)
      if (other[i] == '\n' && i % 3 == 0) std::swap(other[i], other[i + 1]);  // lines move
    { std::ofstream(file, std::ios::binary | std::ios::trunc) << other; }
    const timespec times[2] = {before.st_atim, before.st_mtim};
    QCOMPARE(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
    QVERIFY(!RecordIndex::open(file).fromCache());
  }
};

QTEST_GUILESS_MAIN(TestData)
#include "test_data.moc"
