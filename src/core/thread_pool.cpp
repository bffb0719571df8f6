// Persistent pool with dynamically claimed tasks.
//
// A job is published as one 64-bit word, state = [gen:20][n_tasks:22][next:22].
// Every thread (workers and the caller) claims task `next` with a CAS on that word,
// so a claim is valid only against the job it read: a late worker can neither run a
// finished job's task nor read a newer job's task count with an older generation.
// The job's function is read only after a successful claim; it cannot change then,
// because the caller publishes the next job only once every task is done.
//
// Idle workers spin briefly on the word (cheap hand-off between back-to-back
// kernels), yielding the core now and then so that on an oversubscribed machine
// the thread they wait for can run, and then sleep on a futex.
#include "core/thread_pool.h"

#include <immintrin.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
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

// Spins until pred() or the budget runs out. Every few microseconds it checks the
// clock and yields, so a spinning thread never starves the one it waits for.
template <class Pred>
bool spin_until(Pred pred, int64_t budget_ns) {
  if (pred()) return true;
  if (budget_ns <= 0) return false;
  const int64_t end = now_ns() + budget_ns;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      _mm_pause();
      if (pred()) return true;
    }
    if (now_ns() > end) return false;
    sched_yield();
    if (pred()) return true;
  }
}

constexpr int kNextBits = 22, kTaskBits = 22, kGenBits = 20;
constexpr uint64_t kNextMask = (uint64_t{1} << kNextBits) - 1;
constexpr uint64_t kTaskMask = (uint64_t{1} << kTaskBits) - 1;
constexpr uint32_t kGenMask = (uint32_t{1} << kGenBits) - 1;

inline uint32_t gen_of(uint64_t s) { return static_cast<uint32_t>(s >> (kNextBits + kTaskBits)); }
inline uint64_t n_of(uint64_t s) { return (s >> kNextBits) & kTaskMask; }
inline uint64_t next_of(uint64_t s) { return s & kNextMask; }
inline uint64_t make_state(uint32_t gen, uint64_t n, uint64_t next) {
  return (uint64_t{gen} << (kNextBits + kTaskBits)) | (n << kNextBits) | next;
}

}  // namespace

struct ThreadPool::Impl {
  int n = 1;
  bool pinned = false;
  int64_t spin_ns = 0;
  std::vector<std::thread> threads;

  // Job fields: written by the caller before publishing, read after a claim.
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  uint32_t gen = 0;  // caller-side copy of the current generation

  alignas(64) std::atomic<uint64_t> state{0};
  alignas(64) std::atomic<uint32_t> done{0};        // tasks finished in the current job
  alignas(64) std::atomic<uint32_t> wake_seq{0};    // futex word for sleeping workers
  std::atomic<uint32_t> sleepers{0};
  std::atomic<uint32_t> caller_sleeping{0};
  std::atomic<bool> stop{false};

  std::mutex err_mu;
  std::exception_ptr err;

  void record_error() {
    std::lock_guard<std::mutex> lk(err_mu);
    if (!err) err = std::current_exception();
  }

  void finish_task(uint64_t n_tasks) {
    if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == n_tasks && caller_sleeping.load())
      futex_wake_all(&done);
  }

  // Claims and runs tasks of job generation g until none is left.
  void work(uint32_t g) {
    uint64_t s = state.load(std::memory_order_acquire);
    for (;;) {
      if (gen_of(s) != g || next_of(s) >= n_of(s)) return;
      if (!state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire))
        continue;  // s now holds the current word
      try {
        fn(ctx, static_cast<int64_t>(next_of(s)));
      } catch (...) {
        record_error();
      }
      finish_task(n_of(s));
      s = state.load(std::memory_order_acquire);
    }
  }

  void worker() {
    uint32_t seen = 0;
    for (;;) {
      uint64_t s = 0;
      auto fresh = [&] {
        s = state.load(std::memory_order_seq_cst);
        return gen_of(s) != seen || stop.load(std::memory_order_relaxed);
      };
      if (!spin_until(fresh, spin_ns)) {
        for (;;) {
          const uint32_t w = wake_seq.load();
          sleepers.fetch_add(1);  // seq_cst: pairs with publish()
          const bool ready = fresh();
          if (!ready) futex_wait(&wake_seq, w);
          sleepers.fetch_sub(1);
          if (ready || fresh()) break;
        }
      }
      if (stop.load()) return;
      seen = gen_of(s);
      work(seen);
    }
  }

  void publish(uint64_t s) {
    state.store(s);  // seq_cst: pairs with the sleepers increment in worker()
    wake_seq.fetch_add(1);
    if (sleepers.load() > 0) futex_wake_all(&wake_seq);
  }

  void wait_done(uint64_t n_tasks) {
    auto finished = [&] { return done.load(std::memory_order_acquire) == n_tasks; };
    if (spin_until(finished, spin_ns)) return;
    caller_sleeping.store(1);
    for (uint32_t d; (d = done.load()) != n_tasks;) futex_wait(&done, d);
    caller_sleeping.store(0);
  }
};

namespace {
// The CPUs this process may run on, in order; empty when unknown.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

bool pin_to(pthread_t t, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(t, sizeof(set), &set) == 0;
}
}  // namespace

ThreadPool::ThreadPool(int n_threads, bool pin) {
  PL_CHECK_MSG(n_threads >= 1, "thread pool needs at least 1 thread, got " << n_threads);
  impl_ = new Impl;
  impl_->n = n_threads;
  impl_->spin_ns = spin_ns_from_env();
  for (int i = 1; i < n_threads; ++i) impl_->threads.emplace_back([this] { impl_->worker(); });
  const std::vector<int> cpus = pin && n_threads > 1 ? allowed_cpus() : std::vector<int>();
  if (static_cast<int>(cpus.size()) >= n_threads) {
    // Advice only: a failure (e.g. a restricted container) leaves threads unpinned.
    bool ok = pin_to(pthread_self(), cpus[0]);
    for (int i = 1; i < n_threads; ++i) ok = pin_to(impl_->threads[i - 1].native_handle(), cpus[i]) && ok;
    impl_->pinned = ok;
  }
}

bool ThreadPool::pinned() const { return impl_->pinned; }

ThreadPool::~ThreadPool() {
  impl_->stop.store(true);
  impl_->gen = (impl_->gen + 1) & kGenMask;
  impl_->publish(make_state(impl_->gen, 0, 0));
  for (auto& t : impl_->threads) t.join();
  delete impl_;
}

int ThreadPool::size() const { return impl_->n; }

void ThreadPool::run_tasks_impl(int64_t n_tasks, TaskFn fn, void* ctx, bool caller_first) {
  if (n_tasks <= 0) return;
  PL_CHECK_MSG(static_cast<uint64_t>(n_tasks) <= kTaskMask, "too many tasks: " << n_tasks);
  Impl& p = *impl_;
  if (p.n == 1 || n_tasks == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) fn(ctx, i);
    return;
  }
  p.fn = fn;
  p.ctx = ctx;
  p.done.store(0, std::memory_order_relaxed);
  p.gen = (p.gen + 1) & kGenMask;
  const uint64_t n = static_cast<uint64_t>(n_tasks);
  p.publish(make_state(p.gen, n, caller_first ? 1 : 0));
  if (caller_first) {
    try {
      fn(ctx, 0);
    } catch (...) {
      p.record_error();
    }
    p.finish_task(n);
  }
  p.work(p.gen);
  p.wait_done(n);
  if (p.err) {
    std::exception_ptr e;
    std::swap(e, p.err);
    std::rethrow_exception(e);
  }
}

void ThreadPool::run(const std::function<void(int ith, int nth)>& fn) {
  const int nth = impl_->n;
  auto task = [&](int64_t i) { fn(static_cast<int>(i), nth); };
  using Task = decltype(task);
  run_tasks_impl(nth, [](void* c, int64_t i) { (*static_cast<Task*>(c))(i); }, &task, true);
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
