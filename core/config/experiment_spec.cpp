#include "config/experiment_spec.h"

#include "config/parse_number.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "config/vocabulary.h"

namespace pivot {
namespace {

// The paper's stage 2 relative to its stage 1b, which trained the LM at 1e-5 and the encoder at
// 2e-6: stage 2 trains every part at one rate, SFT 5e-6 and DPO 1e-6, for 3 passes over its 20K
// preference samples. As ratios to stage 1b: SFT's LM 0.5x and encoder 2.5x, DPO's 0.1x and 0.5x
// (the RL arms, GRPO and MPO, take DPO's: their papers' rates are DPO's order).
struct DoseRatios {
  double lm, vision;
};
DoseRatios paperDoseRatios(Stage stage) {
  return stage == Stage::Sft ? DoseRatios{0.5, 2.5} : DoseRatios{0.1, 0.5};
}
constexpr double kPaperPasses = 3;

// dose=preset leaves the preset's stage 2 as it is; dose=paper sets its rates to the paper's ratios
// times this preset's stage-1b rates and shrinks the pool so its steps make kPaperPasses passes.
void applyDose(TrainConfig& c, const std::string& dose, const ExperimentSpec& s) {
  if (dose == "preset") return;
  if (dose != "paper")
    throw std::runtime_error("unknown dose '" + dose + "' (expected preset or paper)");
  const TrainConfig instruct = makeConfig(s.preset, Stage::Instruct, s.sets);
  const DoseRatios r = paperDoseRatios(c.stage);
  c.lr = r.lm * instruct.lr;
  c.vision_lr = r.vision * instruct.vision_lr;
  const int64_t promptsPerStep =
      c.stage == Stage::Grpo ? c.batch_size / std::max(1, c.num_generations) : c.batch_size;
  c.dataset_size = std::max<int64_t>(
      c.batch_size, std::llround(static_cast<double>(c.steps) * promptsPerStep / kPaperPasses));
}

// "0.3" for 0.3: how a message names a scale the user typed.
std::string numberText(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::vector<std::string> commaList(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

template <typename T>
bool listedBefore(const std::vector<T>& items, size_t i) {
  return std::find(items.begin(), items.begin() + static_cast<long>(i), items[i]) !=
         items.begin() + static_cast<long>(i);
}

void checkArms(const ExperimentSpec& s) {
  const auto& methods = studyMethods();
  for (size_t i = 0; i < s.arms.size(); ++i) {
    if (std::find(methods.begin(), methods.end(), s.arms[i]) == methods.end())
      throw std::runtime_error("--arms: unknown arm '" + s.arms[i] + "' (expected " +
                               alternatives(methods) + ")");
    if (listedBefore(s.arms, i)) throw std::runtime_error("--arms lists " + s.arms[i] + " twice");
  }
  if (std::find(s.arms.begin(), s.arms.end(), "sft") == s.arms.end())
    throw std::runtime_error("--arms must include sft: every method is compared with it");
  if (s.mixedSftWeight < 0 || !std::isfinite(s.mixedSftWeight))
    throw std::runtime_error("--mixed-sft-weight must be >= 0");
  if (s.arms.size() + (s.mixedSftWeight > 0 ? 1 : 0) < 2)
    throw std::runtime_error("--arms needs a method besides sft to compare with it");
}

void checkTuning(const ExperimentSpec& s) {
  for (size_t i = 0; i < s.tuneLrScales.size(); ++i) {
    const double scale = s.tuneLrScales[i];
    if (!(scale > 0) || !std::isfinite(scale))
      throw std::runtime_error("--tune-lr: every scale must be a positive number, got " +
                               numberText(scale));
    if (listedBefore(s.tuneLrScales, i))
      throw std::runtime_error("--tune-lr: " + numberText(scale) + " is listed twice");
  }
  if (s.tuneLrScales.size() == 1)
    throw std::runtime_error("--tune-lr: give two or more scales to choose between");
}

// Every stage-2 configuration the study can train, tuning candidates included.
void checkStageTwo(const ExperimentSpec& s) {
  for (const auto& sweep : sweepLabels(s))
    for (const auto& arm : armsOf(s)) {
      try {
        (void)stageTwoConfig(s, arm, sweep, 1, 1);
        for (const double scale : s.tuneLrScales) (void)stageTwoConfig(s, arm, sweep, 1, 1, scale);
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string(sweep.empty() ? "" : "--sweep " + sweep + ": ") +
                                 e.what());
      }
    }
}

}  // namespace

const std::vector<std::string>& studyMethods() {
  static const std::vector<std::string> methods = [] {
    std::vector<std::string> names;
    for (const Stage stage : stageTwoMethods()) names.push_back(stageName(stage));
    return names;
  }();
  return methods;
}

std::vector<StudyArm> armsOf(const ExperimentSpec& s) {
  std::vector<StudyArm> arms;
  for (const auto& name : s.arms) arms.push_back({name, stageFromName(name), 0.0});
  if (s.mixedSftWeight > 0) arms.push_back({kMixedArm, Stage::Dpo, s.mixedSftWeight});
  return arms;
}

void parseSweep(ExperimentSpec& spec, const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 >= text.size())
    throw std::runtime_error("bad --sweep '" + text + "' (expected key=v1,v2,...)");
  spec.sweepKey = text.substr(0, eq);
  spec.sweepValues = commaList(text.substr(eq + 1));
  if (spec.sweepValues.empty())
    throw std::runtime_error("--sweep " + spec.sweepKey + " has no values");
}

void parseArms(ExperimentSpec& spec, const std::string& text) { spec.arms = commaList(text); }

void parseTuneLr(ExperimentSpec& spec, const std::string& text) {
  spec.tuneLrScales.clear();
  for (const auto& item : commaList(text)) {
    const auto scale = parseNumber(item);
    if (!scale) throw std::runtime_error("--tune-lr: '" + item + "' is not a number");
    spec.tuneLrScales.push_back(*scale);
  }
}

ExperimentSpec checkedSpec(const ExperimentSpec& in) {
  ExperimentSpec s = in;
  if (s.seeds < 1 || s.seeds > 50) throw std::runtime_error("--seeds must be 1..50");
  if (s.bases < 1 || s.bases > 20) throw std::runtime_error("--bases must be 1..20");
  if (s.jobs < 0 || s.jobs > 64) throw std::runtime_error("--jobs must be 1..64 (0: automatic)");
  for (const auto& [option, steps] :
       {std::pair{"--transplant-align-steps", s.transplantAlignSteps},
        std::pair{"--transplant-instruct-steps", s.transplantInstructSteps}})
    if (steps < 0)  // 0 is the preset's default; below it nothing means anything
      throw std::runtime_error(std::string(option) + " must be 0 (the preset's default) or " +
                               "positive, got " + std::to_string(steps));
  try {
    (void)projectorInitFromName(s.transplantProjector);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("--transplant-projector: ") + e.what());
  }
  checkArms(s);
  checkTuning(s);
  if (s.segmentationSeeds < 1) throw std::runtime_error("--seg-seeds must be at least 1");
  const TrainConfig align = makeConfig(s.preset, Stage::Align, s.sets);
  const TrainConfig instruct = makeConfig(s.preset, Stage::Instruct, s.sets);
  const bool mini = align.model.vision.image_size >= 48;  // larger encoders: larger probe sets
  auto orDefault = [](int& v, int def) {
    if (v <= 0) v = def;
  };
  // A transplant gets a third of stage 1a's steps and an eighth of stage 1b's: the study asks which
  // encoder gives the better MLLM for the same small budget, and transplants run once per seed and
  // encoder, so they dominate the experiment's time.
  orDefault(s.transplantAlignSteps, std::max(1, align.steps / 3));
  orDefault(s.transplantInstructSteps, std::max(1, instruct.steps / 8));
  orDefault(s.probeTrain, mini ? 1024 : 512);
  orDefault(s.probeVal, mini ? 512 : 256);
  orDefault(s.probeTest, mini ? 1024 : 512);
  orDefault(s.localisationSamples, mini ? 128 : 64);
  orDefault(s.vqaSamples, mini ? 384 : 192);  // 64 (32) questions per category: +-6 (+-9) points
  checkStageTwo(s);
  (void)transplantConfig(s, Stage::Align, 1, false, 1, 1);
  (void)transplantConfig(s, Stage::Instruct, 1, false, 1, 1);
  return s;
}

uint64_t baseSeedOffset(int base) { return 1000 * static_cast<uint64_t>(base - 1); }
int64_t baseFirstItem(int base) { return 100000 * static_cast<int64_t>(base - 1); }

std::vector<std::string> sweepLabels(const ExperimentSpec& s) {
  if (s.sweepKey.empty()) return {""};
  std::vector<std::string> out;
  for (const auto& v : s.sweepValues) out.push_back(s.sweepKey + "=" + v);
  return out;
}

std::string armLabel(const StudyArm& arm, const std::string& sweep, int seed) {
  return arm.name + (sweep.empty() ? "" : " " + sweep) + " seed " + std::to_string(seed);
}

// Base 1 is the preset's own seed; base b > 1 adds baseSeedOffset, so every base starts from other
// initial weights and sees its data in another order.
TrainConfig baseConfig(const ExperimentSpec& s, Stage stage, int base) {
  TrainConfig c = makeConfig(s.preset, stage, s.sets);
  c.seed += baseSeedOffset(base);
  return c;
}

// Stage-2 seed s of base b is s + baseSeedOffset(b): seeds nested in bases, not crossed with them
// (with the same seed everywhere, seed s would see the same data order in every base, and the
// bases' differences would share that luck).
TrainConfig stageTwoConfig(const ExperimentSpec& s, const StudyArm& arm, const std::string& sweep,
                           int seed, int base, double lrScale) {
  TrainConfig c = makeConfig(s.preset, arm.stage, s.sets);
  if (sweep.rfind("dose=", 0) == 0)
    applyDose(c, sweep.substr(5), s);
  else if (!sweep.empty())
    applyOverride(c, sweep);
  if (lrScale != 1.0) {  // a scale of 1 leaves the config byte for byte as an untuned study's
    c.lr *= lrScale;
    c.vision_lr *= lrScale;
  }
  if (arm.sftWeight > 0) c.sft_weight = arm.sftWeight;
  c.seed = static_cast<uint64_t>(seed) + baseSeedOffset(base);
  validate(c);
  return c;
}

TrainConfig stageTwoConfig(const ExperimentSpec& spec, const std::string& arm,
                           const std::string& sweep, int seed, int base, double lrScale) {
  for (const auto& a : armsOf(spec))
    if (a.name == arm) return stageTwoConfig(spec, a, sweep, seed, base, lrScale);
  throw std::runtime_error("the experiment has no arm '" + arm + "'");
}

TrainConfig transplantConfig(const ExperimentSpec& s, Stage stage, int64_t encoderRun,
                             bool original, int seed, int base) {
  TrainConfig c = makeConfig(s.preset, stage, s.sets);
  c.vision_init = std::to_string(encoderRun);  // also on the instruct stage: it names the encoder
  c.freeze_vision = true;
  c.projector_init = original ? ProjectorInit::New  // the original encoder has no trained projector
                              : projectorInitFromName(s.transplantProjector);
  c.seed = static_cast<uint64_t>(seed) + baseSeedOffset(base);
  c.steps = stage == Stage::Align ? s.transplantAlignSteps : s.transplantInstructSteps;
  validate(c);
  return c;
}

std::string doseDescription(const ExperimentSpec& s) {
  const TrainConfig instruct = makeConfig(s.preset, Stage::Instruct, s.sets);
  std::ostringstream out;
  out << "dose=preset is the preset's stage 2 as it stands. dose=paper follows the paper's "
         "proportions to stage 1b (LM 1e-5, encoder 2e-6; stage 2 SFT 5e-6, DPO 1e-6, every part, "
         "3 passes over the pool): here stage 1b trains the LM at "
      << instruct.lr << " and the encoder at " << instruct.vision_lr << ", so";
  for (const auto& arm : armsOf(s)) {
    const TrainConfig c = stageTwoConfig(s, arm, "dose=paper", 1, 1);
    const DoseRatios r = paperDoseRatios(arm.stage);
    out << " " << arm.name << " trains the LM at " << c.lr << " (" << r.lm
        << "x) and the encoder at " << c.vision_lr << " (" << r.vision << "x);";
  }
  const TrainConfig sft = stageTwoConfig(s, StudyArm{"sft", Stage::Sft, 0}, "dose=paper", 1, 1);
  out << " the pool is " << sft.dataset_size << " samples, " << kPaperPasses
      << " passes in stage 2's " << sft.steps << " steps.";
  return out.str();
}

}  // namespace pivot
