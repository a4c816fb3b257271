#include "training/distributed.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef PIVOT_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef PIVOT_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace pivot {
namespace {

// A whole-string integer in [lo, hi] from variable `name`; throws naming it.
int intVariable(const char* name, const char* text, int lo, int hi) {
  try {
    size_t used = 0;
    const long v = std::stol(text, &used);
    if (used == std::string(text).size() && v >= lo && v <= hi) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  throw std::runtime_error(std::string("environment variable ") + name + "='" + text +
                           "' is not an integer in " + std::to_string(lo) + ".." +
                           std::to_string(hi));
}

std::string firstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

// Runs one collective or store call; a failure becomes PeerLost naming the ranks behind.
template <typename F>
auto guarded(ProcessGroup& group, F&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const PeerLost&) {
    throw;
  } catch (const c10::Error& e) {
    throw PeerLost(group.describeFailure(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw PeerLost(group.describeFailure(e.what()));
  }
}

}  // namespace

DistributedEnv distributedEnvFromEnvironment(
    const std::function<const char*(const char*)>& getenvFn) {
  const auto get = [&](const char* name) -> const char* {
    const char* v = getenvFn ? getenvFn(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  };
  DistributedEnv env;
  if (get("PIVOT_DIST_TIMEOUT_S"))
    env.timeout = std::chrono::seconds(
        intVariable("PIVOT_DIST_TIMEOUT_S", get("PIVOT_DIST_TIMEOUT_S"), 1, 24 * 3600));
  const char* world = get("WORLD_SIZE");
  if (!world) return env;
  env.worldSize = intVariable("WORLD_SIZE", world, 1, 4096);
  if (env.worldSize == 1) return env;
  const char* rank = get("RANK");
  if (!rank)
    throw std::runtime_error("WORLD_SIZE=" + std::to_string(env.worldSize) +
                             " but RANK is not set (torchrun sets both)");
  env.rank = intVariable("RANK", rank, 0, env.worldSize - 1);
  env.localWorldSize =
      get("LOCAL_WORLD_SIZE")
          ? intVariable("LOCAL_WORLD_SIZE", get("LOCAL_WORLD_SIZE"), 1, env.worldSize)
          : env.worldSize;
  env.localRank = get("LOCAL_RANK")
                      ? intVariable("LOCAL_RANK", get("LOCAL_RANK"), 0, env.localWorldSize - 1)
                      : env.rank % env.localWorldSize;
  if (get("MASTER_ADDR")) env.masterAddr = get("MASTER_ADDR");
  if (get("MASTER_PORT")) env.masterPort = intVariable("MASTER_PORT", get("MASTER_PORT"), 1, 65535);
  return env;
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  // Where small host values travel: NCCL reduces CUDA tensors only.
  torch::Device scalarDevice = torch::kCPU;
  std::function<c10::intrusive_ptr<c10d::Work>(std::vector<at::Tensor>&)> allreduce;
  std::function<c10::intrusive_ptr<c10d::Work>(std::vector<at::Tensor>&, int)> broadcast;
  std::function<c10::intrusive_ptr<c10d::Work>()> barrier;
  std::function<c10::intrusive_ptr<c10d::Work>(std::vector<std::vector<at::Tensor>>&,
                                               std::vector<at::Tensor>&)>
      allgather;

  // Binds the collectives of a concrete c10d process group (its base class differs between
  // LibTorch versions, the calls do not).
  template <typename Group>
  void bind(c10::intrusive_ptr<Group> group) {
    allreduce = [group](std::vector<at::Tensor>& t) { return group->allreduce(t); };
    broadcast = [group](std::vector<at::Tensor>& t, int root) {
      c10d::BroadcastOptions o;
      o.rootRank = root;
      return group->broadcast(t, o);
    };
    barrier = [group]() { return group->barrier(); };
    allgather = [group](std::vector<std::vector<at::Tensor>>& out, std::vector<at::Tensor>& in) {
      return group->allgather(out, in);
    };
  }
};

ProcessGroup::ProcessGroup(const DistributedEnv& env, bool cuda)
    : m_env(env), m_impl(std::make_unique<Impl>()) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(env.masterPort);
  options.isServer = env.leader();
  options.numWorkers = static_cast<std::size_t>(env.worldSize);
  options.waitWorkers = true;
  options.timeout = env.timeout;
  const std::string where = env.masterAddr + ":" + std::to_string(env.masterPort);
  try {
    m_impl->store = c10::make_intrusive<c10d::TCPStore>(env.masterAddr, options);
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(env.rank) + " of " +
                             std::to_string(env.worldSize) + ": no rendezvous at " + where +
                             " within " + std::to_string(env.timeout.count() / 1000) +
                             " s: " + firstLine(e.what()));
  }
#ifdef PIVOT_HAVE_NCCL
  if (cuda) {
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = env.timeout;
    m_impl->bind(
        c10::make_intrusive<c10d::ProcessGroupNCCL>(m_impl->store, env.rank, env.worldSize, opts));
    m_backend = "nccl";
    m_impl->scalarDevice =
        torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.localRank));
    return;
  }
#endif
  (void)cuda;
#ifdef PIVOT_HAVE_GLOO
  auto opts = c10d::ProcessGroupGloo::Options::create();
  // The interface that reaches MASTER_ADDR: loopback for one machine, the cluster's network else.
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(
      env.masterAddr == "localhost" ? "127.0.0.1" : env.masterAddr));
  opts->timeout = env.timeout;
  opts->threads = 1;  // the cores belong to the model's arithmetic
  m_impl->bind(
      c10::make_intrusive<c10d::ProcessGroupGloo>(m_impl->store, env.rank, env.worldSize, opts));
  m_backend = "gloo";
#else
  throw std::runtime_error(
      "this build has no torch.distributed backend for data-parallel training (Gloo's headers, "
      "libgloo-dev, were missing when it was configured)");
#endif
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::allReduceSum(std::vector<at::Tensor>& tensors) {
  guarded(*this, [&] { return m_impl->allreduce(tensors)->wait(); });
}

std::vector<double> ProcessGroup::allReduceSum(const std::vector<double>& values) {
  std::vector<at::Tensor> t{torch::tensor(values, torch::kFloat64).to(m_impl->scalarDevice)};
  allReduceSum(t);
  const auto host = t[0].cpu();
  const auto a = host.accessor<double, 1>();
  std::vector<double> out(values.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = a[static_cast<int64_t>(i)];
  return out;
}

void ProcessGroup::broadcast(std::vector<at::Tensor>& tensors, int root) {
  guarded(*this, [&] { return m_impl->broadcast(tensors, root)->wait(); });
}

at::Tensor ProcessGroup::allGather(const at::Tensor& tensor) {
  std::vector<at::Tensor> in{tensor.contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < size(); ++r) out[0].push_back(torch::empty_like(in[0]));
  guarded(*this, [&] { return m_impl->allgather(out, in)->wait(); });
  return torch::cat(out[0]);
}

void ProcessGroup::barrier() {
  guarded(*this, [&] { return m_impl->barrier()->wait(); });
}

std::string ProcessGroup::shareFromLeader(const std::string& text,
                                          std::chrono::milliseconds patience) {
  const std::string key = "share/" + std::to_string(m_sequence++);
  if (leader()) {
    guarded(*this,
            [&] { m_impl->store->set(key, std::vector<uint8_t>(text.begin(), text.end())); });
    return text;
  }
  const auto bytes = guarded(*this, [&] {
    if (patience.count() > 0) m_impl->store->wait({key}, patience);
    return m_impl->store->get(key);
  });
  return std::string(bytes.begin(), bytes.end());
}

std::vector<std::string> ProcessGroup::gatherToLeader(const std::string& text) {
  const std::string prefix = "gather/" + std::to_string(m_sequence++) + "/";
  if (!leader()) {
    guarded(*this, [&] {
      m_impl->store->set(prefix + std::to_string(rank()),
                         std::vector<uint8_t>(text.begin(), text.end()));
    });
    return {};
  }
  std::vector<std::string> all{text};
  for (int r = 1; r < size(); ++r) {
    const std::string key = prefix + std::to_string(r);
    const auto bytes = guarded(*this, [&] {
      auto b = m_impl->store->get(key);
      m_impl->store->deleteKey(key);
      return b;
    });
    all.emplace_back(bytes.begin(), bytes.end());
  }
  return all;
}

void ProcessGroup::markProgress(int64_t step) {
  const std::string s = std::to_string(step);
  guarded(*this, [&] {
    m_impl->store->set("progress/" + std::to_string(rank()),
                       std::vector<uint8_t>(s.begin(), s.end()));
  });
}

std::string ProcessGroup::describeFailure(const std::string& error) {
  // Every survivor of a lost peer ends up here; each says so in the store and waits a few seconds
  // for the others. Ranks that never say so died or hang.
  std::ostringstream why;
  why << "data-parallel training lost a peer: ";
  try {
    auto& store = *m_impl->store;
    const std::string me = std::to_string(rank());
    store.set("failed/" + me, std::vector<uint8_t>{1});
    const auto waitFor =
        std::min<std::chrono::milliseconds>(std::chrono::seconds(5), m_env.timeout);
    const auto until = std::chrono::steady_clock::now() + waitFor;
    std::vector<int> silent;
    while (true) {
      silent.clear();
      for (int r = 0; r < size(); ++r)
        if (!store.check({"failed/" + std::to_string(r)})) silent.push_back(r);
      if (silent.empty() || std::chrono::steady_clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const auto lastStep = [&](int r) -> std::string {
      const std::string key = "progress/" + std::to_string(r);
      if (!store.check({key})) return "before its first step";
      const auto bytes = store.get(key);
      return "last seen at step " +
             std::to_string(std::stoll(std::string(bytes.begin(), bytes.end())) + 1);
    };
    if (silent.empty()) {
      why << "every rank is still answering (rank " << rank() << " " << lastStep(rank()) << ")";
    } else {
      for (size_t i = 0; i < silent.size(); ++i)
        why << (i ? ", " : "") << "rank " << silent[i] << " (" << lastStep(silent[i]) << ")";
      why << (silent.size() == 1 ? " died or hangs" : " died or hang");
    }
  } catch (const std::exception&) {
    why << "rank 0, which hosts the rendezvous store, is gone";
  }
  why << " [" << m_backend << ": " << firstLine(error) << "]";
  return why.str();
}

void allReduceGradients(ProcessGroup& group, const std::vector<at::Tensor>& parameters,
                        int64_t bucketBytes) {
  torch::NoGradGuard noGrad;
  std::vector<at::Tensor> grads;
  for (const auto& p : parameters) {
    auto& g = p.mutable_grad();
    if (!g.defined()) g = torch::zeros_like(p);  // the same buckets on every rank
    grads.push_back(g);
  }
  // Buckets of same-dtype, same-device gradients: one flat buffer each, one all-reduce each.
  for (size_t begin = 0; begin < grads.size();) {
    size_t end = begin;
    int64_t bytes = 0;
    while (end < grads.size() && (end == begin || bytes < bucketBytes) &&
           grads[end].scalar_type() == grads[begin].scalar_type() &&
           grads[end].device() == grads[begin].device()) {
      bytes += grads[end].numel() * static_cast<int64_t>(grads[end].element_size());
      ++end;
    }
    std::vector<at::Tensor> pieces;
    for (size_t i = begin; i < end; ++i) pieces.push_back(grads[i].reshape({-1}));
    std::vector<at::Tensor> flat{torch::cat(pieces)};
    group.allReduceSum(flat);
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      const int64_t n = grads[i].numel();
      grads[i].copy_(flat[0].narrow(0, offset, n).view_as(grads[i]));
      offset += n;
    }
    begin = end;
  }
}

std::vector<int64_t> rankSlice(const std::vector<int64_t>& global, int rank, int worldSize) {
  const auto n = static_cast<int64_t>(global.size());
  if (worldSize < 1 || n % worldSize != 0)
    throw std::runtime_error("a global batch of " + std::to_string(n) +
                             " does not split evenly over " + std::to_string(worldSize) +
                             " processes");
  const int64_t per = n / worldSize;
  return std::vector<int64_t>(global.begin() + rank * per, global.begin() + (rank + 1) * per);
}

}  // namespace pivot
