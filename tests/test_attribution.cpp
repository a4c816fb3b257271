// Attribution maps, localisation scores, deletion curves and figures.
#include <QtTest/QtTest>
#include <torch/torch.h>

#include <QTemporaryDir>
#include <fstream>

#include "model/mllm.h"
#include "training/batches.h"
#include "visualization/attribution.h"
#include "visualization/charts.h"
#include "visualization/faithfulness.h"
#include "visualization/drawing.h"
#include "visualization/localization.h"
#include "visualization/overlay.h"

using namespace pivot;

namespace {

// Every object the cross-reference table names starts where it says ("N 0 obj"), and startxref
// points at the table: what a PDF reader relies on to find anything.
void checkXref(const std::string& pdf) {
  const size_t start = pdf.rfind("startxref\n");
  QVERIFY(start != std::string::npos);
  const size_t xref = std::stoul(pdf.substr(start + 10));
  QCOMPARE(pdf.substr(xref, 5), std::string("xref\n"));
  const size_t count = std::stoul(pdf.substr(xref + 7));
  for (size_t i = 1; i < count; ++i) {
    const size_t entry = pdf.find('\n', xref + 5) + 1 + 20 * i;  // after "0 N\n"
    const size_t offset = std::stoul(pdf.substr(entry, 10));
    QCOMPARE(pdf.substr(offset, std::to_string(i).size() + 6), std::to_string(i) + " 0 obj");
  }
}

MllmConfig smallConfig() {
  MllmConfig c;
  c.vision.hidden_size = 32;
  c.vision.intermediate_size = 64;
  c.vision.num_hidden_layers = 3;
  c.vision.image_size = 32;
  c.vision.patch_size = 4;  // 8 x 8 grid
  c.text.vocab_size = static_cast<int>(WordTokenizer::shapesWorld().vocabSize());
  c.text.hidden_size = 32;
  c.text.intermediate_size = 64;
  c.text.num_hidden_layers = 2;
  c.text.num_attention_heads = 4;
  c.text.num_key_value_heads = 2;
  c.image_token_id = static_cast<int>(WordTokenizer::kImage);
  return c;
}

struct Fixture {
  Mllm model{smallConfig()};
  std::vector<Sample> samples;
  MllmInputs chosen, rejected;
  Fixture() {
    torch::manual_seed(3);
    {
      torch::NoGradGuard g;
      for (auto& p : model->parameters()) p.normal_(0, 0.1);
    }
    WorldConfig w;
    w.image_size = 32;
    ShapesWorld world(w);
    for (int i = 0; i < 3; ++i) samples.push_back(world.sample(Split::Val, i));
    std::vector<BatchRow> c, r;
    for (const auto& s : samples) {
      c.push_back({&s, Response::Chosen});
      r.push_back({&s, Response::Rejected});
    }
    const auto tok = WordTokenizer::shapesWorld();
    chosen = buildBatch(c, tok, 64, torch::kCPU);
    rejected = buildBatch(r, tok, 64, torch::kCPU);
  }
};

}  // namespace

class TestAttribution : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  // A nested study's bar chart draws each base's mean as a ring on its bar (issue 15): the same
  // chart with points differs from it without them only on the bars, where white rings appear.
  void axisTicksAreLabelledToTheirStep() {
    QCOMPARE(axisTickLabel(1.65, 0.05), std::string("1.65"));
    QCOMPARE(axisTickLabel(1.7000000000000002, 0.05), std::string("1.70"));
    QCOMPARE(axisTickLabel(0.30000000000000004, 0.1), std::string("0.3"));
    QCOMPARE(axisTickLabel(0.5, 0.25), std::string("0.50"));
    QCOMPARE(axisTickLabel(-1e-17, 0.2), std::string("0.0"));
    QCOMPARE(axisTickLabel(200, 50), std::string("200"));
    QCOMPARE(axisTickLabel(-0.002, 0.001), std::string("-0.002"));
  }

  // Issue 30: the localisation figure's dashed baseline said nothing of what it was.
  void referenceLinesAreLabelledWhereTheyAreDrawn() {
    BarChart chart;
    chart.series = {"SFT"};
    BarGroup g;
    g.label = "mass";
    g.values = {0.9};
    chart.groups = {g};
    chart.referenceLines = {0.25};
    const RgbImage bare = renderBarChart(chart, 480, 320);
    chart.referenceLabels = {"uniform map"};
    const RgbImage named = renderBarChart(chart, 480, 320);
    // The label's ink: dark pixels that only the named chart has, all in the band just above the
    // line (y = 0.25 of the plot's height from its bottom) and in the right half.
    int added = 0, outside = 0;
    for (int y = 0; y < named.height; ++y)
      for (int x = 0; x < named.width; ++x) {
        const size_t i = 3 * (static_cast<size_t>(y) * named.width + x);
        const bool dark = named.rgb[i] < 128 && bare.rgb[i] > 200;
        if (!dark) continue;
        ++added;
        outside += x < named.width / 2;
      }
    QVERIFY2(added > 30, qPrintable(QString::number(added)));
    QCOMPARE(outside, 0);
  }

  void barChartDrawsEachBasesMeanOnItsBar() {
    BarChart chart;
    chart.series = {"SFT", "DPO"};
    BarGroup g;
    g.label = "shape";
    g.values = {0.6, 0.7};
    chart.groups = {g};
    const RgbImage plain = renderBarChart(chart, 480, 320);
    chart.groups[0].points = {{0.5, 0.6, 0.7}, {0.65, 0.75}};
    const RgbImage nested = renderBarChart(chart, 480, 320);
    QCOMPARE(nested.width, plain.width);
    int changed = 0, whiteNow = 0;
    for (size_t i = 0; i + 2 < plain.rgb.size(); i += 3) {
      const bool differs = plain.rgb[i] != nested.rgb[i] || plain.rgb[i + 1] != nested.rgb[i + 1] ||
                           plain.rgb[i + 2] != nested.rgb[i + 2];
      changed += differs;
      whiteNow +=
          differs && nested.rgb[i] >= 230 && nested.rgb[i + 1] >= 230 && nested.rgb[i + 2] >= 230;
    }
    QVERIFY2(changed > 5 * 20, qPrintable(QString::number(changed)));  // five rings drawn
    QVERIFY2(whiteNow > 5 * 4,  // filled white on the coloured bars
             qPrintable(QString("%1 of %2").arg(whiteNow).arg(changed)));
  }

  void localisationScoresOfKnownMaps() {
    // A 4 x 4 mask covering the top-left 2 x 2 cells of a 2 x 2 grid.
    std::vector<uint8_t> mask(16, 0);
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 2; ++x) mask[static_cast<size_t>(y * 4 + x)] = 1;
    const auto fraction = cellMaskFraction(mask, 4, 4, 2, 2);
    QCOMPARE(fraction, (std::vector<double>{1, 0, 0, 0}));
    QCOMPARE(massInside({1, 0, 0, 0}, fraction), 1.0);   // the map is the mask
    QCOMPARE(massInside({1, 1, 1, 1}, fraction), 0.25);  // uniform: the mask's area share
    // Chance on an 8 x 8 grid with a target of two whole interior cells and half a border cell:
    // 2.5 / 64 over every cell; 2 / 36 over the interior, as a border-suppressed map is weighted.
    std::vector<double> grid(64, 0.0);
    grid[9] = grid[10] = 1;  // (1, 1), (1, 2): interior
    grid[0] = 0.5;           // a corner: border
    QCOMPARE(chanceMass(grid, 8, false), 2.5 / 64);
    QCOMPARE(chanceMass(grid, 8, true), 2.0 / 36);
    QVERIFY(pointingHit({0.9f, 0.1f, 0.2f, 0.3f}, fraction));
    QVERIFY(!pointingHit({0.1f, 0.9f, 0.2f, 0.3f}, fraction));
    QVERIFY(pointingHit({0.1f, 0.9f}, {0.0, 0.2}));  // any target pixel in the peak cell counts
    QCOMPARE(targetMask({0, 1, 2, 3, 2}, {1, 2}), (std::vector<uint8_t>{0, 0, 1, 1, 1}));
    // Partial cells: a 3 x 3 mask region on a 2 x 2 grid of a 4 x 4 image.
    std::vector<uint8_t> partial(16, 0);
    partial[0] = partial[1] = partial[4] = 1;
    QCOMPARE(cellMaskFraction(partial, 4, 4, 2, 2)[0], 0.75);
  }

  void intervals() {
    const auto m = meanInterval({1, 2, 3, 4});
    QCOMPARE(m.mean, 2.5);
    const double se = std::sqrt(5.0 / 3.0 / 4.0);
    QVERIFY(std::abs(m.low - (2.5 - 1.96 * se)) < 1e-12);
    const auto w = wilsonInterval(5, 10);  // textbook value: [0.2366, 0.7634]
    QVERIFY(std::abs(w.low - 0.2366) < 1e-4);
    QVERIFY(std::abs(w.high - 0.7634) < 1e-4);
    QCOMPARE(wilsonInterval(0, 0).n, 0);
  }

  void gridsAndNormalisation() {
    QCOMPARE(tokensToGrid(torch::rand({2, 16})).sizes().vec(), (std::vector<int64_t>{2, 4, 4}));
    auto withCls = torch::arange(17, torch::kFloat32).unsqueeze(0);
    QCOMPARE(tokensToGrid(withCls)[0][0][0].item<float>(), 1.0f);  // the leading token is dropped
    auto grid = torch::arange(64, torch::kFloat32).view({1, 8, 8});
    auto n = normaliseMaps(grid, /*suppressBorder=*/true, /*gamma=*/1.0);
    QCOMPARE(n.max().item<float>(), 1.0f);
    QCOMPARE(n.min().item<float>(), 0.0f);
    QCOMPARE(n[0][7][7].item<float>(), 0.0f);  // border flattened to the interior minimum
    QCOMPARE(n[0][6][6].item<float>(), 1.0f);  // the interior maximum
    auto small = normaliseMaps(torch::arange(16, torch::kFloat32).view({1, 4, 4}), true, 1.0);
    QCOMPARE(small[0][3][3].item<float>(), 1.0f);  // a 4 x 4 grid keeps its border
    auto gamma = normaliseMaps(torch::tensor({{{0.f, 0.5f}, {1.f, 0.25f}}}), false, 2.0);
    QVERIFY(std::abs(gamma[0][0][1].item<float>() - 0.25f) < 1e-6);
  }

  void gradMapIsTheGradientNormOfTheVisualTokens() {
    Fixture f;
    AttributionOptions o;
    o.target = AttributionTarget::AnswerLogProb;
    const auto r = explain(f.model, f.chosen, o);
    QCOMPARE(r.maps.sizes().vec(), (std::vector<int64_t>{3, 8, 8}));
    QVERIFY(r.warnings.empty());
    // Reference: autograd by hand on the same objective.
    torch::Tensor visual;
    auto logits = f.model->forward(f.chosen, &visual);
    auto grad = torch::autograd::grad({sequenceLogProbs(logits, f.chosen.targetLabels()).sum()},
                                      {visual})[0];
    auto expected = grad.abs().sum(-1).view({3, 8, 8});
    QVERIFY(torch::allclose(r.raw, expected, 1e-5, 1e-7));
    QVERIFY(r.maps.min().item<float>() >= 0 && r.maps.max().item<float>() <= 1.0f + 1e-6f);
    // Parameters' gradients are untouched.
    for (auto& p : f.model->parameters()) QVERIFY(!p.grad().defined());
  }

  void camMethodsDpoTargetAndRollout() {
    Fixture f;
    for (auto method :
         {AttributionMethod::GradCam, AttributionMethod::HiResCam, AttributionMethod::LayerCam}) {
      AttributionOptions o;
      o.method = method;
      o.layer = 1;
      const auto r = explain(f.model, f.chosen, o);
      QVERIFY2(r.warnings.empty(), attributionMethodName(method));
      QVERIFY(torch::isfinite(r.maps).all().item<bool>());
    }
    AttributionOptions dpo;
    dpo.target = AttributionTarget::DpoLoss;
    const auto d = explain(f.model, f.chosen, dpo, &f.rejected);
    QVERIFY(d.raw.abs().sum().item<double>() > 0);
    QVERIFY_EXCEPTION_THROWN(explain(f.model, f.chosen, dpo), std::runtime_error);
    AttributionOptions roll;
    roll.method = AttributionMethod::Rollout;
    const auto r = explain(f.model, f.chosen, roll);
    QCOMPARE(r.maps.sizes().vec(), (std::vector<int64_t>{3, 8, 8}));
    QVERIFY(torch::isfinite(r.maps).all().item<bool>());
    // Rollout rows are distributions: the raw scores average to 1 / N per token.
    QVERIFY(std::abs(r.raw.sum().item<double>() / 3 - 1.0) < 1e-4);
  }

  void unusedLayerWarnsInsteadOfABlankMap() {
    Fixture f;
    AttributionOptions o;
    o.method = AttributionMethod::GradCam;
    o.layer = 3;  // the last layer: the features come from the penultimate one
    const auto r = explain(f.model, f.chosen, o);
    QCOMPARE(r.warnings.size(), size_t(1));
    QVERIFY2(QString::fromStdString(r.warnings[0]).contains("above the feature layer"),
             r.warnings[0].c_str());
  }

  // Issue 29: visual-token ablation against hand-built cases. Removing none of the tokens is the
  // intact image, removing all (in any order) is every token its image's mean, insertion runs the
  // other way, and a seeded random order repeats.
  void tokenAblationRemovesAndRestoresTheImage() {
    Fixture f;
    const auto r = explain(f.model, f.chosen, AttributionOptions{});
    const auto removal =
        tokenAblationCurve(f.model, f.chosen, r.maps, AblationOrder::MapFirst, false, 4);
    const auto random =
        tokenAblationCurve(f.model, f.chosen, r.maps, AblationOrder::Random, false, 4, 7);
    const auto insertion =
        tokenAblationCurve(f.model, f.chosen, r.maps, AblationOrder::MapFirst, true, 4);
    QCOMPARE(removal.fractions, (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
    torch::NoGradGuard g;
    const auto targets = f.chosen.targetLabels();
    const auto intact = sequenceLogProbs(f.model->forward(f.chosen), targets);
    const auto visual = f.model->visualTokens(f.chosen.pixels);
    const auto means = visual.mean(1, true).expand_as(visual);
    const auto ablated = sequenceLogProbs(
        f.model->language_model->forwardEmbeds(
            f.model->spliceEmbeddings(f.chosen.inputIds, means), f.chosen.attentionMask,
            f.chosen.positionIds,
            f.model->config.prefix_bidirectional ? f.chosen.prefixLen : torch::Tensor(),
            f.chosen.logitsFrom, f.chosen.branch),
        targets);
    // The random model reads its image weakly (about 3e-4 nats here): compare to 2e-5 nats, far
    // below that and far above the batched forward's rounding.
    const auto near = [](const torch::Tensor& a, const torch::Tensor& b) {
      return (a - b).abs().max().item<double>() < 2e-5;
    };
    QVERIFY((intact - ablated).abs().max().item<double>() > 1e-4);  // the image matters
    for (const auto* curve : {&removal, &random}) {
      QVERIFY(near(curve->logProbs.select(1, 0), intact));
      QVERIFY(near(curve->logProbs.select(1, 4), ablated));
    }
    QVERIFY(near(insertion.logProbs.select(1, 0), ablated));
    QVERIFY(near(insertion.logProbs.select(1, 4), intact));
    const auto again =
        tokenAblationCurve(f.model, f.chosen, r.maps, AblationOrder::Random, false, 4, 7);
    QVERIFY(torch::equal(again.logProbs, random.logProbs));
    const auto lp = removal.logProbs;
    const auto area = (lp.narrow(1, 0, 4) + lp.narrow(1, 1, 4)).sum(1) * 0.125;
    QVERIFY(torch::allclose(removal.area, area, 1e-5, 1e-6));
    // A grid that does not cover the visual tokens is refused by name.
    try {
      (void)tokenAblationCurve(f.model, f.chosen, r.maps.narrow(1, 0, 4), AblationOrder::MapFirst,
                               false);
      QFAIL("a partial grid was accepted");
    } catch (const std::exception& e) {
      QVERIFY2(QString(e.what()).contains("does not cover the 64 visual tokens"), e.what());
    }
  }

  // Issue 29: one map per answer token, each the gradient map of that token's own log-prob,
  // computed here by hand for row 0; the tokens' log-probs add up to the answer's.
  void perTokenMapsExplainEachAnswerToken() {
    Fixture f;
    AttributionOptions o;
    const auto tokens = explainPerToken(f.model, f.chosen, o);
    const auto labels = f.chosen.targetLabels()[0];
    const auto K = static_cast<size_t>((labels != -100).sum().item<int64_t>());
    QVERIFY(K >= 2);  // an answer word and the turn's end
    QCOMPARE(tokens.positions.size(), K);
    QCOMPARE(tokens.maps.sizes().vec(), (std::vector<int64_t>{static_cast<int64_t>(K), 8, 8}));
    MllmInputs one = f.chosen;
    for (auto* t : {&one.pixels, &one.inputIds, &one.attentionMask, &one.labels, &one.prefixLen})
      *t = t->narrow(0, 0, 1);
    torch::Tensor visual;
    const auto logits = f.model->forward(one, &visual, MllmImpl::Visual::Leaf);
    const auto perToken = tokenLogProbs(logits, one.targetLabels())[0];
    for (size_t k = 0; k < K; ++k) {
      const int64_t t = tokens.positions[k];
      QCOMPARE(tokens.tokenIds[k], labels[t].item<int64_t>());
      QVERIFY(std::abs(tokens.logProbs[static_cast<int64_t>(k)].item<double>() -
                       perToken[t].item<double>()) < 1e-6);
      const auto grad = torch::autograd::grad({perToken[t]}, {visual}, {}, true)[0];
      const auto expected =
          normaliseMaps(tokensToGrid(grad.abs().sum(-1).detach()), o.suppressBorder, o.gamma);
      QVERIFY(torch::allclose(tokens.maps[static_cast<int64_t>(k)], expected[0], 1e-4, 1e-5));
    }
    torch::NoGradGuard g;
    const double answer =
        sequenceLogProbs(f.model->forward(one), one.targetLabels())[0].item<double>();
    QVERIFY(std::abs(tokens.logProbs.sum().item<double>() - answer) < 1e-4);
    // Two tokens' maps differ (each token reads the image its own way).
    QVERIFY(!torch::allclose(tokens.maps[0], tokens.maps[1], 1e-3, 1e-3));
  }

  void deletionCurveStartsAtTheIntactLogProb() {
    Fixture f;
    AttributionOptions o;
    const auto r = explain(f.model, f.chosen, o);
    const auto curve = deletionCurve(f.model, f.chosen, r.maps, 10);
    QCOMPARE(curve.fractions.size(), size_t(11));
    QCOMPARE(curve.logProbs.sizes().vec(), (std::vector<int64_t>{3, 11}));
    torch::NoGradGuard g;
    auto intact = sequenceLogProbs(f.model->forward(f.chosen), f.chosen.targetLabels());
    QVERIFY(torch::allclose(curve.logProbs.select(1, 0), intact, 1e-4, 1e-5));
    // Everything deleted equals a grey image.
    MllmInputs grey = f.chosen;
    grey.pixels = torch::zeros_like(f.chosen.pixels);
    auto blank = sequenceLogProbs(f.model->forward(grey), grey.targetLabels());
    QVERIFY(torch::allclose(curve.logProbs.select(1, 10), blank, 1e-4, 1e-5));
    auto expectedArea =
        (curve.logProbs.narrow(1, 0, 10) + curve.logProbs.narrow(1, 1, 10)).sum(1) * 0.05;
    QVERIFY(torch::allclose(curve.area, expectedArea, 1e-5, 1e-6));
  }

  // Issue 30: figures as true vector files. Widths are Helvetica's (Adobe's AFM, 1/1000 em):
  // H 722, e 556, l 222, o 556.
  void textIsMeasuredInHelvetica() {
    QCOMPARE(textWidth("Hello", 10), 22.78);
    QCOMPARE(textWidth("", 10), 0.0);
    QCOMPARE(textWidth("0.25", 20), 20 * (556 + 278 + 556 + 556) / 1000.0);
    QCOMPARE(textWidth("\xE2\x80\x94", 10), 10.0);  // an em dash (WinAnsi 0x97): 1000
  }

  void chartsAreVectorWithTextAsText() {
    BarChart chart;
    chart.title = "Linear probe (accuracy)";
    chart.yLabel = "top-1";
    chart.series = {"SFT", "DPO"};
    BarGroup g;
    g.label = "shape";
    g.values = {0.6, 0.7};
    g.errors = {0.05, 0.0};
    g.points = {{0.5, 0.7}, {}};
    chart.groups = {g};
    chart.referenceLines = {0.25};
    chart.referenceLabels = {"chance"};
    const Drawing d = drawBarChart(chart, 480, 320);
    const std::string pdf = pdfOf(d);
    // Text as text (parentheses escaped), one standard font, no image at all, two rings.
    QVERIFY(pdf.find("(Linear probe \\(accuracy\\)) Tj") != std::string::npos);
    QVERIFY(pdf.find("(chance) Tj") != std::string::npos);
    QVERIFY(pdf.find("/BaseFont /Helvetica") != std::string::npos);
    QVERIFY(pdf.find("/Subtype /Image") == std::string::npos);
    QVERIFY(pdf.find("[6 6] 0 d") != std::string::npos);  // the dashed reference line
    checkXref(pdf);
    int rings = 0;
    for (const auto& op : d.ops()) rings += op.kind == DrawOp::Kind::Ring;
    QCOMPARE(rings, 2);
    const std::string svg = svgOf(d);
    QVERIFY(svg.find(">Linear probe (accuracy)</text>") != std::string::npos);
    QVERIFY(svg.find("stroke-dasharray") != std::string::npos);
    QVERIFY(svg.find("<image") == std::string::npos);

    // A right-aligned label ends at its anchor: x = anchor - width in both vector formats.
    Drawing t(100, 50);
    t.text("Hello", 90, 20, 10, Align::Right, {0, 0, 0});
    QVERIFY(pdfOf(t).find("67.22 30 Td (Hello) Tj") != std::string::npos);  // y flipped: 50 - 20
    QVERIFY(svgOf(t).find("<text x=\"67.22\" y=\"20\"") != std::string::npos);
  }

  // Issue 29: maps over steps as an animated PNG. The chunks a reader walks: IHDR, acTL with the
  // frame count, then per frame an fcTL (and the first frame's IDAT, the others' fdAT) with
  // sequence numbers counting up from 0, each chunk's CRC right.
  void animatedPngHoldsEveryFrame() {
    std::vector<RgbImage> frames;
    for (uint8_t v : {10, 120, 250}) frames.push_back({4, 3, std::vector<uint8_t>(4 * 3 * 3, v)});
    const std::string png = apngOf(frames, 500);
    QCOMPARE(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    const auto be32 = [&](size_t at) {
      return static_cast<uint32_t>(static_cast<uint8_t>(png[at])) << 24 |
             static_cast<uint32_t>(static_cast<uint8_t>(png[at + 1])) << 16 |
             static_cast<uint32_t>(static_cast<uint8_t>(png[at + 2])) << 8 |
             static_cast<uint32_t>(static_cast<uint8_t>(png[at + 3]));
    };
    QStringList types;
    std::vector<uint32_t> sequence;
    for (size_t at = 8; at < png.size();) {
      const uint32_t length = be32(at);
      const std::string type = png.substr(at + 4, 4);
      types << QString::fromStdString(type);
      QCOMPARE(pngCrc32(png, at + 4, 4 + length), be32(at + 8 + length));
      if (type == "acTL") QCOMPARE(be32(at + 8), 3u);
      if (type == "fcTL") {
        sequence.push_back(be32(at + 8));
        QCOMPARE(be32(at + 12), 4u);  // width
        QCOMPARE(be32(at + 16), 3u);  // height
      }
      if (type == "fdAT") sequence.push_back(be32(at + 8));
      at += 12 + length;
    }
    QCOMPARE(types,
             (QStringList{"IHDR", "acTL", "fcTL", "IDAT", "fcTL", "fdAT", "fcTL", "fdAT", "IEND"}));
    QCOMPARE(sequence, (std::vector<uint32_t>{0, 1, 2, 3, 4}));
    frames.push_back({2, 2, std::vector<uint8_t>(12, 0)});
    try {
      (void)apngOf(frames, 500);
      QFAIL("frames of different sizes were accepted");
    } catch (const std::invalid_argument& e) {
      QCOMPARE(std::string(e.what()), std::string("the animation's frames differ in size"));
    }
  }

  void mapFiguresEmbedOnlyTheMaps() {
    RgbImage image{32, 32, std::vector<uint8_t>(32 * 32 * 3, 90)};
    std::vector<float> map(64, 0.5f);
    if (!renderingAvailable()) return;  // the map panels are OpenCV overlays
    OverlayStyle style;
    style.colourBar = true;
    const Drawing d =
        drawFigure(image, "what colour is the circle ?", {{"A", map, 8, 8}, {"B", map, 8, 8}},
                   "red", "blue", style, "gradmap of the sft target");
    const std::string pdf = pdfOf(d);
    // The image and two maps are the only images; the colour bar is 64 filled paths.
    size_t images = 0;
    for (size_t at = pdf.find("/Subtype /Image"); at != std::string::npos;
         at = pdf.find("/Subtype /Image", at + 1))
      ++images;
    QCOMPARE(images, size_t(3));
    QVERIFY(pdf.find("(Q: what colour is the circle ?) Tj") != std::string::npos);
    QVERIFY(pdf.find("(rejected: blue) Tj") != std::string::npos);
    QVERIFY(pdf.find("(gradmap of the sft target) Tj") != std::string::npos);
    QVERIFY(pdf.find("(.5) Tj") != std::string::npos);  // the colour bar's middle tick
    checkXref(pdf);
    const std::string svg = svgOf(d);
    size_t svgImages = 0;
    for (size_t at = svg.find("<image"); at != std::string::npos; at = svg.find("<image", at + 1))
      ++svgImages;
    QCOMPARE(svgImages, size_t(3));
    QVERIFY(svg.find("href=\"data:image/png;base64,iVBORw0KGgo") != std::string::npos);
    // The raster is the same figure: its size, and the bar's width beside the panels.
    const RgbImage raster = rasterize(d);
    QCOMPARE(raster.width, 10 + 3 * (256 + 10) + 46);
    QCOMPARE(static_cast<double>(raster.height), d.height());
  }

  void figureAndPdf() {
    QTemporaryDir dir;
    RgbImage image{32, 32, std::vector<uint8_t>(32 * 32 * 3, 90)};
    std::vector<float> map(64);
    for (size_t i = 0; i < map.size(); ++i) map[i] = static_cast<float>(i) / 63.0f;
    const std::string pdf = dir.filePath("f.pdf").toStdString();
    saveImage(image, pdf);  // needs no OpenCV: the image alone on a page
    std::ifstream in(pdf, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    QCOMPARE(bytes.substr(0, 5), std::string("%PDF-"));
    QVERIFY(bytes.find("/MediaBox [0 0 32 32]") != std::string::npos);
    if (!renderingAvailable()) return;  // a build without OpenCV renders no PNG
    OverlayStyle style;
    const auto fig = renderFigure(image, "what colour is the circle ?",
                                  {{"A", map, 8, 8}, {"B", map, 8, 8}}, "red", "blue", style);
    QCOMPARE(fig.width, 10 + 3 * (256 + 10));
    QCOMPARE(fig.rgb.size(), static_cast<size_t>(fig.width * fig.height * 3));
    const auto overlay = renderOverlay(image, map, 8, 8, style);
    // Jet maps 0 to blue and 1 to red: the top-left corner is bluish, the bottom-right reddish.
    const auto px = [&](int x, int y, int c) {
      return overlay.rgb[static_cast<size_t>((y * overlay.width + x) * 3 + c)];
    };
    QVERIFY(px(2, 2, 2) > px(2, 2, 0));
    QVERIFY(px(253, 253, 0) > px(253, 253, 2));
    saveImage(fig, dir.filePath("f.png").toStdString());
    QVERIFY(QFileInfo(dir.filePath("f.png")).size() > 1000);

    // Issue 10.9: the colour bar carries tick labels (1 at the top, .5, 0 at the bottom) on a white
    // strip beside the ramp; dark label pixels sit near each tick's height.
    style.colourBar = true;
    const auto barred = renderOverlay(image, map, 8, 8, style);
    QCOMPARE(barred.width, 256 + 12 + 30);
    const auto dark = [&](int yFrom, int yTo) {
      int n = 0;
      for (int y = std::max(0, yFrom); y < std::min(256, yTo); ++y)
        for (int x = 256 + 12 + 5; x < barred.width; ++x) {
          const size_t i = static_cast<size_t>((y * barred.width + x) * 3);
          n += barred.rgb[i] < 128 && barred.rgb[i + 1] < 128 && barred.rgb[i + 2] < 128;
        }
      return n;
    };
    QVERIFY(dark(0, 14) > 3);     // "1"
    QVERIFY(dark(120, 136) > 3);  // ".5"
    QVERIFY(dark(242, 256) > 3);  // "0"
    QCOMPARE(dark(40, 100), 0);   // nothing between the ticks
  }
};

QTEST_GUILESS_MAIN(TestAttribution)
#include "test_attribution.moc"
