// The serving benchmark's statistics against values worked out by hand (in
// the comments), and the arrival process against its defining moments.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "bench/arrivals.h"
#include "bench/serve_metrics.h"
#include "core/check.h"

using namespace parallama;
using namespace parallama::bench;

TEST(ServeMetrics, PercentileInterpolatesBetweenClosestRanks) {
  const std::vector<double> v = {4, 1, 3, 2};  // sorted 1 2 3 4
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);   // rank 1.5
  EXPECT_DOUBLE_EQ(percentile(v, 99), 3.97);  // rank 2.97: 3 + 0.97
  EXPECT_DOUBLE_EQ(percentile({7}, 90), 7);
  EXPECT_DOUBLE_EQ(percentile({}, 50), 0);
  EXPECT_THROW(percentile(v, 101), Error);
}

TEST(ServeMetrics, ParseGoodput) {
  const auto m = parse_goodput("ttft:500 tpot:50.5  e2el:3000");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m.at("ttft"), 500);
  EXPECT_EQ(m.at("tpot"), 50.5);
  EXPECT_EQ(m.at("e2el"), 3000);
  EXPECT_TRUE(parse_goodput("").empty());
  for (const char* bad : {"ttft=5", "itl:5", "ttft:", "ttft:-1", "ttft:abc", "ttft:5ms", "ttft:nan"})
    EXPECT_THROW(parse_goodput(bad), Error) << bad;
}

namespace {
// A: 5 tokens, TTFT 100 ms, E2EL 500 ms, gaps 4 x 100 ms -> TPOT 400 / 4 = 100 ms
// B: 1 token,  TTFT 300 ms, E2EL 300 ms                  -> no TPOT
// C: 3 tokens, TTFT 200 ms, E2EL 1000 ms, gaps 500, 300  -> TPOT 800 / 2 = 400 ms
// D: failed
std::vector<RequestRecord> four_requests() {
  RequestRecord a{true, "", 10, 5, 0.1, 0.5, {0.1, 0.1, 0.1, 0.1}};
  RequestRecord b{true, "", 20, 1, 0.3, 0.3, {}};
  RequestRecord c{true, "", 30, 3, 0.2, 1.0, {0.5, 0.3}};
  RequestRecord d;
  d.error = "HTTP 500";
  return {a, b, c, d};
}
}  // namespace

TEST(ServeMetrics, CountsThroughputsAndPerMetricStatistics) {
  MetricOptions opt;
  opt.metrics = {"ttft", "tpot", "itl", "e2el"};
  opt.percentiles = {50, 99};
  const auto j = compute_metrics(four_requests(), 2.0, opt);
  EXPECT_EQ(j["completed"], 3);
  EXPECT_EQ(j["failed"], 1);
  EXPECT_EQ(j["errors"]["HTTP 500"], 1);
  EXPECT_EQ(j["total_input_tokens"], 60);
  EXPECT_EQ(j["total_output_tokens"], 9);
  EXPECT_DOUBLE_EQ(j["request_throughput"], 1.5);       // 3 / 2 s
  EXPECT_DOUBLE_EQ(j["output_throughput"], 4.5);        // 9 / 2 s
  EXPECT_DOUBLE_EQ(j["total_token_throughput"], 34.5);  // 69 / 2 s
  EXPECT_FALSE(j.contains("request_goodput"));
  // TTFT 100, 300, 200 ms: mean 200, std sqrt(20000 / 3), p99 at rank 1.98: 200 + 0.98 x 100.
  EXPECT_NEAR(j["mean_ttft_ms"], 200, 1e-9);
  EXPECT_NEAR(j["median_ttft_ms"], 200, 1e-9);
  EXPECT_NEAR(j["std_ttft_ms"], std::sqrt(20000.0 / 3), 1e-9);
  EXPECT_NEAR(j["p99_ttft_ms"], 298, 1e-9);
  // TPOT 100, 400 ms (the one-token request has none): p99 at rank 0.99.
  EXPECT_NEAR(j["mean_tpot_ms"], 250, 1e-9);
  EXPECT_NEAR(j["median_tpot_ms"], 250, 1e-9);
  EXPECT_NEAR(j["p99_tpot_ms"], 397, 1e-9);
  // ITL 100 x 4, 500, 300: mean 200; sorted 100 100 100 100 300 500, median at rank 2.5 = 100,
  // p99 at rank 4.95 = 300 + 0.95 x 200.
  EXPECT_NEAR(j["mean_itl_ms"], 200, 1e-9);
  EXPECT_NEAR(j["median_itl_ms"], 100, 1e-9);
  EXPECT_NEAR(j["p99_itl_ms"], 490, 1e-9);
  EXPECT_NEAR(j["p50_itl_ms"], 100, 1e-9);
  // E2EL 500, 300, 1000.
  EXPECT_NEAR(j["mean_e2el_ms"], 600, 1e-9);
  EXPECT_NEAR(j["median_e2el_ms"], 500, 1e-9);
}

TEST(ServeMetrics, OneTokenOutputHasNoTpot) {
  RequestRecord one{true, "", 4, 1, 0.05, 0.05, {}};
  const auto j = compute_metrics({one}, 1.0, MetricOptions{});
  EXPECT_EQ(j["mean_tpot_ms"], 0.0);  // no value at all: vLLM reports 0
  EXPECT_NEAR(j["mean_ttft_ms"], 50, 1e-9);
}

TEST(ServeMetrics, GoodputCountsRequestsMeetingEverySlo) {
  MetricOptions opt;
  // A meets both; B misses TTFT (300 > 250); C misses TPOT (400 > 150): 1 good / 2 s.
  opt.goodput_slo_ms = {{"ttft", 250}, {"tpot", 150}};
  EXPECT_DOUBLE_EQ(compute_metrics(four_requests(), 2.0, opt)["request_goodput"], 0.5);
  // TTFT 350: B is good too (a one-token request meets any TPOT SLO, as in vLLM): 2 / 2 s.
  opt.goodput_slo_ms = {{"ttft", 350}, {"tpot", 150}};
  EXPECT_DOUBLE_EQ(compute_metrics(four_requests(), 2.0, opt)["request_goodput"], 1.0);
  // E2EL 600 alone: A (500) and B (300), not C (1000); the failed request never counts.
  opt.goodput_slo_ms = {{"e2el", 600}};
  EXPECT_DOUBLE_EQ(compute_metrics(four_requests(), 2.0, opt)["request_goodput"], 1.0);
  opt.metrics = {"ttft", "bogus"};
  EXPECT_THROW(compute_metrics(four_requests(), 2.0, opt), Error);
}

namespace {
struct Moments {
  double mean, cv2;  // of the gaps
};
Moments gap_moments(const std::vector<double>& t) {
  std::vector<double> g;
  for (size_t i = 1; i < t.size(); ++i) g.push_back(t[i] - t[i - 1]);
  const double m = std::accumulate(g.begin(), g.end(), 0.0) / g.size();
  double v = 0;
  for (double x : g) v += (x - m) * (x - m);
  v /= g.size();
  return {m, v / (m * m)};
}
}  // namespace

TEST(Arrivals, PoissonAndGammaHaveTheRateAndTheBurstiness) {
  // 20000 gaps: the mean's relative error is CV / sqrt(20000) (0.7% Poisson,
  // 1.4% at burstiness 0.25); the tolerances are about 4 of those.
  for (double burstiness : {1.0, 0.25, 4.0}) {
    const auto t = arrival_times(20001, 4.0, burstiness, 7);
    const Moments m = gap_moments(t);
    EXPECT_NEAR(m.mean, 0.25, 0.25 * (burstiness < 1 ? 0.06 : 0.03)) << burstiness;
    // Gamma with shape k: squared coefficient of variation 1 / k.
    EXPECT_NEAR(m.cv2, 1.0 / burstiness, 0.15 / burstiness) << burstiness;
    EXPECT_EQ(t[0], 0.0);
    for (size_t i = 1; i < t.size(); ++i) ASSERT_GE(t[i], t[i - 1]);
  }
}

TEST(Arrivals, SeedReproducesAndInfiniteRateSendsAllAtOnce) {
  EXPECT_EQ(arrival_times(100, 2.0, 1.0, 42), arrival_times(100, 2.0, 1.0, 42));
  EXPECT_NE(arrival_times(100, 2.0, 1.0, 42), arrival_times(100, 2.0, 1.0, 43));
  EXPECT_EQ(arrival_times(5, INFINITY, 1.0, 1), std::vector<double>(5, 0.0));
  EXPECT_EQ(arrival_times(3, 0, 1.0, 1), std::vector<double>(3, 0.0));
  EXPECT_TRUE(arrival_times(0, 2.0, 1.0, 1).empty());
  EXPECT_THROW(arrival_times(3, 2.0, 0.0, 1), Error);
  EXPECT_THROW(arrival_times(3, 2.0, -1.0, 1), Error);
}
