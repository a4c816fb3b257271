// `pivot train --nproc N`: starts N workers of this very command on this machine, as torchrun's
// standalone mode does: each gets torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT on a free loopback port) and its share of the cores
// (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS). Rank 0 prints progress; the others are quiet.
//
// Signals reach every worker (a first SIGINT stops the run with a checkpoint). When a worker dies,
// the launcher names it, gives the others the collective timeout to fail on their own, then
// terminates them.
#pragma once
#include <string>
#include <vector>

namespace pivot {
class ProcessGroup;
}

namespace pivot::cli {

// `args`: the command line without --nproc (args[0] is ignored: the workers run /proc/self/exe).
// Returns the exit code: 0 when every worker finished, 128 + signal when the run was stopped by
// one, else rank 0's failing code (1 when only another rank failed).
int launchWorkers(int nproc, const std::vector<std::string>& args);

// argv without "--nproc N" / "--nproc=N"; sets `nproc` (1 when absent).
std::vector<std::string> withoutNproc(int argc, char** argv, int& nproc);

// The process group of a worker that torchrun's environment started (created on first use, shared
// by every stage this process trains; NCCL when `cuda` and the build has it); null for a single
// process. Throws naming a malformed variable or a failed rendezvous.
ProcessGroup* workerGroup(bool cuda);

}  // namespace pivot::cli
