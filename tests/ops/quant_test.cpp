// Quantized formats: the scalar reference against gguf fixtures, every SIMD ISA
// against the scalar reference, and round-trip error bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "core/check.h"
#include "ops/quant_kernels.h"
#include "quant_test_util.h"
#include "test_util.h"

namespace parallama {
namespace {

using test::random_floats;
using test::random_raw;

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing fixture " << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
std::vector<float> read_f32(const std::string& path) {
  const auto b = read_bytes(path);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

int64_t elems_in(GgmlType t, size_t bytes) {
  const TypeTraits tr = type_traits(t);
  return static_cast<int64_t>(bytes) / tr.type_size * tr.block_size;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

const GgmlType kFixtureTypes[] = {GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                  GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q4_K, GgmlType::Q5_K,
                                  GgmlType::Q6_K, GgmlType::Q8_K};

// gguf.quants (llama.cpp's formats) dequantizes these raw blocks to exactly these floats.
TEST(QuantFixtures, RefDequantMatchesGguf) {
  for (GgmlType t : kFixtureTypes) {
    const std::string name = type_name(t);
    const auto raw = read_bytes(test::fixture_path("quant/" + name + ".blocks"));
    const auto want = read_f32(test::fixture_path("quant/" + name + ".f32"));
    const int64_t n = elems_in(t, raw.size());
    ASSERT_EQ(n, static_cast<int64_t>(want.size())) << name;
    std::vector<float> got(n);
    ref::dequantize_row(t, raw.data(), got.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << name << " element " << i;
    for (CpuIsa isa : test::simd_isas()) {
      std::vector<float> simd(n);
      kernel_table(isa).t[quant_slot(t)].dequantize(raw.data(), simd.data(), n);
      EXPECT_TRUE(same_bits(simd, want)) << name << " " << cpu_isa_name(isa);
    }
  }
}

// Our reference quantizers of the simple types reproduce llama.cpp's bytes.
TEST(QuantFixtures, RefQuantizeMatchesGguf) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0}) {
    const std::string name = type_name(t);
    const auto x = read_f32(test::fixture_path("quant/q_" + name + "_in.f32"));
    const auto want = read_bytes(test::fixture_path("quant/q_" + name + ".blocks"));
    std::vector<uint8_t> got(row_size(t, x.size()));
    ASSERT_EQ(got.size(), want.size());
    ref::quantize_row(t, x.data(), got.data(), x.size());
    EXPECT_EQ(got, want) << name;
    // The dispatched (possibly SIMD) quantizer too.
    quantize_row(t, x.data(), got.data(), x.size());
    EXPECT_EQ(got, want) << name << " dispatched";
  }
}

// Relative error of a against b scaled by sum |w_i * a_i| (the natural size of a dot product).
void expect_dot_close(float got, float want, double mag, const std::string& what) {
  EXPECT_LE(std::fabs(static_cast<double>(got) - want), 1e-4 * mag + 1e-6) << what << " got " << got << " want " << want;
}

double dot_magnitude(GgmlType wt, const void* w, const void* a, int64_t n) {
  std::vector<float> wf(n), af(n);
  ref::dequantize_row(wt, w, wf.data(), n);
  ref::dequantize_row(vec_dot_type(wt), a, af.data(), n);
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m += std::fabs(static_cast<double>(wf[i]) * af[i]);
  return m;
}

TEST(QuantSimd, VecDotMatchesRef) {
  for (GgmlType t : test::weight_types()) {
    const int64_t bs = type_traits(t).block_size == 1 ? 1 : type_traits(t).block_size;
    const GgmlType at = vec_dot_type(t);
    const int64_t ab = type_traits(at).block_size;
    for (int64_t nblk : {1, 3, 7, 18}) {
      // Float weights: odd lengths exercise the tails.
      const int64_t n = bs == 1 ? nblk * 37 : nblk * std::max(bs, ab);
      for (uint32_t seed = 1; seed <= 4; ++seed) {
        const auto w = random_raw(t, n, seed * 101 + nblk);
        const auto xf = random_floats(n, seed * 7 + nblk);
        std::vector<uint8_t> a(row_size(at, n));
        ref::quantize_row(at, xf.data(), a.data(), n);
        const float want = ref::vec_dot(t, n, w.data(), a.data());
        const double mag = dot_magnitude(t, w.data(), a.data(), n);
        for (CpuIsa isa : test::simd_isas()) {
          const float got = kernel_table(isa).t[quant_slot(t)].vec_dot(n, w.data(), a.data());
          expect_dot_close(got, want, mag, type_name(t) + " " + cpu_isa_name(isa) + " n=" + std::to_string(n));
        }
      }
    }
  }
}

// Integer-valued data with unit scales: every path must give the exact integer.
TEST(QuantSimd, VecDotExactIntegers) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> small(-60, 60);
  for (GgmlType t : test::weight_types()) {
    if (type_traits(t).block_size == 1) continue;
    const GgmlType at = vec_dot_type(t);
    const int64_t n = 2 * 256;
    auto w = random_raw(t, n, 77);
    const TypeTraits tr = type_traits(t);
    for (int64_t b = 0; b < n / tr.block_size; ++b) {  // unit scales
      uint8_t* p = w.data() + b * tr.type_size;
      if (t == GgmlType::Q6_K) {
        test::put_f16(p + 208, 1.0f);
        for (int i = 0; i < 16; ++i) p[192 + i] = static_cast<uint8_t>(1 + (i % 3));
      } else {
        test::put_f16(p, 1.0f);
        if (t == GgmlType::Q4_1 || t == GgmlType::Q4_K || t == GgmlType::Q5_K) test::put_f16(p + 2, 1.0f);
      }
    }
    // Activation with unit scale and small integers, built by hand.
    std::vector<uint8_t> a(row_size(at, n));
    std::vector<int> q(n);
    for (auto& v : q) v = small(rng);
    const int64_t ab = type_traits(at).block_size, ats = type_traits(at).type_size;
    for (int64_t b = 0; b < n / ab; ++b) {
      uint8_t* p = a.data() + b * ats;
      int sum = 0;
      for (int j = 0; j < ab; ++j) sum += q[b * ab + j];
      if (at == GgmlType::Q8_K) {
        const float one = 1.0f;
        std::memcpy(p, &one, 4);
        for (int j = 0; j < ab; ++j) p[4 + j] = static_cast<uint8_t>(static_cast<int8_t>(q[b * ab + j]));
        for (int i = 0; i < 16; ++i) {
          int16_t s = 0;
          for (int j = 0; j < 16; ++j) s = static_cast<int16_t>(s + q[b * ab + 16 * i + j]);
          std::memcpy(p + 260 + 2 * i, &s, 2);
        }
      } else {
        test::put_f16(p, 1.0f);
        const int off = at == GgmlType::Q8_1 ? 4 : 2;
        if (at == GgmlType::Q8_1) test::put_f16(p + 2, static_cast<float>(sum));
        for (int j = 0; j < ab; ++j) p[off + j] = static_cast<uint8_t>(static_cast<int8_t>(q[b * ab + j]));
      }
    }
    std::vector<float> wf(n);
    ref::dequantize_row(t, w.data(), wf.data(), n);
    double exact = 0;
    for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(wf[i]) * q[i];
    ASSERT_EQ(exact, std::round(exact)) << type_name(t);
    EXPECT_EQ(ref::vec_dot(t, n, w.data(), a.data()), static_cast<float>(exact)) << type_name(t);
    for (CpuIsa isa : test::simd_isas())
      EXPECT_EQ(kernel_table(isa).t[quant_slot(t)].vec_dot(n, w.data(), a.data()), static_cast<float>(exact))
          << type_name(t) << " " << cpu_isa_name(isa);
  }
}

TEST(QuantSimd, DequantizeBitExact) {
  std::vector<GgmlType> types = test::weight_types();
  types.push_back(GgmlType::Q8_1);
  types.push_back(GgmlType::Q8_K);
  for (GgmlType t : types) {
    for (int64_t nblk : {1, 3, 5}) {
      const int64_t n = type_traits(t).block_size == 1 ? nblk * 29 : nblk * type_traits(t).block_size;
      std::vector<uint8_t> raw;
      if (t == GgmlType::Q8_1 || t == GgmlType::Q8_K) {
        const auto x = random_floats(n, 3 + nblk);
        raw.resize(row_size(t, n));
        ref::quantize_row(t, x.data(), raw.data(), n);
      } else {
        raw = random_raw(t, n, 11 + nblk);
      }
      std::vector<float> want(n);
      ref::dequantize_row(t, raw.data(), want.data(), n);
      for (CpuIsa isa : test::simd_isas()) {
        std::vector<float> got(n);
        kernel_table(isa).t[quant_slot(t)].dequantize(raw.data(), got.data(), n);
        EXPECT_TRUE(same_bits(got, want)) << type_name(t) << " " << cpu_isa_name(isa) << " n=" << n;
      }
    }
  }
}

TEST(QuantSimd, QuantizeActivationsMatchRef) {
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K}) {
    for (int64_t nblk : {1, 2, 3}) {
      const int64_t n = nblk * type_traits(t).block_size * (t == GgmlType::Q8_K ? 1 : 3);
      for (float scale : {1e-3f, 1.0f, 300.0f}) {
        auto x = random_floats(n, 17 + nblk, scale);
        x[0] = 0.5f * scale;  // exercise ties in rounding at least somewhere
        std::vector<uint8_t> want(row_size(t, n));
        ref::quantize_row(t, x.data(), want.data(), n);
        for (CpuIsa isa : test::simd_isas()) {
          std::vector<uint8_t> got(want.size());
          kernel_table(isa).t[quant_slot(t)].quantize(x.data(), got.data(), n);
          EXPECT_EQ(got, want) << type_name(t) << " " << cpu_isa_name(isa);
        }
      }
      // An all-zero row must quantize to zeros, not NaN.
      std::vector<float> z(n, 0.0f);
      std::vector<uint8_t> q(row_size(t, n));
      quantize_row(t, z.data(), q.data(), n);
      std::vector<float> back(n, 1.0f);
      dequantize_row(t, q.data(), back.data(), n);
      for (float v : back) ASSERT_EQ(v, 0.0f) << type_name(t);
    }
  }
}

// f32 -> f16 (KV cache stores): SIMD rounding equals the scalar reference on
// ties, subnormals, overflow, infinities and odd lengths.
TEST(QuantSimd, QuantizeF16MatchesRef) {
  auto x = random_floats(37, 5, 10.0f);
  const float special[] = {0.0f, -0.0f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 65504.0f, 65520.0f, 1e6f,
                           -1e6f, 6e-8f, 3e-8f, 1e-5f, -2.5e-6f, std::numeric_limits<float>::infinity()};
  x.insert(x.end(), std::begin(special), std::end(special));
  for (int64_t n : {int64_t(1), int64_t(8), int64_t(x.size())}) {
    std::vector<uint8_t> want(2 * n);
    ref::quantize_row(GgmlType::F16, x.data(), want.data(), n);
    for (CpuIsa isa : test::simd_isas()) {
      std::vector<uint8_t> got(want.size());
      kernel_table(isa).t[quant_slot(GgmlType::F16)].quantize(x.data(), got.data(), n);
      EXPECT_EQ(got, want) << cpu_isa_name(isa) << " n=" << n;
    }
  }
}

// quantize -> dequantize keeps the relative RMS error under a per-type bound.
TEST(QuantRef, RoundTripError) {
  const struct { GgmlType t; double bound; } cases[] = {
      {GgmlType::F32, 0},      {GgmlType::F16, 1e-3},   {GgmlType::BF16, 5e-3},
      {GgmlType::Q8_0, 0.01},  {GgmlType::Q8_1, 0.01},  {GgmlType::Q8_K, 0.01},
      {GgmlType::Q4_0, 0.15},  {GgmlType::Q4_1, 0.12},  {GgmlType::Q4_K, 0.12},
      {GgmlType::Q5_K, 0.06},  {GgmlType::Q6_K, 0.04},
  };
  for (const auto& c : cases) {
    const int64_t n = 3 * 256;
    const auto x = random_floats(n, 99, 0.7f);
    std::vector<uint8_t> q(row_size(c.t, n));
    quantize_row(c.t, x.data(), q.data(), n);
    std::vector<float> y(n);
    dequantize_row(c.t, q.data(), y.data(), n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (x[i] - y[i]) * (x[i] - y[i]);
      ref += x[i] * x[i];
    }
    EXPECT_LE(std::sqrt(err / ref), c.bound) << type_name(c.t);
  }
}

TEST(QuantRef, RejectsBadInput) {
  std::vector<float> x(48);
  std::vector<uint8_t> q(1024);
  EXPECT_THROW(quantize_row(GgmlType::Q8_0, x.data(), q.data(), 48), Error);
  EXPECT_THROW(dequantize_row(GgmlType::Q4_K, q.data(), x.data(), 32), Error);
  EXPECT_THROW(quantize_row(GgmlType::Q5_0, x.data(), q.data(), 32), Error);
  EXPECT_THROW(vec_dot(GgmlType::Q8_K, 256, q.data(), q.data()), Error);
  EXPECT_THROW(vec_dot_type(GgmlType::Q2_K), Error);
}

TEST(QuantDispatch, ActiveIsaIsUsable) {
  EXPECT_LE(static_cast<int>(active_cpu_isa()), static_cast<int>(detected_cpu_isa()));
  for (GgmlType t : test::weight_types()) {
    EXPECT_NE(type_kernels(t).vec_dot, nullptr) << type_name(t);
    EXPECT_NE(type_kernels(vec_dot_type(t)).quantize, nullptr) << type_name(t);
  }
}

}  // namespace
}  // namespace parallama
