#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <stdexcept>
#include <vector>

#include "core/check.h"
#include "core/cpu_isa.h"
#include "core/thread_pool.h"

namespace parallama {
namespace {

TEST(ThreadPool, EveryRankRunsOnce) {
  for (int n : {1, 2, 3, 5}) {
    ThreadPool pool(n);
    EXPECT_EQ(pool.size(), n);
    std::vector<std::atomic<int>> seen(n);
    pool.run([&](int ith, int nth) {
      ASSERT_EQ(nth, n);
      seen[ith].fetch_add(1);
    });
    for (int i = 0; i < n; ++i) EXPECT_EQ(seen[i].load(), 1) << "rank " << i << " of " << n;
  }
}

TEST(ThreadPool, CallerIsRankZero) {
  ThreadPool pool(3);
  const auto me = std::this_thread::get_id();
  std::thread::id rank0;
  pool.run([&](int ith, int) {
    if (ith == 0) rank0 = std::this_thread::get_id();
  });
  EXPECT_TRUE(rank0 == me);
}

TEST(ThreadPool, ParallelForCoversRangeExactly) {
  for (int n : {1, 2, 4}) {
    ThreadPool pool(n);
    for (int64_t len : {0, 1, 7, 64, 1001}) {
      for (int64_t grain : {1, 4, 16}) {
        std::vector<std::atomic<int>> hits(len);
        pool.parallel_for(len, grain, [&](int64_t b, int64_t e) {
          ASSERT_LE(0, b);
          ASSERT_LT(b, e);
          ASSERT_LE(e, len);
          if (e != len) {
            ASSERT_EQ(e % grain, 0);
          }
          for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        for (int64_t i = 0; i < len; ++i) ASSERT_EQ(hits[i].load(), 1) << "len " << len << " i " << i;
      }
    }
  }
}

TEST(ThreadPool, ManyConsecutiveRuns) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int it = 0; it < 20000; ++it) pool.run([&](int ith, int) { total.fetch_add(ith + 1); });
  EXPECT_EQ(total.load(), 20000 * 3);
}

TEST(ThreadPool, WorkersWakeAfterSleeping) {
  setenv("PARALLAMA_SPIN_US", "0", 1);  // read at construction: sleep at once
  ThreadPool pool(3);
  unsetenv("PARALLAMA_SPIN_US");
  std::atomic<int> total{0};
  for (int it = 0; it < 200; ++it) {
    pool.run([&](int, int) { total.fetch_add(1); });
    if (it % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(total.load(), 600);
}

TEST(ThreadPool, PropagatesExceptions) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.run([](int ith, int) {
                 if (ith == 1) throw std::runtime_error("boom");
               }),
               std::runtime_error);
  int ok = 0;
  pool.run([&](int ith, int) {
    if (ith == 0) ok = 1;
  });
  EXPECT_EQ(ok, 1);
}

TEST(ThreadPool, RejectsZeroThreads) { EXPECT_THROW(ThreadPool(0), Error); }

namespace {
int allowed_cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
}
}  // namespace

// Pinned pools bind every thread to one CPU; more threads than allowed CPUs
// (oversubscription) pin nothing. The pinned pool lives on its own thread, so the
// test process's main thread keeps its affinity.
TEST(ThreadPool, PinsEachThreadToOneCpuWhenThereAreEnough) {
  const int n_allowed = allowed_cpu_count();
  ASSERT_GT(n_allowed, 0);
  {
    ThreadPool over(n_allowed + 1, true);
    EXPECT_FALSE(over.pinned());
    std::atomic<int> wide{0};
    over.run([&](int, int) { wide += allowed_cpu_count() == n_allowed; });
    EXPECT_EQ(wide.load(), n_allowed + 1);
  }
  if (n_allowed < 2) GTEST_SKIP() << "one CPU: nothing to pin two threads to";
  std::thread([] {
    ThreadPool pool(2, true);
    ASSERT_TRUE(pool.pinned());
    std::atomic<int> single{0};
    for (int rep = 0; rep < 50; ++rep) pool.run([&](int, int) { single += allowed_cpu_count() == 1; });
    EXPECT_EQ(single.load(), 100);
  }).join();
  EXPECT_EQ(allowed_cpu_count(), n_allowed);  // this thread was not touched
}

TEST(CpuIsa, NamesAndCap) {
  EXPECT_STREQ(cpu_isa_name(CpuIsa::SCALAR), "scalar");
  EXPECT_STREQ(cpu_isa_name(CpuIsa::AVX512_VNNI), "avx512vnni");
  EXPECT_LE(static_cast<int>(active_cpu_isa()), static_cast<int>(detected_cpu_isa()));
}

}  // namespace
}  // namespace parallama
