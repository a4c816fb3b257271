// Localisation scores of attribution maps against object masks (ShapesWorld's, or any image+mask
// data), beyond the paper's judging by eye: the share of map mass inside the target's mask, and the
// pointing game (is the map's maximum on the target). Plain C++, no torch.
#pragma once
#include <cstdint>
#include <vector>

namespace pivot {

// The union of the target objects' instance masks (instance k + 1 is object k): 1 inside, else 0.
std::vector<uint8_t> targetMask(const std::vector<uint8_t>& instanceMask,
                                const std::vector<int>& targets);

// Share of each cell of a gh x gw grid over an H x W mask that lies inside the mask (nonzero).
std::vector<double> cellMaskFraction(const std::vector<uint8_t>& mask, int height, int width,
                                     int gh, int gw);

// sum(map * fraction) / sum(map); a map that is the mask scores 1, a uniform map the mask's area
// share.
double massInside(const std::vector<float>& map, const std::vector<double>& fraction);

// The chance line of massInside: the score of a map uniform over the cells a map can weight, all
// of a g x g grid, or only its interior when the border ring is suppressed (attribution.h's
// suppressBorder sets it to the minimum, which min-max normalisation makes 0).
double chanceMass(const std::vector<double>& fraction, int grid, bool borderSuppressed);

// Pointing game at the token grid: the cell with the largest value contains target pixels. (On the
// coarse grids of small models a cell is several pixels wide; any overlap plays the role of the
// pixel tolerance of the original pointing game.)
bool pointingHit(const std::vector<float>& map, const std::vector<double>& fraction);

struct Interval {
  double mean = 0, low = 0, high = 0;  // 95% interval
  int n = 0;
};
Interval meanInterval(const std::vector<double>& values);  // mean +- 1.96 standard errors
Interval wilsonInterval(int hits, int n);                  // for a rate, e.g. pointing-game hits

}  // namespace pivot
