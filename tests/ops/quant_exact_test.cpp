// Exact (double-accumulated) dot products and matmul_exact.
// Expected values: the scalar exact reference, which is itself checked against
// the float reference kernels (ref::vec_dot, the format definition) and, for the
// symmetric types, against a double dot of the dequantized values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/check.h"
#include "core/thread_pool.h"
#include "ops/matmul_exact.h"
#include "ops/quant.h"
#include "ops/quant_exact.h"
#include "ops/quant_test_util.h"

namespace parallama {
namespace {

using test::random_floats;
using test::random_raw;
using test::weight_types;

std::vector<CpuIsa> all_isas() {
  std::vector<CpuIsa> v = {CpuIsa::SCALAR};
  for (CpuIsa i : test::simd_isas()) v.push_back(i);
  return v;
}

bool is_float(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// Element counts to try for type t: awkward block counts and, for float types, tails.
std::vector<int64_t> sizes(GgmlType t) {
  const int64_t bs = type_traits(t).block_size;
  if (is_float(t)) return {1, 3, 7, 8, 15, 16, 17, 31, 33, 100, 576, 1537};
  if (bs == 256) return {256, 512, 768, 1280, 2304};
  std::vector<int64_t> v;
  for (int64_t nb : {1, 2, 3, 4, 5, 7, 15, 16, 17, 18, 31, 33, 48}) v.push_back(nb * bs);
  return v;
}

// An activation row of vec_dot_type(t) from random floats.
std::vector<uint8_t> activation(GgmlType t, int64_t n, uint32_t seed) {
  const GgmlType at = vec_dot_type(t);
  const auto x = random_floats(n, seed);
  std::vector<uint8_t> a(row_size(at, n));
  quantize_row(at, x.data(), a.data(), n);
  return a;
}

// sum |w_i * a_i| over dequantized values: the scale of rounding errors.
double magnitude(GgmlType t, int64_t n, const void* w, const void* a) {
  std::vector<float> wf(n), af(n);
  dequantize_row(t, w, wf.data(), n);
  dequantize_row(vec_dot_type(t), a, af.data(), n);
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m += std::fabs(static_cast<double>(wf[i]) * af[i]);
  return m;
}

TEST(QuantExact, ReferenceMatchesFormatDefinition) {
  for (GgmlType t : weight_types()) {
    for (int64_t n : sizes(t)) {
      const auto w = random_raw(t, n, 7 + static_cast<uint32_t>(n));
      const auto a = activation(t, n, 99 + static_cast<uint32_t>(n));
      const double got = ref::vec_dot_exact(t, n, w.data(), a.data());
      const double m = magnitude(t, n, w.data(), a.data());
      // The float reference rounds each step in f32.
      EXPECT_NEAR(got, ref::vec_dot(t, n, w.data(), a.data()), 1e-5 * m + 1e-30)
          << type_name(t) << " n=" << n;
      if (t == GgmlType::Q4_0 || t == GgmlType::Q8_0 || is_float(t)) {
        // Symmetric types: the dequantized products are exact in double.
        std::vector<float> wf(n), af(n);
        dequantize_row(t, w.data(), wf.data(), n);
        dequantize_row(vec_dot_type(t), a.data(), af.data(), n);
        double want = 0;
        for (int64_t i = 0; i < n; ++i) want += static_cast<double>(wf[i]) * af[i];
        EXPECT_NEAR(got, want, 1e-14 * m + 1e-300) << type_name(t) << " n=" << n;
      }
    }
  }
}

TEST(QuantExact, EveryIsaMatchesScalarReference) {
  for (CpuIsa isa : all_isas()) {
    for (GgmlType t : weight_types()) {
      const ExactKernels& k = exact_kernels(t, isa);
      ASSERT_NE(k.dot, nullptr);
      ASSERT_NE(k.rows, nullptr);
      for (int64_t n : sizes(t)) {
        const auto w = random_raw(t, n, 3 + static_cast<uint32_t>(n));
        const auto a = activation(t, n, 5 + static_cast<uint32_t>(n));
        const double want = ref::vec_dot_exact(t, n, w.data(), a.data());
        const double got = k.dot(n, w.data(), a.data());
        const double m = magnitude(t, n, w.data(), a.data());
        EXPECT_NEAR(got, want, 1e-14 * m + 1e-300) << type_name(t) << " " << cpu_isa_name(isa) << " n=" << n;
        EXPECT_EQ(static_cast<float>(got), static_cast<float>(want))
            << type_name(t) << " " << cpu_isa_name(isa) << " n=" << n;
      }
    }
  }
}

TEST(QuantExact, RowsKernelEqualsDotBitForBit) {
  for (CpuIsa isa : all_isas()) {
    for (GgmlType t : weight_types()) {
      const ExactKernels& k = exact_kernels(t, isa);
      const int64_t n = sizes(t)[sizes(t).size() / 2];
      const int64_t n_rows = 37;
      const size_t stride = row_size(t, n);
      const auto w = random_raw(t, n * n_rows, 21);
      const auto a = activation(t, n, 22);
      std::vector<double> y(n_rows);
      for (int64_t r0 = 0; r0 < n_rows;) {  // uneven groups: 1, 2, 3, ...
        const int64_t nr = std::min<int64_t>(n_rows - r0, 1 + r0 % 5);
        k.rows(n, w.data() + r0 * stride, stride, nr, a.data(), y.data() + r0);
        r0 += nr;
      }
      for (int64_t r = 0; r < n_rows; ++r)
        EXPECT_EQ(y[r], k.dot(n, w.data() + r * stride, a.data())) << type_name(t) << " " << cpu_isa_name(isa);
      if (k.gemm) {  // batch form: 3 tokens (the middle one is `a`), rows 1..n_rows-1
        const size_t as = a.size();
        std::vector<uint8_t> acts = activation(t, n, 23);
        acts.insert(acts.end(), a.begin(), a.end());
        const auto a3 = activation(t, n, 24);
        acts.insert(acts.end(), a3.begin(), a3.end());
        const int64_t nr = n_rows - 1;
        std::vector<double> yg(3 * nr);
        k.gemm(n, w.data() + stride, stride, nr, acts.data(), as, 3, yg.data(), nr);
        for (int64_t tk = 0; tk < 3; ++tk) {
          std::vector<double> yr(nr);
          k.rows(n, w.data() + stride, stride, nr, acts.data() + tk * as, yr.data());
          for (int64_t r = 0; r < nr; ++r) EXPECT_EQ(yg[tk * nr + r], yr[r]) << type_name(t) << " " << cpu_isa_name(isa);
        }
        for (int64_t r = 0; r < nr; ++r) EXPECT_EQ(yg[nr + r], y[r + 1]);
      }
    }
  }
}

// The property the row-parallel layers rely on: columns split at block boundaries
// into 2-4 parts, partial doubles summed, then rounded once, give the float of the
// unsplit row, bit for bit.
TEST(QuantExact, BlockAlignedSplitsRoundToTheUnsplitFloat) {
  std::mt19937 rng(5);
  for (CpuIsa isa : all_isas()) {
    for (GgmlType t : weight_types()) {
      const ExactKernels& k = exact_kernels(t, isa);
      const int64_t bs = type_traits(t).block_size;
      const int64_t nb = bs == 256 ? 6 : bs == 1 ? 1536 : 48;  // like ffn_down of the default model
      const int64_t n = nb * bs;
      const GgmlType at = vec_dot_type(t);
      int mismatches = 0, cases = 0;
      for (int row = 0; row < 60; ++row) {
        const auto w = random_raw(t, n, 1000 + row);
        const auto a = activation(t, n, 2000 + row);
        const double whole = k.dot(n, w.data(), a.data());
        for (int parts = 2; parts <= 4; ++parts) {
          // parts - 1 distinct cut points at block boundaries
          std::vector<int64_t> cuts = {0, nb};
          while (static_cast<int>(cuts.size()) < parts + 1) {
            const int64_t c = 1 + static_cast<int64_t>(rng() % (nb - 1));
            if (std::find(cuts.begin(), cuts.end(), c) == cuts.end()) cuts.push_back(c);
          }
          std::sort(cuts.begin(), cuts.end());
          double sum = 0;
          for (int p = 0; p < parts; ++p) {
            const int64_t c0 = cuts[p] * bs, c1 = cuts[p + 1] * bs;
            sum += k.dot(c1 - c0, w.data() + row_size(t, c0), a.data() + row_size(at, c0));
          }
          ++cases;
          if (static_cast<float>(sum) != static_cast<float>(whole)) ++mismatches;
        }
      }
      EXPECT_EQ(mismatches, 0) << type_name(t) << " " << cpu_isa_name(isa) << " of " << cases;
    }
  }
}

// matmul_exact: each element is the exact dot of its row (active ISA), for any
// token count and thread count; column slices at block boundaries, computed as
// separate matmuls and summed in double, round to the whole product's floats.
TEST(MatmulExact, RowsTokensThreadsAndColumnSlices) {
  ThreadPool pool1(1), pool2(2);
  for (GgmlType t : weight_types()) {
    const int64_t bs = type_traits(t).block_size;
    const int64_t n_cols = bs == 256 ? 768 : bs == 1 ? 100 : 576, n_rows = 53, n_tok = 5;
    const size_t stride = row_size(t, n_cols);
    const auto w = random_raw(t, n_cols * n_rows, 31);
    const auto x = random_floats(n_cols * n_tok, 32);
    const WeightView W{w.data(), t, n_rows, n_cols};
    std::vector<double> y1(n_rows * n_tok), y2(n_rows * n_tok), yt(n_rows);
    matmul_exact(W, x.data(), n_tok, y1.data(), pool1);
    matmul_exact(W, x.data(), n_tok, y2.data(), pool2);
    EXPECT_EQ(y1, y2) << type_name(t);
    const GgmlType at = vec_dot_type(t);
    for (int64_t tk = 0; tk < n_tok; ++tk) {
      matmul_exact(W, x.data() + tk * n_cols, 1, yt.data(), pool2);  // decode = batch
      std::vector<uint8_t> a(row_size(at, n_cols));
      quantize_row(at, x.data() + tk * n_cols, a.data(), n_cols);
      for (int64_t r = 0; r < n_rows; ++r) {
        EXPECT_EQ(yt[r], y1[tk * n_rows + r]) << type_name(t);
        EXPECT_EQ(y1[tk * n_rows + r], vec_dot_exact(t, n_cols, w.data() + r * stride, a.data()));
      }
    }
    // Three column slices at block boundaries (as RowParallelLinear stores them).
    const int64_t nb = n_cols / bs;
    const int64_t cut[4] = {0, nb / 3 * bs, (2 * nb / 3) * bs, n_cols};
    std::vector<double> sum(n_rows * n_tok, 0.0);
    for (int p = 0; p < 3; ++p) {
      const int64_t c0 = cut[p], c1 = cut[p + 1], wide = c1 - c0;
      std::vector<uint8_t> ws(row_size(t, wide) * n_rows);
      for (int64_t r = 0; r < n_rows; ++r)
        std::copy_n(w.data() + r * stride + row_size(t, c0), row_size(t, wide), ws.data() + r * row_size(t, wide));
      std::vector<float> xs(wide * n_tok);
      for (int64_t tk = 0; tk < n_tok; ++tk)
        std::copy_n(x.data() + tk * n_cols + c0, wide, xs.data() + tk * wide);
      std::vector<double> part(n_rows * n_tok);
      matmul_exact(WeightView{ws.data(), t, n_rows, wide}, xs.data(), n_tok, part.data(), pool2);
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += part[i];
    }
    for (size_t i = 0; i < sum.size(); ++i)
      EXPECT_EQ(static_cast<float>(sum[i]), static_cast<float>(y1[i])) << type_name(t) << " i=" << i;
  }
}

TEST(MatmulExact, RejectsBadInput) {
  ThreadPool pool(1);
  std::vector<uint8_t> w(row_size(GgmlType::Q4_0, 64) * 2);
  std::vector<float> x(64);
  std::vector<double> y(2);
  EXPECT_THROW(matmul_exact(WeightView{w.data(), GgmlType::Q4_0, 2, 48}, x.data(), 1, y.data(), pool), Error);
  EXPECT_THROW(matmul_exact(WeightView{nullptr, GgmlType::Q4_0, 2, 64}, x.data(), 1, y.data(), pool), Error);
  EXPECT_THROW(matmul_exact(WeightView{w.data(), GgmlType::Q8_1, 2, 64}, x.data(), 1, y.data(), pool), Error);
  EXPECT_THROW(vec_dot_exact(GgmlType::Q4_0, 40, w.data(), x.data()), Error);
}

}  // namespace
}  // namespace parallama
