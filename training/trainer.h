// Runs one training stage (pretrain, align, instruct, SFT, DPO, GRPO, MPO) as a run in the
// workspace's run store: one readable loop, checkpoints, resume, a NaN guard, held-out scoring,
// on one process or data-parallel over several (training/distributed.h).
#pragma once
#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "config/train_config.h"
#include "data/image_processor.h"
#include "store/workspace.h"  // storePath, runDirectory: most callers of train() need them
#include "training/metric_sink.h"

namespace at {
class Tensor;
}

namespace pivot {

class ProcessGroup;

struct TrainOptions {
  std::string workspace;  // folder holding runs.sqlite and checkpoints/
  std::optional<int64_t>
      parentRunId;  // start from this run's last checkpoint (DPO: also the reference)
  std::optional<int64_t> parentStep;  // that run's checkpoint at this step instead of its last
  std::optional<int64_t>
      resumeRunId;             // continue this stopped or crashed run from its last checkpoint
  std::string runName;         // empty: "<stage>-<id>"
  MetricSink* sink = nullptr;  // progress display, GUI buffer; the run store always gets metrics
  const std::atomic<bool>* stopRequested =
      nullptr;  // polled once per step; stops with a checkpoint
  const std::atomic<bool>* pauseRequested = nullptr;  // polled once per step; waits while set
  std::function<void(int64_t step, at::Tensor& loss)> lossHook;  // tests inject faults here
  // Decodes an image file for runs on a real model and dataset (visualization's readRgb8); the
  // front end passes it so that training needs no image library.
  std::function<Rgb8(const std::string& path)> decodeImage;
  // Data-parallel training (training/distributed.h): every rank calls train() with the same
  // arguments; rank 0 writes the run store and checkpoints, the others only compute. Null: one
  // process.
  ProcessGroup* group = nullptr;
  // CPU threads for this call, over the config's `threads` (a resumed run's stored config too);
  // 0: the config's. The study sets it when it trains stages side by side.
  int threads = 0;
  // A resumed run skips bad records from here on (config key skip_bad): a run stopped by an image
  // that does not decode continues past it; what it trained on before is unchanged.
  bool skipBad = false;
};

struct TrainResult {
  int64_t runId = 0;
  RunStatus status = RunStatus::Created;  // Finished, Stopped or Failed once train() returns
  int64_t step = 0;                       // optimiser steps done
  std::string checkpoint;                 // last checkpoint folder written (empty if none)
  std::string message;
  Scalars evaluation;  // held-out VQA scores at the end (finished runs)
};

// Throws std::runtime_error for bad configuration or inputs, a run that another process trains, or
// a parent without a checkpoint (nothing is written then). Once the run exists, whatever goes wrong
// (a non-finite value, a full disk) returns status "failed" with the reason, recorded in the store.
TrainResult train(const TrainConfig& config, const TrainOptions& options);

// Before a chain runs: the encoder vision_init names exists (a model folder, or RUN[@STEP] of the
// workspace); throws "vision_init: ..." naming what is missing. Empty: nothing to check.
void checkVisionInit(const std::string& workspace, const std::string& visionInit);

}  // namespace pivot
