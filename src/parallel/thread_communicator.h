// Tensor parallelism between threads of one process: a ThreadGroup of n ranks,
// each a thread, whose collectives go through shared memory. The engine runs a
// model as n TP shards on n threads this way (EngineOptions::thread_shards):
// the same sharded layers as MPI ranks, but an all-reduce costs two barriers
// and a pass over the peers' buffers instead of messages.
//
//   ThreadGroup g(2);                 thread 0              thread 1
//                                     g.comm(0)             g.comm(1)
//                                     all_reduce_sum(a) <-> all_reduce_sum(b)
//                                     a = b = a + b, summed in rank order (the
//                                     same bits on every rank)
//
// Ranks wait for each other spinning briefly, then yielding the core, so more
// ranks than cores still make progress. A rank that fails calls abort(): every
// rank waiting in (or later entering) a collective of the group then throws
// instead of waiting for a peer that will never arrive. Point-to-point calls
// (pipeline stages) are not supported: they throw.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "parallel/communicator.h"

namespace parallama {

class ThreadGroup {
 public:
  explicit ThreadGroup(int n_ranks);
  ~ThreadGroup();
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  int size() const { return n_; }
  // Rank r's communicator (owned by the group); use it from one thread at a time.
  Communicator& comm(int rank);

  // Makes current and later collectives throw on every rank (a peer failed).
  void abort();
  bool aborted() const { return aborted_.load(std::memory_order_acquire); }
  // Clears an abort; only while no rank is inside a collective.
  void reset();

 private:
  friend class ThreadCommunicator;
  // Blocks until all n ranks have arrived; throws when the group is aborted.
  void arrive_and_wait();

  int n_;
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<bool> aborted_{false};
  std::vector<const void*> slots_;  // [n] each rank's buffer for the current collective
  std::vector<std::unique_ptr<Communicator>> comms_;
};

}  // namespace parallama
