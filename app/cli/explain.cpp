// `pivot explain` (a figure of attribution maps for one sample under several checkpoints) and
// `pivot localize` (localisation scores of a checkpoint's maps over a split).
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "commands.h"
#include "data/masked_records.h"
#include "store/run_store.h"
#include "training/batches.h"
#include "training/run_checkpoint.h"
#include "training/trainer.h"
#include "visualization/attribution.h"
#include "visualization/faithfulness.h"
#include "visualization/localization.h"
#include "visualization/overlay.h"

namespace pivot::cli {
namespace {

Split splitFromName(const std::string& name) {
  if (name == "train") return Split::Train;
  if (name == "val") return Split::Val;
  if (name == "test") return Split::Test;
  throw std::runtime_error("unknown split '" + name + "' (expected train, val or test)");
}

std::vector<uint8_t> targetMask(const Sample& s) { return pivot::targetMask(s.scene.instanceMask, s.targets); }

struct ScoredSample {
  Sample sample;
  std::string category;
  int index = 0;
};

// Image+mask data for localisation (data/masked_records.h), images read and resized to the model's
// size; the mask's bright pixels are the target. Errors name the file and the line.
std::vector<ScoredSample> loadMaskedRecords(const std::string& path, int size, const WordTokenizer& tok) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  const auto dir = std::filesystem::path(path).parent_path();
  std::vector<ScoredSample> out;
  std::string line;
  for (int lineNo = 1; std::getline(in, line); ++lineNo) {
    const std::string where = path + ":" + std::to_string(lineNo);
    const auto record = parseMaskedRecordLine(line, where);
    if (!record) continue;
    ScoredSample item;
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
        throw std::runtime_error("the mask is " + std::to_string(maskSize.width) + "x" + std::to_string(maskSize.height) +
                                 " but the image is " + std::to_string(imageSize.width) + "x" +
                                 std::to_string(imageSize.height) + " (another aspect ratio)");
      s.scene.size = size;
      s.scene.rgb = image.rgb;
      s.scene.instanceMask.assign(static_cast<size_t>(size * size), 0);
      for (size_t p = 0; p < s.scene.instanceMask.size(); ++p)
        s.scene.instanceMask[p] = std::max({mask.rgb[p * 3], mask.rgb[p * 3 + 1], mask.rgb[p * 3 + 2]}) > 127;
    } catch (const std::exception& e) {
      throw std::runtime_error(where + ": " + e.what());
    }
    s.targets = {0};  // instance 1 = the mask
    s.question = record->question;
    s.answer = record->answer;
    s.rejected = record->rejected;
    for (const auto& [field, text] : {std::pair<const char*, const std::string*>{"question", &s.question},
                                      {"answer", &s.answer}, {"rejected", &s.rejected}}) {
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

AttributionOptions optionsFrom(const ExplainArgs& a) {
  AttributionOptions o;
  o.method = attributionMethodFromName(a.method);
  o.target = attributionTargetFromName(a.target);
  o.layer = a.layer;
  o.l2 = a.l2;
  o.suppressBorder = !a.keepBorder;
  if (a.headFusion != "mean" && a.headFusion != "min" && a.headFusion != "max")
    throw std::runtime_error("unknown head fusion '" + a.headFusion + "' (expected mean, min or max)");
  if (a.discardRatio < 0 || a.discardRatio >= 1) throw std::runtime_error("--discard-ratio must be in [0, 1)");
  o.headFusion = a.headFusion;
  o.discardRatio = a.discardRatio;
  return o;
}

// --layer must name one of the vision tower's hidden states (HF indexing: 0 = embeddings, negative
// from the end), checked before any map is computed.
void checkLayer(const ExplainArgs& a, const LoadedCheckpoint& m) {
  const bool usesLayer = a.method == "gradcam" || a.method == "hirescam" || a.method == "layercam";
  const int count = m.config.model.vision.num_hidden_layers + 1;
  if (usesLayer && (a.layer < -count || a.layer >= count))
    throw std::runtime_error("--layer " + std::to_string(a.layer) + " is outside " + m.label() + "'s vision tower (" +
                             std::to_string(count) + " hidden states: " + std::to_string(-count) + ".." +
                             std::to_string(count - 1) + ")");
}

}  // namespace

int cmdExplain(const std::string& workspace, const ExplainArgs& a) {
  const AttributionOptions options = optionsFrom(a);  // bad names fail before anything loads
  if (a.checkpoints.empty()) throw std::runtime_error("give at least one --checkpoint RUN[@STEP]");
  if ((a.sample < 0) == a.image.empty()) throw std::runtime_error("give either --sample N or --image FILE");
  if (!a.image.empty() && (a.question.empty() || a.answer.empty()))
    throw std::runtime_error("--image needs --question and --answer");
  if (!renderingAvailable())
    throw std::runtime_error("this build has no OpenCV, so it cannot render figures (pivot localize works)");
  std::vector<LoadedCheckpoint> models;
  for (const auto& spec : a.checkpoints) models.push_back(loadRunCheckpoint(workspace, spec));
  for (const auto& m : models) checkLayer(a, m);
  const int imageSize = models.front().config.model.vision.image_size;
  for (const auto& m : models)
    if (m.config.model.vision.image_size != imageSize)
      throw std::runtime_error("checkpoints " + models.front().label() + " and " + m.label() + " take different image sizes");

  Sample sample;
  if (a.sample >= 0) {
    sample = ShapesWorld(models.front().config.world).sample(splitFromName(a.split), a.sample);
  } else {
    const auto image = loadImage(a.image, imageSize);
    sample.scene.size = imageSize;
    sample.scene.rgb = image.rgb;
    sample.question = a.question;
    sample.answer = a.answer;
    if (options.target == AttributionTarget::DpoLoss) throw std::runtime_error("--target dpo needs a sample with a rejected answer");
  }
  const WordTokenizer tok = WordTokenizer::shapesWorld();
  std::vector<FigurePanel> panels;
  const bool scored = !sample.targets.empty();
  const auto fraction = scored ? cellMaskFraction(targetMask(sample), imageSize, imageSize,
                                                  imageSize / models.front().config.model.vision.patch_size,
                                                  imageSize / models.front().config.model.vision.patch_size)
                               : std::vector<double>{};
  std::cout << "Q: " << sample.question << "   chosen: " << sample.answer
            << (sample.rejected.empty() ? "" : "   rejected: " + sample.rejected) << "\n";
  for (auto& m : models) {
    const auto device = m.model->parameters().front().device();
    auto in = buildBatch({{&sample, Response::Chosen}}, tok, m.config.model.vision.numPatches(), device);
    std::optional<MllmInputs> rejected;
    if (!sample.rejected.empty()) rejected = buildBatch({{&sample, Response::Rejected}}, tok, m.config.model.vision.numPatches(), device);
    const auto result = explain(m.model, in, options, rejected ? &*rejected : nullptr);
    for (const auto& w : result.warnings) std::cerr << "warning: " << m.label() << ": " << w << "\n";
    FigurePanel panel;
    panel.map = mapValues(result.maps, 0);
    panel.gridH = static_cast<int>(result.maps.size(1));
    panel.gridW = static_cast<int>(result.maps.size(2));
    panel.title = m.label();
    std::cout << "  " << std::left << std::setw(24) << m.label();
    if (scored && static_cast<size_t>(panel.gridH * panel.gridW) == fraction.size()) {
      const double mass = massInside(panel.map, fraction);
      const bool hit = pointingHit(panel.map, fraction);
      std::ostringstream t;
      t << std::fixed << std::setprecision(2) << "mass " << mass << (hit ? "  hit" : "  miss");
      panel.title += "  " + t.str();
      std::cout << t.str();
    }
    std::cout << "\n";
    panels.push_back(std::move(panel));
  }
  RgbImage image{sample.scene.size, sample.scene.size, sample.scene.rgb};
  OverlayStyle style;
  style.colormap = a.colormap;
  style.colourBar = a.colourBar;
  saveImage(renderFigure(image, sample.question, panels, sample.answer, sample.rejected, style), a.out);
  std::cout << "figure: " << a.out << "\n";
  return 0;
}

int cmdLocalize(const std::string& workspace, const ExplainArgs& a) {
  const AttributionOptions options = optionsFrom(a);
  if (a.checkpoints.size() != 1) throw std::runtime_error("give exactly one --checkpoint RUN[@STEP]");
  if (a.data.empty() && a.samples < 1) throw std::runtime_error("--samples must be at least 1, got " + std::to_string(a.samples));
  const Split split = splitFromName(a.split);
  auto m = loadRunCheckpoint(workspace, a.checkpoints.front());
  checkLayer(a, m);
  const ShapesWorld world(m.config.world);
  const WordTokenizer tok = WordTokenizer::shapesWorld();
  const int S = m.config.model.vision.image_size, g = S / m.config.model.vision.patch_size;
  const auto device = m.model->parameters().front().device();
  // What to score: image+mask records from a JSONL file, or the split's ShapesWorld samples that
  // name an object ("is there a ...?" -> "no" has nothing to point at).
  std::vector<ScoredSample> items;
  if (!a.data.empty()) {
    items = loadMaskedRecords(a.data, S, tok);
  } else {
    for (int i = 0; i < a.samples; ++i) {
      auto s = world.sample(split, i);
      if (!s.targets.empty()) items.push_back({std::move(s), "", i});
    }
    for (auto& it : items) it.category = categoryName(it.sample.category);
    if (items.empty())
      throw std::runtime_error("none of the first " + std::to_string(a.samples) + " " + a.split +
                               " samples names an object to localise; give more --samples");
  }
  const bool allRejected = std::all_of(items.begin(), items.end(), [](const ScoredSample& it) { return !it.sample.rejected.empty(); });
  if (options.target == AttributionTarget::DpoLoss && !allRejected)
    throw std::runtime_error("--target dpo needs a rejected answer for every record");
  std::vector<double> masses, areas, deletionAreas, intactLogps;
  int hits = 0;
  std::map<std::string, std::vector<double>> massByCategory;
  if (a.csv) std::cout << "index,category,mass_inside,pointing_hit,target_area,deletion_area\n";
  std::set<std::string> warnings;
  for (size_t start = 0; start < items.size(); start += 32) {
    const size_t end = std::min(items.size(), start + 32);
    std::vector<BatchRow> chosenRows, rejectedRows;
    for (size_t i = start; i < end; ++i) {
      chosenRows.push_back({&items[i].sample, Response::Chosen});
      rejectedRows.push_back({&items[i].sample, Response::Rejected});
    }
    auto in = buildBatch(chosenRows, tok, m.config.model.vision.numPatches(), device);
    std::optional<MllmInputs> rejected;
    if (allRejected) rejected = buildBatch(rejectedRows, tok, m.config.model.vision.numPatches(), device);
    const auto result = explain(m.model, in, options, rejected ? &*rejected : nullptr);
    warnings.insert(result.warnings.begin(), result.warnings.end());
    const auto deletion = deletionCurve(m.model, in, result.maps);  // faithfulness of the same maps
    for (size_t i = start; i < end; ++i) {
      const auto b = static_cast<int64_t>(i - start);
      const auto mask = targetMask(items[i].sample);
      const auto fraction = cellMaskFraction(mask, S, S, g, g);
      const auto map = mapValues(result.maps, b);
      const double mass = massInside(map, fraction);
      const bool hit = pointingHit(map, fraction);
      const double area = static_cast<double>(std::count(mask.begin(), mask.end(), 1)) / mask.size();
      masses.push_back(mass);
      areas.push_back(area);
      deletionAreas.push_back(deletion.area[b].item<double>());
      intactLogps.push_back(deletion.logProbs[b][0].item<double>());
      hits += hit;
      massByCategory[items[i].category].push_back(mass);
      if (a.csv)
        std::cout << items[i].index << ',' << items[i].category << ',' << mass << ',' << hit << ',' << area << ','
                  << deletionAreas.back() << "\n";
    }
  }
  for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
  const auto mass = meanInterval(masses), area = meanInterval(areas);
  const auto point = wilsonInterval(hits, static_cast<int>(masses.size()));
  const auto deletionArea = meanInterval(deletionAreas), intact = meanInterval(intactLogps);
  RunStore store(storePath(workspace));
  const std::string name = std::string("localize/") + (a.data.empty() ? a.split : "data") + "/" + a.method + "/" + a.target;
  store.addEvaluation(m.runId, {{m.step, name, "mass_inside", mass.mean},
                                {m.step, name, "pointing_game", point.mean},
                                {m.step, name, "uniform_baseline", area.mean},
                                {m.step, name, "deletion_area", deletionArea.mean},
                                {m.step, name, "samples", static_cast<double>(mass.n)}});
  if (a.csv) return 0;
  std::cout << std::fixed << std::setprecision(3) << m.label() << ", " << a.method << " (" << a.target << "), "
            << (a.data.empty() ? a.split + " split" : a.data) << ", " << mass.n << " samples with a target\n"
            << "  mass inside target   " << mass.mean << "  95% CI [" << mass.low << ", " << mass.high << "]\n"
            << "  pointing game        " << point.mean << "  95% CI [" << point.low << ", " << point.high << "]\n"
            << "  uniform-map baseline " << area.mean << "  (the target's area share)\n"
            << "  deletion-curve area  " << deletionArea.mean << "  95% CI [" << deletionArea.low << ", "
            << deletionArea.high << "]  (answer log-prob, most relevant patches greyed first; intact "
            << intact.mean << ")\n";
  for (const auto& [cat, values] : massByCategory) {
    const auto c = meanInterval(values);
    std::cout << "  mass, " << std::left << std::setw(13) << cat << c.mean << "  [" << c.low << ", " << c.high << "]  n=" << c.n << "\n";
  }
  return 0;
}

}  // namespace pivot::cli
