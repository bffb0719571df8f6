// Batch invariance of the forward pass: a sequence's logits do not depend on
// what else is in its batch, on how its prompt is cut into chunks, or on
// whether its leading blocks were computed by another sequence (a shared
// prefix). Bit for bit, for every weight type with kernels, on 1 and 2 threads.
// The serving engine's promise (same request, same tokens, whatever runs
// beside it) rests on this.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "model/synthetic_model.h"
#include "test_util.h"

using namespace parallama;

namespace {

struct Runner {
  std::unique_ptr<Engine> e;
  BlockAllocator alloc;
  int32_t V;
  Runner(const std::string& path, int threads, int shards)
      : e(load(path, threads, shards)), alloc(e->kv().shape().n_blocks), V(e->config().n_vocab) {}
  static std::unique_ptr<Engine> load(const std::string& path, int threads, int shards) {
    EngineOptions opt;
    opt.threads = threads;
    opt.thread_shards = shards;
    opt.n_ctx = 4096;
    return Engine::load(path, opt);
  }
  std::vector<int32_t> table(int32_t n) {
    std::vector<int32_t> t;
    EXPECT_TRUE(alloc.reserve(t, n, e->kv().block_size()));
    return t;
  }
  // Logits row `row` of a forward pass.
  std::vector<float> fwd(const Batch& b, int row) {
    std::vector<float> logits;
    e->forward(b, logits);
    return std::vector<float>(logits.begin() + int64_t(row) * V, logits.begin() + int64_t(row + 1) * V);
  }
};

std::vector<int32_t> tokens(int n, int salt, int32_t V) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(1 + (i * 37 + salt * 101) % (V - 1));
  return t;
}

bool same(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void check(const std::string& path, int threads, int shards) {
  SCOPED_TRACE(path + " threads " + std::to_string(threads) + " shards " + std::to_string(shards));
  Runner r(path, threads, shards);
  const int n = 150;  // crosses several 16-token blocks and two 64-position attention chunks
  const auto a = tokens(n, 0, r.V);

  // Reference: the prompt alone in one batch, then 3 decode steps alone.
  auto ta = r.table(n + 8);
  Batch b;
  b.add_seq(a.data(), n, 0, &ta);
  const auto ref_prefill = r.fwd(b, 0);
  std::vector<std::vector<float>> ref_decode;
  const int32_t dec[3] = {5, 77, 123};
  for (int s = 0; s < 3; ++s) {
    b.clear();
    b.add_seq(&dec[s], 1, n + s, &ta);
    ref_decode.push_back(r.fwd(b, 0));
  }

  // 1. The same prompt chunked (40 + 64 + 46), each chunk beside other sequences.
  auto tb = r.table(n + 8);
  auto tc = r.table(n + 8);
  const auto c = tokens(90, 1, r.V);
  b.clear();
  b.add_seq(a.data(), 40, 0, &tb, false);
  b.add_seq(c.data(), 30, 0, &tc);
  r.fwd(b, 0);
  b.clear();
  b.add_seq(c.data() + 30, 60, 30, &tc);
  b.add_seq(a.data() + 40, 64, 40, &tb, false);
  r.fwd(b, 0);
  b.clear();
  b.add_seq(a.data() + 104, 46, 104, &tb);
  EXPECT_TRUE(same(r.fwd(b, 0), ref_prefill)) << "chunked prefill";

  // 2. Decode steps of the chunked copy, in a batch of 16 decoding sequences
  //    (the others at various context lengths) and then beside a prefill chunk.
  std::vector<std::vector<int32_t>> others;
  std::vector<std::vector<int32_t>> tabs;
  for (int i = 0; i < 15; ++i) {
    others.push_back(tokens(5 + 13 * i, 2 + i, r.V));
    tabs.push_back(r.table(int32_t(others.back().size()) + 8));
    b.clear();
    b.add_seq(others[i].data(), int32_t(others[i].size()), 0, &tabs[i]);
    r.fwd(b, 0);
  }
  for (int s = 0; s < 3; ++s) {
    b.clear();
    for (int i = 0; i < 7; ++i) b.add_seq(&dec[s], 1, int32_t(others[i].size()) + s, &tabs[i]);
    b.add_seq(&dec[s], 1, n + s, &tb);
    for (int i = 7; i < 15; ++i) b.add_seq(&dec[s], 1, int32_t(others[i].size()) + s, &tabs[i]);
    if (s == 2) b.add_seq(c.data(), 50, 0, &tc);  // a new prefill beside the decodes
    EXPECT_TRUE(same(r.fwd(b, 7), ref_decode[s])) << "decode step " << s << " in a batch of 16";
  }

  // 3. A shared prefix: the first 128 positions (8 blocks) come from table ta,
  //    the rest is computed into fresh blocks.
  std::vector<int32_t> td(ta.begin(), ta.begin() + 8);
  std::vector<int32_t> extra = r.table(n + 8 - 128);
  td.insert(td.end(), extra.begin(), extra.end());
  b.clear();
  b.add_seq(a.data() + 128, n - 128, 128, &td);
  EXPECT_TRUE(same(r.fwd(b, 0), ref_prefill)) << "prefill after a shared prefix";
}

std::string synthetic(GgmlType t) {
  SyntheticModelSpec s;
  s.weight_type = t;
  s.n_head = 4, s.n_head_kv = 2, s.head_dim = 64, s.n_ff = 512, s.n_ctx = 512;
  const std::string p = test::temp_path(std::string("batch_invariance_") + type_name(t) + ".gguf");
  write_synthetic_model(p, s);
  return p;
}

}  // namespace

TEST(BatchInvariance, SyntheticModels) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4_K}) {
    const std::string p = synthetic(t);
    check(p, 1, 1);
    check(p, 2, 1);
  }
}

TEST(BatchInvariance, DefaultModel) {
  const std::string m = test::default_model_path();
  ASSERT_FALSE(m.empty()) << "default model not found: run scripts/fetch_model.sh";
  check(m, 1, 1);
  check(m, 2, 1);
  check(m, 2, -1);
}
