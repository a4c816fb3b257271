// safetensors reader/writer and checkpoint folders: round trips, byte layout, clear errors.
#include <QtTest/QtTest>
#include <torch/torch.h>

#include <QTemporaryDir>
#include <fstream>

#include "io/checkpoint.h"
#include "io/export_folder.h"
#include "io/safetensors.h"
#include "io/state_dict.h"

using namespace pivot;

class TestSafetensors : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void roundTripKeepsDtypesShapesValuesAndMetadata() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("t.safetensors").toStdString();
    TensorMap in = {{"a.weight", torch::randn({3, 4})},
                    {"b", torch::arange(10, torch::kInt64)},
                    {"c.half", torch::randn({2, 2}).to(torch::kBFloat16)},
                    {"d.bytes", torch::tensor({1, 2, 255}, torch::kUInt8)},
                    {"e.scalar", torch::tensor(3.5)},
                    {"f.empty", torch::zeros({0, 4})}};
    saveSafetensors(path, in, {{"format", "pt"}});
    StringMap meta;
    auto out = loadSafetensors(path, &meta);
    QCOMPARE(out.size(), in.size());
    QCOMPARE(meta.at("format"), std::string("pt"));
    for (const auto& [k, v] : in) {
      QCOMPARE(out.at(k).scalar_type(), v.scalar_type());
      QCOMPARE(out.at(k).sizes().vec(), v.sizes().vec());
      QVERIFY(torch::equal(out.at(k), v));
    }
  }

  // The mapped reader gives the file's values without copying, survives its own destruction,
  // never writes through to the file, and copes with a tensor the format left unaligned.
  void mappedViewsAreTheFileAndNeverChangeIt() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("m.safetensors").toStdString();
    const auto weight = torch::randn({64, 1024});  // 256 KiB: several whole pages to release
    saveSafetensors(path, {{"w", weight}, {"h", weight.to(torch::kBFloat16)}});
    torch::Tensor view;
    {
      const MappedSafetensors file(path);
      QCOMPARE(file.entries().size(), size_t(2));
      for (const auto& entry : file.entries()) {
        if (entry.name != "w") continue;
        view = file.view(entry);
        QVERIFY(torch::equal(view, weight));
        file.release(entry);  // pages dropped from this process: read again from the file
        QVERIFY(torch::equal(view, weight));
      }
    }
    QVERIFY(torch::equal(view, weight));  // the view keeps the mapping alive
    view.fill_(7.0f);                     // copy-on-write: this process's own pages
    QVERIFY(torch::equal(loadSafetensors(path).at("w"), weight));

    // An F32 tensor at byte 1 of the data block (after one U8): the format allows it.
    const std::string raw = dir.filePath("odd.safetensors").toStdString();
    const std::string header =
        R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
    {
      std::ofstream out(raw, std::ios::binary);
      unsigned char len[8] = {static_cast<unsigned char>(header.size())};
      out.write(reinterpret_cast<const char*>(len), 8);
      const float values[2] = {1.5f, -2.25f};
      out << header << '\x09';
      out.write(reinterpret_cast<const char*>(values), sizeof values);
    }
    const auto odd = loadSafetensors(raw);
    QCOMPARE(odd.at("b").item<int>(), 9);
    QVERIFY(torch::equal(odd.at("f"), torch::tensor({1.5f, -2.25f})));
  }

  void headerLayoutFollowsTheFormat() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("t.safetensors").toStdString();
    saveSafetensors(path, {{"x", torch::tensor({1.0f, 2.0f})}});
    std::ifstream f(path, std::ios::binary);
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)), {});
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
    QCOMPARE(n % 8, uint64_t(0));  // data aligned to 8 bytes
    const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
    QVERIFY(header.find("\"dtype\":\"F32\"") != std::string::npos);
    QVERIFY(header.find("\"data_offsets\":[0,8]") != std::string::npos);
    QCOMPARE(bytes.size(), size_t(8 + n + 8));
    float first;
    std::memcpy(&first, bytes.data() + 8 + n, 4);
    QCOMPARE(first, 1.0f);
  }

  void errorsNameTheFile() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("bad.safetensors").toStdString();
    auto expectError = [&](const std::string& contains) {
      try {
        loadSafetensors(path);
        QFAIL("expected an error");
      } catch (const std::runtime_error& e) {
        const std::string msg = e.what();
        QVERIFY2(msg.find(path) != std::string::npos && msg.find(contains) != std::string::npos,
                 e.what());
      }
    };
    expectError("cannot open");
    std::ofstream(path, std::ios::binary) << "abc";
    expectError("too short");
    saveSafetensors(path, {{"x", torch::randn({16})}});
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);  // truncated data
    expectError("outside the data block");
  }

  // Issue 10.7: what the format's own reader enforces. Each file below is well-formed JSON whose
  // tensors would load "successfully" from the wrong bytes without the checks.
  void rangesMustBeContiguousAndCoverTheData() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("raw.safetensors").toStdString();
    auto write = [&](const std::string& header, size_t dataBytes) {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      unsigned char len[8];
      for (int i = 0; i < 8; ++i)
        len[i] = static_cast<unsigned char>((header.size() >> (8 * i)) & 0xff);
      out.write(reinterpret_cast<const char*>(len), 8);
      out << header << std::string(dataBytes, '\x01');
    };
    auto expectError = [&](const std::string& contains) {
      try {
        loadSafetensors(path);
        QFAIL(qPrintable(QString::fromStdString("expected an error containing: " + contains)));
      } catch (const std::runtime_error& e) {
        const std::string msg = e.what();
        QVERIFY2(msg.find(path) != std::string::npos && msg.find(contains) != std::string::npos,
                 e.what());
      }
    };
    // Overlapping: b reads a's last 4 bytes.
    write(
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
        12);
    expectError(
        "tensor 'b' starts at byte 4 of the data block, expected 8 (it overlaps the tensor before "
        "it)");
    // A gap between tensors.
    write(
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
        12);
    expectError("(a gap before it)");
    // Bytes after the last tensor that nothing covers.
    write(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12);
    expectError("the tensors cover 4 of the data block's 12 bytes");
    // Shape and byte count disagree.
    write(R"({"a":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}})", 4);
    expectError("has 4 bytes but its shape and dtype need 6");
    // A dtype the format does not know; a negative dimension; metadata that is not text.
    write(R"({"a":{"dtype":"F24","shape":[1],"data_offsets":[0,3]}})", 3);
    expectError("unknown dtype 'F24'");
    write(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1);
    expectError("not a non-negative integer");
    write(R"({"__metadata__":{"format":1},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
          1);
    expectError("__metadata__ value 'format' is not a string");
    write(R"([1,2])", 0);
    expectError("does not start with '{'");
    // Found by fuzz_safetensors_header: a number too large for a double is an error naming the
    // file, not an exception of the JSON library escaping.
    write(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":1e999999}})", 0);
    expectError("header is not valid JSON");
    // Sorted by offset, not by name: a valid file whose header lists z before a.
    write(
        R"({"z":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},"e":{"dtype":"U8","shape":[0],"data_offsets":[3,3]}})",
        3);
    const auto ok = loadSafetensors(path);
    QCOMPARE(ok.size(), size_t(3));
    QCOMPARE(ok.at("a").numel(), int64_t(1));
  }

  void checkpointFolderIsCompleteAndReplacesAtomically() {
    QTemporaryDir dir;
    torch::nn::Linear model(3, 2);
    torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-3));
    model(torch::randn({4, 3})).sum().backward();
    opt.step();
    const auto path =
        writeCheckpoint(dir.path().toStdString(), 7, *model, {{"k", 1}}, &opt, {{"step", 7}});
    QVERIFY(path.find("step-0000007") != std::string::npos);
    for (const char* f : {"model.safetensors", "config.json", "optimizer.pt", "trainer_state.json"})
      QVERIFY2(std::filesystem::exists(std::filesystem::path(path) / f), f);
    QCOMPARE(readTrainerState(path).at("step").get<int>(), 7);
    auto weights = readCheckpointWeights(path);
    QVERIFY(torch::equal(weights.at("weight"), model->weight));
    torch::nn::Linear other(3, 2);
    torch::optim::AdamW otherOpt(other->parameters(), torch::optim::AdamWOptions(1e-3));
    loadStateDict(*other, weights, {""}, path);
    readOptimizerState(path, otherOpt);
    QVERIFY(torch::equal(other->weight, model->weight));
    // No temporary folder is left behind.
    for (const auto& e : std::filesystem::directory_iterator(dir.path().toStdString()))
      QVERIFY2(e.path().filename().string().rfind(".tmp", 0) != 0, e.path().c_str());
  }

  // An export goes to a staging folder and is swapped in whole: a failure leaves the target as it
  // was and nothing staged, a commit replaces the old folder (no file of the earlier export stays).
  void exportFolderIsStagedAndSwappedWhole() {
    QTemporaryDir dir;
    const std::filesystem::path root = dir.path().toStdString();
    const auto target = root / "out";
    const auto write = [](const std::filesystem::path& p, const std::string& text) {
      std::ofstream(p) << text;
    };
    {
      StagedFolder staged(target);
      write(staged.path() / "model.safetensors", "half");
    }  // no commit: an error was thrown half-way
    QVERIFY(!std::filesystem::exists(target));
    QCOMPARE(std::distance(std::filesystem::directory_iterator(root),
                           std::filesystem::directory_iterator()),
             0);
    {
      StagedFolder staged(target);
      write(staged.path() / "config.json", "{}");
      write(staged.path() / "model.safetensors", "single");
      staged.commit();
    }
    {
      StagedFolder staged(target);  // a sharded export over the single-file one
      write(staged.path() / "config.json", "{}");
      write(staged.path() / "model.safetensors.index.json", "{}");
      staged.commit();
    }
    QVERIFY(std::filesystem::exists(target / "model.safetensors.index.json"));
    QVERIFY(!std::filesystem::exists(target / "model.safetensors"));  // never two layouts
    QCOMPARE(std::distance(std::filesystem::directory_iterator(root),
                           std::filesystem::directory_iterator()),
             1);  // no staging or replaced folder left beside it
  }

  void exportTargetsThatWouldMixOrDestroyAreRefused() {
    QTemporaryDir dir;
    const std::filesystem::path root = dir.path().toStdString();
    std::filesystem::create_directories(root / "model" / "sub");
    std::ofstream(root / "model" / "config.json") << "{}";
    std::ofstream(root / "data.json") << "[]";
    std::filesystem::create_directories(root / "other");
    std::ofstream(root / "other" / "notes.txt") << "mine";
    const std::vector<ProtectedPath> sources = {{"the run's base model folder", root / "model"},
                                                {"the run's data file", root / "data.json"},
                                                {"nothing", ""}};
    const auto refusal = [&](const std::filesystem::path& target, bool overwrite) -> std::string {
      try {
        checkExportTarget(target, sources, overwrite);
      } catch (const std::exception& e) {
        return e.what();
      }
      return "";
    };
    QCOMPARE(refusal(root / "new", false), std::string());  // a new folder
    std::filesystem::create_directories(root / "empty");
    QCOMPARE(refusal(root / "empty", false), std::string());
    QVERIFY(refusal(root / "model", true).find("is the run's base model folder") !=
            std::string::npos);
    QVERIFY(refusal(root / "model/../model/", true).find("is the run's base model folder") !=
            std::string::npos);  // the same folder spelt otherwise
    QVERIFY(refusal(root / "model" / "sub", true).find("is inside the run's base model folder") !=
            std::string::npos);
    QVERIFY(refusal(root, true).find("holds the run's base model folder") != std::string::npos);
    std::filesystem::create_directory_symlink(root / "model", root / "link");
    QVERIFY(refusal(root / "link", true).find("is the run's base model folder") !=
            std::string::npos);  // through a symbolic link
    QVERIFY(refusal(root / "data.json", true).find("data file") != std::string::npos);
    const std::string full = refusal(root / "other", false);
    QVERIFY2(full.find("already holds files; pass --overwrite") != std::string::npos, full.c_str());
    QVERIFY(refusal(root / "other", true).find("not an earlier export") != std::string::npos);
    std::ofstream(root / "other" / "config.json") << "{}";
    QCOMPARE(refusal(root / "other", true), std::string());
    QVERIFY(refusal(root / "other" / "notes.txt", true).find("is not a folder") !=
            std::string::npos);
  }
};

QTEST_GUILESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"
