#include "parallel/thread_communicator.h"

#include <immintrin.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/check.h"

namespace parallama {

namespace {

// Elements [b, e) of every rank's buffer become their sum over the ranks, taken
// in rank order (every rank's copy gets the same bits).
template <class T>
void reduce_segment(const std::vector<const void*>& slots, size_t b, size_t e) {
  const size_t n_ranks = slots.size();
  constexpr size_t kTile = 512;  // sums staged in L1, then written to every buffer
  T sum[kTile];
  for (size_t t0 = b; t0 < e; t0 += kTile) {
    const size_t len = std::min(kTile, e - t0);
    const T* first = static_cast<const T*>(slots[0]) + t0;
    for (size_t i = 0; i < len; ++i) sum[i] = first[i];
    for (size_t r = 1; r < n_ranks; ++r) {
      const T* s = static_cast<const T*>(slots[r]) + t0;
      for (size_t i = 0; i < len; ++i) sum[i] += s[i];
    }
    for (size_t r = 0; r < n_ranks; ++r)
      std::memcpy(const_cast<T*>(static_cast<const T*>(slots[r])) + t0, sum, len * sizeof(T));
  }
}

}  // namespace

// One rank's view of a ThreadGroup. A collective publishes this rank's buffer in
// its slot, waits for all ranks, reads (or writes its share of) the peers'
// buffers, and waits again before returning, so that no rank reuses its buffer
// while a peer still reads or writes it.
class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.n_; }
  int world_rank_of(int rank) const override { return rank; }

 protected:
  // Reduce-scatter and gather in one pass: rank r sums its segment of the
  // elements over every rank's buffer and writes the sums into all of them
  // (segments are disjoint, so no rank writes what another reads), then waits
  // until every segment is done. Each rank reads and writes n elements.
  void do_all_reduce_sum(void* buf, size_t n, CommType type) override {
    g_.slots_[rank_] = buf;
    g_.arrive_and_wait();
    const size_t b = n * rank_ / g_.n_, e = n * (rank_ + 1) / g_.n_;
    switch (type) {
      case CommType::F32: reduce_segment<float>(g_.slots_, b, e); break;
      case CommType::I32: reduce_segment<int32_t>(g_.slots_, b, e); break;
      case CommType::F64: reduce_segment<double>(g_.slots_, b, e); break;
    }
    g_.arrive_and_wait();
  }
  void do_all_gather(const void* send, size_t bytes_each, void* recv) override {
    do_all_gatherv(send, std::vector<size_t>(g_.n_, bytes_each), recv);
  }
  void do_all_gatherv(const void* send, const std::vector<size_t>& bytes, void* recv) override {
    g_.slots_[rank_] = send;
    g_.arrive_and_wait();
    size_t off = 0;
    for (int r = 0; r < g_.n_; ++r) {
      uint8_t* dst = static_cast<uint8_t*>(recv) + off;
      if (g_.slots_[r] != dst) std::memmove(dst, g_.slots_[r], bytes[r]);
      off += bytes[r];
    }
    g_.arrive_and_wait();
  }
  void do_broadcast(void* buf, size_t bytes, int root) override {
    g_.slots_[rank_] = buf;
    g_.arrive_and_wait();
    if (rank_ != root) std::memcpy(buf, g_.slots_[root], bytes);
    g_.arrive_and_wait();
  }
  void do_send(const void*, size_t, int, int) override {
    PL_THROW("send: thread groups carry tensor parallelism only (no pipeline stages)");
  }
  void do_recv(void*, size_t, int, int) override {
    PL_THROW("recv: thread groups carry tensor parallelism only (no pipeline stages)");
  }
  void do_barrier() override { g_.arrive_and_wait(); }

 private:
  ThreadGroup& g_;
  int rank_;
};

ThreadGroup::ThreadGroup(int n_ranks) : n_(n_ranks) {
  PL_CHECK_MSG(n_ranks >= 1, "a thread group needs at least 1 rank, got " << n_ranks);
  slots_.assign(n_, nullptr);
  for (int r = 0; r < n_; ++r) comms_.push_back(std::make_unique<ThreadCommunicator>(*this, r));
}

ThreadGroup::~ThreadGroup() = default;

Communicator& ThreadGroup::comm(int rank) {
  PL_CHECK_MSG(rank >= 0 && rank < n_, "rank " << rank << " outside a thread group of " << n_);
  return *comms_[rank];
}

void ThreadGroup::abort() { aborted_.store(true, std::memory_order_release); }

void ThreadGroup::reset() {
  arrived_.store(0, std::memory_order_relaxed);
  aborted_.store(false, std::memory_order_release);
}

void ThreadGroup::arrive_and_wait() {
  if (aborted()) PL_THROW("thread group aborted: a peer rank failed");
  const uint32_t gen = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
    arrived_.store(0, std::memory_order_relaxed);
    generation_.store(gen + 1, std::memory_order_release);  // publishes the slots too
    return;
  }
  // Spin a few microseconds (a peer is usually about to arrive), then yield the
  // core on every check so that oversubscribed ranks still run.
  const auto t0 = std::chrono::steady_clock::now();
  bool yielding = false;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (generation_.load(std::memory_order_acquire) != gen) return;
      _mm_pause();
    }
    if (aborted()) PL_THROW("thread group aborted: a peer rank failed");
    if (yielding) {
      sched_yield();
    } else if (std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(50)) {
      yielding = true;
    }
  }
}

}  // namespace parallama
