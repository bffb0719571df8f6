#include "parallel/communicator.h"

#include <chrono>
#include <cstring>

#include "core/check.h"

namespace parallama {

// Adds the wall time of its scope and `bytes` to stats (also when the call throws:
// the time was still spent), and publishes the wait to a watchdog.
class ScopedCommCall {
 public:
  ScopedCommCall(Communicator& c, size_t bytes, const char* op, int peer = -1)
      : c_(c), t0_(std::chrono::steady_clock::now()) {
    c_.stats_.calls += 1;
    c_.stats_.bytes += bytes;
    c_.wait_.op.store(op, std::memory_order_relaxed);
    c_.wait_.peer.store(peer, std::memory_order_relaxed);
    c_.wait_.since_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(t0_.time_since_epoch()).count(),
                            std::memory_order_release);
  }
  ~ScopedCommCall() {
    c_.wait_.since_ns.store(0, std::memory_order_release);
    c_.stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  ScopedCommCall(const ScopedCommCall&) = delete;
  ScopedCommCall& operator=(const ScopedCommCall&) = delete;

 private:
  Communicator& c_;
  std::chrono::steady_clock::time_point t0_;
};

void Communicator::check_peer(int peer, const char* what) const {
  if (peer < 0 || peer >= size())
    PL_THROW(what << ": rank " << peer << " is outside this communicator of " << size()
                  << " ranks");
}

void Communicator::all_reduce_sum(float* buf, size_t n) {
  ScopedCommCall t(*this, n * sizeof(float), "all_reduce");
  if (n) do_all_reduce_sum(buf, n, CommType::F32);
}

void Communicator::all_reduce_sum(int32_t* buf, size_t n) {
  ScopedCommCall t(*this, n * sizeof(int32_t), "all_reduce");
  if (n) do_all_reduce_sum(buf, n, CommType::I32);
}

void Communicator::all_reduce_sum(double* buf, size_t n) {
  ScopedCommCall t(*this, n * sizeof(double), "all_reduce");
  if (n) do_all_reduce_sum(buf, n, CommType::F64);
}

void Communicator::all_gather(const float* send, size_t n_each, float* recv) {
  all_gather_bytes(send, n_each * sizeof(float), recv);
}

void Communicator::all_gather(const int32_t* send, size_t n_each, int32_t* recv) {
  all_gather_bytes(send, n_each * sizeof(int32_t), recv);
}

void Communicator::all_gather_bytes(const void* send, size_t bytes_each, void* recv) {
  ScopedCommCall t(*this, bytes_each * size(), "all_gather");
  if (bytes_each) do_all_gather(send, bytes_each, recv);
}

void Communicator::all_gatherv(const float* send, const std::vector<size_t>& counts,
                               float* recv) {
  if (static_cast<int>(counts.size()) != size())
    PL_THROW("all_gatherv: " << counts.size() << " counts for " << size() << " ranks");
  std::vector<size_t> bytes(counts.size());
  size_t total = 0;
  for (size_t i = 0; i < counts.size(); ++i) total += bytes[i] = counts[i] * sizeof(float);
  ScopedCommCall t(*this, total, "all_gatherv");
  if (total) do_all_gatherv(send, bytes, recv);
}

void Communicator::broadcast(void* buf, size_t bytes, int root) {
  check_peer(root, "broadcast root");
  ScopedCommCall t(*this, bytes, "broadcast", root == rank() ? -1 : root);
  if (bytes) do_broadcast(buf, bytes, root);
}

void Communicator::send(const void* buf, size_t bytes, int peer, int tag) {
  check_peer(peer, "send");
  if (tag < 0) PL_THROW("send: tag " << tag << " must be >= 0");
  ScopedCommCall t(*this, bytes, "send", peer);
  do_send(buf, bytes, peer, tag);
}

void Communicator::recv(void* buf, size_t bytes, int peer, int tag) {
  check_peer(peer, "recv");
  if (tag < 0) PL_THROW("recv: tag " << tag << " must be >= 0");
  ScopedCommCall t(*this, bytes, "recv", peer);
  do_recv(buf, bytes, peer, tag);
}

void Communicator::barrier() {
  ScopedCommCall t(*this, 0, "barrier");
  do_barrier();
}

void SingleRankCommunicator::do_all_gather(const void* send, size_t bytes_each, void* recv) {
  if (send != recv) std::memmove(recv, send, bytes_each);
}

void SingleRankCommunicator::do_all_gatherv(const void* send, const std::vector<size_t>& bytes,
                                            void* recv) {
  if (send != recv) std::memmove(recv, send, bytes[0]);
}

void SingleRankCommunicator::do_send(const void*, size_t, int, int) {
  PL_THROW("send: a single-rank communicator has no peer");
}

void SingleRankCommunicator::do_recv(void*, size_t, int, int) {
  PL_THROW("recv: a single-rank communicator has no peer");
}

}  // namespace parallama
