// x16 repacking of Q4_K: the layout round-trips, and the x16 kernel (float and double
// accumulation) matches the scalar reference vec_dot on the GGUF-order rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/thread_pool.h"
#include "ops/matmul.h"
#include "ops/quant_kernels.h"
#include "ops/repack_q4k.h"
#include "quant_test_util.h"

namespace parallama {
namespace {

constexpr GgmlType kT = GgmlType::Q4_K;

// The kernels to test: our VNNI and AVX2 ones through private tables (works before it is wired
// into kernel_table()), plus whatever the active table holds for Q4_K.
std::vector<GemmRowsFn> kernels() {
  std::vector<GemmRowsFn> v;
  if (detected_cpu_isa() >= CpuIsa::AVX512_VNNI) {
    KernelTable kt{};
    fill_x16_q4k_avx512vnni_kernels(kt);
    v.push_back(kt.t[SLOT_Q4_K].gemm_x16);
  }
  if (detected_cpu_isa() >= CpuIsa::AVX2) {
    KernelTable kt{};
    fill_x16_q4k_avx2_kernels(kt);
    v.push_back(kt.t[SLOT_Q4_K].gemm_x16);
  }
  const GemmRowsFn active = active_kernel_table().t[SLOT_Q4_K].gemm_x16;
  if (active != nullptr && std::find(v.begin(), v.end(), active) == v.end()) v.push_back(active);
  return v;
}

TEST(RepackQ4K, RoundTripsAndKeepsTail) {
  for (int64_t rows : {16, 37, 53}) {
    for (int64_t cols : {256, 768}) {
      const auto w = test::random_raw(kT, rows * cols, static_cast<uint32_t>(rows + cols));
      std::vector<uint8_t> p(w.size());
      const int64_t packed = repack_x16_q4_k(w.data(), rows, cols, p.data());
      ASSERT_EQ(packed, rows / 16 * 16);
      const size_t rs = row_size(kT, cols);
      std::vector<uint8_t> back(rs);
      for (int64_t r = 0; r < packed; ++r) {
        unpack_x16_row_q4_k(p.data(), cols, r, back.data());
        ASSERT_EQ(0, std::memcmp(back.data(), w.data() + r * rs, rs)) << "rows " << rows << " row " << r;
      }
      ASSERT_EQ(0, std::memcmp(p.data() + packed * rs, w.data() + packed * rs, (rows - packed) * rs));
    }
  }
}

// Spot checks of the documented byte positions (independent of unpack_x16_row_q4_k).
TEST(RepackQ4K, LayoutAsDocumented) {
  const int64_t rows = 32, cols = 512, nb = 2;
  const auto w = test::random_raw(kT, rows * cols, 3);
  std::vector<uint8_t> p(w.size());
  repack_x16_q4_k(w.data(), rows, cols, p.data());
  const size_t rs = row_size(kT, cols);
  for (int64_t r : {0, 5, 15, 16, 31}) {
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ4_K& blk = reinterpret_cast<const BlockQ4_K*>(w.data() + r * rs)[b];
      const uint8_t* gb = p.data() + ((r / 16) * nb + b) * kQ4KGroupBlockBytes;
      const int rr = static_cast<int>(r % 16);
      ASSERT_EQ(0, std::memcmp(gb + 2 * rr, &blk.d, 2));
      ASSERT_EQ(0, std::memcmp(gb + 32 + 2 * rr, &blk.dmin, 2));
      for (int k = 0; k < 32; ++k) ASSERT_EQ(0, std::memcmp(gb + 256 + 64 * k + 4 * rr, blk.qs + 4 * k, 4));
      // 6-bit code: scale j of row rr at V[16j + rr]; min j at V[32(j/2) + 2rr + (j&1)].
      for (int j = 0; j < 8; ++j) {
        uint8_t sc, mn;
        unpack_scale_min_k4(blk.scales, j, &sc, &mn);
        auto val = [&](const uint8_t* code, int pos) {
          const int q = pos % 64, half = pos / 64;
          const int lo = (code[q] >> (4 * half)) & 15;
          const int hi = (code[64 + q % 32] >> (2 * (q / 32 + 2 * half))) & 3;
          return lo | hi << 4;
        };
        ASSERT_EQ(val(gb + 64, 16 * j + rr), sc) << "scale " << j;
        ASSERT_EQ(val(gb + 160, 32 * (j / 2) + 2 * rr + (j & 1)), mn) << "min " << j;
      }
    }
  }
}

TEST(RepackQ4K, RejectsBadColumns) {
  std::vector<uint8_t> w(144 * 16 * 2), p(w.size());
  EXPECT_THROW(repack_x16_q4_k(w.data(), 16, 128, p.data()), Error);
}

// Scalar dot product of a GGUF Q4_K row with a Q8_K row in double (written from the
// format description), and the sum of the magnitudes of its super-block terms: the
// scale of float rounding errors, as the d and dmin terms largely cancel.
struct RefDot {
  double value = 0, magnitude = 0;
};
RefDot ref_dot_f64(const uint8_t* w_row, const uint8_t* act_row, int64_t cols) {
  RefDot r;
  for (int64_t b = 0; b < cols / QK_K; ++b) {
    const BlockQ4_K& w = reinterpret_cast<const BlockQ4_K*>(w_row)[b];
    const BlockQ8_K& a = reinterpret_cast<const BlockQ8_K*>(act_row)[b];
    int64_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      unpack_scale_min_k4(w.scales, j, &sc, &mn);
      int64_t p = 0, s = 0;
      for (int l = 0; l < 32; ++l) {
        const int e = 32 * j + l;  // element e: nibble (e % 64) / 32 of qs[32 * (e / 64) + e % 32]
        const int q = (w.qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 15;
        p += q * a.qs[e];
        s += a.qs[e];
      }
      sumi += sc * p;
      summ += mn * s;
    }
    const double t1 = static_cast<double>(fp16_to_fp32(w.d)) * a.d * static_cast<double>(sumi);
    const double t2 = static_cast<double>(fp16_to_fp32(w.dmin)) * a.d * static_cast<double>(summ);
    r.value += t1 - t2;
    r.magnitude += std::fabs(t1) + std::fabs(t2);
  }
  return r;
}

// Kernel outputs for rows [0, packed) vs ref::vec_dot per row and token; rows past
// packed must stay untouched. extreme: all weight nibbles, scales and mins at their
// maximum and activations at +-127 (integer overflow check).
void check_kernel(GemmRowsFn k, int64_t rows, int64_t cols, int64_t n_tok, bool exact, bool extreme = false) {
  auto w = test::random_raw(kT, rows * cols, static_cast<uint32_t>(rows * 7 + cols));
  auto x = test::random_floats(n_tok * cols, static_cast<uint32_t>(cols + n_tok));
  if (extreme) {
    for (size_t i = 0; i < w.size(); i += sizeof(BlockQ4_K)) std::memset(w.data() + i + 4, 0xFF, 140);
    for (size_t i = 0; i < x.size(); ++i) x[i] = (i / cols) % 2 ? -1.0f : 1.0f;
  }
  std::vector<uint8_t> p(w.size());
  const int64_t packed = repack_x16_q4_k(w.data(), rows, cols, p.data());
  const size_t as = row_size(GgmlType::Q8_K, cols), ws = row_size(kT, cols);
  std::vector<uint8_t> act(as * n_tok);
  for (int64_t i = 0; i < n_tok; ++i) ref::quantize_row(GgmlType::Q8_K, x.data() + i * cols, act.data() + i * as, cols);
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
  // In two calls when possible, as matmul's row chunks do.
  if (packed > 16) {
    k(g, 0, 16);
    k(g, 16, packed);
  } else {
    k(g, 0, packed);
  }
  for (int64_t i = 0; i < n_tok; ++i) {
    for (int64_t r = 0; r < rows; ++r) {
      const double got = exact ? y64[i * rows + r] : y[i * rows + r];
      if (r >= packed) {
        ASSERT_TRUE(std::isnan(got)) << "row " << r << " past the packed rows was written";
        continue;
      }
      const float want = ref::vec_dot(kT, cols, w.data() + r * ws, act.data() + i * as);
      const RefDot want64 = ref_dot_f64(w.data() + r * ws, act.data() + i * as, cols);
      // ref::vec_dot and the float kernel both round in float (differently); double
      // accumulation must be close to exact.
      const double tol = (exact ? 1e-12 : 4e-7) * (want64.magnitude + 1.0);
      ASSERT_NEAR(got, want64.value, tol);
      ASSERT_NEAR(got, want, 4e-7 * (want64.magnitude + 1.0))
          << "rows=" << rows << " cols=" << cols << " tok=" << i << " row=" << r << (exact ? " exact" : "")
          << (extreme ? " extreme" : "");
    }
  }
}

TEST(RepackQ4K, KernelMatchesReference) {
  const auto ks = kernels();
  if (ks.empty()) GTEST_SKIP() << "no x16 Q4_K kernel on this CPU";
  for (GemmRowsFn k : ks)
    for (int64_t rows : {16, 37, 53})
      for (int64_t cols : {256, 512, 1536})
        for (int64_t n_tok : {1, 3, 4, 7})
          for (bool exact : {false, true}) check_kernel(k, rows, cols, n_tok, exact);
}

TEST(RepackQ4K, KernelHandlesExtremeValues) {
  for (GemmRowsFn k : kernels())
    for (int64_t n_tok : {1, 4})
      for (bool exact : {false, true}) check_kernel(k, 32, 512, n_tok, exact, true);
}

// Double accumulation: splitting the columns at super-block boundaries and adding the
// partial sums gives the same float as the whole row (what a row-parallel layer needs).
TEST(RepackQ4K, ExactSumsAreSplitInvariant) {
  const auto ks = kernels();
  if (ks.empty()) GTEST_SKIP() << "no x16 Q4_K kernel on this CPU";
  const int64_t rows = 32, cols = 3072;
  const auto w = test::random_raw(kT, rows * cols, 5);
  const auto x = test::random_floats(cols, 6);
  // One Q8_K row for the whole input: each slice's activation blocks are the same bytes.
  std::vector<uint8_t> act_all(row_size(GgmlType::Q8_K, cols));
  ref::quantize_row(GgmlType::Q8_K, x.data(), act_all.data(), cols);
  for (GemmRowsFn kernel : ks) {
    auto run = [&](int64_t c0, int64_t c1) {
      const int64_t n = c1 - c0;
      std::vector<uint8_t> slice(row_size(kT, n) * rows), p(slice.size());
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(slice.data() + r * row_size(kT, n), w.data() + r * row_size(kT, cols) + row_size(kT, c0),
                    row_size(kT, n));
      repack_x16_q4_k(slice.data(), rows, n, p.data());
      std::vector<double> y(rows);
      GemmArgs g;
      g.w = p.data();
      g.w_stride = row_size(kT, n);
      g.n_cols = n;
      g.act = act_all.data() + row_size(GgmlType::Q8_K, c0);
      g.act_stride = row_size(GgmlType::Q8_K, n);
      g.n_tok = 1;
      g.y64 = y.data();
      g.y_stride = rows;
      kernel(g, 0, rows);
      return y;
    };
    const auto whole = run(0, cols);
    const int64_t nb = cols / QK_K;
    for (int parts : {2, 3, 4}) {
      std::vector<double> sum(rows, 0.0);
      for (int i = 0; i < parts; ++i) {
        const auto y = run(nb * i / parts * QK_K, nb * (i + 1) / parts * QK_K);
        for (int64_t r = 0; r < rows; ++r) sum[r] += y[r];
      }
      for (int64_t r = 0; r < rows; ++r)
        ASSERT_EQ(static_cast<float>(sum[r]), static_cast<float>(whole[r])) << parts << " parts, row " << r;
    }
  }
}

// matmul() on a partly packed weight (a tail of unpacked rows) equals the unpacked one.
// Runs once the kernel is wired into the active kernel table.
TEST(RepackQ4K, MatmulWithPackedRowsMatchesUnpacked) {
  if (active_kernel_table().t[SLOT_Q4_K].gemm_x16 == nullptr)
    GTEST_SKIP() << "x16 Q4_K kernel not in the active kernel table";
  ThreadPool pool(2);
  const int64_t rows = 53, cols = 512;
  for (int64_t n_tok : {1, 5}) {
    const auto w = test::random_raw(kT, rows * cols, 11);
    const auto x = test::random_floats(n_tok * cols, 12);
    std::vector<uint8_t> p(w.size());
    const int64_t packed = repack_x16_q4_k(w.data(), rows, cols, p.data());
    std::vector<float> y0(n_tok * rows), y1(n_tok * rows);
    matmul({w.data(), kT, rows, cols}, x.data(), n_tok, y0.data(), pool);
    WeightView pv{p.data(), kT, rows, cols};
    pv.packed_rows = packed;
    matmul(pv, x.data(), n_tok, y1.data(), pool);
    for (size_t i = 0; i < y0.size(); ++i) ASSERT_NEAR(y1[i], y0[i], 2e-5 * (std::fabs(y0[i]) + 1.0)) << i;
  }
}

}  // namespace
}  // namespace parallama
