// x16 repacking: the layout round-trips, and the x16 kernels (every ISA that has
// them, float and double accumulation) match the scalar reference vec_dot on the
// GGUF-order rows.
#include <gtest/gtest.h>

#include <cmath>

#include "core/thread_pool.h"
#include "ops/matmul.h"
#include "ops/quant_kernels.h"
#include "ops/repack.h"
#include "quant_test_util.h"

namespace parallama {
namespace {

const GgmlType kTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0};

TEST(Repack, RoundTripsAndKeepsTail) {
  for (GgmlType t : kTypes) {
    for (int64_t rows : {16, 37, 48}) {
      const int64_t cols = 96;
      const auto w = test::random_raw(t, rows * cols, static_cast<uint32_t>(rows));
      std::vector<uint8_t> p(w.size());
      const int64_t packed = repack_x16(t, w.data(), rows, cols, p.data());
      ASSERT_EQ(packed, rows / 16 * 16);
      const size_t rs = row_size(t, cols);
      std::vector<uint8_t> back(rs);
      for (int64_t r = 0; r < packed; ++r) {
        unpack_x16_row(t, p.data(), cols, r, back.data());
        ASSERT_EQ(0, std::memcmp(back.data(), w.data() + r * rs, rs)) << type_name(t) << " row " << r;
      }
      ASSERT_EQ(0, std::memcmp(p.data() + packed * rs, w.data() + packed * rs, (rows - packed) * rs));
    }
  }
}

// Kernel outputs for rows [0, packed) vs ref::vec_dot per row and token.
void check_kernel(CpuIsa isa, GgmlType t, int64_t rows, int64_t cols, int64_t n_tok, bool exact) {
  const GemmRowsFn k = kernel_table(isa).t[quant_slot(t)].gemm_x16;
  if (k == nullptr) return;
  const auto w = test::random_raw(t, rows * cols, static_cast<uint32_t>(rows * 7 + cols));
  const auto x = test::random_floats(n_tok * cols, static_cast<uint32_t>(cols + n_tok));
  std::vector<uint8_t> p(w.size());
  const int64_t packed = repack_x16(t, w.data(), rows, cols, p.data());
  const GgmlType at = vec_dot_type(t);
  const size_t as = row_size(at, cols), ws = row_size(t, cols);
  std::vector<uint8_t> act(as * n_tok);
  for (int64_t i = 0; i < n_tok; ++i) ref::quantize_row(at, x.data() + i * cols, act.data() + i * as, cols);
  std::vector<float> y(n_tok * rows, NAN);
  std::vector<double> y64(n_tok * rows, NAN);
  GemmArgs g;
  g.w = p.data();
  g.w_stride = ws;
  g.n_cols = cols;
  g.act = act.data();
  g.act_stride = as;
  g.n_tok = n_tok;
  g.y = exact ? nullptr : y.data();
  g.y64 = exact ? y64.data() : nullptr;
  g.y_stride = rows;
  k(g, 0, packed);
  for (int64_t i = 0; i < n_tok; ++i) {
    for (int64_t r = 0; r < packed; ++r) {
      const float want = ref::vec_dot(t, cols, w.data() + r * ws, act.data() + i * as);
      const double got = exact ? y64[i * rows + r] : y[i * rows + r];
      ASSERT_NEAR(got, want, 1e-5 * (std::fabs(want) + 1.0))
          << cpu_isa_name(isa) << " " << type_name(t) << " rows=" << rows << " cols=" << cols
          << " tok=" << i << " row=" << r << (exact ? " exact" : "");
    }
  }
}

TEST(Repack, KernelsMatchReference) {
  for (CpuIsa isa : test::simd_isas())
    for (GgmlType t : kTypes)
      for (int64_t cols : {32, 96, 576})
        for (int64_t n_tok : {1, 3, 4, 7})
          for (bool exact : {false, true}) check_kernel(isa, t, 48, cols, n_tok, exact);
}

// Double accumulation: splitting the columns at block boundaries and adding the
// partial sums gives the same float as the whole row (what a row-parallel layer needs).
TEST(Repack, ExactSumsAreSplitInvariant) {
  const GgmlType t = GgmlType::Q4_1;
  const GemmRowsFn k = active_kernel_table().t[quant_slot(t)].gemm_x16;
  if (k == nullptr) GTEST_SKIP() << "no x16 kernels on this CPU";
  const int64_t rows = 32, cols = 1536;
  const auto w = test::random_raw(t, rows * cols, 5);
  const auto x = test::random_floats(cols, 6);
  const GgmlType at = vec_dot_type(t);
  auto run = [&](int64_t c0, int64_t c1) {
    const int64_t n = c1 - c0;
    std::vector<uint8_t> slice(row_size(t, n) * rows), p(slice.size()), act(row_size(at, n));
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(slice.data() + r * row_size(t, n), w.data() + r * row_size(t, cols) + row_size(t, c0),
                  row_size(t, n));
    repack_x16(t, slice.data(), rows, n, p.data());
    ref::quantize_row(at, x.data() + c0, act.data(), n);
    std::vector<double> y(rows);
    GemmArgs g;
    g.w = p.data();
    g.w_stride = row_size(t, n);
    g.n_cols = n;
    g.act = act.data();
    g.act_stride = act.size();
    g.n_tok = 1;
    g.y64 = y.data();
    g.y_stride = rows;
    k(g, 0, rows);
    return y;
  };
  const auto whole = run(0, cols);
  for (int parts : {2, 3, 4}) {
    std::vector<double> sum(rows, 0.0);
    const int64_t nb = cols / 32;
    for (int i = 0; i < parts; ++i) {
      const auto y = run(nb * i / parts * 32, nb * (i + 1) / parts * 32);
      for (int64_t r = 0; r < rows; ++r) sum[r] += y[r];
    }
    for (int64_t r = 0; r < rows; ++r)
      ASSERT_EQ(static_cast<float>(sum[r]), static_cast<float>(whole[r])) << parts << " parts, row " << r;
  }
}

// matmul() on a partly packed weight (a tail of unpacked rows) equals the unpacked one.
TEST(Repack, MatmulWithPackedRowsMatchesUnpacked) {
  ThreadPool pool(2);
  for (GgmlType t : kTypes) {
    if (!can_repack(t)) continue;
    const int64_t rows = 53, cols = 192;
    for (int64_t n_tok : {1, 5}) {
      const auto w = test::random_raw(t, rows * cols, 11);
      const auto x = test::random_floats(n_tok * cols, 12);
      std::vector<uint8_t> p(w.size());
      const int64_t packed = repack_x16(t, w.data(), rows, cols, p.data());
      std::vector<float> y0(n_tok * rows), y1(n_tok * rows);
      matmul({w.data(), t, rows, cols}, x.data(), n_tok, y0.data(), pool);
      WeightView pv{p.data(), t, rows, cols};
      pv.packed_rows = packed;
      matmul(pv, x.data(), n_tok, y1.data(), pool);
      for (size_t i = 0; i < y0.size(); ++i) ASSERT_NEAR(y1[i], y0[i], 1e-5 * (std::fabs(y0[i]) + 1.0)) << type_name(t);
    }
  }
}

}  // namespace
}  // namespace parallama
