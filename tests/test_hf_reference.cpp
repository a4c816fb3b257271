// Outside check: tiny SigLIP and Qwen2 models written by Hugging Face transformers (random
// weights, vendored in tests/data/hf-tiny) load by parameter name and reproduce HF's recorded
// outputs.
#include <QtTest/QtTest>
#include <torch/torch.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/state_dict.h"
#include "model/causal_lm.h"
#include "model/vision_transformer.h"

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
};

QTEST_GUILESS_MAIN(TestHfReference)
#include "test_hf_reference.moc"
