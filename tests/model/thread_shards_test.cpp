// Thread shards (EngineOptions::thread_shards) against one model on one thread:
// where the split is exact, every layout must give the same logits bit for bit,
// over a prompt batch, decode steps and a two-sequence batch; where it is not
// (float weights), the sums round differently and agree to float precision.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/check.h"
#include "engine/engine.h"
#include "model/llama.h"
#include "model/synthetic_model.h"
#include "test_util.h"

using namespace parallama;

namespace {

// Logits of a 13-token prompt (one batch), 6 greedy decode steps, then a batch
// of two sequences (one new prompt, one more decode step), concatenated.
std::vector<float> run(const std::string& path, int threads, int shards, int expect_shards) {
  EngineOptions opt;
  opt.threads = threads;
  opt.thread_shards = shards;
  opt.n_ctx = 128;
  auto e = Engine::load(path, opt);
  EXPECT_EQ(e->thread_shards(), expect_shards) << path << " threads " << threads;
  const int32_t V = e->config().n_vocab;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 13; ++i) prompt.push_back(1 + (i * 37) % (V - 1));
  std::vector<int32_t> t0, t1;
  BlockAllocator alloc(e->kv().shape().n_blocks);
  PL_CHECK(alloc.reserve(t0, 32, e->kv().block_size()));
  PL_CHECK(alloc.reserve(t1, 32, e->kv().block_size()));
  std::vector<float> all, logits;
  Batch b;
  b.add_seq(prompt.data(), 13, 0, &t0);
  e->forward(b, logits);
  all.insert(all.end(), logits.begin(), logits.end());
  int32_t pos = 13;
  for (int step = 0; step < 6; ++step, ++pos) {
    int32_t tok = 0;
    for (int32_t v = 1; v < V; ++v)
      if (logits[v] > logits[tok]) tok = v;
    b.clear();
    b.add_seq(&tok, 1, pos, &t0);
    e->forward(b, logits);
    all.insert(all.end(), logits.begin(), logits.end());
  }
  b.clear();
  int32_t tok = 5;
  b.add_seq(&tok, 1, pos, &t0);
  b.add_seq(prompt.data() + 3, 7, 0, &t1);
  e->forward(b, logits);
  all.insert(all.end(), logits.begin(), logits.end());
  alloc.release(t0);
  alloc.release(t1);
  return all;
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += a[i] != b[i];
  EXPECT_EQ(diff, 0u) << what << ": " << diff << " of " << a.size() << " logits differ";
}

std::string synth(const std::string& name, GgmlType t, int n_head, int n_head_kv, GgmlType embd = GgmlType::Q8_0) {
  SyntheticModelSpec s;
  s.weight_type = t;
  s.embd_type = embd;
  s.n_head = n_head;
  s.n_head_kv = n_head_kv;
  s.head_dim = 32;
  s.n_ff = 192;
  s.n_layer = 3;
  const std::string p = test::temp_path("thread_shards_" + name + ".gguf");
  write_synthetic_model(p, s);
  return p;
}

}  // namespace

// Quantized synthetic models whose splits fall on block boundaries: 2 and 3
// shards (query heads 6 over 2 KV heads, so 3 shards replicate a KV head), one
// and two threads per shard, and the auto choice.
TEST(ThreadShards, ExactSplitsMatchOneThreadBitForBit) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0}) {
    const std::string p = synth(type_name(t), t, 6, 2);
    const std::string what = std::string(type_name(t));
    const auto ref = run(p, 1, 1, 1);
    expect_same_bits(run(p, 2, 2, 2), ref, what + " 2 shards");
    expect_same_bits(run(p, 3, 3, 3), ref, what + " 3 shards");
    expect_same_bits(run(p, 4, 2, 2), ref, what + " 2 shards x 2 threads");
    expect_same_bits(run(p, 2, 1, 1), ref, what + " 1 shard, 2 threads");
    expect_same_bits(run(p, 2, -1, 2), ref, what + " auto");
    // Auto takes at most the 2 KV heads: 4 threads as 2 shards of 2, and 3
    // threads (2 does not divide them) as one model.
    expect_same_bits(run(p, 4, -1, 2), ref, what + " auto, 4 threads");
    expect_same_bits(run(p, 3, -1, 1), ref, what + " auto, 3 threads");
  }
}

TEST(ThreadShards, DefaultModelMatchesOneThreadBitForBit) {
  const std::string m = test::default_model_path();
  if (m.empty()) FAIL() << test::missing_model_message();
  const auto ref = run(m, 1, 1, 1);
  expect_same_bits(run(m, 2, -1, 2), ref, "auto (2 shards)");
  expect_same_bits(run(m, 3, 3, 3), ref, "3 shards");
}

// Float weights reduce in float: not exact, so auto keeps one shard; explicit
// shards agree to float rounding.
TEST(ThreadShards, FloatWeightsAgreeToRounding) {
  const std::string p = synth("f16", GgmlType::F16, 4, 2, GgmlType::F16);
  const auto f = GgufFile::open(p);
  ASSERT_FALSE(LlamaModel::split_is_exact(*f, ModelConfig::from_gguf(*f), 2));
  const auto ref = run(p, 1, 1, 1);
  const auto two = run(p, 2, 2, 2);
  run(p, 2, -1, 1);
  ASSERT_EQ(ref.size(), two.size());
  double max_diff = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(double(ref[i]) - two[i]));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  EXPECT_LT(max_diff, 1e-4 * std::max(1.0, scale));
}

TEST(ThreadShards, RefusesBadCounts) {
  const std::string p = synth("bad", GgmlType::Q8_0, 4, 2);
  EngineOptions opt;
  opt.threads = 3;
  opt.thread_shards = 2;  // does not divide the threads
  EXPECT_THROW(Engine::load(p, opt), Error);
  opt.threads = 8;
  opt.thread_shards = 8;  // more shards than the 4 heads
  EXPECT_THROW(Engine::load(p, opt), Error);
  opt.threads = 2;
  opt.thread_shards = 0;
  EXPECT_THROW(Engine::load(p, opt), Error);
}

// Engine::run_on_threads runs each ith in [0, threads) exactly once, whether the
// threads serve one model or several shards. (Which thread runs an ith is the
// pools' choice: a free caller may take a slow worker's ith, as in ThreadPool::run.)
TEST(ThreadShards, RunOnThreadsCoversEveryThreadOnce) {
  const std::string p = synth("run_on", GgmlType::Q8_0, 4, 2);
  for (auto [threads, shards] : {std::pair{1, 1}, {2, 1}, {2, 2}, {4, 2}, {3, 3}}) {
    EngineOptions opt;
    opt.threads = threads;
    opt.thread_shards = shards;
    opt.n_ctx = 32;
    auto e = Engine::load(p, opt);
    ASSERT_EQ(e->thread_shards(), shards);
    for (int rep = 0; rep < 3; ++rep) {
      std::vector<std::atomic<int>> hits(threads);
      std::atomic<int> bad_nth{0};
      e->run_on_threads([&](int ith, int nth) {
        if (nth != threads || ith < 0 || ith >= threads) {
          ++bad_nth;
          return;
        }
        ++hits[ith];
      });
      EXPECT_EQ(bad_nth.load(), 0) << threads << " threads, " << shards << " shards";
      for (int i = 0; i < threads; ++i) EXPECT_EQ(hits[i].load(), 1) << "ith " << i;
    }
  }
}
