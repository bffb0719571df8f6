// Persistent worker pool: threads are created once; parallel_for hands each
// worker a contiguous range and waits on a low-overhead barrier.
#pragma once

#include <cstdint>
#include <functional>

namespace parallama {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1; the caller counts as one
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;
  // Runs fn(ith, nth) on every thread (ith in [0, nth)), the caller being ith 0,
  // and returns when all are done.
  void run(const std::function<void(int ith, int nth)>& fn);
  // Splits [0, n) into nth contiguous chunks (aligned to `grain`) and runs
  // fn(begin, end) for each.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace parallama
