// ops/nn kernels against scalar references written out here.
#include "ops/nn.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/check.h"
#include "core/fp16.h"
#include "core/ggml_type.h"
#include "ops/quant.h"

using namespace parallama;

namespace {
// Cached K or V blocks in f32 or f16, in the cache layout (K transposed to
// [hd, bs], V row-major), built from row-major [bs, hd] values. vals[b] keeps the
// values row-major as stored (f16 rounded back to f32) for the reference.
struct Blocks {
  bool f16 = false;
  bool transposed = false;  // K
  int bs = 0, hd = 0;
  std::vector<std::vector<float>> vals;
  std::vector<std::vector<float>> floats;    // storage, f32 cache
  std::vector<std::vector<uint16_t>> halves;  // storage, f16 cache
  std::vector<const void*> ptrs;
  void add(std::vector<float> v) {
    if (f16)
      for (float& x : v) x = fp16_to_fp32(fp32_to_fp16(x));
    std::vector<float> laid(v.size());
    for (int j = 0; j < bs; ++j)
      for (int d = 0; d < hd; ++d) laid[transposed ? d * bs + j : j * hd + d] = v[j * hd + d];
    std::vector<uint16_t> h(laid.size());
    for (size_t i = 0; i < laid.size(); ++i) h[i] = fp32_to_fp16(laid[i]);
    floats.push_back(std::move(laid));
    halves.push_back(std::move(h));
    vals.push_back(std::move(v));
  }
  const void* const* data() {
    ptrs.clear();
    for (size_t b = 0; b < vals.size(); ++b)
      ptrs.push_back(f16 ? static_cast<const void*>(halves[b].data()) : floats[b].data());
    return ptrs.data();
  }
};

// Q8_0 K or V blocks in the layout PagedKv documents, written out here from
// row-major [bs, hd] values, each row quantized per 32 by quantize_row(Q8_0) (the
// activation quantizer checked against llama.cpp's in quant_test). vals keeps the
// dequantized values (scale * int8) for the reference.
struct Q8Blocks {
  bool transposed = false;  // K
  int bs = 0, hd = 0;
  std::vector<std::vector<float>> vals;
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<const void*> ptrs;
  void add(const std::vector<float>& v) {
    std::vector<uint8_t> blk(bs * hd + bs * hd / 32 * 2), row(hd / 32 * 34);
    std::vector<float> deq(bs * hd);
    for (int j = 0; j < bs; ++j) {
      quantize_row(GgmlType::Q8_0, v.data() + j * hd, row.data(), hd);
      for (int g = 0; g < hd / 32; ++g) {
        const uint8_t* b = row.data() + g * 34;
        uint16_t d;
        std::memcpy(&d, b, 2);
        std::memcpy(blk.data() + bs * hd + (g * bs + j) * 2, b, 2);
        for (int i = 0; i < 32; ++i) {
          const int dd = g * 32 + i;
          const int8_t x = static_cast<int8_t>(b[2 + i]);
          deq[j * hd + dd] = float(x) * fp16_to_fp32(d);
          if (transposed) blk[(dd / 4 * bs + j) * 4 + dd % 4] = static_cast<uint8_t>(x + 128);
          else blk[j * hd + dd] = static_cast<uint8_t>(x);
        }
      }
    }
    bytes.push_back(std::move(blk));
    vals.push_back(std::move(deq));
  }
  const void* const* data() {
    ptrs.clear();
    for (auto& b : bytes) ptrs.push_back(b.data());
    return ptrs.data();
  }
};

// q [n_q, hd] as the Q8_0 attention sees it: quantized per head and back.
std::vector<float> q8_roundtrip(const std::vector<float>& q, int hd) {
  std::vector<float> out(q.size());
  std::vector<uint8_t> row(hd / 32 * 34);
  for (size_t h = 0; h * hd < q.size(); ++h) {
    quantize_row(GgmlType::Q8_0, q.data() + h * hd, row.data(), hd);
    dequantize_row(GgmlType::Q8_0, row.data(), out.data() + h * hd, hd);
  }
  return out;
}

std::vector<float> rnd(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
// n_blk random K and V blocks (seeds k_seed + b, v_seed + b). Keys grow with the
// position (x (1 + growth * p)), so later positions score higher and force the
// online softmax to rescale.
void fill_growing(Blocks& K, Blocks& V, int n_blk, uint32_t k_seed, uint32_t v_seed, float growth) {
  const int bs = K.bs, hd = K.hd;
  for (int b = 0; b < n_blk; ++b) {
    auto k = rnd(bs * hd, k_seed + b);
    for (int r = 0; r < bs; ++r)
      for (int i = 0; i < hd; ++i) k[r * hd + i] *= 1.0f + growth * float(b * bs + r);
    K.add(k);
    V.add(rnd(bs * hd, v_seed + b));
  }
}
// Positions [n_ctx, end of its block) of a cache set to `v` (K transposed).
void fill_tail(Blocks& B, int n_ctx, float v) {
  const int bs = B.bs, hd = B.hd, b = (n_ctx - 1) / bs;
  for (int j = n_ctx - b * bs; j < bs; ++j)
    for (int d = 0; d < hd; ++d) {
      const int i = B.transposed ? d * bs + j : j * hd + d;
      B.floats[b][i] = v;
      B.halves[b][i] = fp32_to_fp16(v);
    }
}
// Scalar reference, in double: softmax(q K^T * scale) V for query head h over
// positions [0, n_ctx) of row-major blocks (Blocks::vals), [head_dim] values.
template <class B>
std::vector<double> reference_attend(const std::vector<float>& q, int h, const B& K, const B& V, int n_ctx,
                                     double scale) {
  const int bs = K.bs, hd = K.hd;
  std::vector<double> s(n_ctx), out(hd, 0.0);
  double mx = -1e30, sum = 0;
  for (int p = 0; p < n_ctx; ++p) {
    double d = 0;
    for (int i = 0; i < hd; ++i) d += double(q[h * hd + i]) * K.vals[p / bs][(p % bs) * hd + i];
    mx = std::max(mx, s[p] = d * scale);
  }
  for (auto& v : s) sum += (v = std::exp(v - mx));
  for (int i = 0; i < hd; ++i)
    for (int p = 0; p < n_ctx; ++p) out[i] += s[p] / sum * V.vals[p / bs][(p % bs) * hd + i];
  return out;
}
}  // namespace

TEST(Nn, RmsNorm) {
  for (int n : {1, 7, 64, 576, 1000}) {
    auto x = rnd(n, n), w = rnd(n, n + 1);
    std::vector<float> y(n);
    nn::rms_norm(x.data(), w.data(), y.data(), n, 1e-5f);
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; ++i) EXPECT_NEAR(y[i], x[i] * inv * w[i], 1e-5) << n << " " << i;
  }
}

TEST(Nn, SiluMul) {
  auto g = rnd(333, 1), u = rnd(333, 2);
  std::vector<float> o(333);
  nn::silu_mul(g.data(), u.data(), o.data(), 333);
  for (int i = 0; i < 333; ++i)
    EXPECT_NEAR(o[i], g[i] / (1.0 + std::exp(-double(g[i]))) * u[i], 1e-6);
}

// RoPE NORM and NEOX: the rotation angle of pair i at position p is
// p * base^(-2i/n_rot); pairs are (2i, 2i+1) for NORM and (i, i+n_rot/2) for NEOX.
TEST(Nn, RopeBothOrderings) {
  const int hd = 16, nh = 3, pos = 7;
  for (RopeType type : {RopeType::NORM, RopeType::NEOX}) {
    RopeParams p;
    p.type = type;
    p.n_rot = 12;  // partial rotation: last 4 dims untouched
    p.freq_base = 10000.f;
    auto x = rnd(hd * nh, 5);
    auto y = x;
    nn::rope(y.data(), nh, hd, pos, p);
    for (int h = 0; h < nh; ++h) {
      for (int i = 0; i < p.n_rot / 2; ++i) {
        const double th = pos * std::pow(10000.0, -2.0 * i / p.n_rot);
        const int a = type == RopeType::NORM ? 2 * i : i;
        const int b = type == RopeType::NORM ? 2 * i + 1 : i + p.n_rot / 2;
        const double x0 = x[h * hd + a], x1 = x[h * hd + b];
        EXPECT_NEAR(y[h * hd + a], x0 * std::cos(th) - x1 * std::sin(th), 1e-5);
        EXPECT_NEAR(y[h * hd + b], x0 * std::sin(th) + x1 * std::cos(th), 1e-5);
      }
      for (int d = p.n_rot; d < hd; ++d) EXPECT_EQ(y[h * hd + d], x[h * hd + d]);
    }
  }
}

// The two-step form the model uses (angles once per token, then every layer's
// rotation) is the same computation as nn::rope, bit for bit; bad n_rot throws.
TEST(Nn, RopeAnglesThenApplyEqualsRope) {
  const int hd = 64, nh = 9;
  RopeParams p;
  p.n_rot = 64;
  p.freq_base = 100000.f;
  const float factors[32] = {1, 1, 2, 2, 4, 4, 8, 8, 1, 1, 2, 2, 4, 4, 8, 8,
                             1, 1, 2, 2, 4, 4, 8, 8, 1, 1, 2, 2, 4, 4, 8, 8};
  for (const float* ff : {static_cast<const float*>(nullptr), factors}) {
    p.freq_factors = ff;
    for (int pos : {0, 1, 513, 8191}) {
      auto x = rnd(hd * nh, pos + 3);
      auto y = x;
      nn::rope(x.data(), nh, hd, pos, p);
      float cs[32], sn[32];
      nn::rope_angles(pos, p, cs, sn);
      nn::rope_apply(y.data(), nh, hd, cs, sn, p);
      for (int i = 0; i < hd * nh; ++i) ASSERT_EQ(x[i], y[i]) << pos << " " << i;
    }
  }
  p.n_rot = 66;  // more than head_dim
  std::vector<float> x(hd);
  EXPECT_THROW(nn::rope(x.data(), 1, hd, 0, p), Error);
}

// Paged attention equals softmax(q·Kᵀ·scale)·V computed over a contiguous copy.
// Both cache types: f16 blocks are compared against the reference over the
// f16-rounded values (the kernel converts exactly, then works in f32).
TEST(Nn, PagedAttentionMatchesDense) {
  const int hd = 24, bs = 4, n_q = 3;
  for (bool f16 : {false, true})
  for (int n_ctx : {1, 3, 4, 5, 13}) {
    const int n_blk = (n_ctx + bs - 1) / bs;
    Blocks K{f16, true, bs, hd, {}, {}, {}, {}}, V{f16, false, bs, hd, {}, {}, {}, {}};
    for (int b = 0; b < n_blk; ++b) {
      K.add(rnd(bs * hd, 100 + b));
      V.add(rnd(bs * hd, 200 + b));
    }
    auto q = rnd(n_q * hd, 9);
    std::vector<float> out(n_q * hd);
    PagedKv kv{K.data(), V.data(), bs, hd, f16};
    const float scale = 0.3f;
    nn::attend(q.data(), n_q, kv, n_ctx, scale, out.data());
    for (int h = 0; h < n_q; ++h) {
      const std::vector<double> ref = reference_attend(q, h, K, V, n_ctx, scale);
      for (int i = 0; i < hd; ++i)
        EXPECT_NEAR(out[h * hd + i], ref[i], 1e-5) << f16 << " " << n_ctx << " " << h << " " << i;
    }
  }
}

// Long contexts span several softmax chunks and KV blocks; head_dim 64 and a GQA
// group of 3 as in SmolLM2; scores spread wide so the running max moves.
TEST(Nn, PagedAttentionLongContext) {
  const int hd = 64;
  for (int bs : {8, 16, 32})  // 16 and 32: the AVX-512 path; 8: the generic one
  for (bool f16 : {false, true})
  for (int n_q : {1, 2, 3, 4, 5, 8, 9})  // passes of 1-4 heads: 4, 3+2, 4+4, 3+3+3
  for (int n_ctx : {1, 63, 64, 65, 200, 517}) {
    const int n_blk = (n_ctx + bs - 1) / bs;
    Blocks K{f16, true, bs, hd, {}, {}, {}, {}}, V{f16, false, bs, hd, {}, {}, {}, {}};
    fill_growing(K, V, n_blk, 300, 400, 0.02f);
    auto q = rnd(n_q * hd, 11);
    std::vector<float> out(n_q * hd);
    PagedKv kv{K.data(), V.data(), bs, hd, f16};
    const float scale = 0.125f;
    nn::attend(q.data(), n_q, kv, n_ctx, scale, out.data());
    for (int h = 0; h < n_q; ++h) {
      const std::vector<double> ref = reference_attend(q, h, K, V, n_ctx, scale);
      for (int i = 0; i < hd; ++i)
        ASSERT_NEAR(out[h * hd + i], ref[i], 2e-5) << bs << " " << f16 << " " << n_q << " " << n_ctx << " " << h << " " << i;
    }
  }
}

// The AVX-512 kernel scores whole groups of 16 positions; the slots past n_ctx in
// the last block must not reach the max, the sum or the output. Here they would
// dominate all three: with q >= 0, K = 1000 there scores far above every real
// position and V = 1000 would swamp the output.
TEST(Nn, PagedAttentionIgnoresSlotsPastContext) {
  const int hd = 64;
  for (int bs : {8, 16, 32})
  for (bool f16 : {false, true})
  for (int n_q : {1, 3, 4})
  for (int n_ctx : {1, 17, 63, 65, 100}) {
    const int n_blk = (n_ctx + bs - 1) / bs;
    Blocks K{f16, true, bs, hd, {}, {}, {}, {}}, V{f16, false, bs, hd, {}, {}, {}, {}};
    fill_growing(K, V, n_blk, 500, 600, 0.0f);
    fill_tail(K, n_ctx, 1000.0f);
    fill_tail(V, n_ctx, 1000.0f);
    auto q = rnd(n_q * hd, 12);
    for (float& x : q) x = std::fabs(x);
    std::vector<float> out(n_q * hd);
    PagedKv kv{K.data(), V.data(), bs, hd, f16};
    nn::attend(q.data(), n_q, kv, n_ctx, 0.125f, out.data());
    for (int h = 0; h < n_q; ++h) {
      const std::vector<double> ref = reference_attend(q, h, K, V, n_ctx, 0.125);
      for (int i = 0; i < hd; ++i)
        ASSERT_NEAR(out[h * hd + i], ref[i], 2e-5) << bs << " " << f16 << " " << n_q << " " << n_ctx << " " << h << " " << i;
    }
  }
}

// silu over a wide range, including where exp(-g) overflows or underflows.
TEST(Nn, SiluMulWideRange) {
  std::vector<float> g, u;
  for (int i = -2000; i <= 2000; ++i) {
    g.push_back(i * 0.05f);
    u.push_back(0.5f + 0.001f * i);
  }
  g.push_back(-1000.f);
  u.push_back(1.f);
  g.push_back(1000.f);
  u.push_back(1.f);
  std::vector<float> o(g.size());
  nn::silu_mul(g.data(), u.data(), o.data(), int64_t(g.size()));
  for (size_t i = 0; i < g.size(); ++i) {
    const double want = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
    ASSERT_NEAR(o[i], want, 1e-6 * std::fabs(want) + 1e-7) << g[i];
  }
}

TEST(Nn, RmsNormZeroInput) {
  std::vector<float> x(576, 0.f), w(576, 1.f), y(576, 1.f);
  nn::rms_norm(x.data(), w.data(), y.data(), 576, 1e-5f);
  for (float v : y) ASSERT_EQ(v, 0.f);
}

// A context split into ranges of whole 64-position chunks (some empty), each
// attended on its own and merged, gives the attention over the whole context.
TEST(Nn, PartialAttentionMergesToTheWhole) {
  const int hd = 64;
  for (int bs : {8, 16})  // the generic and the AVX-512 path
  for (bool f16 : {false, true})
  for (int n_ctx : {1, 64, 65, 200, 517}) {
    const int n_q = 3, n_blk = (n_ctx + bs - 1) / bs;
    Blocks K{f16, true, bs, hd, {}, {}, {}, {}}, V{f16, false, bs, hd, {}, {}, {}, {}};
    fill_growing(K, V, n_blk, 500, 600, 0.03f);
    PagedKv kv{K.data(), V.data(), bs, hd, f16};
    auto q = rnd(n_q * hd, 13);
    std::vector<float> whole(n_q * hd), merged(n_q * hd);
    nn::attend(q.data(), n_q, kv, n_ctx, 0.125f, whole.data());
    // Cuts at 0, 64, 128, ... plus an empty range at the end.
    std::vector<int> cuts;
    for (int p = 0; p < n_ctx; p += 128) cuts.push_back(p);
    cuts.push_back(n_ctx);
    cuts.push_back(n_ctx);
    const int parts = static_cast<int>(cuts.size()) - 1;
    std::vector<float> acc(parts * n_q * hd), mx(parts * n_q), sum(parts * n_q);
    for (int i = 0; i < parts; ++i) {
      const int b = i + 1 == parts ? (n_ctx + 63) / 64 * 64 : cuts[i];  // the empty one at a chunk start
      nn::attend_partial(q.data(), n_q, kv, b, cuts[i + 1], 0.125f, acc.data() + i * n_q * hd,
                         mx.data() + i * n_q, sum.data() + i * n_q);
    }
    nn::attend_merge(parts, n_q, hd, n_q, acc.data(), mx.data(), sum.data(), merged.data());
    // The first two heads only, read from parts laid out for three.
    std::vector<float> two(2 * hd);
    nn::attend_merge(parts, 2, hd, n_q, acc.data(), mx.data(), sum.data(), two.data());
    for (int i = 0; i < 2 * hd; ++i) ASSERT_EQ(two[i], merged[i]);
    for (int i = 0; i < n_q * hd; ++i)
      ASSERT_NEAR(merged[i], whole[i], 1e-5 * (1 + std::fabs(whole[i]))) << bs << " " << f16 << " " << n_ctx << " " << i;
  }
  // Ranges must start on a chunk boundary.
  Blocks K{false, true, 16, hd, {}, {}, {}, {}}, V{false, false, 16, hd, {}, {}, {}, {}};
  K.add(rnd(16 * hd, 1));
  V.add(rnd(16 * hd, 2));
  PagedKv kv{K.data(), V.data(), 16, hd, false};
  std::vector<float> q(hd), acc(hd), mx(1), sum(1);
  EXPECT_THROW(nn::attend_partial(q.data(), 1, kv, 3, 10, 1.0f, acc.data(), mx.data(), sum.data()), Error);
}

// The Q8_0 cache: scores of the Q8_0-quantized query against the Q8_0 keys, V
// dequantized, against the double reference over the same dequantized values.
// Block sizes 16 and 32 take the VNNI kernel on a CPU with it (head_dim 64), the
// others and head_dim 32 / 96 the scalar path. Slots past the context hold huge
// values that must not count (see PagedAttentionIgnoresSlotsPastContext).
TEST(Nn, PagedAttentionQ8_0) {
  for (int hd : {64, 32, 96})
  for (int bs : {8, 16, 32})
  for (int n_q : {1, 3, 4, 5, 8})
  for (int n_ctx : {1, 17, 64, 65, 200, 517}) {
    if (hd != 64 && (n_q > 3 || n_ctx > 200)) continue;  // the scalar path needs fewer cases
    const int n_blk = (n_ctx + bs - 1) / bs;
    Q8Blocks K{true, bs, hd, {}, {}, {}}, V{false, bs, hd, {}, {}, {}};
    for (int b = 0; b < n_blk; ++b) {
      auto k = rnd(bs * hd, 700 + b), v = rnd(bs * hd, 800 + b);
      for (int r = 0; r < bs; ++r)
        for (int i = 0; i < hd; ++i) {
          const int p = b * bs + r;
          k[r * hd + i] = p < n_ctx ? k[r * hd + i] * (1.0f + 0.02f * p) : 1000.0f;
          if (p >= n_ctx) v[r * hd + i] = 1000.0f;
        }
      K.add(k);
      V.add(v);
    }
    auto q = rnd(n_q * hd, 14);
    for (float& x : q) x = std::fabs(x);  // with K = 1000 past the context, those would win
    const std::vector<float> qq = q8_roundtrip(q, hd);
    std::vector<float> out(n_q * hd);
    PagedKv kv{K.data(), V.data(), bs, hd, false, true};
    nn::attend(q.data(), n_q, kv, n_ctx, 0.125f, out.data());
    for (int h = 0; h < n_q; ++h) {
      const std::vector<double> ref = reference_attend(qq, h, K, V, n_ctx, 0.125);
      for (int i = 0; i < hd; ++i)
        ASSERT_NEAR(out[h * hd + i], ref[i], 2e-5) << hd << " " << bs << " " << n_q << " " << n_ctx << " " << h << " " << i;
    }
    // Split into ranges and merged, as a decode step on several threads runs it.
    if (n_ctx > 64) {
      const int parts = 2, cut = 64;
      std::vector<float> acc(parts * n_q * hd), mx(parts * n_q), sum(parts * n_q), merged(n_q * hd);
      nn::attend_partial(q.data(), n_q, kv, 0, cut, 0.125f, acc.data(), mx.data(), sum.data());
      nn::attend_partial(q.data(), n_q, kv, cut, n_ctx, 0.125f, acc.data() + n_q * hd, mx.data() + n_q,
                         sum.data() + n_q);
      nn::attend_merge(parts, n_q, hd, n_q, acc.data(), mx.data(), sum.data(), merged.data());
      for (int i = 0; i < n_q * hd; ++i) ASSERT_NEAR(merged[i], out[i], 1e-5 * (1 + std::fabs(out[i]))) << i;
    }
  }
}
