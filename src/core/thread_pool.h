// Persistent worker pool: threads are created once; jobs are split into tasks that
// whichever thread is free claims from one shared counter, so a worker that the OS
// has descheduled (the cores are shared) never holds the caller up: the caller
// takes part and runs every task nobody else has claimed.
#pragma once

#include <cstdint>
#include <functional>
#include <type_traits>
#include <utility>

namespace parallama {

class ThreadPool {
 public:
  // n_threads >= 1; the caller counts as one. pin: when the process may run on at
  // least n_threads CPUs, bind the caller to the first allowed CPU and worker i to
  // the (i+1)-th, so threads keep their caches and their row slices' prefetch
  // streams; with fewer allowed CPUs (oversubscribed) nothing is pinned.
  explicit ThreadPool(int n_threads, bool pin = false);
  bool pinned() const;  // whether pinning took effect
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;
  // Runs fn(ith, nth) once for every ith in [0, nth), nth = size(), and returns when
  // all are done. The caller runs ith 0; each other ith runs on whichever thread
  // claims it first (a worker, or the caller once it is free), so concurrently
  // running calls always have distinct ith (per-ith scratch is safe).
  void run(const std::function<void(int ith, int nth)>& fn);
  // Splits [0, n) into nth contiguous chunks (aligned to `grain`) and runs
  // fn(begin, end) for each.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Runs fn(task) once for every task in [0, n_tasks) (n_tasks < 2^22), tasks
  // claimed in increasing order by all threads; no allocation, no std::function.
  template <class F>
  void run_tasks(int64_t n_tasks, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run_tasks_impl(n_tasks, [](void* ctx, int64_t i) { (*static_cast<Fn*>(ctx))(i); },
                   const_cast<void*>(static_cast<const void*>(&fn)), false);
  }

 private:
  using TaskFn = void (*)(void* ctx, int64_t task);
  void run_tasks_impl(int64_t n_tasks, TaskFn fn, void* ctx, bool caller_first);

  struct Impl;
  Impl* impl_;
};

}  // namespace parallama
