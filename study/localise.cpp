#include "study/localise.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "data/masked_records.h"
#include "training/batches.h"
#include "visualization/faithfulness.h"
#include "visualization/overlay.h"

namespace pivot {

std::vector<LocalisationItem> shapesWorldTargets(const ShapesWorld& world, Split split, int count,
                                                 int64_t first) {
  if (count < 1)
    throw std::runtime_error("--samples must be at least 1, got " + std::to_string(count));
  std::vector<LocalisationItem> items;
  for (int i = 0; static_cast<int>(items.size()) < count && i < count * 4; ++i) {
    auto s = world.sample(split, first + i);
    if (s.targets.empty()) continue;
    const std::string category = categoryName(s.category);
    items.push_back({std::move(s), category, static_cast<int>(first + i)});
  }
  if (items.empty())
    throw std::runtime_error("none of the first " + std::to_string(count * 4) +
                             " samples names an object to localise; give more samples");
  return items;
}

std::vector<LocalisationItem> maskedRecordItems(const std::string& path, int size,
                                                const WordTokenizer& tok) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  const auto dir = std::filesystem::path(path).parent_path();
  std::vector<LocalisationItem> out;
  std::string line;
  for (int lineNo = 1; std::getline(in, line); ++lineNo) {
    const std::string where = path + ":" + std::to_string(lineNo);
    const auto record = parseMaskedRecordLine(line, where);
    if (!record) continue;
    LocalisationItem item;
    item.index = lineNo;
    item.category = record->category;
    auto& s = item.sample;
    try {
      RgbImage imageSize, maskSize;
      const auto image = loadImage((dir / record->image).string(), size, &imageSize);
      const auto mask = loadImage((dir / record->mask).string(), size, &maskSize);
      // Both are resized to the model's square; a mask of another shape would be stretched onto
      // other pixels than the image's, so it must have the image's aspect ratio.
      if (std::abs(static_cast<double>(imageSize.width) * maskSize.height -
                   static_cast<double>(maskSize.width) * imageSize.height) >
          0.01 * static_cast<double>(imageSize.width) * maskSize.height)
        throw std::runtime_error("the mask is " + std::to_string(maskSize.width) + "x" +
                                 std::to_string(maskSize.height) + " but the image is " +
                                 std::to_string(imageSize.width) + "x" +
                                 std::to_string(imageSize.height) + " (another aspect ratio)");
      s.scene.size = size;
      s.scene.rgb = image.rgb;
      s.scene.instanceMask.assign(static_cast<size_t>(size * size), 0);
      for (size_t p = 0; p < s.scene.instanceMask.size(); ++p)
        s.scene.instanceMask[p] =
            std::max({mask.rgb[p * 3], mask.rgb[p * 3 + 1], mask.rgb[p * 3 + 2]}) > 127;
    } catch (const std::exception& e) {
      throw std::runtime_error(where + ": " + e.what());
    }
    s.targets = {0};  // instance 1 = the mask
    s.question = record->question;
    s.answer = record->answer;
    s.rejected = record->rejected;
    for (const auto& [field, text] :
         {std::pair<const char*, const std::string*>{"question", &s.question},
          {"answer", &s.answer},
          {"rejected", &s.rejected}}) {
      try {
        (void)tok.encode(*text);  // the miniature's word vocabulary, until a real tokenizer lands
      } catch (const std::exception& e) {
        throw std::runtime_error(where + ": field '" + field + "': " + e.what());
      }
    }
    if (std::count(s.scene.instanceMask.begin(), s.scene.instanceMask.end(), 1) == 0)
      throw std::runtime_error(where + ": the mask is empty at " + std::to_string(size) + " px");
    out.push_back(std::move(item));
  }
  if (out.empty()) throw std::runtime_error(path + ": no records");
  return out;
}

Localisation localise(Mllm& model, const std::vector<LocalisationItem>& items,
                      const AttributionOptions& options, bool deletion) {
  const bool allRejected = std::all_of(items.begin(), items.end(), [](const LocalisationItem& it) {
    return !it.sample.rejected.empty();
  });
  if (options.target == AttributionTarget::DpoLoss && !allRejected)
    throw std::runtime_error("--target dpo needs a rejected answer for every record");
  const WordTokenizer tok = WordTokenizer::shapesWorld();
  const auto& v = model->config.vision;
  const int S = v.image_size, g = S / v.patch_size;
  const auto device = model->parameters().front().device();
  Localisation out;
  std::vector<double> masses, areas, deletionAreas, intactLogps, removalMap, removalRandom,
      removalAdvantage;
  std::map<std::string, std::vector<double>> massByCategory;
  int hits = 0;
  for (size_t start = 0; start < items.size(); start += 32) {
    const size_t end = std::min(items.size(), start + 32);
    std::vector<BatchRow> chosenRows, rejectedRows;
    for (size_t i = start; i < end; ++i) {
      chosenRows.push_back({&items[i].sample, Response::Chosen});
      rejectedRows.push_back({&items[i].sample, Response::Rejected});
    }
    auto in = buildBatch(chosenRows, tok, v.numPatches(), device);
    std::optional<MllmInputs> rejected;
    if (allRejected && options.target == AttributionTarget::DpoLoss)
      rejected = buildBatch(rejectedRows, tok, v.numPatches(), device);
    const auto result = explain(model, in, options, rejected ? &*rejected : nullptr);
    out.warnings.insert(result.warnings.begin(), result.warnings.end());
    std::optional<DeletionCurve> curve;
    std::optional<AblationCurve> byMap, byChance;
    if (deletion) {  // faithfulness of the same maps, in pixels and in visual tokens
      curve = deletionCurve(model, in, result.maps);
      byMap = tokenAblationCurve(model, in, result.maps, AblationOrder::MapFirst, false);
      byChance = tokenAblationCurve(model, in, result.maps, AblationOrder::Random, false, 10,
                                    static_cast<uint64_t>(items[start].index));
    }
    for (size_t i = start; i < end; ++i) {
      const auto b = static_cast<int64_t>(i - start);
      const auto mask = targetMask(items[i].sample.scene.instanceMask, items[i].sample.targets);
      const auto fraction = cellMaskFraction(mask, S, S, g, g);
      const auto map = mapValues(result.maps, b);
      LocalisationScore score;
      score.index = items[i].index;
      score.category = items[i].category;
      score.massInside = massInside(map, fraction);
      score.pointingHit = pointingHit(map, fraction);
      score.targetArea = static_cast<double>(std::count(mask.begin(), mask.end(), 1)) / mask.size();
      score.chanceMass =
          chanceMass(fraction, g, options.suppressBorder && g >= kMinGridForBorderSuppression);
      if (curve) {
        score.deletionArea = curve->area[b].item<double>();
        score.intactLogProb = curve->logProbs[b][0].item<double>();
        deletionAreas.push_back(score.deletionArea);
        intactLogps.push_back(score.intactLogProb);
        score.removalAreaMap = byMap->area[b].item<double>();
        score.removalAreaRandom = byChance->area[b].item<double>();
        removalMap.push_back(score.removalAreaMap);
        removalRandom.push_back(score.removalAreaRandom);
        removalAdvantage.push_back(score.removalAreaRandom - score.removalAreaMap);
      }
      masses.push_back(score.massInside);
      areas.push_back(score.chanceMass);
      hits += score.pointingHit;
      massByCategory[score.category].push_back(score.massInside);
      out.samples.push_back(std::move(score));
    }
  }
  out.massInside = meanInterval(masses);
  out.pointingGame = wilsonInterval(hits, static_cast<int>(masses.size()));
  out.uniformBaseline = meanInterval(areas);
  if (deletion) {
    out.deletionArea = meanInterval(deletionAreas);
    out.intactLogProb = meanInterval(intactLogps);
    out.removalAreaMap = meanInterval(removalMap);
    out.removalAreaRandom = meanInterval(removalRandom);
    out.removalAdvantage = meanInterval(removalAdvantage);
  }
  for (const auto& [category, values] : massByCategory)
    out.massByCategory[category] = meanInterval(values);
  return out;
}

}  // namespace pivot
