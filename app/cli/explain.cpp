// `pivot explain` (a figure of attribution maps for one sample under several checkpoints),
// `pivot counterfactual` (the same checkpoints on a ShapesWorld sample and its edited twin) and
// `pivot localize` (localisation scores of a checkpoint's maps over a split).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "commands.h"
#include "visualization/charts.h"
#include "config/parse_number.h"
#include "study/counterfactual.h"
#include "study/explain_sample.h"
#include "study/localise.h"
#include "store/run_store.h"
#include "io/hf_llava.h"
#include "training/batches.h"
#include "training/real_data.h"
#include "training/run_checkpoint.h"
#include "training/trainer.h"
#include "visualization/attribution.h"
#include "visualization/localization.h"
#include "visualization/overlay.h"

namespace pivot::cli {
namespace {

AttributionOptions optionsFrom(const ExplainArgs& a) {
  AttributionOptions o;
  o.method = attributionMethodFromName(a.method);
  o.target = attributionTargetFromName(a.target);
  o.layer = a.layer;
  o.l2 = a.l2;
  o.suppressBorder = !a.keepBorder;
  if (a.headFusion != "mean" && a.headFusion != "min" && a.headFusion != "max")
    throw std::runtime_error("unknown head fusion '" + a.headFusion +
                             "' (expected mean, min or max)");
  if (a.discardRatio < 0 || a.discardRatio >= 1)
    throw std::runtime_error("--discard-ratio must be in [0, 1)");
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
    throw std::runtime_error("--layer " + std::to_string(a.layer) + " is outside " + m.label() +
                             "'s vision tower (" + std::to_string(count) + " hidden states: " +
                             std::to_string(-count) + ".." + std::to_string(count - 1) + ")");
}

// What the arguments ask to explain: --sample N of --split in `world`, or --image with its
// --question and --answer.
ExplainSubject subjectOf(const ExplainArgs& a, const WorldConfig& world) {
  ExplainSubject subject;
  subject.fromWorld = a.sample >= 0;
  subject.world = world;
  subject.split = splitFromName(a.split);
  subject.index = a.sample;
  subject.imageFile = a.image;
  subject.question = a.question;
  subject.answer = a.answer;
  return subject;
}

// A panel per checkpoint: its map of the sample, scored when the sample names its target.
std::vector<FigurePanel> checkpointPanels(std::vector<LoadedCheckpoint>& models,
                                          const Sample& sample, const ExplainArgs& a,
                                          const AttributionOptions& options) {
  std::vector<FigurePanel> panels;
  for (auto& m : models) {
    const SampleMap result = explainSample(m, sample, a.image, options);
    for (const auto& w : result.warnings)
      std::cerr << "warning: " << m.label() << ": " << w << "\n";
    FigurePanel panel{m.label(), result.map, result.gridH, result.gridW};
    std::cout << "  " << std::left << std::setw(24) << m.label();
    if (result.scored) {
      std::ostringstream t;
      t << std::fixed << std::setprecision(2) << "mass " << result.massInside
        << (result.pointingHit ? "  hit" : "  miss");
      panel.title += "  " + t.str();
      std::cout << t.str();
    }
    std::cout << "\n";
    panels.push_back(std::move(panel));
  }
  return panels;
}

// A panel per answer token (--per-token): the map of that token's log-prob under one checkpoint.
std::vector<FigurePanel> tokenPanels(LoadedCheckpoint& m, const Sample& sample,
                                     const ExplainArgs& a, const AttributionOptions& options) {
  const TokenSampleMaps tokens = explainSampleTokens(m, sample, a.image, options);
  for (const auto& w : tokens.warnings) std::cerr << "warning: " << w << "\n";
  std::cout << "  " << m.label() << ", one map per answer token:\n";
  std::vector<FigurePanel> panels;
  for (size_t k = 0; k < tokens.tokens.size(); ++k) {
    std::ostringstream title;
    title << "'" << tokens.tokens[k] << "'  log-prob " << std::fixed << std::setprecision(2)
          << tokens.logProbs[k];
    std::cout << "    " << title.str() << "\n";
    panels.push_back({title.str(), tokens.maps[k], tokens.gridH, tokens.gridW});
  }
  return panels;
}

// "remove:2", "move:0:5,-3", "recolour:1:red" as an edit; errors name the value.
SceneEdit parseSceneEdit(const std::string& text) {
  const auto bad = [&text](const std::string& why) {
    return std::runtime_error("--edit '" + text + "': " + why +
                              " (expected remove:K, move:K:DX,DY or recolour:K:COLOUR)");
  };
  const auto first = text.find(':');
  if (first == std::string::npos) throw bad("no object index");
  const std::string kind = text.substr(0, first);
  const auto second = text.find(':', first + 1);
  const std::string object =
      text.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
  const std::string rest = second == std::string::npos ? "" : text.substr(second + 1);
  SceneEdit edit;
  const auto integer = [&bad](const std::string& v) {
    const auto n = parseInteger(v);
    if (!n) throw bad("'" + v + "' is not an integer");
    return static_cast<int>(*n);
  };
  edit.object = integer(object);
  if (kind == "remove" && rest.empty()) {
    edit.kind = SceneEdit::Kind::Remove;
  } else if (kind == "move" && rest.find(',') != std::string::npos) {
    edit.kind = SceneEdit::Kind::Move;
    edit.dx = integer(rest.substr(0, rest.find(',')));
    edit.dy = integer(rest.substr(rest.find(',') + 1));
  } else if (kind == "recolour" && !rest.empty()) {
    edit.kind = SceneEdit::Kind::Recolour;
    const auto& colours = ShapesWorld::colours();
    const auto it = std::find(colours.begin(), colours.end(), rest);
    if (it == colours.end()) throw bad("unknown colour '" + rest + "'");
    edit.colour = static_cast<int>(it - colours.begin());
  } else {
    throw bad("not an edit");
  }
  return edit;
}

}  // namespace

int cmdCounterfactual(const std::string& workspace, const ExplainArgs& a) {
  const AttributionOptions options = optionsFrom(a);
  const SceneEdit edit = parseSceneEdit(a.edit);
  if (!a.out.empty()) checkImageOutput(a.out);
  std::vector<LoadedCheckpoint> models;
  for (const auto& spec : a.checkpoints) models.push_back(loadRunCheckpoint(workspace, spec));
  const ShapesWorld world(models.front().config.world);
  const Split split = splitFromName(a.split);
  const Sample original = world.sample(split, a.sample);
  const Sample edited = editedSample(world, split, a.sample, edit);
  std::cout << "Q: " << original.question << "   reference answer: " << original.answer << "\n"
            << "before: " << original.caption << "\nafter:  " << edited.caption << "\n";
  std::vector<FigurePanel> before, after;
  for (auto& m : models) {
    const SampleReading was = readSample(m, original, options), is = readSample(m, edited, options);
    std::cout << std::fixed << std::setprecision(3) << "  " << m.label() << ": answer '"
              << was.answer << "' -> '" << is.answer << "'"
              << (was.answer == is.answer ? "" : " (flipped)") << ", log p('" << original.answer
              << "') " << was.referenceLogProb << " -> " << is.referenceLogProb << "\n";
    std::cout.unsetf(std::ios::fixed);
    before.push_back({m.label() + ": " + was.answer, was.map.map, was.map.gridH, was.map.gridW});
    after.push_back({m.label() + ": " + is.answer, is.map.map, is.map.gridH, is.map.gridW});
  }
  if (a.out.empty()) return 0;
  OverlayStyle style;
  style.colormap = a.colormap;
  const auto row = [&](const Sample& s, const std::vector<FigurePanel>& panels,
                       const std::string& which) {
    return drawFigure(RgbImage{s.scene.size, s.scene.size, s.scene.rgb}, s.question, panels,
                      s.answer, "", style, which + ": " + s.caption);
  };
  saveDrawing(tileDrawings({row(original, before, "before"), row(edited, after, "after")}, 1),
              a.out);
  std::cout << "figure: " << a.out << "\n";
  return 0;
}

// --animate: the sample's map under every stored checkpoint of one run, a frame each.
int animateRun(const std::string& workspace, const ExplainArgs& a,
               const AttributionOptions& options) {
  if (a.checkpoints.size() != 1 || !a.models.empty() ||
      a.checkpoints.front().find('@') != std::string::npos)
    throw std::runtime_error("--animate takes one --checkpoint RUN (its every checkpoint a frame)");
  const auto dot = a.out.rfind('.');
  if (dot == std::string::npos || a.out.substr(dot) != ".png")
    throw std::runtime_error(a.out + ": --animate writes an animated PNG (.png)");
  std::vector<int64_t> steps;
  {
    RunStore store(storePath(workspace), RunStore::Access::ReadOnly);
    const auto run = resolveCheckpoint(store, a.checkpoints.front());
    for (const auto& c : store.checkpoints(run.runId)) steps.push_back(c.step);
  }
  std::vector<RgbImage> frames;
  OverlayStyle style;
  style.colormap = a.colormap;
  style.colourBar = a.colourBar;
  for (int64_t step : steps) {
    auto m = loadRunCheckpoint(workspace, a.checkpoints.front() + "@" + std::to_string(step));
    const Sample sample = sampleFor(m, subjectOf(a, m.config.world));
    std::vector<LoadedCheckpoint> one = {m};
    const auto panels = checkpointPanels(one, sample, a, options);
    frames.push_back(rasterize(drawFigure(
        RgbImage{sample.scene.size, sample.scene.size, sample.scene.rgb}, sample.question, panels,
        sample.answer, sample.rejected, style, a.method + " of the " + a.target + " target")));
  }
  std::ofstream out(a.out, std::ios::binary);
  const std::string bytes = apngOf(frames, 700);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error(a.out + ": cannot write");
  std::cout << "animation: " << a.out << " (" << frames.size() << " frames, one a checkpoint)\n";
  return 0;
}

int cmdExplain(const std::string& workspace, const ExplainArgs& a) {
  const AttributionOptions options = optionsFrom(a);  // bad names fail before anything loads
  if (a.checkpoints.empty() && a.models.empty())
    throw std::runtime_error("give at least one --checkpoint RUN[@STEP] or --model DIR");
  if (a.perToken && a.checkpoints.size() + a.models.size() != 1)
    throw std::runtime_error("--per-token explains one --checkpoint (or --model), got " +
                             std::to_string(a.checkpoints.size() + a.models.size()));
  if ((a.sample < 0) == a.image.empty())
    throw std::runtime_error("give either --sample N or --image FILE");
  if (!a.image.empty() && (a.question.empty() || a.answer.empty()))
    throw std::runtime_error("--image needs --question and --answer");
  if (!renderingAvailable())
    throw std::runtime_error(
        "this build has no OpenCV, so it cannot render figures (pivot localize works)");
  if (a.animate) return animateRun(workspace, a, options);
  checkImageOutput(a.out);  // before the maps are computed
  std::vector<LoadedCheckpoint> models;
  for (const auto& spec : a.checkpoints) models.push_back(loadRunCheckpoint(workspace, spec));
  for (const auto& dir : a.models) models.push_back(loadModelFolder(dir));
  for (const auto& m : models)
    if (m.config.realModel() && a.image.empty())
      throw std::runtime_error(m.label() +
                               " is a real model: explain it on --image with --question and "
                               "--answer (ShapesWorld samples are the miniature's)");
  for (const auto& m : models) checkLayer(a, m);
  const int imageSize = models.front().config.model.vision.image_size;
  for (const auto& m : models)
    if (m.config.model.vision.image_size != imageSize)
      throw std::runtime_error("checkpoints " + models.front().label() + " and " + m.label() +
                               " take different image sizes");

  const Sample sample = sampleFor(models.front(), subjectOf(a, models.front().config.world));
  std::cout << "Q: " << sample.question << "   chosen: " << sample.answer
            << (sample.rejected.empty() ? "" : "   rejected: " + sample.rejected) << "\n";
  std::string note = a.method + " of the " + a.target +
                     " target; colours span each map's own range (0 its least, 1 its most)";
  std::vector<FigurePanel> panels;
  if (a.perToken) {
    panels = tokenPanels(models.front(), sample, a, options);
    note = a.method + " of each answer token's log-prob under " + models.front().label() +
           "; colours span each map's own range";
  } else {
    panels = checkpointPanels(models, sample, a, options);
  }
  RgbImage image{sample.scene.size, sample.scene.size, sample.scene.rgb};
  OverlayStyle style;
  style.colormap = a.colormap;
  style.colourBar = a.colourBar;
  saveDrawing(
      drawFigure(image, sample.question, panels, sample.answer, sample.rejected, style, note),
      a.out);
  std::cout << "figure: " << a.out << "\n";
  return 0;
}

int cmdLocalize(const std::string& workspace, const ExplainArgs& a) {
  const AttributionOptions options = optionsFrom(a);
  if (a.checkpoints.size() != 1)
    throw std::runtime_error("give exactly one --checkpoint RUN[@STEP]");
  if (a.data.empty() && a.samples < 1)
    throw std::runtime_error("--samples must be at least 1, got " + std::to_string(a.samples));
  const Split split = splitFromName(a.split);
  auto m = loadRunCheckpoint(workspace, a.checkpoints.front());
  // Its samples and records are tokenized with ShapesWorld's words: a real model reads its own.
  if (m.config.realModel())
    throw std::runtime_error(m.label() + " is a run of a real model (" + m.config.model_dir +
                             "): localize scores ShapesWorld models; explain --image draws a real "
                             "model's map");
  checkLayer(a, m);
  // What to score: image+mask records, or the first --samples samples of the split that name an
  // object (the experiment's rule, so both give the same number for the same checkpoint).
  const auto items = a.data.empty()
                         ? shapesWorldTargets(ShapesWorld(m.config.world), split, a.samples)
                         : maskedRecordItems(a.data, m.config.model.vision.image_size,
                                             WordTokenizer::shapesWorld());
  const Localisation result = localise(m.model, items, options, /*deletion=*/true);
  for (const auto& w : result.warnings) std::cerr << "warning: " << w << "\n";
  RunStore store(storePath(workspace));
  const std::string name = std::string("localize/") + (a.data.empty() ? a.split : "data") + "/" +
                           a.method + "/" + a.target;
  store.addEvaluation(m.runId,
                      {{m.step, name, "mass_inside", result.massInside.mean},
                       {m.step, name, "pointing_game", result.pointingGame.mean},
                       {m.step, name, "uniform_baseline", result.uniformBaseline.mean},
                       {m.step, name, "deletion_area", result.deletionArea.mean},
                       {m.step, name, "token_removal_area/map", result.removalAreaMap.mean},
                       {m.step, name, "token_removal_area/random", result.removalAreaRandom.mean},
                       {m.step, name, "samples", static_cast<double>(result.massInside.n)}});
  if (a.csv) {
    std::cout << "index,category,mass_inside,pointing_hit,target_area,deletion_area,"
                 "token_removal_area_map,token_removal_area_random\n";
    for (const auto& s : result.samples)
      std::cout << s.index << ',' << s.category << ',' << s.massInside << ',' << s.pointingHit
                << ',' << s.targetArea << ',' << s.deletionArea << ',' << s.removalAreaMap << ','
                << s.removalAreaRandom << "\n";
    return 0;
  }
  const auto &mass = result.massInside, &point = result.pointingGame,
             &area = result.uniformBaseline;
  std::cout << std::fixed << std::setprecision(3) << m.label() << ", " << a.method << " ("
            << a.target << "), " << (a.data.empty() ? a.split + " split" : a.data) << ", " << mass.n
            << " samples with a target\n"
            << "  mass inside target   " << mass.mean << "  95% CI [" << mass.low << ", "
            << mass.high << "]\n"
            << "  pointing game        " << point.mean << "  95% CI [" << point.low << ", "
            << point.high << "]\n"
            << "  uniform-map baseline " << area.mean
            << "  (a map uniform over the cells maps can weight: the target's area share, "
               "without the border ring when it is suppressed)\n"
            << "  deletion-curve area  " << result.deletionArea.mean << "  95% CI ["
            << result.deletionArea.low << ", " << result.deletionArea.high
            << "]  (answer log-prob, most relevant patches greyed first; intact "
            << result.intactLogProb.mean << ")\n"
            << "  visual-token removal area, map order " << result.removalAreaMap.mean
            << ", random order " << result.removalAreaRandom.mean << "; random - map "
            << result.removalAdvantage.mean << "  95% CI [" << result.removalAdvantage.low << ", "
            << result.removalAdvantage.high
            << "]  (image tokens replaced by their mean; above 0: the map finds what the answer "
               "reads)\n";
  for (const auto& [cat, c] : result.massByCategory)
    std::cout << "  mass, " << std::left << std::setw(13) << cat << c.mean << "  [" << c.low << ", "
              << c.high << "]  n=" << c.n << "\n";
  return 0;
}

}  // namespace pivot::cli
