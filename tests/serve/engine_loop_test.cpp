// The serving engine end to end on one rank: batch invariance (a request's
// tokens do not depend on what runs beside it: alone, 16 at once, staggered,
// chunked, with a shared prefix, preempted and recomputed), every block free at
// the end, aborts, refusals and stop conditions.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <mutex>
#include <thread>
#include <string>

#include "core/check.h"
#include "model/synthetic_model.h"
#include "serve/engine_loop.h"
#include "serve/generate.h"
#include "serve_workload.h"
#include "test_util.h"

using namespace parallama;

namespace {

std::unique_ptr<Engine> load(const std::string& path, int32_t kv_blocks, int threads = 2) {
  EngineOptions opt;
  opt.threads = threads;
  opt.kv_blocks = kv_blocks;
  return Engine::load(path, opt);
}

std::vector<std::vector<int32_t>> solo(Engine& e, const std::vector<Request>& reqs) {
  std::vector<std::vector<int32_t>> out;
  for (const Request& r : reqs) {
    auto res = generate(e, {r});
    EXPECT_EQ(res[0].finish_reason, "length");
    EXPECT_EQ(static_cast<int32_t>(res[0].tokens.size()), r.max_tokens);
    out.push_back(res[0].tokens);
  }
  return out;
}

// Runs reqs through a ServingEngine in waves; every block must be free at the end.
std::vector<std::vector<int32_t>> staggered(Engine& e, const std::vector<Request>& reqs, const ServeConfig& cfg,
                                            size_t per_wave, int gap, ServeStats* st) {
  ServingEngine se(e, cfg);
  auto out = test::run_in_waves(se, reqs, per_wave, gap);
  *st = se.stats();
  EXPECT_EQ(se.pool().n_free(), se.pool().n_blocks());  // cached ones included: refcount 0
  for (int32_t b = 0; b < se.pool().n_blocks(); ++b) EXPECT_EQ(se.pool().refcount(b), 0);
  return out;
}

void check_invariance(const std::string& path) {
  SCOPED_TRACE(path);
  auto big = load(path, 256);
  const auto reqs = test::mixed_requests(big->config().n_vocab);
  const auto want = solo(*big, reqs);

  // All at once (admitted together: nothing is cached yet when they start).
  ServeStats st;
  auto together = staggered(*big, reqs, ServeConfig{}, reqs.size(), 1, &st);
  EXPECT_EQ(together, want) << "16 at once";

  // Staggered in waves, prompts chunked (12 tokens a step): the later requests
  // of the shared prefix find it cached.
  ServeConfig chunked;
  chunked.sched.max_num_batched_tokens = 12;
  auto stag = staggered(*big, reqs, chunked, 2, 6, &st);
  EXPECT_EQ(stag, want) << "staggered and chunked";
  EXPECT_GT(st.prefix.hits, 0) << "the shared prefix is served from the cache";

  // A pool so small that sequences are preempted and recomputed, with and
  // without prefix caching.
  auto small = load(path, 20);  // 320 tokens for 16 requests of up to ~140
  for (bool prefix : {false, true}) {
    ServeConfig c;
    c.prefix_caching = prefix;
    auto tight = staggered(*small, reqs, c, 8, 2, &st);
    EXPECT_EQ(tight, want) << "small KV pool, prefix caching " << prefix;
    EXPECT_GT(st.preemptions, 0);
    if (!prefix) {
      EXPECT_EQ(st.prefix.hits, 0);
    }
  }
  EXPECT_LE(st.peak_kv_usage, 1.0);
}

std::string synthetic_path() {
  SyntheticModelSpec s;
  s.weight_type = GgmlType::Q4_1;
  s.n_head = 4, s.n_head_kv = 2, s.head_dim = 32, s.n_ff = 128, s.n_ctx = 512;
  const std::string p = test::temp_path("serve_synthetic.gguf");
  write_synthetic_model(p, s);
  return p;
}

}  // namespace

TEST(ServingEngine, BatchInvarianceOnSyntheticModel) { check_invariance(synthetic_path()); }

TEST(ServingEngine, BatchInvarianceOnDefaultModel) {
  const std::string m = test::default_model_path();
  ASSERT_FALSE(m.empty()) << "default model not found: run scripts/fetch_model.sh";
  check_invariance(m);
}

TEST(ServingEngine, AbortFreesBlocksWithinOneStepAndDisturbsNothing) {
  auto e = load(synthetic_path(), 64);
  auto reqs = test::mixed_requests(e->config().n_vocab);
  reqs.resize(3);
  reqs[1].max_tokens = 200;
  const auto want = solo(*e, {reqs[0], reqs[2]});
  ServingEngine se(*e, ServeConfig{});
  std::vector<std::vector<int32_t>> got(3);
  FinishReason aborted_with = FinishReason::kNone;
  uint64_t ids[3];
  for (int i = 0; i < 3; ++i)
    ids[i] = se.add_request(reqs[i], [&, i](const TokenEvent& ev) {
      if (ev.token >= 0) got[i].push_back(ev.token);
      if (i == 1 && ev.finish != FinishReason::kNone) aborted_with = ev.finish;
    });
  while (got[1].size() < 3) se.step();
  const int32_t held = se.pool().n_blocks() - se.pool().n_free();
  se.abort(ids[1]);
  se.step();
  EXPECT_EQ(aborted_with, FinishReason::kAbort);
  EXPECT_LT(se.pool().n_blocks() - se.pool().n_free(), held);
  EXPECT_EQ(se.stats().aborted, 1);
  while (se.step()) {
  }
  EXPECT_EQ(got[0], want[0]);
  EXPECT_EQ(got[2], want[1]);
  EXPECT_EQ(se.pool().n_free(), se.pool().n_blocks());
  se.abort(ids[1]);  // finished ids are ignored
  se.abort(12345);
  EXPECT_FALSE(se.step());
}

TEST(ServingEngine, RefusesWhatCannotRunAndKeepsServing) {
  auto e = load(synthetic_path(), 4);  // 64 tokens in all
  ServingEngine se(*e, ServeConfig{});
  EXPECT_EQ(se.max_model_len(), 64);
  auto expect_refused = [&](Request r, const std::string& words) {
    try {
      se.add_request(r, {});
      ADD_FAILURE() << "accepted: " << words;
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(words), std::string::npos) << err.what();
    }
  };
  Request r;
  expect_refused(r, "empty");
  r.prompt.assign(64, 5);
  expect_refused(r, "the context holds 64");
  r.prompt = {5, 1 << 20};
  expect_refused(r, "outside the vocabulary");
  r.prompt = {5, 6};
  r.sampling.top_p = 2.0f;
  expect_refused(r, "top_p");
  r.sampling = {};
  r.max_tokens = -1;
  expect_refused(r, "max_tokens");
  // A max-model-len beyond the pool is refused when the engine starts.
  ServeConfig too_long;
  too_long.max_model_len = 65;
  EXPECT_THROW(ServingEngine(*e, too_long), Error);
  // Still serving: a valid request runs to the context's end.
  r.max_tokens = 1000;
  r.ignore_eos = true;
  std::vector<int32_t> out;
  FinishReason why = FinishReason::kNone;
  se.add_request(r, [&](const TokenEvent& ev) {
    out.push_back(ev.token);
    why = ev.finish;
  });
  while (se.step()) {
  }
  EXPECT_EQ(out.size(), 62u);  // 2 prompt tokens + 62 = the 64-token context
  EXPECT_EQ(why, FinishReason::kLength);
}

TEST(ServingEngine, StopTokensAndZeroMaxTokens) {
  auto e = load(synthetic_path(), 64);
  Request r;
  r.prompt = {10, 11, 12, 13};
  r.max_tokens = 12;
  r.ignore_eos = true;
  auto free_run = generate(*e, {r});
  ASSERT_EQ(free_run[0].tokens.size(), 12u);
  // Stop at the 5th generated token's id: the output ends with it, reason "stop".
  Request s = r;
  s.stop_token_ids = {free_run[0].tokens[4]};
  auto stopped = generate(*e, {s});
  size_t first = 0;
  while (free_run[0].tokens[first] != free_run[0].tokens[4]) ++first;
  EXPECT_EQ(stopped[0].finish_reason, "stop");
  EXPECT_EQ(stopped[0].tokens,
            std::vector<int32_t>(free_run[0].tokens.begin(), free_run[0].tokens.begin() + first + 1));
  Request z = r;
  z.max_tokens = 0;
  auto none = generate(*e, {z, r});
  EXPECT_TRUE(none[0].tokens.empty());
  EXPECT_EQ(none[0].finish_reason, "length");
  EXPECT_EQ(none[1].tokens, free_run[0].tokens);
}

// The engine loop on this thread, requests and aborts from others: every
// request is accounted for, the loop returns after request_stop(), nothing leaks.
TEST(ServingEngine, RequestsFromOtherThreadsWhileTheLoopRuns) {
  auto e = load(synthetic_path(), 64);
  ServingEngine se(*e, ServeConfig{});
  std::mutex mu;
  std::map<uint64_t, FinishReason> done;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c)
    clients.emplace_back([&, c] {
      for (int i = 0; i < 5; ++i) {
        Request r;
        r.prompt = {3, 4, 5, static_cast<int32_t>(10 + c), static_cast<int32_t>(20 + i)};
        r.max_tokens = 10 + i;
        r.ignore_eos = true;
        const uint64_t id = se.add_request(r, [&](const TokenEvent& ev) {
          if (ev.finish == FinishReason::kNone) return;
          std::lock_guard<std::mutex> lock(mu);
          done[ev.request_id] = ev.finish;
        });
        if (i == 2) se.abort(id);
      }
    });
  std::thread stopper([&] {
    for (auto& t : clients) t.join();
    se.request_stop();
  });
  se.run();  // returns once stopped and everything has finished
  stopper.join();
  ASSERT_EQ(done.size(), 20u);
  int aborted = 0;
  for (const auto& [id, why] : done) aborted += why == FinishReason::kAbort;
  EXPECT_LE(aborted, 4);  // an abort may come after its request finished
  EXPECT_EQ(se.stats().finished + se.stats().aborted, 20);
  EXPECT_EQ(se.pool().n_free(), se.pool().n_blocks());
}

// Log-probabilities: the first token's, against a log-softmax of the logits of
// the same prompt computed here from one forward pass; greedy picks the top one.
TEST(ServingEngine, LogprobsAreTheLogSoftmaxOfTheLogits) {
  auto e = load(synthetic_path(), 64);
  const int32_t V = e->config().n_vocab;
  Request r;
  r.prompt = {10, 11, 12, 13, 14};
  r.max_tokens = 3;
  r.ignore_eos = true;
  r.logprobs = 4;
  std::vector<TokenEvent> evs;
  ServingEngine se(*e, ServeConfig{});
  se.add_request(r, [&](const TokenEvent& ev) { evs.push_back(ev); });
  while (se.step()) {
  }
  ASSERT_EQ(evs.size(), 3u);
  BlockAllocator alloc(e->kv().shape().n_blocks);
  std::vector<int32_t> table;
  ASSERT_TRUE(alloc.reserve(table, 5, e->kv().block_size()));
  Batch b;
  b.add_seq(r.prompt.data(), 5, 0, &table);
  std::vector<float> logits;
  e->forward(b, logits);
  double z = 0;
  for (int32_t v = 0; v < V; ++v) z += std::exp(double(logits[v]));
  const int32_t t0 = evs[0].token;
  EXPECT_NEAR(evs[0].logprob, std::log(std::exp(double(logits[t0])) / z), 1e-4);
  for (const TokenEvent& ev : evs) {
    ASSERT_EQ(ev.top_logprobs.size(), 4u);
    EXPECT_EQ(ev.top_logprobs[0].first, ev.token);  // greedy
    EXPECT_FLOAT_EQ(ev.top_logprobs[0].second, ev.logprob);
    for (size_t i = 1; i < 4; ++i) EXPECT_LE(ev.top_logprobs[i].second, ev.top_logprobs[i - 1].second);
  }
  for (const auto& [id, lp] : evs[0].top_logprobs)
    EXPECT_NEAR(lp, std::log(std::exp(double(logits[id])) / z), 1e-4);
  r.logprobs = 21;
  EXPECT_THROW(se.add_request(r, {}), Error);
}

TEST(ServingEngine, SampledTokensPackAndUnpack) {
  std::vector<SampledToken> t(2);
  t[0].token = 5;
  t[0].logprob = -0.25f;
  t[0].top = {{5, -0.25f}, {9, -2.5f}};
  t[1].token = 7;
  const auto bytes = StepExecutor::pack(t);
  const auto u = StepExecutor::unpack(bytes.data(), bytes.size());
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[0].token, 5);
  EXPECT_EQ(u[0].logprob, -0.25f);
  EXPECT_EQ(u[0].top, t[0].top);
  EXPECT_EQ(u[1].token, 7);
  EXPECT_TRUE(u[1].top.empty());
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_THROW(StepExecutor::unpack(bytes.data(), n), Error);
}
