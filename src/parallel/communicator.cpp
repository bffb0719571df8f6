#include "parallel/communicator.h"

#include <chrono>
#include <cstring>

#include "core/check.h"

namespace parallama {

namespace {
// Adds the wall time of its scope and `bytes` to stats (also when the call throws:
// the time was still spent).
class ScopedCommTimer {
 public:
  ScopedCommTimer(CommStats& s, size_t bytes) : s_(s), t0_(std::chrono::steady_clock::now()) {
    s_.calls += 1;
    s_.bytes += bytes;
  }
  ~ScopedCommTimer() {
    s_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  CommStats& s_;
  std::chrono::steady_clock::time_point t0_;
};
}  // namespace

void Communicator::check_peer(int peer, const char* what) const {
  if (peer < 0 || peer >= size())
    PL_THROW(what << ": rank " << peer << " is outside this communicator of " << size()
                  << " ranks");
}

void Communicator::all_reduce_sum(float* buf, size_t n) {
  ScopedCommTimer t(stats_, n * sizeof(float));
  if (n) do_all_reduce_sum(buf, n, CommType::F32);
}

void Communicator::all_reduce_sum(int32_t* buf, size_t n) {
  ScopedCommTimer t(stats_, n * sizeof(int32_t));
  if (n) do_all_reduce_sum(buf, n, CommType::I32);
}

void Communicator::all_reduce_sum(double* buf, size_t n) {
  ScopedCommTimer t(stats_, n * sizeof(double));
  if (n) do_all_reduce_sum(buf, n, CommType::F64);
}

void Communicator::all_gather(const float* send, size_t n_each, float* recv) {
  all_gather_bytes(send, n_each * sizeof(float), recv);
}

void Communicator::all_gather(const int32_t* send, size_t n_each, int32_t* recv) {
  all_gather_bytes(send, n_each * sizeof(int32_t), recv);
}

void Communicator::all_gather_bytes(const void* send, size_t bytes_each, void* recv) {
  ScopedCommTimer t(stats_, bytes_each * size());
  if (bytes_each) do_all_gather(send, bytes_each, recv);
}

void Communicator::all_gatherv(const float* send, const std::vector<size_t>& counts,
                               float* recv) {
  if (static_cast<int>(counts.size()) != size())
    PL_THROW("all_gatherv: " << counts.size() << " counts for " << size() << " ranks");
  std::vector<size_t> bytes(counts.size());
  size_t total = 0;
  for (size_t i = 0; i < counts.size(); ++i) total += bytes[i] = counts[i] * sizeof(float);
  ScopedCommTimer t(stats_, total);
  if (total) do_all_gatherv(send, bytes, recv);
}

void Communicator::broadcast(void* buf, size_t bytes, int root) {
  check_peer(root, "broadcast root");
  ScopedCommTimer t(stats_, bytes);
  if (bytes) do_broadcast(buf, bytes, root);
}

void Communicator::send(const void* buf, size_t bytes, int peer, int tag) {
  check_peer(peer, "send");
  if (tag < 0) PL_THROW("send: tag " << tag << " must be >= 0");
  ScopedCommTimer t(stats_, bytes);
  do_send(buf, bytes, peer, tag);
}

void Communicator::recv(void* buf, size_t bytes, int peer, int tag) {
  check_peer(peer, "recv");
  if (tag < 0) PL_THROW("recv: tag " << tag << " must be >= 0");
  ScopedCommTimer t(stats_, bytes);
  do_recv(buf, bytes, peer, tag);
}

void Communicator::barrier() {
  ScopedCommTimer t(stats_, 0);
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
