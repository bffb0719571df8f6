// Persistent pool. run() publishes the job by bumping an atomic generation;
// workers spin briefly on it (cheap hand-off between back-to-back kernels), then
// sleep on a futex so idle ranks leave the CPU to others. Completion is a
// countdown the caller spins on, likewise falling back to a futex.
#include "core/thread_pool.h"

#include <immintrin.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/check.h"

namespace parallama {
namespace {

void futex_wait(std::atomic<uint32_t>* addr, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void futex_wake_all(std::atomic<uint32_t>* addr) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// How long to spin before sleeping; PARALLAMA_SPIN_US overrides (0 = sleep at once).
int64_t spin_ns_from_env() {
  const char* e = std::getenv("PARALLAMA_SPIN_US");
  if (e && *e) return std::max<int64_t>(0, std::atoll(e)) * 1000;
  return 50'000;
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Spins until pred() or the budget runs out; checks the clock every 64 pauses.
template <class Pred>
bool spin_until(Pred pred, int64_t budget_ns) {
  if (pred()) return true;
  if (budget_ns <= 0) return false;
  const int64_t end = now_ns() + budget_ns;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      _mm_pause();
      if (pred()) return true;
    }
    if (now_ns() > end) return false;
  }
}

}  // namespace

struct ThreadPool::Impl {
  int n = 1;
  int64_t spin_ns = 0;
  std::vector<std::thread> threads;
  const std::function<void(int, int)>* fn = nullptr;
  bool stop = false;

  alignas(64) std::atomic<uint32_t> gen{0};      // bumped once per job
  alignas(64) std::atomic<uint32_t> pending{0};  // workers still running the job
  alignas(64) std::atomic<uint32_t> sleepers{0}; // workers blocked on gen
  std::atomic<uint32_t> caller_sleeping{0};

  std::mutex err_mu;
  std::exception_ptr err;

  void worker(int ith) {
    uint32_t seen = 0;
    for (;;) {
      if (!spin_until([&] { return gen.load(std::memory_order_acquire) != seen; }, spin_ns)) {
        sleepers.fetch_add(1);
        while (gen.load() == seen) futex_wait(&gen, seen);
        sleepers.fetch_sub(1);
      }
      seen = gen.load(std::memory_order_acquire);
      if (stop) return;
      try {
        (*fn)(ith, n);
      } catch (...) {
        std::lock_guard<std::mutex> lk(err_mu);
        if (!err) err = std::current_exception();
      }
      if (pending.fetch_sub(1) == 1 && caller_sleeping.load()) futex_wake_all(&pending);
    }
  }

  void publish() {
    gen.fetch_add(1);  // seq_cst: pairs with the sleepers increment in worker()
    if (sleepers.load() > 0) futex_wake_all(&gen);
  }

  void wait_done() {
    if (spin_until([&] { return pending.load(std::memory_order_acquire) == 0; }, spin_ns)) return;
    caller_sleeping.store(1);
    for (uint32_t p; (p = pending.load()) != 0;) futex_wait(&pending, p);
    caller_sleeping.store(0);
  }
};

ThreadPool::ThreadPool(int n_threads) {
  PL_CHECK_MSG(n_threads >= 1, "thread pool needs at least 1 thread, got " << n_threads);
  impl_ = new Impl;
  impl_->n = n_threads;
  impl_->spin_ns = spin_ns_from_env();
  for (int i = 1; i < n_threads; ++i) impl_->threads.emplace_back([this, i] { impl_->worker(i); });
}

ThreadPool::~ThreadPool() {
  impl_->stop = true;
  impl_->publish();
  for (auto& t : impl_->threads) t.join();
  delete impl_;
}

int ThreadPool::size() const { return impl_->n; }

void ThreadPool::run(const std::function<void(int ith, int nth)>& fn) {
  Impl& p = *impl_;
  if (p.n == 1) {
    fn(0, 1);
    return;
  }
  p.fn = &fn;
  p.pending.store(static_cast<uint32_t>(p.n - 1), std::memory_order_relaxed);
  p.publish();
  std::exception_ptr own;
  try {
    fn(0, p.n);
  } catch (...) {
    own = std::current_exception();
  }
  p.wait_done();
  if (own) std::rethrow_exception(own);
  if (p.err) {
    std::exception_ptr e;
    std::swap(e, p.err);
    std::rethrow_exception(e);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t n_chunks = (n + grain - 1) / grain;
  run([&](int ith, int nth) {
    const int64_t c0 = n_chunks * ith / nth, c1 = n_chunks * (ith + 1) / nth;
    const int64_t b = std::min(n, c0 * grain), e = std::min(n, c1 * grain);
    if (b < e) fn(b, e);
  });
}

}  // namespace parallama
