// RowParallelLinear: column shards whose partial sums add up to the whole layer.
// kExact (any quantized matrix in the file): the shard sums, added in double and
// rounded once, give the unsplit layer's floats bit for bit. kFloat (float-only
// files): float partials agree with the unsplit layer to float rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "gguf/gguf_file.h"
#include "model/linear.h"
#include "model/synthetic_model.h"
#include "small_model.h"
#include "test_util.h"

using namespace parallama;

namespace {

std::unique_ptr<GgufFile> synth(GgmlType weights, const std::string& name) {
  return test::small_model(weights, name);
}

std::vector<float> input(int64_t n_tok, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(n_tok * n);
  for (float& v : x) v = nd(rng);
  return x;
}

// Sum of the shard outputs [c_i, c_i+1) of ffn_down (n_ff -> n_embd) computed
// without communication (each shard's partial), against the whole layer.
struct Split {
  std::vector<float> whole, summed;
};
Split split_down(const GgufFile& f, RowReduction red, std::vector<int64_t> cuts, int64_t n_tok) {
  const int64_t n_ff = 256, n_embd = 128;
  ThreadPool pool(2);
  const auto x = input(n_tok, n_ff, 7);
  Split out;
  out.whole.resize(n_tok * n_embd);
  RowParallelLinear all = RowParallelLinear::load(f, "blk.0.ffn_down", n_ff, n_embd, 0, n_ff, red);
  all.forward(x.data(), n_tok, out.whole.data(), pool, nullptr);
  std::vector<double> sum(n_tok * n_embd, 0.0);
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const int64_t c0 = cuts[i], c1 = cuts[i + 1];
    RowParallelLinear part = RowParallelLinear::load(f, "blk.0.ffn_down", n_ff, n_embd, c0, c1, red);
    std::vector<float> xs(n_tok * (c1 - c0)), y(n_tok * n_embd);
    for (int64_t t = 0; t < n_tok; ++t)
      std::copy_n(x.data() + t * n_ff + c0, c1 - c0, xs.data() + t * (c1 - c0));
    part.forward(xs.data(), n_tok, y.data(), pool, nullptr);
    for (size_t k = 0; k < y.size(); ++k) sum[k] += y[k];
  }
  out.summed.assign(sum.begin(), sum.end());
  return out;
}

}  // namespace

TEST(RowParallel, ReductionModeFollowsTheFilesMatrixTypes) {
  EXPECT_EQ(row_reduction_for(*synth(GgmlType::F16, "rp_f16.gguf")), RowReduction::kFloat);
  EXPECT_EQ(row_reduction_for(*synth(GgmlType::F32, "rp_f32.gguf")), RowReduction::kFloat);
  EXPECT_EQ(row_reduction_for(*synth(GgmlType::Q4_0, "rp_q40.gguf")), RowReduction::kExact);
  EXPECT_EQ(row_reduction_for(*synth(GgmlType::Q8_0, "rp_q80.gguf")), RowReduction::kExact);
}

TEST(RowParallel, FloatShardsSumToTheWholeLayer) {
  const auto f = synth(GgmlType::F16, "rp_f16_sum.gguf");
  for (int64_t n_tok : {1, 5}) {
    const Split s = split_down(*f, RowReduction::kFloat, {0, 64, 160, 256}, n_tok);
    double max_rel = 0;
    for (size_t k = 0; k < s.whole.size(); ++k) {
      ASSERT_TRUE(std::isfinite(s.whole[k]));
      max_rel = std::max(max_rel, std::abs(s.summed[k] - s.whole[k]) / (std::abs(s.whole[k]) + 1e-3));
    }
    EXPECT_LT(max_rel, 1e-4) << "n_tok " << n_tok;
    EXPECT_GT(std::abs(s.whole[0]), 0.0f);
  }
}

TEST(RowParallel, ExactShardsAtBlockBoundariesGiveTheSameFloats) {
  const auto f = synth(GgmlType::Q8_0, "rp_q80_sum.gguf");
  for (int64_t n_tok : {1, 5}) {
    // Partials come back rounded to float here (no all-reduce), so compare with a
    // tolerance; the bitwise property of the double partials is tested in ops.
    const Split s = split_down(*f, RowReduction::kExact, {0, 64, 160, 256}, n_tok);
    for (size_t k = 0; k < s.whole.size(); ++k)
      EXPECT_NEAR(s.summed[k], s.whole[k], 1e-4 * (std::abs(s.whole[k]) + 1e-3));
  }
}
