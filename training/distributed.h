// Data-parallel training on torch.distributed's c10d layer: a TCPStore rendezvous, Gloo on CPU,
// NCCL on CUDA when the LibTorch has it.
//
// A worker learns its place from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so `pivot train --nproc N` (app/cli/launch.cpp),
// torchrun-style launchers and cluster schedulers start the same workers. Rank 0 hosts the store.
//
// What the trainer does with it (trainer.cpp): every rank takes its slice of the single-process
// run's global batch; each rank's gradient is weighted by its share of the loss's units (labelled
// tokens for SFT, pairs for DPO) and summed across ranks in buckets, so 2 ranks x B/2 take the
// step 1 process x B takes; the optimiser then steps identically everywhere. Rank 0 alone writes
// the run store and checkpoints.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace pivot {

struct DistributedEnv {
  int rank = 0;
  int worldSize = 1;
  int localRank = 0;
  int localWorldSize = 1;  // processes on this machine: they share its cores
  std::string masterAddr = "127.0.0.1";
  int masterPort = 29500;
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};  // a silent peer is dead after this

  bool active() const { return worldSize > 1; }
  bool leader() const { return rank == 0; }
};

// torchrun's variables (and PIVOT_DIST_TIMEOUT_S); without WORLD_SIZE a single process. Throws
// naming the variable that is malformed or inconsistent.
DistributedEnv distributedEnvFromEnvironment(
    const std::function<const char*(const char*)>& getenv = nullptr);

// A collective that failed because a peer died, hung past the timeout or vanished; the message
// names the ranks that fell behind.
struct PeerLost : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One process group for the life of a worker process (successive stages of a chain reuse it).
// Every call is collective: every rank makes the same calls in the same order. A peer that died or
// hangs makes a call throw within the timeout; the message names the ranks that fell behind.
class ProcessGroup {
 public:
  ProcessGroup(const DistributedEnv& env, bool cuda);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  const DistributedEnv& env() const { return m_env; }
  int rank() const { return m_env.rank; }
  int size() const { return m_env.worldSize; }
  bool leader() const { return m_env.rank == 0; }
  const std::string& backend() const { return m_backend; }

  // In place, summed over ranks. Gradients go through bucketed flat buffers of about bucketBytes.
  void allReduceSum(std::vector<at::Tensor>& tensors);
  std::vector<double> allReduceSum(const std::vector<double>& values);
  void broadcast(std::vector<at::Tensor>& tensors, int root = 0);
  // Every rank's `tensor` (the same shape everywhere) concatenated along dim 0 in rank order.
  at::Tensor allGather(const at::Tensor& tensor);
  void barrier();
  // Rank 0's value of `text` on every rank (run ids, checkpoint folders). The others wait up to
  // `patience` (0: the timeout) for it: rank 0 may still be evaluating the previous stage.
  std::string shareFromLeader(const std::string& text,
                              std::chrono::milliseconds patience = std::chrono::milliseconds(0));
  // Every rank's `text`, in rank order, on rank 0 only (others get an empty list).
  std::vector<std::string> gatherToLeader(const std::string& text);

  // Records how far this rank got (read by describeFailure on the others).
  void markProgress(int64_t step);
  // Why a collective failed, naming the ranks that fell behind or vanished.
  std::string describeFailure(const std::string& error);

 private:
  struct Impl;
  DistributedEnv m_env;
  std::string m_backend;
  std::unique_ptr<Impl> m_impl;
  int64_t m_sequence = 0;  // keys of shareFromLeader / gatherToLeader, the same on every rank
};

// Sums the gradients of `parameters` over ranks in buckets of about `bucketBytes` (a parameter
// without a gradient counts as zeros, so every rank sends the same buckets).
void allReduceGradients(ProcessGroup& group, const std::vector<at::Tensor>& parameters,
                        int64_t bucketBytes = 25 << 20);

// The slice of a global batch that `rank` of `worldSize` trains on: contiguous, equal sizes.
std::vector<int64_t> rankSlice(const std::vector<int64_t>& global, int rank, int worldSize);

}  // namespace pivot
