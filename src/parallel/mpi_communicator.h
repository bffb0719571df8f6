// MPI backend of Communicator, plus the MPI start/stop RAII. The interface has no
// MPI types so only mpi_communicator.cpp includes mpi.h.
//
// Usage (each rank):
//   MpiContext mpi(&argc, &argv);
//   auto cfg = WorldConfig::create(tp, pp, mpi.world_rank(), mpi.world_size(), ...);
//   ParallelComms comms = make_parallel_comms(mpi, cfg);
//   comms.tp->all_reduce_sum(x, n);                         // inside a stage
//   comms.pipe->send(act, bytes, cfg.next_stage_rank(), tag); // to the next stage
// Destroy communicators before the MpiContext (they free their MPI_Comm).
//
// Failure: if one rank dies, Open MPI's mpirun kills the whole job and names the
// lost rank (see tests/parallel/dead_rank_main.cpp). If a rank fails with an
// exception while others may be waiting on it, call MpiContext::abort() (the
// destructor does so itself when it runs during stack unwinding), never a plain
// return: MPI_Finalize would wait for peers that wait for us.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/world_config.h"

namespace parallama {

class MpiContext {
 public:
  // MPI_Init_thread(MPI_THREAD_FUNNELED): only the main thread calls MPI. argc/argv
  // may be null. If MPI is already initialised this context does not own it.
  MpiContext(int* argc = nullptr, char*** argv = nullptr);
  ~MpiContext();  // MPI_Finalize (or MPI_Abort when destroyed by an exception)
  MpiContext(const MpiContext&) = delete;
  MpiContext& operator=(const MpiContext&) = delete;

  int world_rank() const { return world_rank_; }
  int world_size() const { return world_size_; }
  // Kills every rank of the job now (MPI_Abort on the world); use after printing
  // the error on a failing rank so peers blocked in MPI do not hang.
  [[noreturn]] static void abort(int code);

 private:
  bool owns_ = false;
  int world_rank_ = 0, world_size_ = 1;
};

class MpiCommunicator final : public Communicator {
 public:
  struct Impl;
  explicit MpiCommunicator(std::unique_ptr<Impl> impl);
  ~MpiCommunicator() override;

  int rank() const override;
  int size() const override;
  int world_rank_of(int rank) const override;
  const std::string& label() const;  // "world", "tp group of stage 1", ... for messages

 protected:
  void do_all_reduce_sum(void* buf, size_t n, CommType type) override;
  void do_all_gather(const void* send, size_t bytes_each, void* recv) override;
  void do_all_gatherv(const void* send, const std::vector<size_t>& bytes, void* recv) override;
  void do_broadcast(void* buf, size_t bytes, int root) override;
  void do_send(const void* buf, size_t bytes, int peer, int tag) override;
  void do_recv(void* buf, size_t bytes, int peer, int tag) override;
  void do_barrier() override;

 private:
  std::unique_ptr<Impl> impl_;
};

// All ranks of the world (a duplicate of MPI_COMM_WORLD). Collective: every rank calls it.
std::unique_ptr<Communicator> make_world_communicator(const MpiContext& ctx);
// The TP group of cfg's stage (MPI_Comm_split by pp_rank, ordered by tp_rank), so
// rank() == cfg.tp_rank(). Collective over the world.
std::unique_ptr<Communicator> make_tp_communicator(const MpiContext& ctx, const WorldConfig& cfg);
// Link for stage-to-stage send/recv: its own duplicate of the world, so peers are
// world ranks (cfg.prev_stage_rank() / next_stage_rank()) and its tags cannot
// collide with other traffic. Collective over the world.
std::unique_ptr<Communicator> make_pipeline_communicator(const MpiContext& ctx,
                                                         const WorldConfig& cfg);

struct ParallelComms {
  std::unique_ptr<Communicator> world;  // all ranks
  std::unique_ptr<Communicator> tp;     // this stage's TP group
  std::unique_ptr<Communicator> pipe;   // stage-to-stage, world ranks
  CommStats total() const;              // sum of the three stats
};
// Checks cfg.world_size() == ctx.world_size() and builds all three.
ParallelComms make_parallel_comms(const MpiContext& ctx, const WorldConfig& cfg);

}  // namespace parallama
