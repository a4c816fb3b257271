#include "results/encoder_style.h"

namespace pivot {

const std::vector<std::string>& encoderOrder() {
  static const std::vector<std::string> order = {"original", "stage1", "sft",    "dpo",
                                                 "grpo",     "mpo",    "dpo+sft"};
  return order;
}

std::string encoderTitle(const std::string& e) {
  if (e == "original") return "original (stage 0)";
  if (e == "stage1") return "stage 1";
  if (e == "sft") return "SFT";
  if (e == "dpo") return "DPO";
  if (e == "grpo") return "GRPO";
  if (e == "mpo") return "MPO";
  if (e == "dpo+sft") return "DPO+SFT";
  return e;
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
