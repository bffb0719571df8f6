// The serving simulator against queueing theory and timelines worked out by
// hand: M/D/1 waiting times, no queueing below one request per service time,
// pipeline overlap under PP, prefill chunking, preemption, and its speed.
#include "plan/simulator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <numeric>

#include "bench/arrivals.h"
#include "core/check.h"

using namespace parallama;
using namespace parallama::plan;

namespace {

SimConfig config(int32_t max_num_seqs, int32_t max_num_batched_tokens, int32_t kv_blocks, int pp = 1) {
  SimConfig c;
  c.sched.max_num_seqs = max_num_seqs;
  c.sched.max_num_batched_tokens = max_num_batched_tokens;
  c.kv_blocks = kv_blocks;
  c.pp = pp;
  return c;
}

StepTimeFn constant(int pp, double stage_s, double send_s = 0) {
  return [=](const StepShape&) { return uniform_step_cost(pp, stage_s, send_s); };
}

double mean_queue(const SimResult& r) {
  double q = 0;
  for (const auto& x : r.requests) q += x.queue_s;
  return q / static_cast<double>(r.requests.size());
}

// One server, deterministic service D (one step: the 16-token prompt in one
// chunk and its single output token), Poisson arrivals at rho / D: the mean
// wait before service is M/D/1's Wq = rho / (2 mu (1 - rho)) = rho D / (2 (1 - rho)).
// Waits are strongly correlated near saturation, so the sample mean converges
// slowly: over 20 seeds its RMS error was 2.6% (rho 0.5) and 8% (rho 0.8) at
// 20000 requests, 0.6% and 1.6% at 200000, where 5% is 3 standard errors or more.
void expect_md1(double rho, int64_t n, uint64_t seed) {
  const double D = 0.01;
  const auto reqs = make_requests(n, rho / D, 1.0, {16, 16}, {1, 1}, seed);
  const SimResult r = simulate(reqs, config(1, 2048, 64), constant(1, D));
  const double wq = rho * D / (2 * (1 - rho));
  EXPECT_NEAR(mean_queue(r), wq, 0.05 * wq) << "rho " << rho;
  // Every request: TTFT = its wait + D, one token.
  for (size_t i = 0; i < 100; ++i) {
    EXPECT_NEAR(r.requests[i].record.ttft_s, r.requests[i].queue_s + D, 1e-9);
    EXPECT_EQ(r.requests[i].record.output_len, 1);
  }
}

}  // namespace

TEST(PlanSimulator, MD1WaitingTimeAtHalfLoad) {
  expect_md1(0.5, 200000, 1);  // Wq = 0.5 x 10 ms / (2 x 0.5) = 5 ms
}

TEST(PlanSimulator, MD1WaitingTimeAtHighLoad) {
  expect_md1(0.8, 200000, 2);  // Wq = 0.8 x 10 ms / (2 x 0.2) = 20 ms
}

TEST(PlanSimulator, NoQueueingWhenArrivalsAreSpacedWiderThanAStep) {
  // 4 requests 2D apart, each one step of D: none waits; TTFT = E2EL = D; the last ends at 6D + D.
  const double D = 0.01;
  std::vector<SimRequest> reqs;
  for (int i = 0; i < 4; ++i) reqs.push_back({2 * D * i, 16, 1});
  const SimResult r = simulate(reqs, config(1, 2048, 64), constant(1, D));
  for (const auto& x : r.requests) {
    EXPECT_TRUE(x.record.success);
    EXPECT_EQ(x.queue_s, 0.0);
    EXPECT_NEAR(x.record.ttft_s, D, 1e-12);
    EXPECT_NEAR(x.record.latency_s, D, 1e-12);
  }
  EXPECT_NEAR(r.duration_s, 7 * D, 1e-12);
  EXPECT_EQ(r.steps, 4);
  const nlohmann::json s = summarize(r);
  EXPECT_EQ(s["completed"].get<int64_t>(), 4);
  EXPECT_NEAR(s["duration"].get<double>(), 0.07, 1e-12);
  EXPECT_NEAR(s["request_throughput"].get<double>(), 4 / 0.07, 1e-9);   // 4 requests in 7D
  EXPECT_NEAR(s["output_throughput"].get<double>(), 4 / 0.07, 1e-9);
  EXPECT_NEAR(s["mean_ttft_ms"].get<double>(), 10.0, 1e-9);
  EXPECT_NEAR(s["median_e2el_ms"].get<double>(), 10.0, 1e-9);
  EXPECT_NEAR(s["p99_e2el_ms"].get<double>(), 10.0, 1e-9);
  EXPECT_NEAR(s["stage_busy"][0].get<double>(), 4.0 / 7.0, 1e-12);  // busy 4D of 7D
  EXPECT_TRUE(s["keeps_up"].get<bool>());
  for (const char* k : {"median_ttft_ms", "p90_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "mean_e2el_ms",
                        "p90_e2el_ms", "pace", "mean_queue_ms", "failed"})
    EXPECT_TRUE(s.contains(k)) << k;
}

TEST(PlanSimulator, DecodeTokensComeOneStepApart) {
  // One request, prompt 16 in one chunk, 4 tokens: each step D, TTFT D, E2EL 4D, TPOT D, ITL D.
  const double D = 0.02;
  const SimResult r = simulate({{0.0, 16, 4}}, config(8, 2048, 64), constant(1, D));
  const auto& rec = r.requests[0].record;
  EXPECT_EQ(rec.output_len, 4);
  EXPECT_NEAR(rec.ttft_s, D, 1e-12);
  EXPECT_NEAR(rec.latency_s, 4 * D, 1e-12);
  ASSERT_EQ(rec.itl_s.size(), 3u);
  for (double g : rec.itl_s) EXPECT_NEAR(g, D, 1e-12);
  EXPECT_NEAR(summarize(r)["mean_tpot_ms"].get<double>(), 20.0, 1e-9);  // (4D - D) / 3
}

TEST(PlanSimulator, LongPromptsArePrefilledInChunks) {
  // Prompt 40 with a budget of 16 tokens: chunks 16, 16, 8 (the last samples the first
  // token), then one decode step. The step shapes, by hand:
  //   1: 16 prompt tokens at 0-15: context 16, keys 1 + ... + 16 = 136, no logits
  //   2: 16 at 16-31: context 32, keys 16 x 16 + 136 = 392, no logits
  //   3: 8 at 32-39: context 40, keys 8 x 32 + 36 = 292, one logit row
  //   4: decode at 40: context 41, keys 41, one logit row
  std::vector<StepShape> seen;
  const double D = 0.01;
  const SimResult r = simulate({{0.0, 40, 2}}, config(8, 16, 64), [&](const StepShape& s) {
    seen.push_back(s);
    return uniform_step_cost(1, D);
  });
  ASSERT_EQ(seen.size(), 4u);
  const int64_t prefill[] = {16, 16, 8, 0}, decode[] = {0, 0, 0, 1}, kv[] = {16, 32, 40, 41},
                pairs[] = {136, 392, 292, 41}, logits[] = {0, 0, 1, 1};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(seen[i].prefill_tokens, prefill[i]) << i;
    EXPECT_EQ(seen[i].decode_tokens, decode[i]) << i;
    EXPECT_EQ(seen[i].n_seqs, 1) << i;
    EXPECT_EQ(seen[i].kv_tokens_read, kv[i]) << i;
    EXPECT_EQ(seen[i].attn_pairs, pairs[i]) << i;
    EXPECT_EQ(seen[i].n_logits, logits[i]) << i;
  }
  EXPECT_NEAR(r.requests[0].record.ttft_s, 3 * D, 1e-12);
  EXPECT_NEAR(r.requests[0].record.latency_s, 4 * D, 1e-12);
}

TEST(PlanSimulator, OneRequestThroughAPipelineTakesTheSumOfItsStages) {
  // pp = 2, stages 3 ms and 5 ms, a 1 ms send: each token 3 + 1 + 5 = 9 ms after the step starts;
  // alone, a request's 3 tokens come at 9, 18 and 27 ms.
  StepCost c;
  c.stage_s = {0.003, 0.005};
  c.send_s = {0.001};
  c.latency_s = 0.009;
  const SimResult r = simulate({{0.0, 16, 3}}, config(8, 2048, 64, 2), [&](const StepShape&) { return c; });
  EXPECT_NEAR(r.requests[0].record.ttft_s, 0.009, 1e-12);
  EXPECT_NEAR(r.requests[0].record.latency_s, 0.027, 1e-12);
  EXPECT_EQ(r.steps, 3);
  // Stage busy: 3 x 3 ms and 3 x 5 ms of 27 ms.
  EXPECT_NEAR(r.stage_busy_s[0], 0.009, 1e-12);
  EXPECT_NEAR(r.stage_busy_s[1], 0.015, 1e-12);
}

TEST(PlanSimulator, PipelineDoublesThroughputAtSaturation) {
  // 200 requests at once, prompt 64, one output token, a budget of 64 tokens: every
  // micro-batch is one prompt. pp = 1 runs both halves of the model in one step of 2D:
  // 200 x 2D = 400D. pp = 2, stages of D: micro-batches overlap, one finishes every D
  // after the first at 2D: the last at 201D. Throughput ratio 400 / 201 = 1.990.
  const double D = 0.01;
  std::vector<SimRequest> reqs(200, SimRequest{0.0, 64, 1});
  const SimResult one = simulate(reqs, config(256, 64, 4096, 1), constant(1, 2 * D));
  const SimResult two = simulate(reqs, config(256, 64, 4096, 2), constant(2, D));
  EXPECT_NEAR(one.duration_s, 400 * D, 1e-9);
  EXPECT_NEAR(two.duration_s, 201 * D, 1e-9);
  const double t1 = summarize(one)["request_throughput"].get<double>();
  const double t2 = summarize(two)["request_throughput"].get<double>();
  EXPECT_NEAR(t2 / t1, 400.0 / 201.0, 1e-9);
  // Both stages are busy 200D of 201D.
  EXPECT_NEAR(two.stage_busy_s[1] / two.duration_s, 200.0 / 201.0, 1e-9);
}

TEST(PlanSimulator, PreemptedSequencesAreRecomputedAndFinish) {
  // 4 requests of 16 + 48 tokens (4 blocks of 16 each at the end) in a pool of 8 blocks:
  // they cannot all grow, so the newest are preempted and recomputed; every one still
  // ends with its 48 tokens.
  std::vector<SimRequest> reqs(4, SimRequest{0.0, 16, 48});
  const SimResult r = simulate(reqs, config(4, 2048, 8), constant(1, 0.01));
  EXPECT_GT(r.preemptions, 0);
  for (const auto& x : r.requests) {
    EXPECT_TRUE(x.record.success);
    EXPECT_EQ(x.record.output_len, 48);
  }
  EXPECT_LE(r.peak_kv_usage, 1.0);
}

TEST(PlanSimulator, RefusesWhatTheEngineRefuses) {
  // max_model_len 32: a 32-token prompt leaves no room (refused); a 20-token prompt asking for
  // 20 tokens gets 12 (capped at 32, as the engine caps max_tokens).
  SimConfig c = config(8, 2048, 64);
  c.max_model_len = 32;
  const SimResult r = simulate({{0.0, 32, 4}, {0.0, 20, 20}}, c, constant(1, 0.01));
  EXPECT_FALSE(r.requests[0].record.success);
  EXPECT_FALSE(r.requests[0].record.error.empty());
  EXPECT_TRUE(r.requests[1].record.success);
  EXPECT_EQ(r.requests[1].record.output_len, 12);
  const nlohmann::json s = summarize(r);
  EXPECT_EQ(s["failed"].get<int64_t>(), 1);
  EXPECT_FALSE(s["keeps_up"].get<bool>());
  // Bad configurations and requests.
  EXPECT_THROW(simulate({{0.0, 16, 1}}, config(0, 2048, 64), constant(1, 0.01)), Error);
  EXPECT_THROW(simulate({{0.0, 16, 1}}, config(8, 2048, 0), constant(1, 0.01)), Error);
  EXPECT_THROW(simulate({{0.0, 0, 1}}, config(8, 2048, 64), constant(1, 0.01)), Error);
  EXPECT_THROW(simulate({{0.0, 16, 1}}, config(8, 2048, 64, 2), constant(1, 0.01)), Error);  // 1 stage for pp 2
  c.max_model_len = 64 * 16 + 1;
  EXPECT_THROW(simulate({{0.0, 16, 1}}, c, constant(1, 0.01)), Error);
}

TEST(PlanSimulator, KeepsUpBelowSaturationOnly) {
  // Service D per request alone; at rho 0.5 the queue is steady, at rho 2 it grows all run long.
  const double D = 0.01;
  const auto light = make_requests(2000, 0.5 / D, 1.0, {16, 16}, {1, 1}, 3);
  const auto heavy = make_requests(2000, 2.0 / D, 1.0, {16, 16}, {1, 1}, 3);
  EXPECT_TRUE(summarize(simulate(light, config(1, 2048, 64), constant(1, D)))["keeps_up"].get<bool>());
  EXPECT_FALSE(summarize(simulate(heavy, config(1, 2048, 64), constant(1, D)))["keeps_up"].get<bool>());
}

TEST(PlanSimulator, MakeRequests) {
  const auto a = make_requests(500, 4.0, 1.0, {100, 200}, {10, 20}, 7);
  const auto b = make_requests(500, 4.0, 1.0, {100, 200}, {10, 20}, 7);
  const auto t = bench::arrival_times(500, 4.0, 1.0, 7);  // bench serve's arrivals, same seed
  ASSERT_EQ(a.size(), 500u);
  bool varied = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].arrival_s, t[i]);
    EXPECT_EQ(a[i].prompt_len, b[i].prompt_len);
    EXPECT_GE(a[i].prompt_len, 100);
    EXPECT_LE(a[i].prompt_len, 200);
    EXPECT_GE(a[i].output_len, 10);
    EXPECT_LE(a[i].output_len, 20);
    varied = varied || a[i].prompt_len != a[0].prompt_len;
  }
  EXPECT_TRUE(varied);
  EXPECT_THROW(make_requests(10, 1.0, 1.0, {0, 10}, {1, 1}, 1), Error);
  EXPECT_THROW(make_requests(10, 1.0, 1.0, {10, 5}, {1, 1}, 1), Error);
}

TEST(PlanSimulator, ThousandRequestsSimulateWellUnderASecond) {
  // Llama-3-8B on one H100 (the cost model), 1000 requests at 8 req/s of 128-512 prompt and
  // 64-256 output tokens: a bound, generous on purpose (Release takes a few milliseconds).
  const Catalog cat = Catalog::load(std::string(PARALLAMA_SOURCE_DIR) + "/data/plan");
  const CostModel cm(shape_from_spec(cat.model("llama-3-8b"), "bf16"), {1, 1, {}},
                     make_hardware(cat, "h100-sxm", 1, 1, "nvlink4", "ib-ndr"));
  const MemoryFit fit = cm.memory_fit(2048, 256);
  ASSERT_TRUE(fit.fits) << fit.why_not;
  const auto reqs = make_requests(1000, 8.0, 1.0, {128, 512}, {64, 256}, 11);
  const auto t0 = std::chrono::steady_clock::now();
  const SimResult r = simulate(reqs, config(256, 2048, static_cast<int32_t>(fit.kv_tokens_capacity / 16)),
                               [&](const StepShape& s) { return cm.step(s); });
  const nlohmann::json s = summarize(r);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(wall, 1.0);
  EXPECT_EQ(s["completed"].get<int64_t>(), 1000);
  EXPECT_TRUE(s["keeps_up"].get<bool>());
}

TEST(PlanSimulator, DevicesSharingCoresComputeSlower) {
  // pp = 2, each stage 2 devices on 2 shared cores; stages 4 ms of which 1 ms
  // is waiting in TP collectives, no send. Alone in flight a micro-batch runs
  // at full speed (2 devices x 1 stage busy / 2 cores = 1): a lone request's
  // token comes at 8 ms. Two requests at once go in two micro-batches: the
  // first launches with nothing in flight (full speed: stage 0 ends at 4 ms,
  // stage 1 at 8); the second launches at 4 ms with one in flight, so its
  // compute is 2 x 2 / 2 = 2x slower: 3 x 2 + 1 = 7 ms per stage, stage 0 ends
  // at 11 and stage 1 at 18. Rank 0 runs stage 0, so it takes the first's
  // token at 11, when it is free again.
  StepCost c;
  c.stage_s = {0.004, 0.004};
  c.send_s = {0.0};
  c.tp_comm_s = {0.001, 0.001};
  c.latency_s = 0.008;
  SimConfig cfg = config(8, 2048, 64, 2);
  cfg.cores = 2;
  cfg.devices_per_stage = 2;
  const SimResult alone = simulate({{0.0, 16, 1}}, cfg, [&](const StepShape&) { return c; });
  EXPECT_NEAR(alone.requests[0].record.ttft_s, 0.008, 1e-12);
  const SimResult two = simulate({{0.0, 16, 1}, {0.0, 16, 1}}, cfg, [&](const StepShape&) { return c; });
  EXPECT_NEAR(two.requests[0].record.ttft_s, 0.011, 1e-12);
  EXPECT_NEAR(two.requests[1].record.ttft_s, 0.018, 1e-12);
  cfg.cores = -1;
  EXPECT_THROW(simulate({{0.0, 16, 1}}, cfg, [&](const StepShape&) { return c; }), Error);
}
