// matmul against a naive dequantize + double-precision reference.
#include <gtest/gtest.h>

#include <cmath>

#include "core/check.h"
#include "core/thread_pool.h"
#include "ops/matmul.h"
#include "ops/matmul_exact.h"
#include "ops/repack.h"
#include "ops/quant_kernels.h"
#include "quant_test_util.h"

namespace parallama {
namespace {

struct Case {
  int64_t n_rows, n_cols, n_tok;
};

void check_matmul(GgmlType t, const Case& c, ThreadPool& pool) {
  const auto w = test::random_raw(t, c.n_rows * c.n_cols, static_cast<uint32_t>(c.n_rows * 31 + c.n_tok));
  const auto x = test::random_floats(c.n_tok * c.n_cols, static_cast<uint32_t>(c.n_cols + c.n_tok));
  std::vector<float> y(c.n_tok * c.n_rows, NAN);
  matmul({w.data(), t, c.n_rows, c.n_cols}, x.data(), c.n_tok, y.data(), pool);

  // Reference: W dequantized; activations as the kernel sees them (quantized and back),
  // plus a loose check against the raw activations.
  const GgmlType at = vec_dot_type(t);
  std::vector<float> wf(c.n_rows * c.n_cols), xq(c.n_tok * c.n_cols);
  ref::dequantize_row(t, w.data(), wf.data(), c.n_rows * c.n_cols);
  std::vector<uint8_t> qbuf(row_size(at, c.n_cols));
  for (int64_t i = 0; i < c.n_tok; ++i) {
    ref::quantize_row(at, x.data() + i * c.n_cols, qbuf.data(), c.n_cols);
    ref::dequantize_row(at, qbuf.data(), xq.data() + i * c.n_cols, c.n_cols);
  }
  for (int64_t i = 0; i < c.n_tok; ++i) {
    for (int64_t r = 0; r < c.n_rows; ++r) {
      double want = 0, want_raw = 0, mag = 0;
      for (int64_t k = 0; k < c.n_cols; ++k) {
        const double wv = wf[r * c.n_cols + k];
        want += wv * xq[i * c.n_cols + k];
        want_raw += wv * x[i * c.n_cols + k];
        mag += std::fabs(wv * x[i * c.n_cols + k]);
      }
      const float got = y[i * c.n_rows + r];
      ASSERT_NEAR(got, want, 1e-4 * mag + 1e-6)
          << type_name(t) << " rows=" << c.n_rows << " cols=" << c.n_cols << " tok=" << i << " row=" << r;
      ASSERT_NEAR(got, want_raw, 0.02 * mag + 1e-6) << type_name(t);
    }
  }
}

TEST(Matmul, MatchesNaiveReference) {
  const Case cases[] = {{1, 256, 1}, {13, 256, 1}, {37, 512, 3}, {67, 768, 17}, {9, 256, 5}};
  for (int nth : {1, 2, 3}) {
    ThreadPool pool(nth);
    for (GgmlType t : test::weight_types())
      for (const Case& c : cases) check_matmul(t, c, pool);
  }
}

// The 32-element block types with an odd block count (the GEMM tiles pair blocks),
// row and token counts that leave partial tiles, and enough rows for many chunks.
TEST(Matmul, BlockTypesOddBlocksAndTails) {
  const Case cases[] = {{23, 96, 7}, {41, 544, 9}, {6, 32, 2}, {300, 576, 6}, {130, 1536, 13}, {5, 64, 1}};
  for (int nth : {1, 2, 3}) {
    ThreadPool pool(nth);
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0})
      for (const Case& c : cases) check_matmul(t, c, pool);
  }
}

TEST(Matmul, FloatWeightsOddColumns) {
  ThreadPool pool(2);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) check_matmul(t, {11, 37, 3}, pool);
}

// Every ISA's multi-token kernel (gemm_rows), awkward shapes, against ref::vec_dot.
TEST(Matmul, GemmRowsEveryIsaMatchesReference) {
  const Case cases[] = {{7, 37, 5}, {9, 96, 1}, {13, 576, 9}, {4, 16, 4}};
  for (CpuIsa isa : test::simd_isas()) {
    for (GgmlType t : test::weight_types()) {
      const GemmRowsFn k = kernel_table(isa).t[quant_slot(t)].gemm_rows;
      if (k == nullptr) continue;
      for (const Case& c : cases) {
        if (c.n_cols % type_traits(t).block_size != 0) continue;
        const auto w = test::random_raw(t, c.n_rows * c.n_cols, 3);
        const auto x = test::random_floats(c.n_tok * c.n_cols, 4);
        const GgmlType at = vec_dot_type(t);
        const size_t as = row_size(at, c.n_cols), ws = row_size(t, c.n_cols);
        std::vector<uint8_t> act(as * c.n_tok);
        for (int64_t i = 0; i < c.n_tok; ++i) ref::quantize_row(at, x.data() + i * c.n_cols, act.data() + i * as, c.n_cols);
        std::vector<float> y(c.n_rows * c.n_tok, NAN);
        GemmArgs g;
        g.w = w.data();
        g.w_stride = ws;
        g.n_cols = c.n_cols;
        g.act = act.data();
        g.act_stride = as;
        g.n_tok = c.n_tok;
        g.y = y.data();
        g.y_stride = c.n_rows;
        k(g, 0, c.n_rows);
        for (int64_t i = 0; i < c.n_tok; ++i)
          for (int64_t r = 0; r < c.n_rows; ++r) {
            const float want = ref::vec_dot(t, c.n_cols, w.data() + r * ws, act.data() + i * as);
            ASSERT_NEAR(y[i * c.n_rows + r], want, 1e-5 * (std::fabs(want) + 1.0))
                << cpu_isa_name(isa) << " " << type_name(t) << " rows=" << c.n_rows << " cols=" << c.n_cols;
          }
      }
    }
  }
}

// matmul_many gives each weight exactly what matmul gives it: shared activation
// quantization, mixed plain / x16-repacked weights, and a weight whose activation
// type differs (handled one by one), at several thread counts.
TEST(Matmul, ManyEqualsOneByOne) {
  const int64_t n_cols = 512;
  struct W {
    GgmlType t;
    int64_t rows;
    bool repack;
  };
  const std::vector<std::vector<W>> groups = {
      {{GgmlType::Q4_1, 64, true}, {GgmlType::Q4_1, 21, false}, {GgmlType::Q4_1, 37, true}},
      {{GgmlType::Q8_0, 48, true}, {GgmlType::Q4_0, 33, false}},
      {{GgmlType::Q4_0, 40, false}, {GgmlType::Q4_1, 17, false}},  // Q8_0 vs Q8_1 activations
      {{GgmlType::F16, 19, false}, {GgmlType::F32, 23, false}, {GgmlType::BF16, 5, false}}};
  for (int nth : {1, 2, 3}) {
    ThreadPool pool(nth);
    for (const auto& grp : groups) {
      for (int64_t n_tok : {1, 3, 9}) {
        std::vector<std::vector<uint8_t>> store;
        std::vector<WeightView> views;
        for (size_t i = 0; i < grp.size(); ++i) {
          auto raw = test::random_raw(grp[i].t, grp[i].rows * n_cols, 100 + static_cast<uint32_t>(i));
          WeightView v{nullptr, grp[i].t, grp[i].rows, n_cols};
          if (grp[i].repack && can_repack(grp[i].t)) {
            std::vector<uint8_t> packed(raw.size());
            v.packed_rows = repack_x16(grp[i].t, raw.data(), grp[i].rows, n_cols, packed.data());
            raw.swap(packed);
          }
          store.push_back(std::move(raw));
          views.push_back(v);
        }
        for (size_t i = 0; i < views.size(); ++i) views[i].data = store[i].data();
        const auto x = test::random_floats(n_tok * n_cols, 7 + static_cast<uint32_t>(n_tok));
        std::vector<std::vector<float>> one(views.size()), many(views.size());
        std::vector<const WeightView*> wp;
        std::vector<float*> yp;
        for (size_t i = 0; i < views.size(); ++i) {
          one[i].assign(n_tok * views[i].n_rows, NAN);
          many[i].assign(n_tok * views[i].n_rows, NAN);
          matmul(views[i], x.data(), n_tok, one[i].data(), pool);
          wp.push_back(&views[i]);
          yp.push_back(many[i].data());
        }
        matmul_many(wp.data(), yp.data(), static_cast<int>(wp.size()), x.data(), n_tok, pool);
        for (size_t i = 0; i < views.size(); ++i)
          for (size_t k = 0; k < one[i].size(); ++k)
            ASSERT_EQ(many[i][k], one[i][k]) << type_name(views[i].type) << " weight " << i << " tok " << n_tok;
      }
    }
  }
}

// Decode-sized calls on several threads quantize the activations per thread, on
// each thread's first task of a call (TaskActivations): back-to-back calls with
// different inputs, sizes and types, x16-packed or not, must each use their own
// input, bit for bit what one thread computes.
TEST(Matmul, DecodeCallsOnSeveralThreadsMatchOneThread) {
  ThreadPool one(1), two(2), three(3);
  struct W {
    GgmlType t;
    int64_t rows, cols;
    std::vector<uint8_t> raw;
    WeightView view;
  };
  std::vector<W> ws;
  for (GgmlType t : {GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_0})
    for (int64_t cols : {64, 576}) {
      const int64_t rows = 96;
      W w{t, rows, cols, test::random_raw(t, rows * cols, static_cast<uint32_t>(cols + int(t))), {}};
      w.view = {w.raw.data(), t, rows, cols};
      ws.push_back(std::move(w));
    }
  const size_t n_plain = ws.size();
  std::vector<std::vector<uint8_t>> packed(n_plain);
  for (size_t i = 0; i < n_plain; ++i) {
    if (!can_repack(ws[i].t)) continue;
    packed[i].resize(ws[i].raw.size());
    WeightView pv = ws[i].view;
    pv.data = packed[i].data();
    pv.packed_rows = repack_x16(ws[i].t, ws[i].raw.data(), ws[i].rows, ws[i].cols, packed[i].data());
    W copy{ws[i].t, ws[i].rows, ws[i].cols, {}, pv};
    ws.push_back(copy);
  }
  for (int step = 0; step < 40; ++step) {
    const W& w = ws[(step * 7) % ws.size()];
    const int64_t n_tok = 1 + step % 4;
    const auto x = test::random_floats(n_tok * w.cols, static_cast<uint32_t>(1000 + step));
    std::vector<float> y1(n_tok * w.rows), y2(n_tok * w.rows), y3(n_tok * w.rows);
    std::vector<double> e1(n_tok * w.rows), e2(n_tok * w.rows);
    matmul(w.view, x.data(), n_tok, y1.data(), one);
    matmul(w.view, x.data(), n_tok, y2.data(), two);
    matmul(w.view, x.data(), n_tok, y3.data(), three);
    matmul_exact(w.view, x.data(), n_tok, e1.data(), one);
    matmul_exact(w.view, x.data(), n_tok, e2.data(), two);
    for (size_t k = 0; k < y1.size(); ++k) {
      ASSERT_EQ(y2[k], y1[k]) << type_name(w.t) << " step " << step << " tok " << n_tok << " out " << k;
      ASSERT_EQ(y3[k], y1[k]) << type_name(w.t) << " step " << step << " tok " << n_tok << " out " << k;
      ASSERT_EQ(e2[k], e1[k]) << type_name(w.t) << " exact, step " << step << " tok " << n_tok << " out " << k;
      ASSERT_NEAR(y1[k], e1[k], 1e-4 * (std::fabs(e1[k]) + 1.0)) << type_name(w.t) << " step " << step;
    }
  }
}

TEST(Matmul, RejectsBadShapes) {
  ThreadPool pool(1);
  std::vector<uint8_t> w(4096);
  std::vector<float> x(64), y(64);
  EXPECT_THROW(matmul({w.data(), GgmlType::Q4_0, 2, 48}, x.data(), 1, y.data(), pool), Error);
  EXPECT_THROW(matmul({w.data(), GgmlType::Q8_K, 1, 256}, x.data(), 1, y.data(), pool), Error);
  EXPECT_THROW(matmul({nullptr, GgmlType::F32, 1, 4}, x.data(), 1, y.data(), pool), Error);
}

}  // namespace
}  // namespace parallama
