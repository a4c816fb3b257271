// A counterfactual edit read by a checkpoint (`pivot counterfactual`): the miniature's greedy
// answer, the log-prob of the original answer and the map, on the sample and on its edited twin
// (data/scene_edit.h). An edit that removes the asked-about object should change the answer; one
// that removes a distractor should not. Never prints.
#pragma once
#include <string>
#include <vector>

#include "data/scene_edit.h"
#include "study/explain_sample.h"

namespace pivot {

struct SampleReading {
  std::string answer;           // greedy, at most 8 tokens, special tokens dropped
  double referenceLogProb = 0;  // log p(the sample's original answer)
  SampleMap map;                // of the SFT target on the original answer
};

// The miniature's greedy answers to the samples' questions (at most 8 tokens each), in batches.
std::vector<std::string> greedyAnswers(Mllm& model, const std::vector<const Sample*>& samples);

// `m` must be a miniature (ShapesWorld) checkpoint.
SampleReading readSample(LoadedCheckpoint& m, const Sample& sample,
                         const AttributionOptions& options);

}  // namespace pivot
