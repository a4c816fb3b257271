// How every table and chart names, orders and colours the study's encoders. Plain C++.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pivot {

// original, stage1, sft, dpo, grpo, mpo, dpo+sft: the columns' order everywhere.
const std::vector<std::string>& encoderOrder();
std::string encoderTitle(
    const std::string& encoder);  // "dpo" -> "DPO", "original" -> "original (stage 0)"
// One colour per encoder in every chart (Okabe-Ito, colour-blind safe): original grey, stage 1 sky
// blue, SFT orange, DPO blue, GRPO vermillion, MPO bluish green, DPO+SFT pink; anything else
// yellow.
std::array<uint8_t, 3> encoderColour(const std::string& encoder);

}  // namespace pivot
