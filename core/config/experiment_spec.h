// The study's specification (`pivot experiment`, the window's Experiment group): what it trains,
// read and checked in one place, torch- and Qt-free, so the command line, the window's launch panel
// and the runner (study/experiment.h) take the same rules and give the same messages.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "config/train_config.h"

namespace pivot {

struct ExperimentSpec {
  std::string preset = "tiny";  // tiny | mini | a preset .json file
  int bases = 1;  // independent stage-0/1 chains; base b > 1 seeds them with seed + 1000 (b - 1)
  int seeds = 3;  // stage 2 and after run once per seed (1..seeds) on every base
  std::vector<std::string> sets;  // key=value overrides for every stage
  // A stage-2 key swept over sweepValues (e.g. vision_lr), or "dose" over preset | paper
  // (doseDescription).
  std::string sweepKey;
  std::vector<std::string> sweepValues;
  // The stage-2 methods compared (studyMethods()), each run from the same stage-1 model (sft is
  // the baseline every difference is taken to, so it is always one of them).
  std::vector<std::string> arms = {"sft", "dpo", "grpo"};
  double mixedSftWeight = 0;  // > 0: one more arm, kMixedArm: DPO with this SFT weight
  // Tuning (--tune-lr): on base 1, seed 1, each arm trains once with its rates (LM and encoder)
  // times each of these; every base then trains the scale whose held-out objective, the arm's own
  // loss (heldOutObjective) on validation items no measurement reads, was lowest. Empty: none.
  std::vector<double> tuneLrScales;
  bool transplants = true;  // false: no PIVOT transplant stages (a study of stage 2 alone)
  std::string transplantProjector = "new";  // new | one_plus_one (the original encoder: new)
  int transplantAlignSteps = 0;             // 0: a third of the preset's stage-1a steps
  int transplantInstructSteps = 0;          // 0: an eighth of the preset's stage-1b steps
  int probeTrain = 0, probeVal = 0, probeTest = 0;  // 0: the preset's default
  int segmentationSeeds = 6;
  int localisationSamples = 0;  // 0: the preset's default
  int vqaSamples = 0;           // held-out questions per VQA measurement; 0: the preset's default
  // Stages (and measurements) run side by side when neither needs the other's result, each with
  // cores / jobs CPU threads (study/task_graph.h); 0: two from two cores up. The numbers do not
  // depend on it beyond the threads' rounding (`threads=N` in `sets` fixes the threads too).
  int jobs = 0;
  std::string workspace;
  std::string out;  // report folder; empty: <workspace>/experiments/<id>
  // A signal or the window's Stop: the stage in progress stops with a checkpoint.
  const std::atomic<bool>* stopRequested = nullptr;
};

// The names of the stage-2 methods a study compares (train_config.h's stageTwoMethods), in the
// order every table and chart lists them: sft (the baseline), dpo, grpo, mpo.
const std::vector<std::string>& studyMethods();
// The arm --mixed-sft-weight adds: DPO with an SFT term, after every method.
constexpr const char* kMixedArm = "dpo+sft";

// One stage-2 arm of a study: its name (a method, or kMixedArm), the stage it trains, its SFT
// weight (0: the preset's).
struct StudyArm {
  std::string name;
  Stage stage;
  double sftWeight = 0;
};
// The spec's arms, in its --arms order, then the mixed arm when it has one.
std::vector<StudyArm> armsOf(const ExperimentSpec& spec);

// Reads "--sweep key=v1,v2,..." into the spec; throws naming the text.
void parseSweep(ExperimentSpec& spec, const std::string& text);
// Reads "--arms sft,dpo,grpo,mpo" into the spec (checkSpec names an unknown arm).
void parseArms(ExperimentSpec& spec, const std::string& text);
// Reads "--tune-lr 0.3,1,3" into the spec; throws naming a value that is not a number.
void parseTuneLr(ExperimentSpec& spec, const std::string& text);

// The spec checked and completed: everything it says is checked, every stage-2 and transplant
// configuration included, and the preset-dependent zeros (transplant steps, probe and evaluation
// sizes) are filled in. Throws one message that starts with the command-line option at fault
// ("--tune-lr: ...", "--sweep lr=2: ..."). Needs neither the workspace nor the device (the
// runner's resolvedSpec checks those).
ExperimentSpec checkedSpec(const ExperimentSpec& spec);

// Replication: base b (1..K) is its own draw of everything random. Its stage-0/1 chain, its
// stage-2 runs and its transplants add baseSeedOffset(b) to their seeds, and its measurements read
// the evaluation items from index baseFirstItem(b) of each split. Base 1 adds nothing.
uint64_t baseSeedOffset(int base);
int64_t baseFirstItem(int base);
// The first validation item the tuning objective reads: beyond every base's measurement items.
constexpr int64_t kTuningFirstItem = 1000000000;

// "" without a sweep, else "key=value" per swept value: the label of each stage-2 configuration.
std::vector<std::string> sweepLabels(const ExperimentSpec& spec);
// "dpo vision_lr=1e-4 seed 2": how progress names a stage-2 run and its transplant.
std::string armLabel(const StudyArm& arm, const std::string& sweep, int seed);

// Stage `stage` of base b's stage-0/1 chain.
TrainConfig baseConfig(const ExperimentSpec& spec, Stage stage, int base);
// The configuration of a stage-2 arm for one swept value ("" or "key=value"), seed and base, its
// learning rates times `lrScale` (a tuning candidate, or the chosen one), as the experiment trains
// it. The string form throws for an arm the spec lacks.
TrainConfig stageTwoConfig(const ExperimentSpec& spec, const StudyArm& arm,
                           const std::string& sweep, int seed, int base, double lrScale = 1.0);
TrainConfig stageTwoConfig(const ExperimentSpec& spec, const std::string& arm,
                           const std::string& sweep, int seed, int base, double lrScale = 1.0);
// A PIVOT transplant's stage (align or instruct): a fresh MLLM (seeded, nested in its base as
// stage 2's seeds are) around the frozen encoder of run `encoderRun`; `original`: the stage-0
// encoder, which always gets a new projector.
TrainConfig transplantConfig(const ExperimentSpec& spec, Stage stage, int64_t encoderRun,
                             bool original, int seed, int base);
// What --sweep dose=preset,paper trains, with the ratios and the rates they give for this spec.
std::string doseDescription(const ExperimentSpec& spec);

}  // namespace pivot
