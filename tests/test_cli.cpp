// The `pivot` command as a user runs it: errors are one line with exit code 2 and write nothing;
// train, runs, metrics --csv and export work on a tiny run.
#include <QtTest/QtTest>
#include <torch/torch.h>

#include <QColor>
#include <QFile>
#include <QImage>
#include <QProcess>
#include <QTemporaryDir>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/state_dict.h"
#include "model/model_config.h"
#include "model/vision_transformer.h"

using namespace pivot;

namespace {

struct Result {
  int code;
  QString out, err;
};

Result pivotCmd(const QStringList& args) {
  QProcess p;
  p.start(PIVOT_BINARY_DIR "/app/pivot", args);
  p.waitForFinished(600000);
  return {p.exitCode(), QString::fromUtf8(p.readAllStandardOutput()), QString::fromUtf8(p.readAllStandardError())};
}

}  // namespace

class TestCli : public QObject {
  Q_OBJECT
  QTemporaryDir m_dir;

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
        {{"experiment", "--transplant-projector", "two"}, "--transplant-projector must be new or one_plus_one"},
    };
    for (const auto& c : cases) {
      auto r = pivotCmd(QStringList{"--workspace", ws} + c.args);
      QVERIFY2(r.code == 2, qPrintable(c.args.join(' ') + " -> " + QString::number(r.code) + r.err));
      QVERIFY2(r.err.contains(c.message), qPrintable(r.err));
      QCOMPARE(r.err.trimmed().count('\n'), 0);
      QVERIFY2(!QFileInfo::exists(ws), qPrintable(c.args.join(' ')));
    }
  }

  void trainRunsMetricsExport() {
    const QString ws = m_dir.filePath("ws");
    const QStringList small = {"--set", "steps=4", "--set", "batch_size=8", "--set", "eval_samples=12"};
    auto r = pivotCmd(QStringList{"--workspace", ws, "train", "--stage", "align", "--name", "first"} + small);
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
    r = pivotCmd(QStringList{"--workspace", ws, "train", "--stage", "sft", "--from", "first", "--set",
                             "model.text_config.hidden_size=32"} + small);
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("another architecture"), qPrintable(r.err));

    // Attribution: a figure for one sample under the checkpoint, and localisation scores.
    const QString figure = m_dir.filePath("fig.pdf");
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "first", "--checkpoint", "first@4", "--sample", "0",
                  "--method", "gradmap", "--out", figure});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY(QFileInfo(figure).size() > 1000);
    QVERIFY(r.out.contains("first @ 4"));
    QVERIFY(r.out.contains("mass "));
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "first@99", "--sample", "0", "--out", figure});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("no checkpoint at step '99' (have: 4)"), qPrintable(r.err));
    r = pivotCmd({"--workspace", ws, "explain", "--checkpoint", "first", "--sample", "0", "--method", "saliency", "--out", figure});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("unknown method 'saliency'"), qPrintable(r.err));
    r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "first", "--samples", "24", "--method", "gradcam", "--layer", "1"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY(r.out.contains("mass inside target"));
    QVERIFY(r.out.contains("pointing game"));
    QVERIFY(r.out.contains("deletion-curve area"));
    r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "first", "--samples", "12", "--csv"});
    QCOMPARE(r.code, 0);
    QVERIFY(r.out.startsWith("index,category,mass_inside,pointing_hit,target_area,deletion_area"));

    // Probes of the frozen encoder: a row per checkpoint, stored as evaluations.
    r = pivotCmd({"--workspace", ws, "probe", "--checkpoint", "first", "--task", "shape", "--train", "64", "--val", "32",
                  "--test", "32", "--seg-seeds", "2"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY(r.out.contains("first @ 4"));
    QVERIFY(r.out.contains(" +- "));
    r = pivotCmd({"--workspace", ws, "probe", "--checkpoint", "first", "--task", "fashion-mnist", "--train", "200",
                  "--val", "100", "--test", "100"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));  // Debian's dataset-fashion-mnist, set up by scripts/setup.sh
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
      records.write(R"({"image": "red.png", "mask": "red-mask.png", "question": "what colour is the square ?", "answer": "red", "rejected": "blue", "category": "colour"})" "\n");
      records.write(R"({"image": "red.png", "mask": "red-mask.png", "question": "what shape is the red object ?", "answer": "square"})" "\n");
      records.close();
      r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "first", "--data", m_dir.filePath("records.jsonl")});
      QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
      QVERIFY2(r.out.contains("2 samples with a target"), qPrintable(r.out));
      QVERIFY(r.out.contains("uniform-map baseline 0.141"));  // 12 x 12 of 32 x 32 pixels
      QVERIFY(records.open(QIODevice::Append));
      records.write(R"({"image": "red.png", "question": "what colour is it ?", "answer": "red"})" "\n");
      records.close();
      r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "first", "--data", m_dir.filePath("records.jsonl")});
      QCOMPARE(r.code, 2);
      QVERIFY2(r.err.contains("records.jsonl:3: missing text field 'mask'"), qPrintable(r.err));
    }

    // Swap test: the result is a run of its own that the other commands can use.
    r = pivotCmd({"--workspace", ws, "swap", "--encoder", "first", "--into", "first@4", "--samples", "12"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));
    QVERIFY(r.out.contains("swapped encoder"));
    QVERIFY(r.out.contains("saved as run 3 (swap-first-into-first)"));
    r = pivotCmd({"--workspace", ws, "localize", "--checkpoint", "swap-first-into-first", "--samples", "12"});
    QVERIFY2(r.code == 0, qPrintable(r.err + r.out));

    const QString out = m_dir.filePath("export");
    r = pivotCmd({"--workspace", ws, "export", "first", "--out", out});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    for (const char* f : {"model.safetensors", "config.json", "metrics.csv", "vision_encoder/model.safetensors",
                          "vision_encoder/config.json"})
      QVERIFY2(QFileInfo::exists(out + "/" + f), f);
    // The exported encoder loads as a SigLIP vision tower by HF names.
    auto cfg = visionConfigFromJson(readJsonFile((out + "/vision_encoder/config.json").toStdString()));
    VisionTransformer vit(cfg);
    auto report = loadStateDict(*vit, loadSafetensors((out + "/vision_encoder/model.safetensors").toStdString()),
                                {"", "vision_model."}, "export");
    QCOMPARE(report.prefix, std::string("vision_model."));
    QCOMPARE(report.loaded, static_cast<int>(vit->parameters().size()));
  }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
