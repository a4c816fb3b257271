// Outside check: tiny SigLIP and Qwen2 models written by Hugging Face transformers (random
// weights, vendored in tests/data/hf-tiny) load by parameter name and reproduce HF's recorded
// outputs.
#include <QtTest/QtTest>
#include <torch/torch.h>

#include <QTemporaryDir>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/image_processor.h"
#include "io/hf_llava.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "model/causal_lm.h"
#include "model/vision_transformer.h"
#include "visualization/overlay.h"
#include "test_util.h"

using namespace pivot;

namespace {

// Inside the repository (tests/data/README.md): a clean clone tests without ../shared.
std::string referenceDir() {
  const char* dir = PIVOT_SOURCE_DIR "/tests/data/hf-tiny";
  return std::filesystem::exists(dir) ? dir : "";
}

double maxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace

class TestHfReference : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase() {
    if (referenceDir().empty())
      QFAIL(PIVOT_SOURCE_DIR "/tests/data/hf-tiny is missing from the checkout");
  }

  void siglipVisionTower() {
    const auto dir = referenceDir();
    auto cfg = visionConfigFromJson(readJsonFile(dir + "/siglip/config.json"));
    QCOMPARE(cfg.hidden_size, 64);
    QCOMPARE(cfg.numPatches(), 16);
    VisionTransformer vit(cfg);
    auto report = loadStateDict(*vit, loadSafetensors(dir + "/siglip/model.safetensors"),
                                {"", "vision_model."}, "siglip");
    QCOMPARE(report.loaded, static_cast<int>(vit->parameters().size()));
    QVERIFY(!report.unexpected.empty());  // the attention-pooling head, unused by LLaVA
    auto io = loadSafetensors(dir + "/siglip_io.safetensors");
    torch::NoGradGuard g;
    vit->eval();
    auto states = vit->hiddenStates(io.at("pixel_values"));
    for (int i = 0; i <= 3; ++i) {
      const double d =
          maxAbsDiff(states[static_cast<size_t>(i)], io.at("hidden_states." + std::to_string(i)));
      QVERIFY2(d < 1e-4, qPrintable(QString("hidden_states.%1 max abs diff %2").arg(i).arg(d)));
    }
    QVERIFY(maxAbsDiff(vit->forward(io.at("pixel_values")), io.at("last_hidden_state")) < 1e-4);
    QVERIFY(maxAbsDiff(vit->features(io.at("pixel_values"), -2), io.at("hidden_states.2")) < 1e-4);
    // A vision_feature_layer list concatenates, in the list's order, along the feature axis.
    const auto several = vit->features(io.at("pixel_values"), std::vector<int>{-2, 0, 3});
    QCOMPARE(several.size(-1), 3 * vit->config.hidden_size);
    QVERIFY(maxAbsDiff(several, torch::cat({io.at("hidden_states.2"), io.at("hidden_states.0"),
                                            io.at("hidden_states.3")},
                                           -1)) < 1e-4);
  }

  void qwen2CausalLm() {
    const auto dir = referenceDir();
    auto cfg = lmConfigFromJson(readJsonFile(dir + "/qwen2/config.json"));
    QCOMPARE(cfg.num_key_value_heads, 2);
    QCOMPARE(cfg.rope_theta, 10000.0);
    CausalLM lm(cfg);
    auto report =
        loadStateDict(*lm, loadSafetensors(dir + "/qwen2/model.safetensors"), {""}, "qwen2");
    QCOMPARE(report.loaded, static_cast<int>(lm->parameters().size()));
    auto io = loadSafetensors(dir + "/qwen2_io.safetensors");
    torch::NoGradGuard g;
    const double fromIds = maxAbsDiff(lm->forward(io.at("input_ids")), io.at("logits"));
    QVERIFY2(fromIds < 1e-4, qPrintable(QString("logits max abs diff %1").arg(fromIds)));
    const double fromEmbeds =
        maxAbsDiff(lm->forwardEmbeds(io.at("inputs_embeds")), io.at("logits_from_embeds"));
    QVERIFY2(fromEmbeds < 1e-4,
             qPrintable(QString("logits_from_embeds max abs diff %1").arg(fromEmbeds)));
    // Left padding: compare only where the attention mask is 1; positions derived from the mask.
    auto mask = io.at("attention_mask");
    auto padded = lm->forward(io.at("input_ids"), mask);
    auto keep = mask.to(torch::kBool).unsqueeze(-1).expand_as(padded);
    const double leftPadded =
        maxAbsDiff(padded.masked_select(keep), io.at("logits_left_padded").masked_select(keep));
    QVERIFY2(leftPadded < 1e-4,
             qPrintable(QString("logits_left_padded max abs diff %1").arg(leftPadded)));
    QVERIFY(torch::equal((mask.cumsum(1) - 1).clamp_min(0), io.at("position_ids")));
  }

  void wrongArchitectureIsAClearError() {
    const auto dir = referenceDir();
    LmConfig cfg = lmConfigFromJson(readJsonFile(dir + "/qwen2/config.json"));
    cfg.hidden_size = 32;
    CausalLM lm(cfg);
    try {
      loadStateDict(*lm, loadSafetensors(dir + "/qwen2/model.safetensors"), {""},
                    "qwen2/model.safetensors");
      QFAIL("expected a shape error");
    } catch (const std::runtime_error& e) {
      QVERIFY2(QString(e.what()).contains("qwen2/model.safetensors") &&
                   QString(e.what()).contains("model.embed_tokens.weight"),
               e.what());
    }
  }

  // hf-llava-tiny (BF16, two shards, hub layout): image features and logits as recorded.
  void llavaTinyReproducesRecordedOutputs() {
    const std::string dir = PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny";
    HfLlava llava = loadHfLlava(dir);
    QCOMPARE(llava.report.layout, std::string("hub"));
    QCOMPARE(llava.report.files.size(), size_t{2});
    QCOMPARE(llava.report.dtypes.at("BFloat16"), 84);
    QVERIFY(llava.report.unused.empty());
    QCOMPARE(llava.config.image_token_id, 127);
    QVERIFY(!llava.config.prefix_bidirectional);
    const auto diff =
        compareWithRecorded(llava.model, loadSafetensors(dir + "/io.safetensors"), "io");
    QVERIFY(diff.imageFeatures && diff.logits);
    QVERIFY2(*diff.imageFeatures < 1e-4, qPrintable(QString::number(*diff.imageFeatures)));
    QVERIFY2(*diff.logits < 1e-4, qPrintable(QString::number(*diff.logits)));
  }

  // The same weights under every name layout, unsharded, in F32 or F16 (the head tied or not):
  // the same logits.
  void everyNameLayoutLoads() {
    const std::string dir = PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny";
    TensorMap hub;
    for (const auto* shard :
         {"/model-00001-of-00002.safetensors", "/model-00002-of-00002.safetensors"})
      for (auto& [k, v] : loadSafetensors(dir + shard)) hub[k] = v;
    const auto io = loadSafetensors(dir + "/io.safetensors");
    auto rename = [](const std::string& name, const std::string& layout) -> std::string {
      auto swap = [&](const std::string& from, const std::string& to) {
        return name.rfind(from, 0) == 0 ? to + name.substr(from.size()) : std::string();
      };
      if (layout == "transformers") {
        for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
                 {"vision_tower.vision_model.", "model.vision_tower."},
                 {"multi_modal_projector.", "model.multi_modal_projector."},
                 {"language_model.model.", "model.language_model."},
                 {"language_model.lm_head.", "lm_head."}})
          if (auto r = swap(from, to); !r.empty()) return r;
      } else {  // llava-next
        for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
                 {"vision_tower.vision_model.", "model.vision_tower.vision_tower.vision_model."},
                 {"multi_modal_projector.linear_1.", "model.mm_projector.0."},
                 {"multi_modal_projector.linear_2.", "model.mm_projector.2."},
                 {"language_model.model.", "model."},
                 {"language_model.lm_head.", "lm_head."}})
          if (auto r = swap(from, to); !r.empty()) return r;
      }
      return name;
    };
    for (const std::string layout : {"transformers", "llava-next"}) {
      for (const auto dtype : {torch::kFloat32, torch::kFloat16}) {
        QTemporaryDir tmp;
        const std::string out = tmp.path().toStdString();
        std::filesystem::copy_file(dir + "/config.json", out + "/config.json");
        TensorMap renamed;
        for (const auto& [k, v] : hub) renamed[rename(k, layout)] = v.to(dtype);
        renamed["vision_tower_head_probe.weight"] = torch::zeros({2});  // unknown: listed as unused
        saveSafetensors(out + "/model.safetensors", renamed);
        HfLlava llava = loadHfLlava(out);
        QCOMPARE(llava.report.layout, layout);
        QCOMPARE(llava.report.unused, std::vector<std::string>({"vision_tower_head_probe.weight"}));
        const auto diff = compareWithRecorded(llava.model, io, "io");
        // F16 rounds the BF16 weights exactly (8-bit mantissa fits in 11); F32 too.
        QVERIFY2(*diff.logits < 1e-4,
                 qPrintable(QString::fromStdString(layout) + " " + QString::number(*diff.logits)));
      }
    }
    // A tied head: no lm_head in the file, the embeddings serve.
    QTemporaryDir tmp;
    const std::string out = tmp.path().toStdString();
    auto config = readJsonFile(dir + "/config.json");
    config["tie_word_embeddings"] = true;
    config["text_config"]["tie_word_embeddings"] = true;
    std::ofstream(out + "/config.json") << config.dump();
    TensorMap tied = hub;
    tied.erase("language_model.lm_head.weight");
    saveSafetensors(out + "/model.safetensors", tied);
    HfLlava llava = loadHfLlava(out);
    QVERIFY(llava.report.tiedHead);
    QVERIFY(torch::equal(llava.model->language_model->outputWeight(),
                         llava.model->language_model->model->embed_tokens->weight));
  }

  // A missing or misshapen tensor names the file and the tensor; an unsupported config the field.
  void brokenModelFoldersNameTheTensor() {
    const std::string dir = PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny";
    TensorMap hub;
    for (const auto* shard :
         {"/model-00001-of-00002.safetensors", "/model-00002-of-00002.safetensors"})
      for (auto& [k, v] : loadSafetensors(dir + shard)) hub[k] = v;
    auto errorOf = [](const std::string& folder) {
      try {
        loadHfLlava(folder);
      } catch (const std::exception& e) {
        return QString(e.what());
      }
      return QString();
    };
    QTemporaryDir tmp;
    const std::string out = tmp.path().toStdString();
    std::filesystem::copy_file(dir + "/config.json", out + "/config.json");
    TensorMap wrong = hub;
    wrong["multi_modal_projector.linear_1.weight"] = torch::zeros({64, 32});
    saveSafetensors(out + "/model.safetensors", wrong);
    QString e = errorOf(out);
    QVERIFY2(
        e.contains(
            "model.safetensors: tensor 'multi_modal_projector.linear_1.weight' has shape [64, 32]"),
        qPrintable(e));
    TensorMap missing = hub;
    missing.erase("language_model.model.norm.weight");
    saveSafetensors(out + "/model.safetensors", missing);
    e = errorOf(out);
    QVERIFY2(e.contains("tensor for 'language_model.model.norm.weight' is missing"), qPrintable(e));
    auto config = readJsonFile(dir + "/config.json");
    config["vision_feature_layer"] = {"-2"};
    std::ofstream(out + "/config.json") << config.dump();
    e = errorOf(out);
    QVERIFY2(e.contains("config.json: config field 'vision_feature_layer' must be an integer or a "
                        "non-empty list of integers"),
             qPrintable(e));
    // A list of two layers doubles the projector's input, as transformers' LlavaMultiModalProjector
    // does: the reference's single-layer projector no longer fits, and the error says so.
    config["vision_feature_layer"] = {-2, -1};
    std::ofstream(out + "/config.json") << config.dump();
    e = errorOf(out);
    QVERIFY2(e.contains("'multi_modal_projector.linear_1.weight' has shape [64, 64] but the config "
                        "makes 'multi_modal_projector.linear_1.weight' [64, 128]"),
             qPrintable(e));
    config = readJsonFile(dir + "/config.json");
    config["image_seq_length"] = 729;
    std::ofstream(out + "/config.json") << config.dump();
    QVERIFY(errorOf(out).contains("field 'image_seq_length' is 729 but the vision tower gives 16"));
  }

  // The SigLIP processor on the real photo: row 0 of the recorded pixel_values was made by
  // transformers with Pillow's antialiased bicubic resize (535x426 -> 32x32).
  void siglipProcessorMatchesPillow() {
    const std::string dir = PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny";
    const auto config = imageProcessorConfigFromFile(dir + "/preprocessor_config.json");
    QCOMPARE(config.width, 32);
    QCOMPARE(config.resample, Resample::Bicubic);
    const Rgb8 photo = readRgb8(dir + "/photo.png");
    QCOMPARE(photo.width, 535);
    QCOMPARE(photo.height, 426);
    const auto values = pixelValues(photo, config);
    const auto recorded =
        loadSafetensors(dir + "/io.safetensors").at("pixel_values")[0].contiguous();
    const auto ours = torch::from_blob(const_cast<float*>(values.data()), {3, 32, 32}).clone();
    // In 0..255 units before normalisation: (v * 0.5 + 0.5) * 255.
    const double worst = ((ours - recorded) * 0.5 * 255).abs().max().item<double>();
    QVERIFY2(worst < 2.0 + 1e-3, qPrintable(QString("max difference %1 / 255").arg(worst)));
    qInfo("SigLIP processor vs Pillow on photo.png: max difference %.4f / 255", worst);
    // A plain (non-antialiased) bicubic would be far off: the filter must widen when shrinking.
    Rgb8 tiny{2, 1, {0, 0, 0, 255, 255, 255}};
    const Rgb8 one = resizeLikePillow(tiny, 1, 1, Resample::Bicubic);
    QCOMPARE(int(one.rgb[0]), 128);  // the mean of both pixels, as Pillow gives
    QTemporaryDir tmp;
    const std::string clip = tmp.filePath("preprocessor_config.json").toStdString();
    std::ofstream(clip)
        << R"({"image_processor_type": "CLIPImageProcessor", "do_center_crop": true})";
    QVERIFY(errorOf([&] { imageProcessorConfigFromFile(clip); })
                .contains("preprocessor_config.json: field 'image_processor_type' is "
                          "\"CLIPImageProcessor\""));
    std::ofstream(clip) << R"({"rescale_factor": "1/255"})";  // review row 3.21: which field
    QVERIFY(errorOf([&] {
              imageProcessorConfigFromFile(clip);
            }).contains("preprocessor_config.json: field 'rescale_factor' has the wrong type"));
  }

  // Export as a hub-layout folder (sharded bf16, single f32) and read it back: the same weights
  // bit for bit, the same logits; the encoder alone loads as a SiglipVisionModel.
  void exportReadsBackBitExactly() {
    const std::string dir = PIVOT_SOURCE_DIR "/tests/data/hf-llava-tiny";
    HfLlava original = loadHfLlava(dir);
    const auto io = loadSafetensors(dir + "/io.safetensors");
    for (const auto dtype : {torch::kBFloat16, torch::kFloat32}) {
      QTemporaryDir tmp;
      const std::string out = tmp.path().toStdString();
      HfExportOptions options;
      options.dtype = dtype;
      options.shardBytes = dtype == torch::kBFloat16 ? 100000 : int64_t{1} << 30;
      saveHfLlava(original.model, out, options);
      HfLlava back = loadHfLlava(out);
      QCOMPARE(back.report.layout, std::string("hub"));
      // 0.23 M parameters in bf16 (462 KB) over 100 KB shards; f32 in one file.
      QCOMPARE(back.report.files.size(), dtype == torch::kBFloat16 ? size_t{6} : size_t{1});
      auto a = original.model->named_parameters(), b = back.model->named_parameters();
      QCOMPARE(a.size(), b.size());
      for (const auto& item : a)
        QVERIFY2(torch::equal(item.value(), b[item.key()]), item.key().c_str());
      QVERIFY(*compareWithRecorded(back.model, io, "io").logits < 1e-4);
      QVERIFY(!back.config.prefix_bidirectional);
      const auto pre = readJsonFile(out + "/preprocessor_config.json");
      QCOMPARE(pre["size"]["height"].get<int>(), 32);

      saveSiglipVision(original.model, out + "/vision_encoder", dtype);
      VisionTransformer vit(
          visionConfigFromJson(readJsonFile(out + "/vision_encoder/config.json")));
      const auto report =
          loadStateDict(*vit, loadSafetensors(out + "/vision_encoder/model.safetensors"),
                        {"vision_model."}, "vision_encoder");
      QCOMPARE(report.loaded, static_cast<int>(vit->parameters().size()));
      torch::NoGradGuard g;
      QVERIFY(torch::equal(vit->features(io.at("pixel_values"), -2),
                           original.model->vision_tower->features(io.at("pixel_values"), -2)));
    }
  }

  // so400m-patch14-384 takes floor(384 / 14) = 27 patches a side: a side the patch does not divide
  // is the strided convolution's, edge pixels unused, as in transformers.
  void patchSizeNeedNotDivideTheImage() {
    auto j = readJsonFile(PIVOT_SOURCE_DIR "/tests/data/hf-tiny/siglip/config.json");
    j["image_size"] = 36;  // patch 8: 4 patches a side, 4 edge pixels unused
    const VisionConfig cfg = visionConfigFromJson(j);
    QCOMPARE(cfg.numPatches(), 16);
    VisionTransformer vit(cfg);
    torch::NoGradGuard g;
    QCOMPARE(vit->forward(torch::zeros({1, 3, 36, 36})).sizes(), (torch::IntArrayRef{1, 16, 64}));
  }
};

QTEST_GUILESS_MAIN(TestHfReference)
#include "test_hf_reference.moc"
