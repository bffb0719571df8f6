// A rank that dies mid-run while the others wait on it; run under mpirun by
// tests/parallel/check_dead_rank.sh, which asserts the job ends quickly, non-zero,
// naming the lost rank.
//   dead_rank_main <mode> <victim world rank>
// modes: kill  - the victim SIGKILLs itself; rank 0 (or 1 if 0 is the victim) waits
//                in recv from it, the rest in an all-reduce over the world
//        throw - the victim throws parallama::Error out of the scope holding the
//                MpiContext, whose destructor must take the job down
//        exit  - the victim calls _exit(3) without MPI_Finalize
//        wait  - nobody dies by itself: all block (rank `victim` in the all-reduce);
//                for killing a rank from outside
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/check.h"
#include "parallel/mpi_communicator.h"

using namespace parallama;

namespace {

int run(int argc, char** argv) {
  MpiContext mpi(&argc, &argv);
  const std::string mode = argc > 1 ? argv[1] : "kill";
  const int victim = argc > 2 ? std::atoi(argv[2]) : 1;
  const int me = mpi.world_rank();
  auto world = make_world_communicator(mpi);
  world->barrier();  // everyone is up
  if (me == victim && mode != "wait") {
    std::fprintf(stderr, "dead_rank_main: rank %d (pid %d) dies now (%s)\n", me, getpid(),
                 mode.c_str());
    usleep(300 * 1000);  // let the others block first
    if (mode == "kill") raise(SIGKILL);
    if (mode == "throw") PL_THROW("rank " << me << " failed on purpose");
    if (mode == "exit") _exit(3);
    PL_THROW("unknown mode '" << mode << "'");
  }
  std::vector<float> buf(1024, 1.f);
  const int waiter = victim == 0 ? 1 : 0;
  if (me == waiter) {
    world->recv(buf.data(), buf.size() * sizeof(float), victim, 7);  // never sent
  } else {
    world->all_reduce_sum(buf.data(), buf.size());  // victim never joins
  }
  std::printf("rank %d: unexpectedly finished waiting\n", me);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "dead_rank_main: %s\n", e.what());
    return 1;
  }
}
