// ThreadGroup collectives between real threads, against values computed here
// directly: sums, gathers, broadcast, many back-to-back calls, more ranks than
// cores, and an aborted group.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "core/check.h"
#include "parallel/thread_communicator.h"

using namespace parallama;

namespace {

// Runs body(rank, comm) on n threads at once; rethrows the first failure.
void run_ranks(ThreadGroup& g, const std::function<void(int, Communicator&)>& body) {
  std::vector<std::exception_ptr> errs(g.size());
  std::vector<std::thread> ts;
  for (int r = 0; r < g.size(); ++r)
    ts.emplace_back([&, r] {
      try {
        body(r, g.comm(r));
      } catch (...) {
        errs[r] = std::current_exception();
      }
    });
  for (auto& t : ts) t.join();
  for (auto& e : errs)
    if (e) std::rethrow_exception(e);
}

}  // namespace

TEST(ThreadCommunicator, AllReduceSumsInRankOrderOnEveryRank) {
  for (int n : {1, 2, 3, 5}) {
    ThreadGroup g(n);
    std::vector<std::vector<float>> f(n);
    std::vector<std::vector<double>> d(n);
    std::vector<std::vector<int32_t>> i32(n);
    // Values whose float sum depends on the order: every rank must get the
    // rank-order sum, the same bits everywhere.
    for (int r = 0; r < n; ++r) {
      for (int k = 0; k < 37; ++k) {
        f[r].push_back((r % 2 ? 1e8f : 1.0f) * (k + 1) + 0.1f * r);
        d[r].push_back(1.0 / (3 + r + k) + (r == 0 ? 1e16 : 0.0));
        i32[r].push_back(r * 1000 + k);
      }
    }
    std::vector<float> want_f(37);
    std::vector<double> want_d(37);
    std::vector<int32_t> want_i(37);
    for (int k = 0; k < 37; ++k) {
      float sf = f[0][k];
      double sd = d[0][k];
      int32_t si = i32[0][k];
      for (int r = 1; r < n; ++r) sf += f[r][k], sd += d[r][k], si += i32[r][k];
      want_f[k] = sf, want_d[k] = sd, want_i[k] = si;
    }
    run_ranks(g, [&](int r, Communicator& c) {
      EXPECT_EQ(c.rank(), r);
      EXPECT_EQ(c.size(), n);
      c.all_reduce_sum(f[r].data(), f[r].size());
      c.all_reduce_sum(d[r].data(), d[r].size());
      c.all_reduce_sum(i32[r].data(), i32[r].size());
    });
    for (int r = 0; r < n; ++r) {
      EXPECT_EQ(f[r], want_f) << "n=" << n << " rank " << r;
      EXPECT_EQ(d[r], want_d) << "n=" << n << " rank " << r;
      EXPECT_EQ(i32[r], want_i) << "n=" << n << " rank " << r;
    }
  }
}

TEST(ThreadCommunicator, GathersAndBroadcast) {
  const int n = 3;
  ThreadGroup g(n);
  std::vector<std::vector<float>> gathered(n), gatheredv(n);
  std::vector<std::vector<int32_t>> bcast(n);
  run_ranks(g, [&](int r, Communicator& c) {
    std::vector<float> mine = {float(r), float(10 * r)};
    gathered[r].assign(2 * n, -1.f);
    c.all_gather(mine.data(), 2, gathered[r].data());
    // Rank r sends r + 1 values.
    std::vector<size_t> counts = {1, 2, 3};
    std::vector<float> send(r + 1, float(r) + 0.5f);
    gatheredv[r].assign(6, -1.f);
    c.all_gatherv(send.data(), counts, gatheredv[r].data());
    bcast[r] = {r == 1 ? 42 : 0, r == 1 ? -7 : 0};
    c.broadcast(bcast[r].data(), 2 * sizeof(int32_t), 1);
    c.barrier();
  });
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(gathered[r], (std::vector<float>{0, 0, 1, 10, 2, 20})) << r;
    EXPECT_EQ(gatheredv[r], (std::vector<float>{0.5f, 1.5f, 1.5f, 2.5f, 2.5f, 2.5f})) << r;
    EXPECT_EQ(bcast[r], (std::vector<int32_t>{42, -7})) << r;
  }
}

// Back-to-back collectives reuse the slots: a rank that ran ahead must never
// read a peer's buffer of the next call. More ranks than this machine's cores
// must still finish (waiting ranks yield).
TEST(ThreadCommunicator, ManyCallsAndMoreRanksThanCores) {
  const int n = 2 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) + 1;
  ThreadGroup g(n);
  std::atomic<int> bad{0};
  run_ranks(g, [&](int r, Communicator& c) {
    std::vector<double> v(5);
    for (int it = 0; it < 300; ++it) {
      for (int k = 0; k < 5; ++k) v[k] = it * 100 + r + k;
      c.all_reduce_sum(v.data(), v.size());
      for (int k = 0; k < 5; ++k) {
        const double want = n * (it * 100.0 + k) + n * (n - 1) / 2.0;
        if (v[k] != want) bad.fetch_add(1);
      }
    }
  });
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(g.comm(0).stats().calls, 300u);
}

// A failed rank aborts the group: peers waiting for it throw instead of hanging,
// and after reset() the group works again.
TEST(ThreadCommunicator, AbortReleasesWaitingRanks) {
  ThreadGroup g(3);
  std::vector<int> threw(3, 0);
  run_ranks(g, [&](int r, Communicator& c) {
    if (r == 2) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      g.abort();  // as Engine::forward does when a shard throws
      return;
    }
    float x = 1.f;
    try {
      c.all_reduce_sum(&x, 1);
    } catch (const Error&) {
      threw[r] = 1;
    }
  });
  EXPECT_EQ(threw, (std::vector<int>{1, 1, 0}));
  g.reset();
  std::vector<float> x(3, 2.f);
  run_ranks(g, [&](int r, Communicator& c) { c.all_reduce_sum(&x[r], 1); });
  EXPECT_EQ(x, (std::vector<float>{6.f, 6.f, 6.f}));
}

TEST(ThreadCommunicator, RefusesPointToPointAndBadRanks) {
  ThreadGroup g(2);
  int v = 0;
  EXPECT_THROW(g.comm(0).send(&v, sizeof(v), 1, 0), Error);
  EXPECT_THROW(g.comm(1).recv(&v, sizeof(v), 0, 0), Error);
  EXPECT_THROW(g.comm(2), Error);
  EXPECT_THROW(ThreadGroup(0), Error);
}
