// ShapesWorld: a seeded procedural world of scenes with masks, captions, questions and preference
// pairs. Every sample is a pure function of (world seed, split, index), computed with integer
// arithmetic only, so the same seed gives the same bytes on any machine.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pivot {

enum class Split { Train = 0, Val = 1, Test = 2 };
Split splitFromName(const std::string& name);  // train | val | test; throws naming the value
enum class Category { Colour = 0, Shape, Count, Position, Existence, Relation };
constexpr int kNumCategories = 6;
const char* categoryName(Category c);

// Which wrong answer becomes the "rejected" one of a preference pair.
enum class RejectedKind {
  InScene,  // a plausible hallucination: another object's attribute, near-miss count, opposite side
  Random    // any wrong answer of the right type
};

struct WorldConfig {
  uint64_t seed = 1234;  // world seed: same seed, same data
  int image_size = 32;   // square image side, pixels
  int min_objects = 1;   // objects per scene, inclusive range
  int max_objects = 3;
  int min_radius_pct = 14;  // object radius range, percent of image side
  int max_radius_pct = 24;
  int clutter = 2;  // small distractor specks per scene (background class)
  int noise = 8;    // uniform per-pixel noise amplitude, 0..255 scale
  RejectedKind rejected_kind = RejectedKind::InScene;
};

struct SceneObject {
  int shape = 0;   // index into ShapesWorld::shapes()
  int colour = 0;  // index into ShapesWorld::colours()
  int cx = 0, cy = 0, radius = 0;
  bool large = false;  // radius in the upper half of the configured range
};

struct Scene {
  int size = 0;
  std::vector<uint8_t> rgb;           // (H, W, 3) row-major
  std::vector<uint8_t> classMask;     // (H, W): 0 background, 1 + shape * numColours + colour
  std::vector<uint8_t> instanceMask;  // (H, W): 0 background, k + 1 for objects[k]
  std::vector<SceneObject> objects;
};

struct Sample {
  Scene scene;
  std::string caption;  // e.g. "a large red circle on the left , a small blue square on the right"
  Category category = Category::Colour;
  std::string question;      // e.g. "what colour is the circle ?"
  std::string answer;        // the correct ("chosen") answer, e.g. "red"
  std::string rejected;      // a wrong answer of the configured kind
  std::vector<int> targets;  // indices of the objects the question is about (for localisation)
};

class ShapesWorld {
 public:
  explicit ShapesWorld(WorldConfig config);

  // The sample at `index` of `split`; categories cycle so every split is balanced.
  Sample sample(Split split, int64_t index) const;
  const WorldConfig& config() const { return m_config; }

  static const std::vector<std::string>& shapes();   // circle, square, triangle, diamond
  static const std::vector<std::string>& colours();  // red, green, blue, yellow, purple, cyan
  static const std::vector<std::array<uint8_t, 3>>& palette();
  static int numClasses();                       // background + shapes x colours
  static std::vector<std::string> vocabulary();  // every word a sample can contain

 private:
  WorldConfig m_config;
};

// A small, fully specified PRNG (splitmix64), so data do not depend on the standard library.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : m_state(seed) {}
  uint64_t next();
  int uniform(int n);             // 0..n-1
  int range(int lo, int hiIncl);  // lo..hiIncl
 private:
  uint64_t m_state;
};

}  // namespace pivot
