// Localisation of an MLLM's attribution maps, one implementation for `pivot localize`, the window
// and the experiment's report: which samples are scored, the scores per sample (mass inside the
// target, pointing game, the target's area share as the uniform-map baseline, optionally the
// deletion-curve area as a faithfulness check) and their 95% intervals. Never prints.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/shapes_world.h"
#include "text/word_tokenizer.h"
#include "model/mllm.h"
#include "visualization/attribution.h"
#include "visualization/localization.h"

namespace pivot {

// One scored item: a sample whose target mask is known, with its category and where it came from
// (a ShapesWorld index or a records-file line).
struct LocalisationItem {
  Sample sample;
  std::string category;
  int index = 0;
};

// The one sample rule: the first `count` samples of a split from index `first` on that name an
// object ("is there a ...?" -> "no" has nothing to point at), looking at most 4 x count samples.
// Throws for count < 1 or when no sample qualifies.
std::vector<LocalisationItem> shapesWorldTargets(const ShapesWorld& world, Split split, int count,
                                                 int64_t first = 0);

// Image+mask records (data/masked_records.h), images resized to `size`; the mask's bright pixels
// are the target. Every word must be in `tok`. Errors name the file and the line.
std::vector<LocalisationItem> maskedRecordItems(const std::string& path, int size,
                                                const WordTokenizer& tok);

struct LocalisationScore {
  int index = 0;
  std::string category;
  double massInside = 0, targetArea = 0;
  double chanceMass = 0;  // massInside of a uniform map over the cells the maps can weight
  bool pointingHit = false;
  double deletionArea = 0, intactLogProb = 0;  // with deletion only
  // With deletion only: areas under the visual-token removal curves (faithfulness.h), the map's
  // order and a random one; a map that finds what the answer reads has the smaller.
  double removalAreaMap = 0, removalAreaRandom = 0;
};

struct Localisation {
  std::vector<LocalisationScore> samples;
  Interval massInside, pointingGame;
  Interval uniformBaseline;  // of chanceMass: a uniform map's mass inside, border ring excluded
                             // when the maps suppress it
  Interval deletionArea, intactLogProb;                          // with deletion only
  Interval removalAreaMap, removalAreaRandom, removalAdvantage;  // advantage: random - map, paired
  std::map<std::string, Interval> massByCategory;
  std::set<std::string> warnings;
};

// Maps for every item (in batches of 32) under `options`, scored against the targets. With
// `deletion`, also the deletion curve of the same maps and their visual-token removal curves
// (map order against a random order, seeded by the item's index). A DPO target needs a rejected
// answer on every item (throws otherwise).
Localisation localise(Mllm& model, const std::vector<LocalisationItem>& items,
                      const AttributionOptions& options, bool deletion);

}  // namespace pivot
