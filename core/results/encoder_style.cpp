#include "results/encoder_style.h"

#include <algorithm>
#include <cctype>

#include "config/experiment_spec.h"

namespace pivot {

const std::vector<std::string>& encoderOrder() {
  static const std::vector<std::string> order = [] {
    std::vector<std::string> o = {"original", "stage1"};
    o.insert(o.end(), studyMethods().begin(), studyMethods().end());
    o.push_back(kMixedArm);
    return o;
  }();
  return order;
}

std::string encoderTitle(const std::string& e) {
  if (e == "original") return "original (stage 0)";
  if (e == "stage1") return "stage 1";
  const auto& methods = studyMethods();
  if (e != kMixedArm && std::find(methods.begin(), methods.end(), e) == methods.end()) return e;
  std::string title = e;  // a method's title is its name in capitals: "dpo+sft" -> "DPO+SFT"
  for (char& c : title) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return title;
}

std::array<uint8_t, 3> encoderColour(const std::string& e) {
  if (e == "original") return {153, 153, 153};
  if (e == "stage1") return {86, 180, 233};
  if (e == "sft") return {230, 159, 0};
  if (e == "dpo") return {0, 114, 178};
  if (e == "grpo") return {213, 94, 0};
  if (e == "mpo") return {0, 158, 115};
  if (e == "dpo+sft") return {204, 121, 167};
  return {240, 228, 66};
}

}  // namespace pivot
