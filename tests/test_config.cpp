// Run configuration: one validation for --set and preset files (unknown keys, an unknown base
// preset, a fraction where an integer belongs are errors naming the file and key), strict JSON
// fields, and which steps keep a snapshot checkpoint.
#include <QtTest/QtTest>

#include <QTemporaryDir>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "config/experiment_spec.h"
#include "config/parse_number.h"
#include "config/train_config.h"
#include "results/encoder_style.h"

using namespace pivot;

class TestConfig : public QObject {
  Q_OBJECT

  std::string preset(const QTemporaryDir& dir, const std::string& text) {
    const std::string path = dir.filePath("p.json").toStdString();
    std::ofstream(path) << text;
    return path;
  }

  void expectError(const std::function<void()>& f, const std::string& contains) {
    try {
      f();
      QFAIL(qPrintable(QString::fromStdString("expected an error containing: " + contains)));
    } catch (const std::runtime_error& e) {
      QVERIFY2(std::string(e.what()).find(contains) != std::string::npos, e.what());
    }
  }

 private Q_SLOTS:
  void presetFileIsCheckedLikeSet() {
    QTemporaryDir dir;
    const auto p = preset(
        dir, R"({"preset": "mini", "beta": 0.2, "world": {"rejected_kind": "random"}, "steps": 7,
                                   "model": {"text_config": {"num_hidden_layers": 3}}})");
    const TrainConfig c = presetConfig(p, Stage::Dpo);
    QCOMPARE(c.beta, 0.2);
    QCOMPARE(c.steps, 7);
    QCOMPARE(c.model.vision.image_size, 48);  // the mini base
    QCOMPARE(c.model.text.num_hidden_layers, 3);
    QVERIFY(c.world.rejected_kind == RejectedKind::Random);
    QCOMPARE(c.preset, p);

    expectError([&] { presetConfig(preset(dir, R"({"betta": 0.2})"), Stage::Dpo); },
                "p.json: unknown key 'betta'");
    expectError([&] { presetConfig(preset(dir, R"({"world": {"noize": 2}})"), Stage::Dpo); },
                "unknown key 'world.noize'");
    expectError([&] { presetConfig(preset(dir, R"({"preset": "huge"})"), Stage::Dpo); },
                "p.json: unknown base preset 'huge'");
    expectError([&] { presetConfig(preset(dir, R"({"steps": 2.5})"), Stage::Dpo); },
                "bad value for 'steps': 2.5 (expected an integer)");
    expectError([&] { presetConfig(preset(dir, R"({"steps": "10"})"), Stage::Dpo); },
                "bad value for 'steps'");
    expectError([&] { presetConfig(preset(dir, R"({"lr": true})"), Stage::Dpo); },
                "bad value for 'lr'");
    expectError([&] { presetConfig(preset(dir, R"({"loss_type": "ppo"})"), Stage::Dpo); },
                "unknown DPO loss 'ppo'");
    expectError([&] { presetConfig(preset(dir, R"({"stage": "sft"})"), Stage::Dpo); },
                "key 'stage' cannot be set");
    expectError([&] { presetConfig(preset(dir, R"({"world": 3})"), Stage::Dpo); },
                "holds a structure");
    expectError([&] { presetConfig(preset(dir, R"([1])"), Stage::Dpo); },
                "a preset is a JSON object");
    expectError([&] { presetConfig(preset(dir, R"({"steps": )"), Stage::Dpo); }, "invalid JSON");
    // A whole number written as 7.0 is a whole number.
    QCOMPARE(presetConfig(preset(dir, R"({"steps": 7.0})"), Stage::Dpo).steps, 7);
  }

  void setUsesTheSameRules() {
    TrainConfig c = presetConfig("tiny", Stage::Sft);
    applyOverride(c, "steps=9");
    QCOMPARE(c.steps, 9);
    expectError([&] { applyOverride(c, "steps=2.5"); }, "bad value for 'steps'");
    expectError([&] { applyOverride(c, "nonsense=1"); }, "unknown key 'nonsense'");
    expectError([&] { applyOverride(c, "preset=mini"); }, "cannot be set");
    // Found by fuzz_config_json: a zero head count divided by zero (undefined behaviour).
    expectError([&] { applyOverride(c, "model.vision_config.num_attention_heads=0"); },
                "config field 'num_attention_heads' must be positive, got 0");
    expectError([&] { applyOverride(c, "model.text_config.num_key_value_heads=-2"); },
                "must be positive");
  }

  void storedConfigsAreReadStrictly() {
    auto j = toJson(presetConfig("tiny", Stage::Sft));
    j["batch_size"] = 2.5;
    expectError([&] { trainConfigFromJson(j); }, "config field 'batch_size' must be an integer");
    j["batch_size"] = 8;
    j["world"]["seed"] = -1;
    expectError([&] { trainConfigFromJson(j); }, "config field 'world.seed' must not be negative");
    j["world"]["seed"] = 1;
    j["model"]["text_config"]["hidden_size"] = "wide";
    expectError([&] { trainConfigFromJson(j); }, "hidden_size' must be an integer");
    j["model"]["text_config"]["hidden_size"] = 64;
    QCOMPARE(trainConfigFromJson(j).batch_size, 8);
  }

  // MPO's and GRPO's lists: TRL's list form or "a,b,c" (what --set gives), written back as the
  // latter; a count or name that does not fit is an error naming the field.
  void methodListsAndGrpoSettings() {
    const TrainConfig mpo = presetConfig("tiny", Stage::Mpo);
    QCOMPARE(mpo.loss_type,
             (std::vector<DpoLoss>{DpoLoss::Sigmoid, DpoLoss::BcoPair, DpoLoss::Sft}));
    QCOMPARE(mpo.loss_weights, (std::vector<double>{0.8, 0.2, 1.0}));
    auto j = toJson(mpo);
    QCOMPARE(j["loss_type"].get<std::string>(), std::string("sigmoid,bco_pair,sft"));
    QCOMPARE(j["loss_weights"].get<std::string>(), std::string("0.8,0.2,1"));
    QCOMPARE(toJson(trainConfigFromJson(j)), j);
    j["loss_type"] = {"sigmoid", "sft"};  // TRL's form
    j["loss_weights"] = {1.0, 0.5};
    QCOMPARE(trainConfigFromJson(j).loss_weights, (std::vector<double>{1.0, 0.5}));
    TrainConfig c = presetConfig("tiny", Stage::Dpo);
    applyOverride(c, "loss_type=sigmoid, sft");
    QCOMPARE(c.loss_type, (std::vector<DpoLoss>{DpoLoss::Sigmoid, DpoLoss::Sft}));
    expectError([&] { applyOverride(c, "loss_weights=1,2,3"); },
                "loss_weights needs one weight per loss_type (2), got 3");
    expectError([&] { applyOverride(c, "loss_weights=1,x"); },
                "config field 'loss_weights': 'x' is not a number");
    expectError([&] { applyOverride(c, "loss_type=sigmoid,kto"); },
                "config field 'loss_type': unknown DPO loss 'kto'");
    expectError([&] { applyOverride(c, "loss_type=sft,sft"); }, "loss_type lists sft twice");

    TrainConfig g = presetConfig("tiny", Stage::Grpo);
    QCOMPARE(std::string(stageName(g.stage)), std::string("grpo"));
    QCOMPARE(g.batch_size % g.num_generations, 0);
    QVERIFY(g.needsReference());  // beta 0.04: the KL needs the stage-1 model
    applyOverride(g, "beta=0");
    QVERIFY(!g.needsReference());  // beta 0 skips the reference forward
    applyOverride(g, "reward_funcs=accuracy,format,length");
    QCOMPARE(g.reward_funcs.size(), size_t(3));
    expectError([&] { applyOverride(g, "reward_funcs=accuracy,speed"); },
                "config field 'reward_funcs': unknown reward function 'speed'");
    expectError([&] { applyOverride(g, "num_generations=7"); },
                "batch_size (completions per step) must be a multiple of num_generations");
    // Settings that constrain each other are checked together, in any order (as --set gives them).
    TrainConfig both = g;
    applyOverrides(both, {"batch_size=10", "num_generations=2"});
    QCOMPARE(both.batch_size, 10);
    QCOMPARE(both.num_generations, 2);
    expectError([&] { applyOverrides(both, {"batch_size=9", "lr=fast"}); }, "bad value for 'lr'");
    expectError([&] { applyOverride(g, "grpo_loss_type=ppo"); },
                "config field 'grpo_loss_type': unknown GRPO loss type 'ppo'");
    expectError([&] { applyOverride(g, "scale_rewards=median"); }, "scale_rewards");
    expectError([&] { applyOverride(g, "beta=-1"); }, "beta (GRPO's KL weight) must be >= 0");
    expectError([&] { stageFromName("ppo"); },
                "expected pretrain, align, instruct, sft, dpo, grpo or mpo");
  }

  // The chain's one rule: architecture, world and execution settings reach the earlier stages,
  // training hyper-parameters only the requested stage (the window and the command line share it).
  void chainOverridesReachEarlierStagesByRule() {
    const auto chain =
        chainConfigs("tiny", Stage::Dpo,
                     {"lr=1e-6", "beta=0.3", "steps=7", "model.text_config.num_hidden_layers=3",
                      "world.noise=3", "device=cpu", "eval_samples=10"},
                     true);
    QCOMPARE(chain.size(), size_t(4));
    const TrainConfig pretrain = presetConfig("tiny", Stage::Pretrain);
    for (size_t i = 0; i < 3; ++i) {
      QCOMPARE(chain[i].model.text.num_hidden_layers, 3);
      QCOMPARE(chain[i].world.noise, 3);
      QCOMPARE(chain[i].device, std::string("cpu"));
      QCOMPARE(chain[i].eval_samples, 10);
      QCOMPARE(chain[i].steps, presetConfig("tiny", chain[i].stage).steps);  // not 7
      QCOMPARE(chain[i].lr, presetConfig("tiny", chain[i].stage).lr);        // not 1e-6
    }
    QVERIFY(chain[0].stage == Stage::Pretrain && chain[1].stage == Stage::Align &&
            chain[2].stage == Stage::Instruct);
    QCOMPARE(chain[3].lr, 1e-6);
    QCOMPARE(chain[3].steps, 7);
    QCOMPARE(chain[3].beta, 0.3);
    QCOMPARE(chainConfigs("tiny", Stage::Dpo, {"lr=1e-6"}, false).size(), size_t(1));
    // A transplant: no stage 0 of its own; the encoder and its freezing reach the alignment.
    const auto transplant =
        chainConfigs("tiny", Stage::Instruct, {"vision_init=5", "freeze_vision=true"}, true);
    QCOMPARE(transplant.size(), size_t(2));
    QVERIFY(transplant[0].stage == Stage::Align && transplant[1].stage == Stage::Instruct);
    for (const auto& c : transplant) {
      QCOMPARE(c.vision_init, std::string("5"));
      QVERIFY(c.freeze_vision);
    }
    expectError([&] { chainConfigs("tiny", Stage::Dpo, {"lr=2"}, true); }, "lr must be in (0, 1)");
  }

  // Stage 2 keeps evenly spaced snapshots plus step 20 (where the paper reads its maps).
  void snapshotSteps() {
    TrainConfig c = presetConfig("mini", Stage::Dpo);
    QCOMPARE(c.snapshots, 4);
    QCOMPARE(pivot::snapshotSteps(c), (std::vector<int>{20, 60, 120, 180, 240}));  // 300 steps
    c.steps = 10;
    QCOMPARE(pivot::snapshotSteps(c), (std::vector<int>{2, 4, 6, 8}));
    c.snapshots = 0;
    QVERIFY(pivot::snapshotSteps(c).empty());
    QCOMPARE(presetConfig("mini", Stage::Instruct).snapshots, 0);
    QCOMPARE(presetConfig("mini", Stage::Instruct).checkpoint_minutes, 5.0);
  }

  // config/experiment_spec.h: the study's spec read and checked without torch, as the command line,
  // the window's launch panel and the runner all take it.
  // One strict reader of typed numbers: the whole text, finite, a point for the decimals.
  void typedNumbersAreReadStrictly() {
    QCOMPARE(parseNumber("0.3").value_or(-1), 0.3);
    QCOMPARE(parseNumber("1e-3").value_or(-1), 1e-3);
    QCOMPARE(parseNumber("-2").value_or(0), -2.0);
    for (const char* bad : {"", " 1", "1 ", "0.3x", "0,3", "inf", "nan", "1e999", "x"})
      QVERIFY2(!parseNumber(bad), bad);
    QCOMPARE(parseInteger("12").value_or(0), 12LL);
    for (const char* bad : {"", "1.5", "+", " 2", "2x", "99999999999999999999"})
      QVERIFY2(!parseInteger(bad), bad);
    // Every reader uses it: --tune-lr, a config's list of weights, a --set value.
    ExperimentSpec spec;
    expectError([&] { parseTuneLr(spec, "0.3, 1 ,inf"); }, "--tune-lr: 'inf' is not a number");
    TrainConfig cfg = presetConfig("tiny", Stage::Dpo);
    expectError([&] { applyOverride(cfg, "lr= 0.1"); }, "expected a finite number");
    applyOverride(cfg, "lr=0.0005");
    QCOMPARE(cfg.lr, 0.0005);
  }

  void experimentSpecIsReadAndCheckedInOnePlace() {
    ExperimentSpec spec;
    parseArms(spec, " sft, dpo ,,mpo");
    QCOMPARE(spec.arms, (std::vector<std::string>{"sft", "dpo", "mpo"}));
    parseTuneLr(spec, "0.3, 1,3");
    QCOMPARE(spec.tuneLrScales, (std::vector<double>{0.3, 1, 3}));
    parseTuneLr(spec, "");
    QVERIFY(spec.tuneLrScales.empty());
    const auto refused = [](const std::function<void()>& f, const std::string& why) {
      try {
        f();
        QFAIL(("accepted; expected: " + why).c_str());
      } catch (const std::runtime_error& e) {
        QVERIFY2(std::string(e.what()).find(why) != std::string::npos, e.what());
      }
    };
    refused([&] { parseTuneLr(spec, "1,abc"); }, "--tune-lr: 'abc' is not a number");
    refused([&] { parseTuneLr(spec, "1,3x"); }, "--tune-lr: '3x' is not a number");
    refused([&] { parseSweep(spec, "lr"); }, "bad --sweep 'lr' (expected key=v1,v2,...)");
    refused([&] { parseSweep(spec, "lr=,,"); }, "--sweep lr has no values");

    // Checked: every message starts with the option at fault.
    const auto bad = [&](const std::function<void(ExperimentSpec&)>& change,
                         const std::string& why) {
      ExperimentSpec s;
      s.arms = {"sft", "dpo"};
      change(s);
      refused([&] { (void)checkedSpec(s); }, why);
    };
    bad([](ExperimentSpec& s) { s.tuneLrScales = {2}; }, "--tune-lr: give two or more scales");
    bad(
        [](ExperimentSpec& s) {
          s.tuneLrScales = {0.3, 1, 0.3};
        },
        "--tune-lr: 0.3 is listed twice");
    bad([](ExperimentSpec& s) { s.tuneLrScales = {1, 0}; }, "--tune-lr: every scale must be a");
    bad([](ExperimentSpec& s) { s.arms = {"sft", "ppo"}; }, "--arms: unknown arm 'ppo'");
    bad([](ExperimentSpec& s) { s.arms = {"sft"}; }, "--arms needs a method besides sft");
    bad([](ExperimentSpec& s) { s.mixedSftWeight = -1; }, "--mixed-sft-weight must be >= 0");
    bad([](ExperimentSpec& s) { s.seeds = 0; }, "--seeds must be 1..50");
    bad([](ExperimentSpec& s) { parseSweep(s, "lr=2"); }, "--sweep lr=2: lr must be in (0, 1)");
    bad([](ExperimentSpec& s) { parseSweep(s, "dose=double"); },
        "--sweep dose=double: unknown dose 'double'");
    bad([](ExperimentSpec& s) { s.transplantProjector = "two"; }, "--transplant-projector: ");

    // Completed: the preset's zeros filled, a tuning candidate's rates scaled, nothing else.
    ExperimentSpec s;
    s.arms = {"sft", "dpo"};
    s.mixedSftWeight = 0.2;
    const ExperimentSpec checked = checkedSpec(s);
    QCOMPARE(checked.transplantAlignSteps,
             std::max(1, presetConfig("tiny", Stage::Align).steps / 3));
    QCOMPARE(checked.probeTrain, 512);
    const auto arms = armsOf(checked);
    QCOMPARE(arms.size(), size_t(3));
    QCOMPARE(arms[2].name, std::string(kMixedArm));
    QCOMPARE(arms[2].sftWeight, 0.2);
    const TrainConfig plain = stageTwoConfig(checked, "dpo", "", 1, 1);
    const TrainConfig scaled = stageTwoConfig(checked, "dpo", "", 1, 1, 3.0);
    QCOMPARE(scaled.lr, 3.0 * plain.lr);
    QCOMPARE(scaled.vision_lr, 3.0 * plain.vision_lr);
    QCOMPARE(stageTwoConfig(checked, kMixedArm, "", 2, 3).seed, uint64_t(2 + 2000));
    refused([&] { (void)stageTwoConfig(checked, "grpo", "", 1, 1); },
            "the experiment has no arm 'grpo'");

    // Every table and chart names the arms from the same list.
    QCOMPARE(encoderOrder(), (std::vector<std::string>{"original", "stage1", "sft", "dpo", "grpo",
                                                       "mpo", "dpo+sft"}));
    QCOMPARE(encoderTitle("dpo+sft"), std::string("DPO+SFT"));
    QCOMPARE(encoderTitle("grpo"), std::string("GRPO"));
    QCOMPARE(encoderTitle("original"), std::string("original (stage 0)"));
    QCOMPARE(encoderTitle("custom"), std::string("custom"));
  }
};

QTEST_GUILESS_MAIN(TestConfig)
#include "test_config.moc"
