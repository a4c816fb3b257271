#include "data/shapes_world.h"

#include "data/scene_edit.h"

#include <algorithm>
#include <stdexcept>

namespace pivot {
namespace {

const std::vector<std::string> kNumbers = {"zero", "one", "two",   "three", "four",
                                           "five", "six", "seven", "eight", "nine"};
constexpr uint8_t kBackground = 40;
constexpr int kSideMargin = 2;      // object centres keep this far from the vertical midline
constexpr int kRelationMargin = 3;  // "left of" / "above" need this much separation
constexpr int kMaxPlacementTries = 60;

uint64_t mix(uint64_t a, uint64_t b) {
  SplitMix64 r(a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2)));
  return r.next();
}

// Integer point-in-shape tests on pixel offsets from the object centre.
bool insideShape(int shape, int dx, int dy, int r) {
  const int ax = std::abs(dx), ay = std::abs(dy);
  switch (shape) {
    case 0:
      return dx * dx + dy * dy <= r * r;  // circle
    case 1:
      return ax * 5 <= r * 4 && ay * 5 <= r * 4;  // square
    case 2:
      return dy * 4 <= r * 3 && ax * 7 <= 4 * (dy + r);  // triangle, apex up
    default:
      return ax + ay <= r;  // diamond
  }
}

bool isLeft(const SceneObject& o, int size) { return o.cx * 2 < size; }

std::string name(const SceneObject& o) {
  return ShapesWorld::colours()[o.colour] + " " + ShapesWorld::shapes()[o.shape];
}

// The scene's objects: shapes, colours, places and sizes, drawn from `rng`.
std::vector<SceneObject> placeObjects(const WorldConfig& c, SplitMix64& rng) {
  const int S = c.image_size;
  const int minR = std::max(2, S * c.min_radius_pct / 100);
  const int maxR = std::max(minR, S * c.max_radius_pct / 100);
  const int numShapes = static_cast<int>(ShapesWorld::shapes().size());
  const int numColours = static_cast<int>(ShapesWorld::colours().size());
  Scene s;
  const int wanted = rng.range(c.min_objects, c.max_objects);
  for (int k = 0; k < wanted; ++k) {
    SceneObject o;
    bool unique = false;
    while (!unique) {  // each (shape, colour) at most once, so names refer to one object
      o.shape = rng.uniform(numShapes);
      o.colour = rng.uniform(numColours);
      unique = std::none_of(s.objects.begin(), s.objects.end(), [&](const SceneObject& p) {
        return p.shape == o.shape && p.colour == o.colour;
      });
    }
    bool placed = false;
    for (int t = 0; t < kMaxPlacementTries && !placed; ++t) {
      o.radius = rng.range(minR, maxR);
      o.cx = rng.range(o.radius, S - 1 - o.radius);
      o.cy = rng.range(o.radius, S - 1 - o.radius);
      if (std::abs(o.cx * 2 - S) < 2 * kSideMargin) continue;
      placed = std::all_of(s.objects.begin(), s.objects.end(), [&](const SceneObject& p) {
        const int dx = p.cx - o.cx, dy = p.cy - o.cy, gap = p.radius + o.radius + 1;
        return dx * dx + dy * dy > gap * gap;
      });
    }
    o.large = o.radius * 2 > minR + maxR;
    if (placed) s.objects.push_back(o);
  }
  return s.objects;
}

// The scene drawn: background, objects, clutter on background pixels only (its places and colours
// drawn from `rng`), then noise everywhere (from `rng` too).
Scene renderScene(const WorldConfig& c, std::vector<SceneObject> objects, SplitMix64& rng) {
  const int S = c.image_size;
  const int numColours = static_cast<int>(ShapesWorld::colours().size());
  Scene s;
  s.size = S;
  s.objects = std::move(objects);
  s.rgb.assign(static_cast<size_t>(S * S * 3), kBackground);
  s.classMask.assign(static_cast<size_t>(S * S), 0);
  s.instanceMask.assign(static_cast<size_t>(S * S), 0);
  for (size_t k = 0; k < s.objects.size(); ++k) {
    const auto& o = s.objects[k];
    const auto& rgb = ShapesWorld::palette()[static_cast<size_t>(o.colour)];
    for (int y = std::max(0, o.cy - o.radius); y <= std::min(S - 1, o.cy + o.radius); ++y)
      for (int x = std::max(0, o.cx - o.radius); x <= std::min(S - 1, o.cx + o.radius); ++x) {
        if (!insideShape(o.shape, x - o.cx, y - o.cy, o.radius)) continue;
        const size_t p = static_cast<size_t>(y * S + x);
        for (int ch = 0; ch < 3; ++ch) s.rgb[p * 3 + ch] = rgb[static_cast<size_t>(ch)];
        s.classMask[p] = static_cast<uint8_t>(1 + o.shape * numColours + o.colour);
        s.instanceMask[p] = static_cast<uint8_t>(k + 1);
      }
  }
  for (int k = 0; k < c.clutter; ++k) {
    const int x0 = rng.uniform(S - 1), y0 = rng.uniform(S - 1), side = rng.range(1, 2);
    const auto& rgb = ShapesWorld::palette()[static_cast<size_t>(rng.uniform(numColours))];
    for (int y = y0; y < std::min(S, y0 + side); ++y)
      for (int x = x0; x < std::min(S, x0 + side); ++x) {
        const size_t p = static_cast<size_t>(y * S + x);
        if (s.instanceMask[p] != 0) continue;
        for (int ch = 0; ch < 3; ++ch)
          s.rgb[p * 3 + ch] = static_cast<uint8_t>(rgb[static_cast<size_t>(ch)] / 2);
      }
  }
  if (c.noise > 0)
    for (auto& v : s.rgb)
      v = static_cast<uint8_t>(std::clamp(v + rng.range(-c.noise, c.noise), 0, 255));
  return s;
}

Scene makeScene(const WorldConfig& c, SplitMix64& rng) {
  auto objects = placeObjects(c, rng);
  return renderScene(c, std::move(objects), rng);
}

std::string caption(const Scene& s) {
  std::vector<SceneObject> sorted = s.objects;
  std::sort(sorted.begin(), sorted.end(),
            [](const SceneObject& a, const SceneObject& b) { return a.cx < b.cx; });
  std::string out;
  for (const auto& o : sorted) {
    if (!out.empty()) out += " , ";
    out += std::string("a ") + (o.large ? "large " : "small ") + name(o) + " on the " +
           (isLeft(o, s.size) ? "left" : "right");
  }
  return out.empty() ? "an empty image" : out;
}

// Picks a wrong answer: from `inScene` (plausible hallucinations) when the kind asks for it and
// there is one, else uniformly from `all` minus the right answer.
std::string wrongAnswer(const std::string& right, std::vector<std::string> inScene,
                        const std::vector<std::string>& all, RejectedKind kind, SplitMix64& rng) {
  inScene.erase(std::remove(inScene.begin(), inScene.end(), right), inScene.end());
  if (kind == RejectedKind::InScene && !inScene.empty())
    return inScene[static_cast<size_t>(rng.uniform(static_cast<int>(inScene.size())))];
  std::vector<std::string> pool;
  for (const auto& a : all)
    if (a != right) pool.push_back(a);
  return pool[static_cast<size_t>(rng.uniform(static_cast<int>(pool.size())))];
}

// Fills the question fields of `out` for `category`; false when this scene cannot pose it.
bool makeQuestion(Category category, const WorldConfig& c, SplitMix64& rng, Sample& out) {
  const auto& objs = out.scene.objects;
  const int n = static_cast<int>(objs.size());
  const auto& shapeNames = ShapesWorld::shapes();
  const auto& colourNames = ShapesWorld::colours();
  auto countIf = [&](auto pred) {
    return static_cast<int>(std::count_if(objs.begin(), objs.end(), pred));
  };
  auto pickWhere = [&](auto pred) {
    std::vector<int> idx;
    for (int k = 0; k < n; ++k)
      if (pred(objs[static_cast<size_t>(k)])) idx.push_back(k);
    return idx.empty() ? -1 : idx[static_cast<size_t>(rng.uniform(static_cast<int>(idx.size())))];
  };
  out.category = category;
  switch (category) {
    case Category::Colour: {
      const int t = pickWhere([&](const SceneObject& o) {
        return countIf([&](const SceneObject& p) { return p.shape == o.shape; }) == 1;
      });
      if (t < 0) return false;
      const auto& o = objs[static_cast<size_t>(t)];
      out.question = "what colour is the " + shapeNames[o.shape] + " ?";
      out.answer = colourNames[o.colour];
      std::vector<std::string> others;
      for (const auto& p : objs) others.push_back(colourNames[p.colour]);
      out.rejected = wrongAnswer(out.answer, others, colourNames, c.rejected_kind, rng);
      out.targets = {t};
      return true;
    }
    case Category::Shape: {
      const int t = pickWhere([&](const SceneObject& o) {
        return countIf([&](const SceneObject& p) { return p.colour == o.colour; }) == 1;
      });
      if (t < 0) return false;
      const auto& o = objs[static_cast<size_t>(t)];
      out.question = "what shape is the " + colourNames[o.colour] + " object ?";
      out.answer = shapeNames[o.shape];
      std::vector<std::string> others;
      for (const auto& p : objs) others.push_back(shapeNames[p.shape]);
      out.rejected = wrongAnswer(out.answer, others, shapeNames, c.rejected_kind, rng);
      out.targets = {t};
      return true;
    }
    case Category::Count: {
      int count = n;
      out.targets.clear();
      if (rng.uniform(3) == 0) {
        out.question = "how many objects are there ?";
        for (int k = 0; k < n; ++k) out.targets.push_back(k);
      } else {
        const int colour = rng.uniform(2) == 0 && n > 0
                               ? objs[static_cast<size_t>(rng.uniform(n))].colour
                               : rng.uniform(static_cast<int>(colourNames.size()));
        out.question = "how many " + colourNames[colour] + " objects are there ?";
        count = 0;
        for (int k = 0; k < n; ++k)
          if (objs[static_cast<size_t>(k)].colour == colour) {
            ++count;
            out.targets.push_back(k);
          }
      }
      const int maxCount = std::min<int>(static_cast<int>(kNumbers.size()) - 1, c.max_objects);
      std::vector<std::string> all(kNumbers.begin(), kNumbers.begin() + maxCount + 1);
      std::vector<std::string> nearMiss = {kNumbers[static_cast<size_t>(count + 1)]};
      if (count > 0) nearMiss.push_back(kNumbers[static_cast<size_t>(count - 1)]);
      out.answer = kNumbers[static_cast<size_t>(count)];
      out.rejected = wrongAnswer(out.answer, nearMiss, all, c.rejected_kind, rng);
      return true;
    }
    case Category::Position: {
      if (n == 0) return false;
      const int t = rng.uniform(n);
      const auto& o = objs[static_cast<size_t>(t)];
      out.question = "is the " + name(o) + " on the left or the right ?";
      out.answer = isLeft(o, out.scene.size) ? "left" : "right";
      out.rejected = isLeft(o, out.scene.size) ? "right" : "left";
      out.targets = {t};
      return true;
    }
    case Category::Existence: {
      if (n == 0) return false;
      const auto& anchor = objs[static_cast<size_t>(rng.uniform(n))];
      if (rng.uniform(2) == 0) {
        out.question = "is there a " + name(anchor) + " ?";
        out.answer = "yes";
        out.targets = {static_cast<int>(&anchor - objs.data())};
      } else {  // a near-miss object: shares the colour or the shape of one that is present
        SceneObject ghost = anchor;
        for (int t = 0; t < 20; ++t) {
          if (rng.uniform(2) == 0)
            ghost.shape = rng.uniform(static_cast<int>(shapeNames.size()));
          else
            ghost.colour = rng.uniform(static_cast<int>(colourNames.size()));
          if (countIf([&](const SceneObject& p) {
                return p.shape == ghost.shape && p.colour == ghost.colour;
              }) == 0)
            break;
        }
        if (countIf([&](const SceneObject& p) {
              return p.shape == ghost.shape && p.colour == ghost.colour;
            }) != 0)
          return false;
        out.question = "is there a " + name(ghost) + " ?";
        out.answer = "no";
        out.targets = {};
      }
      out.rejected = out.answer == "yes" ? "no" : "yes";
      return true;
    }
    case Category::Relation: {
      const bool horizontal = rng.uniform(2) == 0;
      std::vector<std::pair<int, int>> pairs;
      for (int a = 0; a < n; ++a)
        for (int b = 0; b < n; ++b) {
          if (a == b) continue;
          const auto &oa = objs[static_cast<size_t>(a)], &ob = objs[static_cast<size_t>(b)];
          const int gap = horizontal ? std::abs(oa.cx - ob.cx) : std::abs(oa.cy - ob.cy);
          if (gap >= kRelationMargin) pairs.emplace_back(a, b);
        }
      if (pairs.empty()) return false;
      const auto [a, b] = pairs[static_cast<size_t>(rng.uniform(static_cast<int>(pairs.size())))];
      const auto &oa = objs[static_cast<size_t>(a)], &ob = objs[static_cast<size_t>(b)];
      const bool holds = horizontal ? oa.cx < ob.cx : oa.cy < ob.cy;
      out.question =
          "is the " + name(oa) + (horizontal ? " left of the " : " above the ") + name(ob) + " ?";
      out.answer = holds ? "yes" : "no";
      out.rejected = holds ? "no" : "yes";
      out.targets = {a, b};
      return true;
    }
  }
  return false;
}

}  // namespace

Split splitFromName(const std::string& name) {
  if (name == "train") return Split::Train;
  if (name == "val") return Split::Val;
  if (name == "test") return Split::Test;
  throw std::runtime_error("unknown split '" + name + "' (expected train, val or test)");
}

const char* categoryName(Category c) {
  static const char* names[] = {"colour", "shape", "count", "position", "existence", "relation"};
  return names[static_cast<int>(c)];
}

uint64_t SplitMix64::next() {
  uint64_t z = (m_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int SplitMix64::uniform(int n) {
  if (n <= 0) throw std::logic_error("SplitMix64::uniform: n must be positive");
  return static_cast<int>((next() >> 11) % static_cast<uint64_t>(n));
}

int SplitMix64::range(int lo, int hiIncl) { return lo + uniform(hiIncl - lo + 1); }

ShapesWorld::ShapesWorld(WorldConfig config) : m_config(config) {
  if (config.image_size < 8) throw std::runtime_error("world.image_size must be at least 8");
  if (config.min_objects < 1 || config.max_objects < config.min_objects || config.max_objects > 6)
    throw std::runtime_error("world.min_objects/max_objects must satisfy 1 <= min <= max <= 6");
  if (config.min_radius_pct < 1 || config.max_radius_pct < config.min_radius_pct)
    throw std::runtime_error("world.min_radius_pct/max_radius_pct must satisfy 1 <= min <= max");
  if (config.noise < 0 || config.noise > 128)
    throw std::runtime_error("world.noise must be in 0..128");
  if (config.clutter < 0) throw std::runtime_error("world.clutter must be >= 0");
}

namespace {

// The sample and the generator as it stood before its scene was drawn (what an edit redraws from).
std::pair<Sample, SplitMix64> sampleWithDraws(const WorldConfig& c, Split split, int64_t index) {
  Sample s;
  const auto category = static_cast<Category>(index % kNumCategories);
  const uint64_t base =
      mix(mix(c.seed, static_cast<uint64_t>(split) + 1), static_cast<uint64_t>(index));
  for (uint64_t attempt = 0;; ++attempt) {
    SplitMix64 rng(mix(base, attempt));
    const SplitMix64 before = rng;
    s.scene = makeScene(c, rng);
    if (s.scene.objects.empty()) continue;
    if (makeQuestion(category, c, rng, s)) {
      s.caption = caption(s.scene);
      return {s, before};
    }
  }
}

}  // namespace

Sample ShapesWorld::sample(Split split, int64_t index) const {
  return sampleWithDraws(m_config, split, index).first;
}

Sample editedSample(const ShapesWorld& world, Split split, int64_t index, const SceneEdit& edit) {
  auto [sample, draws] = sampleWithDraws(world.config(), split, index);
  auto objects = placeObjects(world.config(), draws);  // the same objects, and the same draws after
  const int n = static_cast<int>(objects.size());
  if (edit.object < 0 || edit.object >= n)
    throw std::runtime_error("object " + std::to_string(edit.object) +
                             " is not in the scene (it has " + std::to_string(n) + ": 0.." +
                             std::to_string(n - 1) + ")");
  const int S = world.config().image_size;
  auto& o = objects[static_cast<size_t>(edit.object)];
  switch (edit.kind) {
    case SceneEdit::Kind::Remove:
      objects.erase(objects.begin() + edit.object);
      break;
    case SceneEdit::Kind::Move:
      o.cx = std::clamp(o.cx + edit.dx, o.radius, S - 1 - o.radius);
      o.cy = std::clamp(o.cy + edit.dy, o.radius, S - 1 - o.radius);
      break;
    case SceneEdit::Kind::Recolour:
      if (edit.colour < 0 || edit.colour >= static_cast<int>(ShapesWorld::colours().size()))
        throw std::runtime_error("colour " + std::to_string(edit.colour) + " is not one of the " +
                                 std::to_string(ShapesWorld::colours().size()));
      o.colour = edit.colour;
      break;
  }
  sample.scene = renderScene(world.config(), std::move(objects), draws);
  // The question and answers stay the original's; the targets follow their objects.
  std::vector<int> targets;
  for (int t : sample.targets) {
    if (edit.kind == SceneEdit::Kind::Remove && t == edit.object) continue;
    targets.push_back(edit.kind == SceneEdit::Kind::Remove && t > edit.object ? t - 1 : t);
  }
  sample.targets = targets;
  sample.caption = caption(sample.scene);
  return sample;
}

const std::vector<std::string>& ShapesWorld::shapes() {
  static const std::vector<std::string> v = {"circle", "square", "triangle", "diamond"};
  return v;
}
const std::vector<std::string>& ShapesWorld::colours() {
  static const std::vector<std::string> v = {"red", "green", "blue", "yellow", "purple", "cyan"};
  return v;
}
const std::vector<std::array<uint8_t, 3>>& ShapesWorld::palette() {
  static const std::vector<std::array<uint8_t, 3>> v = {
      {220, 50, 40}, {50, 180, 60}, {50, 90, 230}, {235, 215, 50}, {160, 60, 200}, {60, 210, 220}};
  return v;
}
int ShapesWorld::numClasses() { return 1 + static_cast<int>(shapes().size() * colours().size()); }

std::vector<std::string> ShapesWorld::vocabulary() {
  std::vector<std::string> v = {
      "user",   "assistant", "a",     "an",      "empty",    "small",  "large", "on",
      "the",    "left",      "right", ",",       "what",     "colour", "is",    "shape",
      "object", "how",       "many",  "objects", "are",      "there",  "?",     "or",
      "yes",    "no",        "of",    "above",   "describe", "image",  "."};
  for (const auto& w : kNumbers) v.push_back(w);
  for (const auto& w : colours()) v.push_back(w);
  for (const auto& w : shapes()) v.push_back(w);
  return v;
}

}  // namespace pivot
