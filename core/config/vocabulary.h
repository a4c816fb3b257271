// The workbench's fixed vocabularies, each an enum with one name table (the pattern of Stage in
// train_config.h): strings only at the JSON, SQLite and command-line edge, and the window fills its
// combo boxes from the same tables. Torch- and Qt-free.
#pragma once
#include <string>
#include <vector>

namespace pivot {

// DPO's loss terms, as TRL's DPOTrainer names them: sigmoid (the paper's), IPO, hinge (SLiC),
// robust (label smoothing as flipped labels), bco_pair (BCO on pairs, with a running reward-mean
// shift) and sft (the chosen answer's NLL). MPO is the weighted list sigmoid, bco_pair, sft.
enum class DpoLoss { Sigmoid, Ipo, Hinge, Robust, BcoPair, Sft };
// The PIVOT transplant's projector: a new one, or the source's first layer (frozen) plus a new one.
enum class ProjectorInit { New, OnePlusOne };
// Attribution maps: the paper's gradient map, three CAMs on a vision layer, attention rollout.
enum class AttributionMethod { GradMap, GradCam, HiResCam, LayerCam, Rollout };
// Colormaps of the overlays.
enum class Colormap { Jet, Viridis, Magma, Turbo };
// Training precision: float32 throughout, or bf16 autocast over float32 master weights.
enum class Precision { Fp32, Bf16 };
// GRPO's loss aggregation over completion tokens, as TRL names them: grpo (per sequence, then
// mean), bnpo (over the batch's tokens), dr_grpo (over B x max_completion_length), dapo (over the
// tokens of the whole accumulated batch).
enum class GrpoLoss { Grpo, Bnpo, DrGrpo, Dapo };
// GRPO's advantage scaling: by the group's reward std, by the batch's, or none (Dr. GRPO).
enum class RewardScaling { Group, Batch, None };
// GRPO's verifiable reward functions (training/rewards.h): accuracy (the checker), format (the
// answer alone), format_think (R1's <think>...</think><answer>...</answer>), length (DAPO's soft
// overlong penalty).
enum class RewardFunction { Accuracy, Format, FormatThink, Length };
// A run's (and an experiment's) state in the run store. Crashed is what a running or paused run
// whose owner died shows as (store/workspace.h's effectiveStatus); `pivot doctor --fix` writes it.
// Unknown is never written: it is how a status this version does not know (a newer one wrote it)
// reads, so that one such row is flagged instead of hiding every run.
enum class RunStatus { Created, Running, Paused, Stopped, Finished, Failed, Crashed, Unknown };

const char* name(DpoLoss v);
const char* name(ProjectorInit v);
const char* name(AttributionMethod v);
const char* name(Colormap v);
const char* name(Precision v);
const char* name(GrpoLoss v);
const char* name(RewardScaling v);
const char* name(RewardFunction v);
const char* name(RunStatus v);

// Every name of a vocabulary, in enum order (what a combo box lists).
const std::vector<std::string>& dpoLossNames();
const std::vector<std::string>& projectorInitNames();
const std::vector<std::string>& attributionMethodNames();
const std::vector<std::string>& colormapNames();
const std::vector<std::string>& precisionNames();
const std::vector<std::string>& grpoLossNames();
const std::vector<std::string>& rewardScalingNames();
const std::vector<std::string>& rewardFunctionNames();
const std::vector<std::string>& runStatusNames();

// "a, b or c": how a message lists what it expected.
std::string alternatives(const std::vector<std::string>& names);

// From a name; throws "unknown <what> 'x' (expected a, b or c)".
DpoLoss dpoLossFromName(const std::string& name);
ProjectorInit projectorInitFromName(const std::string& name);
AttributionMethod attributionMethodFromName(const std::string& name);
Colormap colormapFromName(const std::string& name);
Precision precisionFromName(const std::string& name);
GrpoLoss grpoLossFromName(const std::string& name);
RewardScaling rewardScalingFromName(const std::string& name);
RewardFunction rewardFunctionFromName(const std::string& name);
RunStatus runStatusFromName(const std::string& name);

}  // namespace pivot
