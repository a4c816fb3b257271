#include "config/vocabulary.h"

#include <stdexcept>

namespace pivot {
namespace {

const std::vector<std::string> kDpoLoss = {"sigmoid", "ipo", "hinge", "robust", "bco_pair", "sft"};
const std::vector<std::string> kProjectorInit = {"new", "one_plus_one"};
const std::vector<std::string> kAttributionMethod = {"gradmap", "gradcam", "hirescam", "layercam",
                                                     "rollout"};
const std::vector<std::string> kColormap = {"jet", "viridis", "magma", "turbo"};
const std::vector<std::string> kPrecision = {"fp32", "bf16"};
const std::vector<std::string> kGrpoLoss = {"grpo", "bnpo", "dr_grpo", "dapo"};
const std::vector<std::string> kRewardScaling = {"group", "batch", "none"};
const std::vector<std::string> kRewardFunction = {"accuracy", "format", "format_think", "length"};
const std::vector<std::string> kRunStatus = {"created",  "running", "paused",  "stopped",
                                             "finished", "failed",  "crashed", "unknown"};

template <typename E>
E fromName(const std::vector<std::string>& names, const std::string& value, const char* what) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == value) return static_cast<E>(i);
  throw std::runtime_error(std::string("unknown ") + what + " '" + value + "' (expected " +
                           alternatives(names) + ")");
}

}  // namespace

// "a, b or c"
std::string alternatives(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return out;
}

const char* name(DpoLoss v) { return kDpoLoss[static_cast<size_t>(v)].c_str(); }
const char* name(ProjectorInit v) { return kProjectorInit[static_cast<size_t>(v)].c_str(); }
const char* name(AttributionMethod v) { return kAttributionMethod[static_cast<size_t>(v)].c_str(); }
const char* name(Colormap v) { return kColormap[static_cast<size_t>(v)].c_str(); }
const char* name(Precision v) { return kPrecision[static_cast<size_t>(v)].c_str(); }
const char* name(GrpoLoss v) { return kGrpoLoss[static_cast<size_t>(v)].c_str(); }
const char* name(RewardScaling v) { return kRewardScaling[static_cast<size_t>(v)].c_str(); }
const char* name(RewardFunction v) { return kRewardFunction[static_cast<size_t>(v)].c_str(); }
const char* name(RunStatus v) { return kRunStatus[static_cast<size_t>(v)].c_str(); }

const std::vector<std::string>& dpoLossNames() { return kDpoLoss; }
const std::vector<std::string>& projectorInitNames() { return kProjectorInit; }
const std::vector<std::string>& attributionMethodNames() { return kAttributionMethod; }
const std::vector<std::string>& colormapNames() { return kColormap; }
const std::vector<std::string>& precisionNames() { return kPrecision; }
const std::vector<std::string>& grpoLossNames() { return kGrpoLoss; }
const std::vector<std::string>& rewardScalingNames() { return kRewardScaling; }
const std::vector<std::string>& rewardFunctionNames() { return kRewardFunction; }
const std::vector<std::string>& runStatusNames() { return kRunStatus; }

DpoLoss dpoLossFromName(const std::string& n) { return fromName<DpoLoss>(kDpoLoss, n, "DPO loss"); }
ProjectorInit projectorInitFromName(const std::string& n) {
  return fromName<ProjectorInit>(kProjectorInit, n, "projector init");
}
AttributionMethod attributionMethodFromName(const std::string& n) {
  return fromName<AttributionMethod>(kAttributionMethod, n, "method");
}
Colormap colormapFromName(const std::string& n) {
  return fromName<Colormap>(kColormap, n, "colormap");
}
Precision precisionFromName(const std::string& n) {
  return fromName<Precision>(kPrecision, n, "dtype");
}
GrpoLoss grpoLossFromName(const std::string& n) {
  return fromName<GrpoLoss>(kGrpoLoss, n, "GRPO loss type");
}
RewardScaling rewardScalingFromName(const std::string& n) {
  return fromName<RewardScaling>(kRewardScaling, n, "reward scaling");
}

RewardFunction rewardFunctionFromName(const std::string& n) {
  return fromName<RewardFunction>(kRewardFunction, n, "reward function");
}

RunStatus runStatusFromName(const std::string& n) {
  return fromName<RunStatus>(kRunStatus, n, "run status");
}

}  // namespace pivot
