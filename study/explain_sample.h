// One sample explained under one checkpoint: the single implementation behind `pivot explain`,
// the window's Inspect tab and the report's gradient-map panels. It reads the sample as the
// checkpoint does (a ShapesWorld sample rendered at its image size, or a photo with a typed
// question and answer: a miniature's spelled its way, a real model's through its own tokenizer,
// chat template and image processor), computes the map and scores it when the sample names its
// target. Never prints.
#pragma once
#include <string>
#include <vector>

#include "data/shapes_world.h"
#include "visualization/attribution.h"

namespace pivot {

struct LoadedCheckpoint;
class ConversationBatcher;

// What to explain: a ShapesWorld sample, or a photo with a question and the answer to explain.
struct ExplainSubject {
  bool fromWorld = true;
  WorldConfig world;  // the sample's world (its image size is the checkpoint's)
  Split split = Split::Val;
  int64_t index = 0;
  std::string imageFile, question, answer;
};

// The sample as `m` reads it. Throws naming the file when the photo cannot be read, and when a
// real model is asked about a ShapesWorld sample (those are the miniature's).
Sample sampleFor(const LoadedCheckpoint& m, const ExplainSubject& subject);

struct SampleMap {
  std::vector<float> map;  // gridH x gridW in [0, 1]
  int gridH = 0, gridW = 0;
  bool scored = false;  // the sample names its target (a ShapesWorld question about an object)
  double massInside = 0;
  bool pointingHit = false;
  std::vector<std::string> warnings;  // e.g. every gradient zero
};

// The map of `sample` (from sampleFor) under `m`. A real model reads `imageFile` itself, through
// `batcher` when given (a caller explaining many photos keeps one), else a new one. The DPO target
// needs the sample's rejected answer (throws otherwise).
SampleMap explainSample(LoadedCheckpoint& m, const Sample& sample, const std::string& imageFile,
                        const AttributionOptions& options,
                        const ConversationBatcher* batcher = nullptr);

// One map per answer token (`pivot explain --per-token`): each token as the model's tokenizer
// writes it, its log-prob and the map of that log-prob (options' method and layer; its target is
// the token).
struct TokenSampleMaps {
  std::vector<std::string> tokens;
  std::vector<double> logProbs;
  std::vector<std::vector<float>> maps;  // each gridH x gridW in [0, 1]
  int gridH = 0, gridW = 0;
  std::vector<std::string> warnings;
};
TokenSampleMaps explainSampleTokens(LoadedCheckpoint& m, const Sample& sample,
                                    const std::string& imageFile, const AttributionOptions& options,
                                    const ConversationBatcher* batcher = nullptr);

}  // namespace pivot
