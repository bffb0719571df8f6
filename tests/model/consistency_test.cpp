// Properties of the forward pass that hold whatever the weights: prefill in
// one batch equals feeding the prompt token by token, and a sequence's logits
// do not depend on which other sequences share its batch.
#include <gtest/gtest.h>

#include <cmath>

#include "core/check.h"
#include "engine/engine.h"
#include "model/synthetic_model.h"
#include "test_util.h"

using namespace parallama;

namespace {

std::vector<float> run(Engine& e, const std::vector<std::vector<int32_t>>& seqs, bool stepwise) {
  const int32_t V = e.config().n_vocab;
  std::vector<std::vector<int32_t>> tables(seqs.size());
  BlockAllocator alloc(e.kv().shape().n_blocks);
  for (size_t i = 0; i < seqs.size(); ++i)
    EXPECT_TRUE(alloc.reserve(tables[i], int32_t(seqs[i].size()), e.kv().block_size()));
  std::vector<float> out, logits;
  Batch b;
  if (!stepwise) {
    for (size_t i = 0; i < seqs.size(); ++i)
      b.add_seq(seqs[i].data(), int32_t(seqs[i].size()), 0, &tables[i]);
    e.forward(b, logits);
    out = logits;
  } else {
    for (size_t i = 0; i < seqs.size(); ++i) {
      for (size_t t = 0; t < seqs[i].size(); ++t) {
        b.clear();
        b.add_seq(&seqs[i][t], 1, int32_t(t), &tables[i]);
        e.forward(b, logits);
      }
      out.insert(out.end(), logits.begin(), logits.begin() + V);
    }
  }
  for (auto& t : tables) alloc.release(t);
  return out;
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return m / scale;
}

void check_model(const std::string& path) {
  EngineOptions opt;
  opt.threads = 2;
  opt.n_ctx = 512;
  auto e = Engine::load(path, opt);
  const int32_t V = e->config().n_vocab;
  std::vector<std::vector<int32_t>> seqs = {{1, 5, 9, 200, 17, 33, 250, 8, 4, 3, 2, 100, 77, 66, 55, 44, 33, 22},
                                            {7, 8},
                                            {42, 43, 44, 45, 46}};
  for (auto& s : seqs)
    for (auto& t : s) t %= V;
  auto batched = run(*e, seqs, false);
  auto stepwise = run(*e, seqs, true);
  // Activations are quantized per row in both paths; only summation order differs.
  EXPECT_LT(max_rel_diff(batched, stepwise), 2e-3) << path;
}

}  // namespace

TEST(ForwardConsistency, PrefillEqualsStepwiseOnDefaultModel) {
  const std::string m = test::default_model_path();
  if (m.empty()) FAIL() << test::missing_model_message();
  check_model(m);
}

TEST(ForwardConsistency, PrefillEqualsStepwiseOnSyntheticModels) {
  for (GgmlType t : {GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_1}) {
    SyntheticModelSpec s;
    s.weight_type = t;
    const std::string p = test::temp_path(std::string("consistency_") + type_name(t) + ".gguf");
    write_synthetic_model(p, s);
    check_model(p);
  }
}

// A malformed batch is refused with an error instead of reading out of bounds,
// also when every thread shard refuses it (none may wait for the others).
TEST(ForwardConsistency, MalformedBatchIsRefused) {
  SyntheticModelSpec s;
  const std::string p = test::temp_path("malformed_batch.gguf");
  write_synthetic_model(p, s);
  for (int shards : {1, 2}) {
    EngineOptions opt;
    opt.threads = shards;
    opt.thread_shards = shards;
    opt.n_ctx = 64;
    auto e = Engine::load(p, opt);
    ASSERT_EQ(e->thread_shards(), shards);
    std::vector<int32_t> table;
    BlockAllocator alloc(e->kv().shape().n_blocks);
    ASSERT_TRUE(alloc.reserve(table, 8, e->kv().block_size()));
    std::vector<float> logits;
    const std::vector<int32_t> ids = {1, 2, 3, 4};
    Batch b;
    b.add_seq(ids.data(), 4, 0, &table);
    b.seqs[0].n_tokens = 3;  // does not cover the 4th token
    EXPECT_THROW(e->forward(b, logits), Error);
    Batch c;
    c.add_seq(ids.data(), 4, 0, &table);
    c.tokens[2] = 1 << 30;  // outside the vocabulary
    EXPECT_THROW(e->forward(c, logits), Error);
    Batch d;
    d.add_seq(ids.data(), 4, 30, &table);  // needs 34 positions, table covers 16
    EXPECT_THROW(e->forward(d, logits), Error);
    // The engine still works after the refusals.
    Batch ok;
    ok.add_seq(ids.data(), 4, 0, &table);
    e->forward(ok, logits);
    EXPECT_EQ(logits.size(), static_cast<size_t>(e->config().n_vocab));
    alloc.release(table);
  }
}
