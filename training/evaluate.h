// Held-out scoring of an MLLM on ShapesWorld questions: top-1 accuracy by question category, the
// chosen answer's mean log-prob and the pairwise accuracy (chosen vs rejected), side by side, so
// DPO's likelihood displacement shows.
#pragma once
#include <torch/torch.h>

#include "data/shapes_world.h"
#include "text/word_tokenizer.h"
#include "model/mllm.h"
#include "training/metric_sink.h"

namespace pivot {

// Keys: vqa/accuracy, vqa/accuracy/<category>, vqa/logps_chosen, vqa/pairwise_accuracy,
// vqa/samples. Every answer is one word, so top-1 is the argmax of the first response token.
Scalars evaluateVqa(Mllm& model, const ShapesWorld& world, const WordTokenizer& tok, Split split,
                    int numSamples, torch::Device device, int batchSize = 64, int64_t first = 0);

}  // namespace pivot
