// Activation data of the x16 Q4_K kernels (gemm_x16_q4k_impl.h, gemm_x16_q4k_avx2.cpp):
// plain C++ in an anonymous namespace, so each per-ISA file has its own copy.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/quant_blocks.h"
#include "ops/scratch.h"

namespace parallama::x16k {
namespace {

constexpr int kMetaTok = 4;  // most tokens a kernel tile takes

// Activation super-block data for a tile of tokens, [kMetaTok][nb] each:
// d, and per sub-block pair p the int16 pair (sum of sub-block 2p, sum of 2p+1).
struct ActMetaK {
  float* d = nullptr;
  int32_t* pair_sums = nullptr;  // [kMetaTok][nb][4]
  int64_t nb = 0;
  void resize(int64_t n) {
    nb = n;
    d = d_buf.f32(static_cast<size_t>(kMetaTok * n));
    pair_sums = ps_buf.i32(static_cast<size_t>(4 * kMetaTok * n));
  }

 private:
  ScratchBuf d_buf, ps_buf;
};

inline void fill_meta(ActMetaK& m, int t, const uint8_t* act_row) {
  const BlockQ8_K* a = reinterpret_cast<const BlockQ8_K*>(act_row);
  float* d = m.d + t * m.nb;
  int32_t* ps = m.pair_sums + 4 * t * m.nb;
  for (int64_t b = 0; b < m.nb; ++b) {
    d[b] = a[b].d;
    const int16_t* bs = a[b].bsums;
    for (int p = 0; p < 4; ++p) {
      // |sub-block sum| <= 32 * 128: fits int16.
      const uint32_t s0 = static_cast<uint16_t>(bs[4 * p] + bs[4 * p + 1]);
      const uint32_t s1 = static_cast<uint16_t>(bs[4 * p + 2] + bs[4 * p + 3]);
      ps[4 * b + p] = static_cast<int32_t>(s0 | s1 << 16);
    }
  }
}

}  // namespace
}  // namespace parallama::x16k
