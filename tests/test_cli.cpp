// The `pivot` command as a user runs it: errors are one line with exit code 2 and write nothing;
// train, runs, metrics --csv and export work on a tiny run.
#include <QtTest/QtTest>

#include <QCryptographicHash>
#include <torch/torch.h>

#include <QColor>
#include <QFile>
#include <QImage>
#include <QDir>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <fstream>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include <sqlite3.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "io/safetensors.h"
#include "io/state_dict.h"
#include "model/model_config.h"
#include "model/vision_transformer.h"
#include "store/run_store.h"
#include "store/workspace.h"
#include "training/run_checkpoint.h"
#include "io/hf_llava.h"

using namespace pivot;

namespace {

struct Result {
  int code;
  QString out, err;
};

Result pivotCmd(const QStringList& args, const QString& workingDir = QString()) {
  QProcess p;
  if (!workingDir.isEmpty()) p.setWorkingDirectory(workingDir);
  p.start(PIVOT_BINARY_DIR "/app/pivot", args);
  p.waitForFinished(600000);
  return {p.exitCode(), QString::fromUtf8(p.readAllStandardOutput()),
          QString::fromUtf8(p.readAllStandardError())};
}

// The same through bash, for limits a user's shell can set (ulimit) and users (setpriv).
Result shellCmd(const QString& script) {
  QProcess p;
  p.start("bash", {"-c", script});
  p.waitForFinished(600000);
  return {p.exitCode(), QString::fromUtf8(p.readAllStandardOutput()),
          QString::fromUtf8(p.readAllStandardError())};
}

const QString kPivot = PIVOT_BINARY_DIR "/app/pivot";
const QString kQwenTokenizer = PIVOT_SOURCE_DIR "/tests/data/qwen2.5-tokenizer";

void writeText(const QString& path, const QString& text) {
  QFile f(path);
  QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
  f.write(text.toUtf8());
}

// Flips a byte inside a PNG's first IDAT chunk, so that its CRC check fails. Returns where the
// chunk's type is (the chunk starts 4 bytes before it), or -1.
int damagePng(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadWrite)) return -1;
  QByteArray bytes = f.readAll();
  const int idat = static_cast<int>(bytes.indexOf("IDAT"));
  if (idat < 0) return -1;
  bytes[idat + 6] = static_cast<char>(bytes[idat + 6] ^ 0x5a);
  f.seek(0);
  f.write(bytes);
  return idat;
}

void writeImage(const QString& path, int w, int h, QColor fill) {
  QImage image(w, h, QImage::Format_RGB888);
  image.fill(fill);
  QVERIFY(image.save(path));
}

}  // namespace

class TestCli : public QObject {
  Q_OBJECT
  QTemporaryDir m_dir;

  // Every stage of a chain short: --set reaches only the requested stage, a preset every stage.
  QString fastPreset() {
    const QString path = m_dir.filePath("fast.json");
    QFile f(path);
    if (!f.exists() && f.open(QIODevice::WriteOnly))
      f.write(R"({"steps": 4, "batch_size": 8, "eval_samples": 12})");
    return path;
  }

 private Q_SLOTS:
  void badInputIsOneLineExitTwoAndWritesNothing() {
    const QString ws = m_dir.filePath("untouched");
    struct Case {
      QStringList args;
      QString message;
    };
    const QList<Case> cases = {
        {{"train", "--set", "nonsense=1"}, "unknown key 'nonsense'"},
        {{"train", "--set", "lr=fast"}, "bad value for 'lr'"},
        {{"train", "--stage", "ppo"}, "unknown stage 'ppo'"},
        {{"train", "--preset", "/no/such/preset.json"}, "/no/such/preset.json: cannot open"},
        {{"train", "--preset", "huge"}, "unknown preset 'huge'"},
        {{"train", "--stage", "dpo", "--from", "7"}, "has no runs.sqlite"},
        {{"metrics", "3"}, "has no runs.sqlite"},
        {{"experiment", "--sweep", "vision_lr"}, "bad --sweep 'vision_lr'"},
        {{"experiment", "--sweep", "warp=1,2"}, "unknown key 'warp'"},
        {{"experiment", "--sweep", "lr=2,3"}, "--sweep lr=2: lr must be in (0, 1)"},
        {{"experiment", "--seeds", "0"}, "--seeds must be 1..50"},
        {{"experiment", "--tune-lr", "1,abc"}, "--tune-lr: 'abc' is not a number"},
        // Review rows 7.5, 3.22, 1.39, 3.27: values that once meant something else or failed late.
        {{"experiment", "--transplant-align-steps", "-5"},
         "--transplant-align-steps must be 0 (the preset's default) or positive, got -5"},
        {{"generate", "--model", "/no/model", "--image", "x.png", "--question", "q",
          "--temperature", "-1"},
         "--temperature must be 0 (greedy) or positive, got -1"},
        {{"generate", "--model", "/no/model", "--image", "x.png", "--question", "q", "--top-p",
          "0"},
         "--top-p must be in (0, 1], got 0"},
        {{"tokenize", "--tokenizer", kQwenTokenizer, "--chat", kQwenTokenizer},
         "is a directory, not a file"},
        {{"explain", "--checkpoint", "1", "--sample", "0", "--out", "x.txt"},
         "x.txt: no image format has this extension (use .png, .jpg, .pdf or .svg)"},
        {{"experiment", "--transplant-projector", "two"},
         "--transplant-projector: unknown projector init 'two' (expected new or one_plus_one)"},
        {{"tokenize", "--tokenizer", "/no/such/dir", "hi"},
         "/no/such/dir/tokenizer.json: cannot be read"},
        {{"tokenize", "--tokenizer", kQwenTokenizer, "--chat", "/no/chat.json"},
         "/no/chat.json: cannot be read"},
        {{"tokenize", "--tokenizer", kQwenTokenizer, "--chat-format", "llama", "--chat",
          kQwenTokenizer + "/tokenizer_config.json"},
         "unknown chat format 'llama'"},
        {{"tokenize", "--tokenizer", kQwenTokenizer}, "give a TEXT"},
        // Issue 30: the vendored 128-token model with the 151k-token Qwen tokenizer once failed
        // at training's first step with LibTorch's "index out of range in self".
        {{"model", "init", PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny/config.json", "--out",
          ws + "/model", "--tokenizer", kQwenTokenizer},
         "tokenizer.json has 151665 tokens but the model's text_config.vocab_size is 128, so its "
         "embedding cannot look up ids 128 and above: give the model a vocab_size of at least "
         "151665"},
        {{"data", "check", "/no/data.jsonl"}, "/no/data.jsonl: cannot be read"},
        {{"data", "check", "/no/data.jsonl", "--format", "csv"}, "unknown dataset format 'csv'"},
    };
    for (const auto& c : cases) {
      auto r = pivotCmd(QStringList{"--workspace", ws} + c.args);
      QVERIFY2(r.code == 2,
               qPrintable(c.args.join(' ') + " -> " + QString::number(r.code) + r.err));
      QVERIFY2(r.err.contains(c.message), qPrintable(r.err));
      QCOMPARE(r.err.trimmed().count('\n'), 0);
      QVERIFY2(!QFileInfo::exists(ws), qPrintable(c.args.join(' ')));
    }
  }

  // pivot tokenize: ids as the tokenizer test checks them, JSON lines, a conversation's labels.
  void tokenizeTextAndConversation() {
    auto r =
        pivotCmd({"tokenize", "--tokenizer", kQwenTokenizer, "--ids", "Hello, world<|im_end|>"});
    QCOMPARE(r.code, 0);
    QCOMPARE(r.out.trimmed(), QString("9707 11 1879 151645"));
    r = pivotCmd({"tokenize", "--tokenizer", kQwenTokenizer, "--ids", ""});  // review row 1.26
    QVERIFY2(r.code == 0 && r.out.trimmed().isEmpty(), qPrintable(r.err + r.out));
    r = pivotCmd({"tokenize", "--tokenizer", kQwenTokenizer, "--json", " world"});
    QCOMPARE(r.out.trimmed(), QString(R"({"id":1879,"text":" world","token":"Ġworld"})"));
    const QString chat = m_dir.filePath("chat.json");
    QFile f(chat);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Red."}])");
    f.close();
    r = pivotCmd({"tokenize", "--tokenizer", kQwenTokenizer, "--chat", chat, "--json"});
    QCOMPARE(r.code, 0);
    const auto j = QJsonDocument::fromJson(r.out.toUtf8()).object();
    QCOMPARE(j["format"].toString(), QString("qwen2.5"));
    QVERIFY(j["text"].toString().endsWith("<|im_start|>assistant\nRed.<|im_end|>\n"));
    int trained = 0;
    for (const auto v : j["trained"].toArray()) trained += v.toInt();
    QCOMPARE(trained, 3);  // "Red", ".", "<|im_end|>"
    r = pivotCmd({"tokenize", "--tokenizer", kQwenTokenizer, "--chat", chat, "--chat-format",
                  "qwen3", "--add-generation-prompt"});
    QVERIFY2(r.out.contains("format: qwen3") && r.out.contains("<think>"), qPrintable(r.out));
  }

  // pivot data check: a bad record stops it with file and line (exit 2); --skip-bad counts it,
  // and the summary, the lengths and the first example with its trained text follow.
  void dataCheckSummarisesAndNamesBadRecords() {
    const QString file = m_dir.filePath("prefs.jsonl");
    QFile f(file);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(R"({"question": "Which colour?", "chosen": "Red.", "rejected": "Blue."}
{"question": "Broken", "chosen":
{"question": "Look", "chosen": "At <image>", "rejected": "No."}
)");
    f.close();
    auto r = pivotCmd({"data", "check", file});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("prefs.jsonl:2 (record 1): not valid JSON"), qPrintable(r.err));
    r = pivotCmd({"data", "check", file, "--skip-bad", "--tokenizer", kQwenTokenizer});
    QCOMPARE(r.code, 0);
    QVERIFY2(r.out.contains("loaded 1, skipped 2: 1 <image> in an answer, 1 malformed record"),
             qPrintable(r.out));
    QVERIFY(r.out.contains("as qwen2.5"));
    QVERIFY(r.out.contains(QString::fromUtf8("\u27e6Red.<|im_end|>\u27e7")));
    QVERIFY(r.out.contains(QString::fromUtf8("rejected answer: \u27e6Blue.<|im_end|>\u27e7")));
  }

  // The docs match the code (issue 26): every `--stage` list in the README names stages the
  // command knows (its help is built from the Stage table) and the synopsis of `pivot train`
  // lists them all; every subcommand of `pivot --help` is in the README; every repository path
  // the README and docs/ name exists.
  void docsMatchTheCommandLine() {
    const auto readFile = [](const QString& path) {
      QFile f(path);
      if (!f.open(QIODevice::ReadOnly)) return QString();
      return QString::fromUtf8(f.readAll());
    };
    const QString root = PIVOT_SOURCE_DIR;
    const QString readme = readFile(root + "/README.md");
    QVERIFY(!readme.isEmpty());

    const auto help = pivotCmd({"train", "--help"});
    const QRegularExpression stageLine(R"(--stage TEXT=\w+\s+([a-z0-9 |]+))");
    const auto helpMatch = stageLine.match(help.out);
    QVERIFY2(helpMatch.hasMatch(), qPrintable(help.out));
    QStringList stages = helpMatch.captured(1).split('|');
    for (auto& s : stages) s = s.trimmed();
    QVERIFY(stages.size() >= 7);
    bool fullList = false;
    const QRegularExpression listed(R"(--stage ([a-z0-9]+(?:\|[a-z0-9]+)+))");
    for (auto it = listed.globalMatch(readme); it.hasNext();) {
      const QStringList names = it.next().captured(1).split('|');
      for (const auto& n : names)
        QVERIFY2(stages.contains(n), qPrintable("README: --stage lists '" + n + "'"));
      fullList = fullList || names == stages;
    }
    QVERIFY2(fullList, qPrintable("README: no --stage synopsis lists " + stages.join('|')));

    const auto top = pivotCmd({"--help"});
    const QString subcommands = top.out.mid(top.out.indexOf("Subcommands:"));
    const QRegularExpression command(R"(\n  ([a-z]+)\s)");
    int commands = 0;
    for (auto it = command.globalMatch(subcommands); it.hasNext(); ++commands) {
      const QString name = it.next().captured(1);
      QVERIFY2(readme.contains("pivot " + name), qPrintable("README never shows pivot " + name));
    }
    QVERIFY(commands >= 15);

    QStringList docs = {"README.md"};
    for (const auto& f : QDir(root + "/docs").entryList({"*.md"}, QDir::Files)) docs << "docs/" + f;
    const QRegularExpression named(
        R"([`(]((?:app|core|training|study|visualization|widgets|tests|scripts|docs|resources|presets|\.ci)/[A-Za-z0-9_./+-]*[A-Za-z0-9_])[`)]?)");
    int paths = 0;
    for (const auto& doc : docs) {
      const QString text = readFile(root + "/" + doc);
      for (auto it = named.globalMatch(text); it.hasNext(); ++paths) {
        const QString path = it.next().captured(1);
        const QString full = root + "/" + path;
        // A module is named by its stem (core/io/hf_llava: its .h and .cpp).
        QVERIFY2(QFileInfo::exists(full) || QFileInfo::exists(full + ".h") ||
                     QFileInfo::exists(full + ".cpp"),
                 qPrintable(doc + " names " + path + ", which does not exist"));
      }
    }
    QVERIFY(paths > 30);
  }

  // Issue 27 (3): the check finds what training would stop at, with the same code: placeholders
  // that do not match the images, images that are directories, not images, or damaged (named by
  // the file and the chunk, without libpng's own line); empty data and bad limits are errors.
  void dataCheckChecksWhatTrainingChecks() {
    const QString dir = m_dir.filePath("datacheck");
    QVERIFY(QDir().mkpath(dir + "/folder.png"));
    writeImage(dir + "/red.png", 16, 16, QColor(200, 20, 20));
    QFile::copy(dir + "/red.png", dir + "/damaged.png");
    const int idat = damagePng(dir + "/damaged.png");
    QVERIFY(idat > 0);
    writeText(dir + "/notes.png", "these are notes, not pixels\n");
    const auto record = [](const std::string& image, const std::string& question) {
      return nlohmann::json{
                 {"image", image},
                 {"conversations",
                  {{{"from", "human"}, {"value", question}}, {{"from", "gpt"}, {"value", "Red."}}}}}
                 .dump() +
             "\n";
    };
    std::string tags;
    for (int i = 0; i < 20; ++i) tags += "<image>";
    writeText(dir + "/data.jsonl",
              QString::fromStdString(record("red.png", "<image>\nWhat colour?") +
                                     record("red.png", tags + " What colour?") +
                                     record("red.png", "What colour?") +
                                     record("damaged.png", "<image>\nWhat colour?") +
                                     record("folder.png", "<image>\nWhat colour?") +
                                     record("notes.png", "<image>\nWhat colour?")));
    const QString data = dir + "/data.jsonl";
    auto r = pivotCmd({"data", "check", data});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.startsWith("pivot: error: " + data + ":4 (record 3): image " + dir +
                              "/damaged.png: damaged PNG: the chunk at byte " +
                              QString::number(idat - 4) + " (IDAT) fails its CRC check"),
             qPrintable(r.err));
    QVERIFY2(!r.err.contains("libpng"), qPrintable(r.err));
    r = pivotCmd({"data", "check", data, "--skip-bad"});
    QCOMPARE(r.code, 0);
    QVERIFY2(r.out.contains("loaded 1, skipped 5: 3 missing or unreadable image, 2 whose <image> "
                            "placeholders do not match their images one to one"),
             qPrintable(r.out));
    r = pivotCmd({"data", "check", data, "--skip-bad", "--no-image-check"});  // files unopened
    QVERIFY2(r.code == 0 && r.out.contains("loaded 4, skipped 2"), qPrintable(r.out));
    // One line each, exit 2: the directory, the text file, nothing usable, nothing at all.
    const QString single = dir + "/single.jsonl";
    writeText(single, QString::fromStdString(record("folder.png", "<image>\nWhat colour?")));
    r = pivotCmd({"data", "check", single});
    QVERIFY2(r.code == 2 && r.err.contains("folder.png is not a file"), qPrintable(r.err));
    writeText(single, QString::fromStdString(record("notes.png", "<image>\nWhat colour?")));
    r = pivotCmd({"data", "check", single});
    QVERIFY2(r.code == 2 && r.err.contains("notes.png: cannot read image"), qPrintable(r.err));
    writeText(single, QString::fromStdString(record("red.png", tags)));
    r = pivotCmd({"data", "check", single});
    QVERIFY2(r.code == 2 && r.err.contains("single.jsonl: no usable record"), qPrintable(r.err));
    for (const char* empty : {"", "  \n", "[]"}) {
      writeText(single, empty);
      r = pivotCmd({"data", "check", single});
      QVERIFY2(r.code == 2 && r.err.contains("single.jsonl: holds no records"),
               qPrintable(r.err + r.out));
    }
    for (const QStringList& limit :
         {QStringList{"--max-length", "0"}, QStringList{"--max-length", "-5"},
          QStringList{"--max-images", "-1"}}) {
      r = pivotCmd(QStringList{"data", "check", data} + limit);
      QVERIFY2(r.code == 2 && r.err.contains(limit[0] + " must be"), qPrintable(r.err));
      QVERIFY2(r.out.isEmpty(), qPrintable(r.out));
    }
  }

  // Issue 10: each defect as a user meets it at the command line.
  void reliabilityAtTheCommandLine() {
    const QString ws = m_dir.filePath("rel");
    const QStringList small = {"--preset", fastPreset()};
    // 10.2: a workspace given relative to the current folder works from any other folder.
    auto r = pivotCmd(QStringList{"train", "--workspace", "rel", "--stage", "align", "--name",
                                  "a-run-with-a-rather-long-name-indeed"} +
                          small,
                      m_dir.path());
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "2", "--samples", "8"}, "/");
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    // ... and a copy of it uses its own checkpoints once the original is gone.
    const QString copy = m_dir.filePath("rel-copy");
    std::filesystem::copy(ws.toStdString(), copy.toStdString(),
                          std::filesystem::copy_options::recursive);
    std::filesystem::rename(ws.toStdString(), m_dir.filePath("rel-moved").toStdString());
    r = pivotCmd({"--workspace", copy, "localize", "--checkpoint", "2", "--samples", "8"}, "/");
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    std::filesystem::rename(m_dir.filePath("rel-moved").toStdString(), ws.toStdString());

    // 10.9: long names never run into the next column of `pivot runs`.
    r = pivotCmd({"runs", "--workspace", ws});  // global options after the subcommand too
    QCOMPARE(r.code, 0);
    const auto lines = r.out.split('\n', Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), 3);
    const auto statusAt = lines[0].indexOf("status");
    for (const auto& line : lines.mid(1)) QCOMPARE(line.mid(statusAt, 8), QString("finished"));

    // 10.9: bad input, each one line with exit code 2, the workspace unchanged.
    QImage image(40, 20, QImage::Format_RGB888);
    image.fill(QColor(200, 40, 40));
    QVERIFY(image.save(m_dir.filePath("wide.png")));
    QImage mask(20, 20, QImage::Format_RGB888);
    mask.fill(Qt::white);
    QVERIFY(mask.save(m_dir.filePath("square-mask.png")));
    QFile records(m_dir.filePath("bad.jsonl"));
    QVERIFY(records.open(QIODevice::WriteOnly));
    records.write(
        R"({"image": "wide.png", "mask": "wide.png", "question": "what colour is the flamingo ?", "answer": "red"})"
        "\n");
    records.close();
    QFile aspect(m_dir.filePath("aspect.jsonl"));
    QVERIFY(aspect.open(QIODevice::WriteOnly));
    aspect.write(
        R"({"image": "wide.png", "mask": "square-mask.png", "question": "what colour is the square ?", "answer": "red"})"
        "\n");
    aspect.close();
    struct Case {
      QStringList args;
      QString message;
    };
    QList<Case> cases = {
        {{"localize", "--checkpoint", "2", "--samples", "0"},
         "--samples must be at least 1, got 0"},
        {{"explain", "--checkpoint", "2", "--sample", "0", "--method", "gradcam", "--layer", "99",
          "--out", m_dir.filePath("x.png")},
         "--layer 99 is outside"},
        {{"explain", "--checkpoint", "2", "--image", m_dir.filePath("missing.png"), "--question",
          "what colour is it ?", "--answer", "red", "--out", m_dir.filePath("x.png")},
         "missing.png: no such image file"},
        // Issue 30: a miniature run reads a typed question in its own spelling ("What" -> "what",
        // "it?" -> "it ?"), and a word it does not know is refused with the words it does.
        {{"explain", "--checkpoint", "2", "--image", m_dir.filePath("wide.png"), "--question",
          "What hue is the square?", "--answer", "Red", "--out", m_dir.filePath("x.png")},
         "unknown word 'hue' in \"what hue is the square ?\" (known words: a, above, an, are"},
        {{"localize", "--checkpoint", "2", "--data", m_dir.filePath("bad.jsonl")},
         "bad.jsonl:1: field 'question': "},
        {{"localize", "--checkpoint", "2", "--data", m_dir.filePath("aspect.jsonl")},
         "aspect.jsonl:1: the mask is 20x20 but the image is 40x20 (another aspect ratio)"},
        {{"train", "--resume", "2", "--set", "lr=0.1"},
         "--resume continues a run with its own configuration; it cannot be combined with --set"},
        {{"train", "--resume", "2", "--preset", "mini"}, "cannot be combined with --preset"},
        // A transplant around an encoder that does not exist is refused before its alignment
        // (or anything else) runs.
        {{"train", "--stage", "instruct", "--set", "vision_init=no-such-run", "--set",
          "freeze_vision=true"},
         "vision_init: "},
    };
    if (!torch::cuda::is_available())
      cases.append({{"train", "--stage", "sft", "--set", "device=cuda"},
                    "device=cuda, but this LibTorch sees no CUDA device"});
    const auto before = pivotCmd({"--workspace", ws, "runs"}).out;
    for (const auto& c : cases) {
      r = pivotCmd(QStringList{"--workspace", ws} + c.args);
      QVERIFY2(r.code == 2,
               qPrintable(c.args.join(' ') + " -> " + QString::number(r.code) + r.err));
      QVERIFY2(r.err.contains(c.message), qPrintable(r.err));
      QVERIFY2(r.err.trimmed().count('\n') == 0, qPrintable(r.err));
    }
    QCOMPARE(pivotCmd({"--workspace", ws, "runs"}).out, before);
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "2", "--image",
                  m_dir.filePath("wide.png"), "--question", "What colour is the square?",
                  "--answer", "Red", "--out", m_dir.filePath("photo-map.png")});
    QVERIFY2(r.code == 0 && r.out.contains("Q: what colour is the square ?"),
             qPrintable(r.err + r.out));
    r = pivotCmd({"--workspace", m_dir.filePath("cuda-ws"), "train", "--set", "device=cuda"});
    if (!torch::cuda::is_available()) QVERIFY(!QFileInfo::exists(m_dir.filePath("cuda-ws")));

    // 10.4 and 10.9: a run that fails (beta 1e38 overflows) exits 1, fresh or resumed, and is
    // "failed".
    r = pivotCmd(QStringList{"--workspace", ws, "train", "--stage", "dpo", "--from", "2", "--set",
                             "beta=1e38"} +
                 small);
    QVERIFY2(r.code == 1, qPrintable(QString::number(r.code) + r.err + r.out));
    QVERIFY2(r.err.contains("failed"), qPrintable(r.err));
    r = pivotCmd({"--workspace", ws, "train", "--resume", "3"});
    QVERIFY2(r.code == 1, qPrintable(QString::number(r.code) + r.err + r.out));
    {
      RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
      QCOMPARE(std::string(name(store.run(3)->status)), std::string("failed"));
    }

    // 10.9: a full disk (here: a file-size limit) while writing a checkpoint ends the run as
    // "failed" with the reason, exit code 1, and leaves no .tmp-step-* folder; the store is intact.
    r = shellCmd(
        "ulimit -f 100; trap '' XFSZ; exec " + kPivot + " --workspace " + ws +
        " train --stage sft --from 2 --set steps=3 --set batch_size=8 --set eval_samples=12");
    QVERIFY2(r.code == 1, qPrintable(QString::number(r.code) + r.err + r.out));
    QVERIFY2(r.err.contains("write failed"), qPrintable(r.err));
    {
      RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
      const auto runs = store.runs();
      QCOMPARE(std::string(name(runs.back().status)), std::string("failed"));
      for (const auto& e : std::filesystem::recursive_directory_iterator(
               runDirectory(ws.toStdString(), runs.back().id)))
        QVERIFY2(e.path().filename().string().rfind(".tmp", 0) != 0, e.path().c_str());
      QVERIFY(store.integrityProblems().empty());
    }
    r = pivotCmd({"--workspace", ws, "doctor"});
    QVERIFY2(r.code == 0, qPrintable(r.out + r.err));
    QVERIFY(r.out.contains("no problems found"));

    // 10.5: SIGTERM (and SIGINT) stop the run within a step, with a checkpoint and status
    // "stopped"; exit code 143; the same run then resumes to the end.
    QProcess longRun;
    longRun.start(kPivot,
                  {"--workspace", ws, "train", "--stage", "sft", "--from", "2", "--set",
                   "steps=100000", "--set", "batch_size=8", "--set", "eval_samples=12", "--quiet"});
    QVERIFY(longRun.waitForStarted());
    int64_t longId = 0, stepsDone = 0;
    for (int i = 0; i < 600 && stepsDone < 20; ++i) {  // metrics reach the store every 20 steps
      QTest::qWait(100);
      RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
      const auto runs = store.runs();
      if (runs.back().stage != "sft" || runs.back().status != RunStatus::Running) continue;
      longId = runs.back().id;
      if (auto last = store.lastMetric(longId, "loss")) stepsDone = last->step;
    }
    QVERIFY(stepsDone >= 20);
    {
      // A live run is shown as running and cannot be resumed by a second process.
      r = pivotCmd({"--workspace", ws, "train", "--resume", QString::number(longId)});
      QCOMPARE(r.code, 2);
      QVERIFY2(r.err.contains("is live (pid " + QString::number(longRun.processId())),
               qPrintable(r.err));
    }
    longRun.terminate();  // SIGTERM
    QVERIFY(longRun.waitForFinished(60000));
    QCOMPARE(longRun.exitCode(), 143);
    {
      RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
      const auto run = *store.run(longId);
      QCOMPARE(std::string(name(run.status)), std::string("stopped"));
      const auto cps = store.checkpoints(longId);
      QVERIFY(!cps.empty());
      QVERIFY(cps.back().step >= 20);
      QVERIFY(std::filesystem::exists(cps.back().path + "/optimizer.pt"));
    }

    // 10.9: a read-only workspace can still be listed (as another user when we are root, whom
    // file permissions do not stop).
    const QString ro = m_dir.filePath("ro");
    std::filesystem::copy(ws.toStdString(), ro.toStdString(),
                          std::filesystem::copy_options::recursive);
    for (const auto& side : {"-wal", "-shm"})
      std::filesystem::remove(storePath(ro.toStdString()) + side);
    QVERIFY(QProcess::execute("chmod", {"-R", "a+rX,a-w", ro}) == 0);
    QVERIFY(QProcess::execute("chmod", {"a+rx", m_dir.path()}) == 0);
    const QString asReader =
        geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
    r = shellCmd(asReader + kPivot + " --workspace " + ro + " runs");
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(r.out.contains("a-run-with-a-rather-long-name-indeed"));
    r = shellCmd(asReader + kPivot + " --workspace " + ro + " metrics 2 --csv");
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(!QFileInfo::exists(storePath(ro.toStdString()).c_str() + QString("-wal")));
    QProcess::execute("chmod", {"-R", "u+w", ro});

    // 10.3: a damaged database is reported by `pivot doctor` and by every reading command.
    const QString broken = m_dir.filePath("broken");
    std::filesystem::copy(ws.toStdString(), broken.toStdString(),
                          std::filesystem::copy_options::recursive);
    {
      sqlite3* db = nullptr;  // fold the WAL into the file, then damage a page of it
      QCOMPARE(sqlite3_open(storePath(broken.toStdString()).c_str(), &db), SQLITE_OK);
      sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
      sqlite3_close(db);
      const auto path = storePath(broken.toStdString());
      const auto size = std::filesystem::file_size(path);
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(size - 4096));
      const std::string garbage(4096, '\x5A');
      f.write(garbage.data(), 4096);
    }
    r = pivotCmd({"--workspace", broken, "doctor"});
    QVERIFY2(r.code == 1, qPrintable(r.out + r.err));
    QVERIFY2(r.out.contains("problem:"), qPrintable(r.out));
    // Review row 6.5: damage SQLite does not report on read never lets any run "read fully".
    QVERIFY2(
        !r.out.contains("metrics that read fully") && r.out.contains("the database is damaged"),
        qPrintable(r.out));
    // Review row 4.9: commands that write refuse such a store before writing anything.
    for (const QStringList& write :
         {QStringList{"train", "--stage", "sft", "--from", "2", "--set", "steps=1"},
          QStringList{"export", "2", "--out", m_dir.filePath("broken-export")}}) {
      r = pivotCmd(QStringList{"--workspace", broken} + write);
      QVERIFY2(r.code == 2 && r.err.contains("runs.sqlite is damaged") &&
                   r.err.contains("nothing is written into it"),
               qPrintable(write.join(' ') + ": " + r.err));
    }
    QVERIFY(!QFileInfo::exists(m_dir.filePath("broken-export")));

    // Review row 6.8: a status a newer version wrote hides no run: `runs` lists every run, that
    // one as unknown, and `doctor` names it.
    const QString newer = m_dir.filePath("newer");
    std::filesystem::copy(ws.toStdString(), newer.toStdString(),
                          std::filesystem::copy_options::recursive);
    {
      sqlite3* db = nullptr;
      QCOMPARE(sqlite3_open(storePath(newer.toStdString()).c_str(), &db), SQLITE_OK);
      QCOMPARE(sqlite3_exec(db, "UPDATE runs SET status = 'paused-by-cluster' WHERE id = 2",
                            nullptr, nullptr, nullptr),
               SQLITE_OK);
      sqlite3_close(db);
    }
    r = pivotCmd({"--workspace", newer, "runs"});
    QVERIFY2(r.code == 0 && r.out.contains("unknown"), qPrintable(r.out + r.err));
    const int listed = static_cast<int>(
        RunStore(storePath(newer.toStdString()), RunStore::Access::ReadOnly).runs().size());
    QVERIFY(listed >= 2);
    for (int id = 1; id <= listed; ++id)
      QVERIFY2(r.out.contains(QRegularExpression("(^|\\n)\\s*" + QString::number(id) + "\\s")),
               qPrintable(r.out));
    r = pivotCmd({"--workspace", newer, "doctor"});
    QVERIFY2(r.code == 1 && r.out.contains("status 'paused-by-cluster' is unknown"),
             qPrintable(r.out));
    r = pivotCmd({"--workspace", newer, "train", "--resume", "2"});
    QVERIFY2(r.code == 2 && r.err.contains("resume it with the version that wrote it"),
             qPrintable(r.err));

    // Review rows 2.34-2.36, 3.13: a checkpoint's config.json with a bad field, or not an object,
    // is named with its file, never blamed on the weights.
    const auto withConfig = [&](const QString& name,
                                const std::function<void(nlohmann::json&)>& edit) {
      const QString copyWs = m_dir.filePath(name);
      std::filesystem::copy(ws.toStdString(), copyWs.toStdString(),
                            std::filesystem::copy_options::recursive);
      const std::string folder = lastUsableCheckpoint(RunStore(storePath(copyWs.toStdString())), 2);
      auto config = readJsonFile(folder + "/config.json");
      edit(config);
      std::ofstream(folder + "/config.json") << config.dump();
      return std::make_pair(copyWs, QString::fromStdString(folder + "/config.json"));
    };
    const std::vector<std::pair<std::function<void(nlohmann::json&)>, QString>> badConfigs = {
        {[](nlohmann::json& c) { c = nlohmann::json::array(); },
         ": a checkpoint's config is a JSON object, not array"},
        {[](nlohmann::json& c) { c["text_config"]["hidden_size"] = "big"; },
         ": text_config: config field 'hidden_size' must be an integer"},
        {[](nlohmann::json& c) { c["vision_config"]["num_hidden_layers"] = -1; },
         ": vision_config: config field 'num_hidden_layers' must be positive"},
        {[](nlohmann::json& c) { c["vision_feature_layer"] = 99; },
         ": config field 'vision_feature_layer' is 99, outside the vision tower's"}};
    int variant = 0;
    for (const auto& [edit, message] : badConfigs) {
      const auto [copyWs, configFile] = withConfig(QString("badconfig-%1").arg(variant++), edit);
      r = pivotCmd({"--workspace", copyWs, "localize", "--checkpoint", "2", "--samples", "8"});
      QVERIFY2(r.code == 2 && r.err.startsWith("pivot: error: " + configFile + message),
               qPrintable(r.err));
    }

    // Review row 6.2: what --fix fixed no longer fails the command; a second look finds nothing.
    const QString tidy = m_dir.filePath("tidy");
    std::filesystem::copy(ws.toStdString(), tidy.toStdString(),
                          std::filesystem::copy_options::recursive);
    QVERIFY(QDir().mkpath(tidy + "/checkpoints/run-2/.tmp-step-0000009"));
    r = pivotCmd({"--workspace", tidy, "doctor"});
    QVERIFY2(r.code == 1 && r.out.contains("half-written checkpoint"), qPrintable(r.out));
    r = pivotCmd({"--workspace", tidy, "doctor", "--fix"});
    QVERIFY2(r.code == 0 && r.out.contains("all fixed"), qPrintable(r.out + r.err));
    r = pivotCmd({"--workspace", tidy, "doctor"});
    QVERIFY2(r.code == 0 && r.out.contains("no problems found"), qPrintable(r.out));
  }

  // Review row 6.11: the same experiment started twice in one workspace: the second is refused
  // at once, naming the running one, instead of speaking of resuming a run it never named.
  void aSecondExperimentIsRefusedWhileTheFirstRuns() {
    const QString ws = m_dir.filePath("twice");
    const QStringList command = {"--workspace", ws,        "experiment", "--preset", "tiny",
                                 "--seeds",     "1",       "--arms",     "sft,dpo",  "--jobs",
                                 "1",           "--quiet", "--set",      "threads=1"};
    QProcess first;
    first.start(kPivot, command);
    QVERIFY(first.waitForStarted());
    bool running = false;
    for (int i = 0; i < 600 && !running; ++i) {
      QTest::qWait(100);
      if (!QFileInfo::exists(QString::fromStdString(storePath(ws.toStdString())))) continue;
      try {
        RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
        const auto experiments = store.experiments();
        running = !experiments.empty() && experiments[0].status == RunStatus::Running;
      } catch (const std::exception&) {
      }
    }
    QVERIFY(running);
    const auto second = pivotCmd(command);
    const qint64 firstPid = first.processId();
    ::kill(static_cast<pid_t>(firstPid), SIGINT);
    first.waitForFinished(120000);
    QCOMPARE(second.code, 2);
    QVERIFY2(second.err.contains("experiment 1 with this spec is running in this workspace (pid " +
                                 QString::number(firstPid)),
             qPrintable(second.err));
    QVERIFY2(!second.err.contains("resum"), qPrintable(second.err));
  }

  // Review rows 3.15, 3.18: a config that makes NaN is refused when read, and a model whose
  // outputs are not finite fails its check (rc 1) instead of printing "-nan" with rc 0.
  void modelCheckFailsModelsThatCannotBeUsed() {
    const auto copyTiny = [&](const QString& name) {
      const QString dir = m_dir.filePath(name);
      std::filesystem::copy(PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny", dir.toStdString(),
                            std::filesystem::copy_options::recursive);
      return dir;
    };
    const QString good = copyTiny("check-good");
    auto r = pivotCmd({"model", "check", good, "--inputs", good + "/io.safetensors"});
    QVERIFY2(r.code == 0 && !r.out.contains("FAILED"), qPrintable(r.err + r.out));
    for (const auto& [field, value] :
         std::vector<std::pair<std::string, double>>{{"rms_norm_eps", -1}, {"rope_theta", 0}}) {
      const QString dir = copyTiny(QString("check-%1").arg(field.c_str()));
      auto config = readJsonFile((dir + "/config.json").toStdString());
      config["text_config"][field] = value;
      std::ofstream((dir + "/config.json").toStdString()) << config.dump();
      r = pivotCmd({"model", "check", dir});
      QCOMPARE(r.code, 2);
      QVERIFY2(r.err.contains(QString("'%1' must be a positive number").arg(field.c_str())),
               qPrintable(r.err));
    }
    // Review row 3.11: a vocabulary the weights do not have is named before anything is allocated.
    {
      const QString dir = copyTiny("check-vocab");
      auto config = readJsonFile((dir + "/config.json").toStdString());
      config["text_config"]["vocab_size"] = 100000000;
      std::ofstream((dir + "/config.json").toStdString()) << config.dump();
      r = pivotCmd({"model", "check", dir});
      QVERIFY2(r.code == 2 && r.err.contains(dir + "/config.json: text_config has vocab_size "
                                                   "100000000 and hidden_size"),
               qPrintable(r.err));
    }
    // Review row 3.18: the files training reads besides the weights are checked and named.
    {
      const QString dir = copyTiny("check-files");
      r = pivotCmd({"model", "check", dir});
      QVERIFY2(r.code == 0 && r.out.contains("tokenizer: missing") &&
                   r.out.contains("not usable for training, generate or explain --image: "
                                  "tokenizer.json missing"),
               qPrintable(r.out));
      auto processor = readJsonFile((dir + "/preprocessor_config.json").toStdString());
      processor["size"] = {{"height", 0}, {"width", 0}};
      std::ofstream((dir + "/preprocessor_config.json").toStdString()) << processor.dump();
      r = pivotCmd({"model", "check", dir});
      QVERIFY2(r.code == 1 && r.out.contains("image processor: problem: ") &&
                   r.out.contains("FAILED: a file training reads is present but unusable"),
               qPrintable(r.out));
    }
    // Valid config, one weight NaN: the outputs are NaN and the check fails.
    const QString nan = copyTiny("check-nan");
    for (const char* shard :
         {"/model-00001-of-00002.safetensors", "/model-00002-of-00002.safetensors"}) {
      const std::string file = (nan + shard).toStdString();
      StringMap metadata;
      TensorMap tensors;
      for (const auto& [name, t] : loadSafetensors(file, &metadata)) tensors[name] = t.clone();
      for (auto& [name, t] : tensors)
        if (name.find("norm") != std::string::npos) t.fill_(NAN);
      saveSafetensors(file, tensors, metadata);
    }
    r = pivotCmd({"model", "check", nan, "--inputs", nan + "/io.safetensors"});
    QCOMPARE(r.code, 1);
    QVERIFY2(r.out.contains("FAILED: the model's outputs are not finite"), qPrintable(r.out));
  }

  // Review row 6.13: --from RUN never starts silently from an older snapshot than the run's last.
  void fromRunStartsFromTheCheckpointItNames() {
    const QString ws = m_dir.filePath("from-step");
    auto r = pivotCmd({"--workspace", ws, "train", "--preset", fastPreset(), "--stage", "align",
                       "--set", "checkpoint_every=2", "--name", "parent", "--quiet"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    const QString newest = ws + "/checkpoints/run-2/step-0000004";
    QVERIFY(QFileInfo::exists(newest + "/model.safetensors"));
    QVERIFY(QDir(newest).removeRecursively());  // its newest checkpoint's folder is gone
    const QStringList child = {"--stage", "sft", "--set", "steps=1", "--quiet"};
    r = pivotCmd(QStringList{"--workspace", ws, "train", "--from", "parent"} + child);
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("parent run parent's newest checkpoint (step 4") &&
                 r.err.contains("--from parent@2"),
             qPrintable(r.err));
    r = pivotCmd(QStringList{"--workspace", ws, "train", "--from", "parent@3"} + child);
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("no checkpoint at step 3 (have: 2, 4)"), qPrintable(r.err));
    r = pivotCmd(QStringList{"--workspace", ws, "train", "--from", "parent@2", "--stage", "sft",
                             "--set", "steps=1"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("starting from run parent at step 2"), qPrintable(r.out));
    RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
    const auto artifacts = store.artifacts(store.findRun("sft-3").id);
    QCOMPARE(artifacts.size(), size_t{1});  // the child records which checkpoint it started from
    QCOMPARE(artifacts[0].kind, std::string("parent-checkpoint"));
    QVERIFY(QString::fromStdString(artifacts[0].path).endsWith("run-2/step-0000002"));
  }

  // The README's first real model runs verbatim (its /tmp folders moved into the test's own).
  void readmeRealModelQuickStartRuns() {
    QFile readme(PIVOT_SOURCE_DIR "/README.md");
    QVERIFY(readme.open(QIODevice::ReadOnly | QIODevice::Text));
    const QString text = QString::fromUtf8(readme.readAll());
    const auto begin = text.indexOf("<!-- real-model-quick-start -->");
    const auto end = text.indexOf("<!-- end -->", begin);
    QVERIFY(begin >= 0 && end > begin);
    const QStringList lines = text.mid(begin, end - begin).split('\n', Qt::SkipEmptyParts).mid(1);
    QCOMPARE(lines.size(), 5);
    const QString tmp = m_dir.filePath("quick-start");
    QVERIFY(QDir().mkpath(tmp));
    for (QString line : lines) {
      line = line.trimmed().replace("/tmp/", tmp + "/");
      QVERIFY2(line.startsWith("build/app/pivot "), qPrintable(line));
      QProcess shell;
      shell.setWorkingDirectory(PIVOT_SOURCE_DIR);
      // The build tree's pivot stands in for build/app/pivot (the tests may build elsewhere).
      shell.start("/bin/sh", {"-c", QString(PIVOT_BINARY_DIR "/app/pivot") +
                                        line.mid(QString("build/app/pivot").size())});
      QVERIFY(shell.waitForFinished(600000));
      const QString out = shell.readAllStandardOutput(), err = shell.readAllStandardError();
      QVERIFY2(shell.exitCode() == 0, qPrintable(line + "\n" + err + out));
      if (line.contains(" generate ")) QVERIFY2(out.contains("A: "), qPrintable(line + "\n" + out));
    }
    QVERIFY(QFileInfo(tmp + "/squirrel-map.png").size() > 1000);
  }

  // Without --from, an earlier stage that an identical chain finished is reused, by the chain's
  // rule: a hyper-parameter reaches only the stage asked for, an architecture key every stage.
  void trainReusesAnIdenticalFinishedStage() {
    const QString ws = m_dir.filePath("reuse");
    const QStringList align = {"--workspace", ws,        "train", "--preset",
                               fastPreset(),  "--stage", "align", "--quiet"};
    auto r = pivotCmd(align);
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("stage 1 of 2: pretrain\n") && r.out.contains("stage 2 of 2: align\n"),
             qPrintable(r.out));
    r = pivotCmd(align + QStringList{"--set", "lr=3e-4", "--set", "threads=1"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("stage 1 of 2: pretrain: reused run 1 (an identical pretrain that "
                            "finished)"),
             qPrintable(r.out));
    QVERIFY2(!r.out.contains("pretrain run "), qPrintable(r.out));  // nothing trained for it
    QVERIFY2(r.out.contains("align run 3: finished"), qPrintable(r.out));
    r = pivotCmd(align + QStringList{"--set", "model.text_config.num_hidden_layers=1"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("stage 1 of 2: pretrain\n") && r.out.contains("pretrain run 4"),
             qPrintable(r.out));
    RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
    QCOMPARE(store.runs().size(), size_t(5));
    QCOMPARE(store.run(3)->parentId.value_or(0), int64_t(1));

    // --progress jsonl (what the window reads of a data-parallel child): every stdout line one
    // event; the reused stage, the new run's id, its steps and its end.
    r = pivotCmd(QStringList{"--workspace", ws, "train", "--preset", fastPreset(), "--stage",
                             "align", "--progress", "jsonl"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QStringList kinds;
    QList<QJsonObject> events;
    for (const auto& line : r.out.split('\n', Qt::SkipEmptyParts)) {
      const auto doc = QJsonDocument::fromJson(line.toUtf8());
      QVERIFY2(doc.isObject(), qPrintable(line));
      events << doc.object();
      kinds << doc.object().value("event").toString();
    }
    QCOMPARE(kinds.first(), QString("stage"));
    QCOMPARE(events[0].value("reused_run").toInteger(), 1);
    QCOMPARE(events[1].value("event").toString(), QString("stage"));
    QCOMPARE(events[1].value("reused_run").toInteger(), 0);
    const auto run = kinds.indexOf("run");  // after "starting from run pretrain-1" messages
    QVERIFY(run > 1);
    QCOMPARE(events[run].value("run").toInteger(), 6);
    QCOMPARE(events[run].value("stage").toString(), QString("align"));
    QVERIFY(kinds.contains("step"));
    QCOMPARE(events.last().value("event").toString(), QString("end"));
    QCOMPARE(events.last().value("status").toString(), QString("finished"));
    QCOMPARE(events.last().value("run").toInteger(), 6);
  }

  void trainRunsMetricsExport() {
    const QString ws = m_dir.filePath("ws");
    const QStringList small = {"--preset", fastPreset()};
    auto r = pivotCmd(
        QStringList{"--workspace", ws, "train", "--stage", "align", "--name", "first"} + small);
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("pretrain run 1: finished"), qPrintable(r.out));  // stage 0 runs first
    QVERIFY(r.out.contains("align run 2: finished"));
    QVERIFY(r.out.contains("vqa/accuracy"));

    r = pivotCmd({"--workspace", ws, "runs"});
    QCOMPARE(r.code, 0);
    QVERIFY(r.out.contains("first"));
    QVERIFY(r.out.contains("finished"));

    r = pivotCmd({"--workspace", ws, "metrics", "first", "--csv"});
    QCOMPARE(r.code, 0);
    const auto lines = r.out.trimmed().split('\n');
    QCOMPARE(lines.size(), 5);  // header + 4 steps
    QVERIFY(lines[0].startsWith("step,"));
    QVERIFY(lines[0].split(',').contains("loss"));
    QVERIFY(lines[4].startsWith("4,"));

    // A parent of another architecture is refused with exit code 2.
    r = pivotCmd(QStringList{"--workspace", ws, "train", "--stage", "sft", "--from", "first",
                             "--set", "model.text_config.hidden_size=32"} +
                 small);
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("another architecture"), qPrintable(r.err));

    // Generation: greedy answers reproduce; sampled ones reproduce under the same seed.
    r = pivotCmd({"--workspace", ws, "generate", "--checkpoint", "first", "--sample", "3"});
    QVERIFY2(r.code == 0 && r.out.contains("Q: ") && r.out.contains("A: "),
             qPrintable(r.err + r.out));
    QCOMPARE(
        pivotCmd({"--workspace", ws, "generate", "--checkpoint", "first", "--sample", "3"}).out,
        r.out);
    const QStringList sampled = {"--workspace",
                                 ws,
                                 "generate",
                                 "--checkpoint",
                                 "first",
                                 "--sample",
                                 "3",
                                 "--temperature",
                                 "1.0",
                                 "--samples",
                                 "3",
                                 "--seed",
                                 "5"};
    r = pivotCmd(sampled);
    QVERIFY2(r.code == 0 && r.out.contains("A3: "), qPrintable(r.err + r.out));
    QCOMPARE(pivotCmd(sampled).out, r.out);
    r = pivotCmd({"--workspace", ws, "generate", "--checkpoint", "first"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("give either --sample N or --image FILE"), qPrintable(r.err));

    // Attribution: a figure for one sample under the checkpoint, and localisation scores.
    const QString figure = m_dir.filePath("fig.pdf");
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "first", "--checkpoint", "first@4",
                  "--sample", "0", "--method", "gradmap", "--out", figure});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY(QFileInfo(figure).size() > 1000);
    QVERIFY(r.out.contains("first @ 4"));
    QVERIFY(r.out.contains("mass "));
    // One map per answer token (issue 29): the answer word and the turn's end, one checkpoint.
    const QString tokensFigure = m_dir.filePath("tokens.svg");
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "first", "--sample", "0",
                  "--per-token", "--out", tokensFigure});
    QVERIFY2(r.code == 0 && r.out.contains("one map per answer token:") &&
                 r.out.contains("'<|im_end|>'  log-prob "),
             qPrintable(r.err + r.out));
    QFile svg(tokensFigure);
    QVERIFY(svg.open(QIODevice::ReadOnly));
    QCOMPARE(svg.readAll().count("<image"), 3);  // the sample and a map per token
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "first", "--checkpoint", "first@4",
                  "--sample", "0", "--per-token", "--out", tokensFigure});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("--per-token explains one --checkpoint (or --model), got 2"),
             qPrintable(r.err));
    // The map over a run's checkpoints as an animated PNG (issue 29): a frame a checkpoint.
    const QString film = m_dir.filePath("film.png");
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "first", "--sample", "0",
                  "--animate", "--out", film});
    QVERIFY2(r.code == 0 && r.out.contains("frames, one a checkpoint"), qPrintable(r.err + r.out));
    QFile filmFile(film);
    QVERIFY(filmFile.open(QIODevice::ReadOnly));
    const QByteArray filmBytes = filmFile.readAll();
    QVERIFY(filmBytes.startsWith("\x89PNG") && filmBytes.contains("acTL"));
    QCOMPARE(filmBytes.count("fcTL"), 1);  // the run keeps one checkpoint (step 4): one frame
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "first@4", "--sample", "0",
                  "--animate", "--out", film});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("--animate takes one --checkpoint RUN"), qPrintable(r.err));
    // A counterfactual edit (issue 29): object 0 removed, the scene's caption loses it, each
    // checkpoint's answer and log-prob before and after, and a figure of both scenes' maps.
    const QString edits = m_dir.filePath("counterfactual.pdf");
    r = pivotCmd({"--workspace", ws, "counterfactual", "--checkpoint", "first", "--sample", "0",
                  "--edit", "remove:0", "--out", edits});
    QVERIFY2(r.code == 0 && r.out.contains("before: ") && r.out.contains("after: ") &&
                 r.out.contains("first @ 4: answer '") && r.out.contains("log p('"),
             qPrintable(r.err + r.out));
    QFile editsFile(edits);
    QVERIFY(editsFile.open(QIODevice::ReadOnly));
    QCOMPARE(editsFile.readAll().count("/Subtype /Image"), 4);  // two scenes, a map each
    r = pivotCmd({"--workspace", ws, "counterfactual", "--checkpoint", "first", "--sample", "0",
                  "--edit", "recolour:0:pink"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("--edit 'recolour:0:pink': unknown colour 'pink'"), qPrintable(r.err));
    r = pivotCmd({"--workspace", ws, "counterfactual", "--checkpoint", "first", "--sample", "0",
                  "--edit", "remove:7"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("object 7 is not in the scene"), qPrintable(r.err));
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "first@99", "--sample", "0",
                  "--out", figure});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("no checkpoint at step '99' (have: 4)"), qPrintable(r.err));
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "first", "--sample", "0",
                  "--method", "saliency", "--out", figure});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("unknown method 'saliency'"), qPrintable(r.err));
    r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "first", "--samples", "24",
                  "--method", "gradcam", "--layer", "1"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY(r.out.contains("mass inside target"));
    QVERIFY(r.out.contains("pointing game"));
    QVERIFY(r.out.contains("deletion-curve area"));
    QVERIFY2(r.out.contains("visual-token removal area, map order "), qPrintable(r.out));
    r = pivotCmd(
        {"--workspace", ws, "localize", "--checkpoint", "first", "--samples", "12", "--csv"});
    QCOMPARE(r.code, 0);
    QVERIFY(r.out.startsWith("index,category,mass_inside,pointing_hit,target_area,deletion_area"));

    // Probes of the frozen encoder: a row per checkpoint, stored as evaluations.
    r = pivotCmd({"--workspace", ws, "probe", "--checkpoint", "first", "--task", "shape", "--train",
                  "64", "--val", "32", "--test", "32", "--seg-seeds", "2"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY(r.out.contains("first @ 4"));
    QVERIFY(r.out.contains(" +- "));
    r = pivotCmd({"--workspace", ws, "probe", "--checkpoint", "first", "--task", "fashion-mnist",
                  "--train", "200", "--val", "100", "--test", "100"});
    QVERIFY2(
        r.code == 0,
        qPrintable(r.err + r.out));  // Debian's dataset-fashion-mnist, set up by scripts/setup.sh
    QVERIFY(r.out.contains("first @ 4"));
    r = pivotCmd({"--workspace", ws, "probe", "--checkpoint", "first", "--task", "texture"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("unknown probe task 'texture'"), qPrintable(r.err));

    // Any image+mask data: JSONL records with image and mask files beside them.
    {
      QImage image(32, 32, QImage::Format_RGB888), mask(32, 32, QImage::Format_RGB888);
      image.fill(QColor(40, 40, 40));
      mask.fill(Qt::black);
      for (int y = 8; y < 20; ++y)
        for (int x = 10; x < 22; ++x) {
          image.setPixelColor(x, y, QColor(220, 50, 40));
          mask.setPixelColor(x, y, Qt::white);
        }
      QVERIFY(image.save(m_dir.filePath("red.png")) && mask.save(m_dir.filePath("red-mask.png")));
      QFile records(m_dir.filePath("records.jsonl"));
      QVERIFY(records.open(QIODevice::WriteOnly));
      records.write(
          R"({"image": "red.png", "mask": "red-mask.png", "question": "what colour is the square ?", "answer": "red", "rejected": "blue", "category": "colour"})"
          "\n");
      records.write(
          R"({"image": "red.png", "mask": "red-mask.png", "question": "what shape is the red object ?", "answer": "square"})"
          "\n");
      records.close();
      r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "first", "--data",
                    m_dir.filePath("records.jsonl")});
      QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
      QVERIFY2(r.out.contains("2 samples with a target"), qPrintable(r.out));
      QVERIFY(r.out.contains("uniform-map baseline 0.141"));  // 12 x 12 of 32 x 32 pixels
      QVERIFY(records.open(QIODevice::Append));
      records.write(R"({"image": "red.png", "question": "what colour is it ?", "answer": "red"})"
                    "\n");
      records.close();
      r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "first", "--data",
                    m_dir.filePath("records.jsonl")});
      QCOMPARE(r.code, 2);
      QVERIFY2(r.err.contains("records.jsonl:3: missing text field 'mask'"), qPrintable(r.err));
    }

    // Swap test: the result is a run of its own that the other commands can use.
    r = pivotCmd(
        {"--workspace", ws, "swap", "--encoder", "first", "--into", "first@4", "--samples", "12"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY(r.out.contains("swapped encoder"));
    QVERIFY(r.out.contains("saved as run 3 (swap-first-into-first)"));
    r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "swap-first-into-first",
                  "--samples", "12"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));

    const QString out = m_dir.filePath("export");
    r = pivotCmd({"--workspace", ws, "export", "first", "--out", out});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    for (const char* f : {"model.safetensors", "config.json", "metrics.csv",
                          "vision_encoder/model.safetensors", "vision_encoder/config.json"})
      QVERIFY2(QFileInfo::exists(out + "/" + f), f);
    // The exported encoder loads as a SigLIP vision tower by HF names.
    auto cfg =
        visionConfigFromJson(readJsonFile((out + "/vision_encoder/config.json").toStdString()));
    VisionTransformer vit(cfg);
    auto report = loadStateDict(
        *vit, loadSafetensors((out + "/vision_encoder/model.safetensors").toStdString()),
        {"", "vision_model."}, "export");
    QCOMPARE(report.prefix, std::string("vision_model."));
    QCOMPARE(report.loaded, static_cast<int>(vit->parameters().size()));

    // As a Hugging Face LLaVA folder, which `pivot model check` then reads (hub layout, bf16).
    const QString hf = m_dir.filePath("export-hf");
    r = pivotCmd({"--workspace", ws, "export", "first", "--format", "hf", "--out", hf});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("prefix_bidirectional"), qPrintable(r.out));  // said, not hidden
    for (const char* file : {"tokenizer.json", "tokenizer_config.json"})  // a complete model
      QVERIFY2(QFileInfo::exists(hf + "/" + file), file);
    r = pivotCmd({"model", "check", hf});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("name layout: hub; 1 file") && r.out.contains("BFloat16"),
             qPrintable(r.out));
    r = pivotCmd({"model", "check", m_dir.filePath("nothing-here")});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("config.json: cannot open"), qPrintable(r.err));
  }

  // A real-format model end to end: a random LLaVA folder with the Qwen2.5 vocabulary, LLaVA and
  // preference records whose images are files on disk, SFT then DPO from it, export as a Hugging
  // Face folder, check it, and read it back with the same weights as the run's checkpoint.
  void realModelTrainsAndExports() {
    const QString dir = m_dir.filePath("real");
    QVERIFY(QDir().mkpath(dir + "/img"));
    auto config = readJsonFile(PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny/config.json");
    config["text_config"]["vocab_size"] = 151665;
    config["image_token_index"] = 151655;  // <|image_pad|>
    std::ofstream((dir + "/config.json").toStdString()) << config.dump();
    nlohmann::json llava = nlohmann::json::array();
    std::string prefs;
    const std::vector<std::pair<QString, QColor>> colours = {{"red", QColor(220, 30, 30)},
                                                             {"blue", QColor(30, 30, 220)},
                                                             {"green", QColor(30, 200, 30)}};
    for (const auto& [name, colour] : colours) {
      writeImage(dir + "/img/" + name + ".png", 48, 40, colour);
      const std::string n = name.toStdString();
      llava.push_back({{"id", n},
                       {"image", "img/" + n + ".png"},
                       {"conversations",
                        {{{"from", "human"}, {"value", "<image>\nWhat colour is the square?"}},
                         {{"from", "gpt"}, {"value", "The square is " + n + "."}}}}});
      prefs += nlohmann::json({{"image", "img/" + n + ".png"},
                               {"question", "What colour is it?"},
                               {"chosen", "It is " + n + "."},
                               {"rejected", "It is grey."}})
                   .dump() +
               "\n";
    }
    // Real instruction data mixes text-only records and records with several images.
    llava.push_back({{"id", "text"},
                     {"conversations",
                      {{{"from", "human"}, {"value", "Name a primary colour."}},
                       {{"from", "gpt"}, {"value", "Red."}}}}});
    llava.push_back({{"id", "two"},
                     {"image", {"img/red.png", "img/blue.png"}},
                     {"conversations",
                      {{{"from", "human"}, {"value", "<image>\n<image>\nWhich is red, 1 or 2?"}},
                       {{"from", "gpt"}, {"value", "The first."}}}}});
    std::ofstream((dir + "/llava.json").toStdString()) << llava.dump(1);
    std::ofstream((dir + "/prefs.jsonl").toStdString()) << prefs;
    const QString model = dir + "/model", ws = dir + "/ws";
    // An image token outside the vocabulary is refused before anything is written.
    auto outside = config;
    outside["image_token_index"] = 200000;
    std::ofstream((dir + "/outside.json").toStdString()) << outside.dump();
    auto r = pivotCmd(
        {"model", "init", dir + "/outside.json", "--out", model, "--tokenizer", kQwenTokenizer});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("outside.json: field 'image_token_index' is outside the vocabulary"),
             qPrintable(r.err));
    QVERIFY(!QFileInfo::exists(model));
    // A folder whose tokenizer was swapped afterwards: training says so before its first step.
    const QString swapped = dir + "/swapped";
    r = pivotCmd({"model", "init", PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny/config.json",
                  "--out", swapped});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    for (const QString file : {"tokenizer.json", "tokenizer_config.json"})
      QVERIFY(QFile::copy(kQwenTokenizer + "/" + file, swapped + "/" + file));
    r = pivotCmd({"--workspace", dir + "/swapped-ws", "train", "--model", swapped, "--data",
                  dir + "/llava.json", "--stage", "sft", "--set", "steps=1"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("tokenizer.json has 151665 tokens but the model's "
                            "text_config.vocab_size is 128"),
             qPrintable(r.err));
    r = pivotCmd({"model", "check", swapped});
    QVERIFY2(r.code == 1 && r.out.contains("problem: " + swapped + "/tokenizer.json has 151665"),
             qPrintable(r.out + r.err));
    r = pivotCmd(
        {"model", "init", dir + "/config.json", "--out", model, "--tokenizer", kQwenTokenizer});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    r = pivotCmd({"--workspace", ws, "train", "--model", model, "--data", dir + "/llava.json",
                  "--stage", "sft", "--set", "steps=3", "--set", "batch_size=3", "--name", "rsft"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("data: 5 of 5 records") && r.out.contains("qwen2.5 template"),
             qPrintable(r.out));
    // Review row 2.13: an image that does not decode stops the run naming its record (the check
    // would have found it); --skip-bad replaces such a record, also when resuming the run.
    QFile::copy(dir + "/img/red.png", dir + "/img/broken.png");
    QVERIFY(damagePng(dir + "/img/broken.png") > 0);
    nlohmann::json withBroken = llava;
    withBroken.push_back({{"id", "broken"},
                          {"image", "img/broken.png"},
                          {"conversations",
                           {{{"from", "human"}, {"value", "<image>\nWhat colour?"}},
                            {{"from", "gpt"}, {"value", "Red."}}}}});
    const QString brokenData = dir + "/llava-broken.json";
    std::ofstream(brokenData.toStdString()) << withBroken.dump(1);
    const QStringList brokenRun = {"--workspace", ws,         "train",       "--model", model,
                                   "--data",      brokenData, "--stage",     "sft",     "--set",
                                   "steps=4",     "--set",    "batch_size=3"};
    r = pivotCmd(brokenRun + QStringList{"--name", "rbroken"});
    QCOMPARE(r.code, 1);
    QVERIFY2(r.err.contains("(record 5): image " + dir + "/img/broken.png: damaged PNG") &&
                 r.err.contains("--skip-bad") && !r.err.contains("libpng"),
             qPrintable(r.err));
    r = pivotCmd({"--workspace", ws, "train", "--resume", "rbroken", "--skip-bad"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("skip_bad: ") && r.out.contains("broken.png: damaged PNG"),
             qPrintable(r.out));
    // localize scores ShapesWorld models only: a real model's run is refused by name (issue 26).
    r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "rsft", "--samples", "4"});
    QVERIFY2(r.code == 2 && r.err.contains("is a run of a real model"), qPrintable(r.err));
    r = pivotCmd(brokenRun + QStringList{"--name", "rskip", "--skip-bad"});
    QVERIFY2(r.code == 0 && r.out.contains("skip_bad: "), qPrintable(r.err + r.out));
    // Review row 6.12: a resume on data that changed since its checkpoint says so. (Weight decay
    // this large makes the weights overflow within a few steps, after the first checkpoints.)
    const QString changing = dir + "/llava-changing.json";
    std::ofstream(changing.toStdString()) << llava.dump(1);
    r = pivotCmd({"--workspace",
                  ws,
                  "train",
                  "--model",
                  model,
                  "--data",
                  changing,
                  "--stage",
                  "sft",
                  "--set",
                  "steps=12",
                  "--set",
                  "batch_size=2",
                  "--set",
                  "lr=0.5",
                  "--set",
                  "weight_decay=10000",
                  "--set",
                  "warmup_ratio=0",
                  "--set",
                  "checkpoint_every=1",
                  "--name",
                  "rchanging"});
    QVERIFY2(r.code == 1 && r.err.contains("last good checkpoint"), qPrintable(r.err + r.out));
    nlohmann::json fewer = llava;
    fewer.erase(fewer.begin());
    std::ofstream(changing.toStdString()) << fewer.dump(1);
    r = pivotCmd({"--workspace", ws, "train", "--resume", "rchanging"});
    QVERIFY2(r.out.contains("warning: the data changed since checkpoint") &&
                 r.out.contains("llava-changing.json: 5 records") &&
                 r.out.contains("now llava-changing.json: 4 records"),
             qPrintable(r.out + r.err));
    r = pivotCmd({"--workspace", ws, "train", "--model", model, "--data", dir + "/prefs.jsonl",
                  "--stage", "dpo", "--from", "rsft", "--set", "steps=2", "--set", "batch_size=2",
                  "--name", "rdpo"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("rewards/margins"), qPrintable(r.out));
    // GRPO on real data: the dataset's prompts (text-only and two-image records among them), G
    // completions each in the Qwen2.5 template, the accuracy reward against each record's answer.
    r = pivotCmd({"--workspace",
                  ws,
                  "train",
                  "--model",
                  model,
                  "--data",
                  dir + "/llava.json",
                  "--stage",
                  "grpo",
                  "--from",
                  "rsft",
                  "--set",
                  "steps=3",
                  "--set",
                  "batch_size=10",
                  "--set",
                  "num_generations=2",
                  "--set",
                  "max_completion_length=4",
                  "--set",
                  "log_completions_steps=1",
                  "--name",
                  "rgrpo"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    {
      RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
      const auto run = store.findRun("rgrpo");
      QCOMPARE(store.metrics(run.id, "rewards/accuracy/mean").size(), size_t(3));
      QCOMPARE(store.completionSteps(run.id), (std::vector<int64_t>{1, 2, 3}));
      const std::set<std::string> answers = {"The square is red.", "The square is blue.",
                                             "The square is green.", "Red.", "The first."};
      const auto rows = store.completions(run.id, 1);
      QCOMPARE(rows.size(), size_t(4 * 2));  // the first four prompts, two completions each
      for (const auto& row : rows) {
        QVERIFY2(answers.count(row.reference), row.reference.c_str());
        QVERIFY2(row.question.find("<image>") == std::string::npos, row.question.c_str());
        if (row.reference.rfind("The square", 0) == 0)  // a photo record: its image file
          QVERIFY2(QFileInfo(QString::fromStdString(row.sample)).isFile(), row.sample.c_str());
      }
    }
    // MPO on the preference records: DPO's trainer with its three weighted terms.
    r = pivotCmd({"--workspace", ws, "train", "--model", model, "--data", dir + "/prefs.jsonl",
                  "--stage", "mpo", "--from", "rsft", "--set", "steps=2", "--set", "batch_size=2",
                  "--name", "rmpo"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    {
      RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
      const auto run = store.findRun("rmpo");
      QCOMPARE(run.stage, std::string("mpo"));
      for (const char* key : {"loss/sigmoid", "loss/bco_pair", "loss/sft", "rewards/margins"})
        QVERIFY2(store.metrics(run.id, key).size() == 2, key);
    }
    // Instruction records are not preference pairs: DPO on them is refused before anything runs.
    r = pivotCmd({"--workspace", ws, "train", "--model", model, "--data", dir + "/llava.json",
                  "--stage", "dpo", "--set", "steps=1"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("no usable record") && r.err.contains("without a rejected answer"),
             qPrintable(r.err));

    // The trained model answers a photo with the Qwen2.5 template's generation prompt.
    r = pivotCmd({"--workspace", ws, "generate", "--checkpoint", "rdpo", "--image",
                  dir + "/img/red.png", "--question", "What colour is it?", "--max-new-tokens",
                  "4"});
    QVERIFY2(r.code == 0 && r.out.contains("A: "), qPrintable(r.err + r.out));

    // Gradient maps on a photo with a typed question, under the run and under the folder itself.
    const QString figure = dir + "/maps.png";
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "rdpo", "--model", model, "--image",
                  dir + "/img/red.png", "--question", "What colour?", "--answer", "Red.", "--out",
                  figure});
    QVERIFY2(r.code == 0 && QFileInfo::exists(figure), qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("rdpo @ 2") && r.out.contains("model @ 0"), qPrintable(r.out));
    r = pivotCmd(
        {"--workspace", ws, "explain", "--checkpoint", "rdpo", "--sample", "1", "--out", figure});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("is a real model: explain it on --image"), qPrintable(r.err));

    const QString hf = dir + "/exported";
    r = pivotCmd(
        {"--workspace", ws, "export", "rdpo", "--format", "hf", "--dtype", "f32", "--out", hf});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(!r.out.contains("prefix_bidirectional"));    // a real model attends causally already
    QVERIFY(QFileInfo::exists(hf + "/tokenizer.json"));  // the model's tokenizer travels with it
    r = pivotCmd({"model", "check", hf});
    QVERIFY2(r.code == 0 && r.out.contains("vocab 151665"), qPrintable(r.err + r.out));
    // An export never mixes with another: a second one into the same folder is refused unless
    // --overwrite, which replaces the folder whole (a sharded export leaves no single file behind).
    r = pivotCmd({"--workspace", ws, "export", "rdpo", "--format", "hf", "--dtype", "f32",
                  "--shard-mb", "1", "--out", hf});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("already holds files; pass --overwrite"), qPrintable(r.err));
    QVERIFY(QFileInfo::exists(hf + "/model.safetensors"));
    r = pivotCmd({"--workspace", ws, "export", "rdpo", "--format", "hf", "--dtype", "f32",
                  "--shard-mb", "1", "--out", hf, "--overwrite"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(QFileInfo::exists(hf + "/model.safetensors.index.json"));
    QVERIFY(!QFileInfo::exists(hf + "/model.safetensors"));
    // The run's own base model folder is never a target: its weights stay as they were.
    const auto baseBytes = [&] {
      QFile f(model + "/model.safetensors");
      return f.open(QIODevice::ReadOnly)
                 ? QCryptographicHash::hash(f.readAll(), QCryptographicHash::Md5)
                 : QByteArray();
    };
    const QByteArray before = baseBytes();
    r = pivotCmd(
        {"--workspace", ws, "export", "rdpo", "--format", "hf", "--out", model, "--overwrite"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("is the run's base model folder"), qPrintable(r.err));
    QCOMPARE(baseBytes(), before);
    RunStore store(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
    const auto run = store.findRun("rdpo");
    auto trained = loadCheckpointFolder(lastUsableCheckpoint(store, run.id), "cpu");
    HfLlava back = loadHfLlava(hf.toStdString());
    auto a = trained.model->named_parameters(), b = back.model->named_parameters();
    QCOMPARE(a.size(), b.size());
    for (const auto& item : a)
      QVERIFY2(torch::equal(item.value(), b[item.key()]), item.key().c_str());

    // The PIVOT transplant around a real encoder: the trained tower (as exported, a
    // SiglipVisionModel folder; and as the LLaVA folder, with its first projector layer) in a
    // model whose LM is new (`pivot model init` from the config, another seed), then stage 1 on
    // LLaVA data with the encoder frozen.
    const QString fresh = dir + "/fresh";
    r = pivotCmd({"model", "init", dir + "/config.json", "--out", fresh, "--tokenizer",
                  kQwenTokenizer, "--seed", "9"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    r = pivotCmd({"--workspace", ws, "train", "--model", fresh, "--data", dir + "/llava.json",
                  "--stage", "align", "--set", "steps=2", "--set", "batch_size=2", "--set",
                  "vision_init=" + hf + "/vision_encoder", "--name", "transplant"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("vision tower from " + hf + "/vision_encoder"), qPrintable(r.out));
    r = pivotCmd({"--workspace",
                  ws,
                  "train",
                  "--model",
                  fresh,
                  "--data",
                  dir + "/llava.json",
                  "--stage",
                  "instruct",
                  "--set",
                  "steps=2",
                  "--set",
                  "batch_size=2",
                  "--set",
                  "vision_init=" + hf,
                  "--set",
                  "projector_init=one_plus_one",
                  "--set",
                  "freeze_vision=true",
                  "--name",
                  "transplant11"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    {
      RunStore runs(storePath(ws.toStdString()), RunStore::Access::ReadOnly);
      const auto source = loadHfLlava(hf.toStdString());
      const auto freshModel = loadHfLlava(fresh.toStdString());
      for (const char* name : {"transplant", "transplant11"}) {
        auto moved = loadCheckpointFolder(lastUsableCheckpoint(runs, runs.findRun(name).id), "cpu");
        auto mine = moved.model->named_parameters(), theirs = source.model->named_parameters(),
             init = freshModel.model->named_parameters();
        for (const auto& item : mine) {
          const std::string& key = item.key();
          if (key.rfind("vision_tower.", 0) == 0)  // the encoder arrived and stayed frozen
            QVERIFY2(torch::equal(item.value(), theirs[key]), key.c_str());
          if (key.rfind("language_model.model.layers.0.mlp", 0) == 0)  // the LM is the new one...
            QVERIFY2(!torch::equal(item.value(), theirs[key]), key.c_str());
        }
        QVERIFY(
            !torch::equal(mine["language_model.model.layers.0.mlp.up_proj.weight"],
                          init["language_model.model.layers.0.mlp.up_proj.weight"]));  // ...trained
        const bool onePlusOne = std::string(name) == "transplant11";
        QCOMPARE(torch::equal(mine["multi_modal_projector.linear_1.weight"],
                              theirs["multi_modal_projector.linear_1.weight"]),
                 onePlusOne);
      }
    }
    r = pivotCmd({"--workspace", ws, "train", "--model", fresh, "--data", dir + "/llava.json",
                  "--stage", "align", "--set", "steps=1", "--set",
                  "vision_init=" + hf + "/vision_encoder", "--set", "projector_init=one_plus_one"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("projector_init=one_plus_one needs a source with a projector"),
             qPrintable(r.err));

    // A linear probe of the real encoder on an ImageFolder (two classes of 20 photos), the
    // folder's own SigLIP processor preparing the images; the run's result is stored with it.
    const QString folder = dir + "/imagefolder";
    for (const auto& [name, colour] : {std::make_pair(QString("warm"), QColor(230, 120, 20)),
                                       std::make_pair(QString("cold"), QColor(20, 110, 230))}) {
      QVERIFY(QDir().mkpath(folder + "/" + name));
      for (int k = 0; k < 20; ++k)
        writeImage(QString("%1/%2/%3.png").arg(folder, name).arg(k), 24 + k, 30 - k / 2,
                   colour.lighter(80 + 3 * k));
    }
    r = pivotCmd(
        {"--workspace", ws, "probe", "--checkpoint", "rdpo", "--model", hf, "--images", folder});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("ImageFolder") && r.out.contains("2 classes") &&
                 r.out.contains("probe task 'imagefolder'"),
             qPrintable(r.out));
    const auto evaluations =
        RunStore(storePath(ws.toStdString()), RunStore::Access::ReadOnly).evaluations(run.id);
    double accuracy = -1;
    for (const auto& e : evaluations)
      if (e.name == "probe/imagefolder/layer-2" && e.key == "linear/test_accuracy")
        accuracy = e.value;
    QVERIFY2(accuracy >= 0.75,
             qPrintable(QString("test accuracy %1\n%2").arg(accuracy).arg(r.out)));
    r = pivotCmd({"probe", "--model", hf, "--images", dir + "/img"});  // files, not class folders
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("a probe needs at least two class folders, found 0"),
             qPrintable(r.err));
  }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
