// Transport-neutral collective and point-to-point interface. MpiCommunicator
// implements it today; a NCCL (or shared-memory) backend can slot in later
// without the model code changing. Nothing here includes mpi.h.
//
// Public calls are non-virtual: they check arguments, time the call and count
// its bytes into stats(), then run the backend's do_*() hook. So every backend
// reports communication time the same way (e.g. comm seconds per token).
// Every rank of the communicator must make the same collective calls in the
// same order; a failed call throws parallama::Error.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace parallama {

struct CommStats {
  double seconds = 0;   // wall time spent inside communication calls
  uint64_t calls = 0;   // number of calls
  uint64_t bytes = 0;   // payload bytes: buffer this rank reduced/sent/received
  CommStats& operator+=(const CommStats& o) {
    seconds += o.seconds, calls += o.calls, bytes += o.bytes;
    return *this;
  }
};

enum class CommType { F32, I32, F64 };

// What a rank is waiting for right now, written by the calling thread and read
// by a watchdog thread (parallel/comm_watchdog.h).
struct CommWait {
  std::atomic<int64_t> since_ns{0};       // steady clock at entry; 0: not in a call
  std::atomic<const char*> op{nullptr};   // "all_reduce", "recv", ...
  std::atomic<int> peer{-1};              // rank of this communicator; -1: a collective
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;  // rank inside this communicator
  virtual int size() const = 0;
  // Ranks of this communicator as world ranks (for messages naming peers).
  virtual int world_rank_of(int rank) const = 0;

  // Element-wise sum over all ranks, in place: buf [n].
  void all_reduce_sum(float* buf, size_t n);
  void all_reduce_sum(int32_t* buf, size_t n);
  // Doubles: row-parallel layers reduce exact partial sums and round once after.
  // With more than 2 ranks the backend's summation order may vary (1e-16 level).
  void all_reduce_sum(double* buf, size_t n);
  // recv [size() * n_each] = concatenation of every rank's send [n_each], rank order.
  void all_gather(const float* send, size_t n_each, float* recv);
  void all_gather(const int32_t* send, size_t n_each, int32_t* recv);
  void all_gather_bytes(const void* send, size_t bytes_each, void* recv);
  // Variable counts: counts [size()] elements per rank; send has counts[rank()]
  // elements; recv [sum(counts)] gets rank 0's block, then rank 1's, ...
  void all_gatherv(const float* send, const std::vector<size_t>& counts, float* recv);
  void broadcast(void* buf, size_t bytes, int root);
  // Blocking point-to-point; peer is a rank of this communicator, tag >= 0.
  void send(const void* buf, size_t bytes, int peer, int tag);
  void recv(void* buf, size_t bytes, int peer, int tag);
  void barrier();

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = CommStats{}; }
  const CommWait& wait_state() const { return wait_; }


 protected:
  virtual void do_all_reduce_sum(void* buf, size_t n, CommType type) = 0;
  virtual void do_all_gather(const void* send, size_t bytes_each, void* recv) = 0;
  // bytes [size()] per rank block; displacements are the prefix sums.
  virtual void do_all_gatherv(const void* send, const std::vector<size_t>& bytes, void* recv) = 0;
  virtual void do_broadcast(void* buf, size_t bytes, int root) = 0;
  virtual void do_send(const void* buf, size_t bytes, int peer, int tag) = 0;
  virtual void do_recv(void* buf, size_t bytes, int peer, int tag) = 0;
  virtual void do_barrier() = 0;

 private:
  friend class ScopedCommCall;
  void check_peer(int peer, const char* what) const;
  CommStats stats_;
  CommWait wait_;
};

// The trivial world of one rank (tp=1, pp=1 without MPI): collectives copy or do
// nothing; send/recv have no peer and throw.
class SingleRankCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int world_rank_of(int rank) const override { return rank; }

 protected:
  void do_all_reduce_sum(void*, size_t, CommType) override {}
  void do_all_gather(const void* send, size_t bytes_each, void* recv) override;
  void do_all_gatherv(const void* send, const std::vector<size_t>& bytes, void* recv) override;
  void do_broadcast(void*, size_t, int) override {}
  void do_send(const void*, size_t, int, int) override;
  void do_recv(void*, size_t, int, int) override;
  void do_barrier() override {}
};

}  // namespace parallama
