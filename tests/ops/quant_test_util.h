// Helpers for the quant/matmul tests: random blocks and ISA enumeration.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu_isa.h"
#include "core/fp16.h"
#include "core/ggml_type.h"
#include "ops/quant.h"
#include "ops/quant_blocks.h"

namespace parallama::test {

inline const std::vector<GgmlType>& weight_types() {
  static const std::vector<GgmlType> t = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16,
                                          GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0,
                                          GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
  return t;
}

// Every SIMD ISA this CPU can run (not counting scalar).
inline std::vector<CpuIsa> simd_isas() {
  std::vector<CpuIsa> v;
  for (int i = 1; i <= static_cast<int>(detected_cpu_isa()); ++i) v.push_back(static_cast<CpuIsa>(i));
  return v;
}

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& f : v) f = nd(rng);
  return v;
}

inline void put_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// n elements of type t as random raw bytes with sane scales: exercises every bit of
// the layouts, not only what our quantizer produces.
inline std::vector<uint8_t> random_raw(GgmlType t, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ud(0.001f, 0.1f);
  std::uniform_int_distribution<int> bd(0, 255);
  const TypeTraits tr = type_traits(t);
  const int64_t nb = n / tr.block_size;
  std::vector<uint8_t> raw(static_cast<size_t>(nb * tr.type_size));
  if (t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) {
    const auto f = random_floats(n, seed);
    quantize_row(t, f.data(), raw.data(), n);  // exact format conversion
    return raw;
  }
  for (auto& b : raw) b = static_cast<uint8_t>(bd(rng));
  auto sgn = [&] { return (bd(rng) & 1) ? 1.0f : -1.0f; };
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* p = raw.data() + b * tr.type_size;
    switch (t) {
      case GgmlType::Q4_0: put_f16(p, sgn() * ud(rng)); break;
      case GgmlType::Q4_1: put_f16(p, ud(rng)); put_f16(p + 2, sgn() * ud(rng)); break;
      case GgmlType::Q8_0:
        put_f16(p, sgn() * ud(rng));
        for (int j = 2; j < 34; ++j)
          if (p[j] == 0x80) p[j] = 0x81;  // llama.cpp never writes -128
        break;
      case GgmlType::Q4_K:
      case GgmlType::Q5_K: put_f16(p, ud(rng)); put_f16(p + 2, ud(rng)); break;
      case GgmlType::Q6_K: put_f16(p + 208, sgn() * ud(rng) * 0.1f); break;
      default: break;
    }
  }
  return raw;
}

}  // namespace parallama::test
