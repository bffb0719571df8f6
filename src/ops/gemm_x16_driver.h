// The loop shared by the x16 kernels (gemm_x16_impl.h, gemm_x16_q4k_impl.h): rows
// [r0, r1) of x16 groups (multiples of 16, inside the packed rows) for every token.
// Row groups go in spans of about 24 KiB that stay in L1 while every token tile
// (up to kTok tokens, activation data prepared once per span and tile) passes
// over them; decode-sized batches take all rows as one span.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/quant_kernels.h"

namespace parallama::x16 {

// fill(t, act_row): prepare token t's activation data for the tile.
// tile(nt, exact, group, act, y, y64): one group of 16 rows (its packed bytes) x nt tokens.
template <int kTok, class Fill, class Tile>
inline void drive(const GemmArgs& g, int64_t r0, int64_t r1, Fill&& fill, Tile&& tile) {
  const bool exact = g.y64 != nullptr;
  const int64_t group_bytes = 16 * static_cast<int64_t>(g.w_stride);
  const int64_t span = g.n_tok <= kTok ? r1 - r0 : 16 * std::max<int64_t>(1, (24 << 10) / group_bytes);
  for (int64_t s0 = r0; s0 < r1; s0 += span) {
    const int64_t s1 = std::min(r1, s0 + span);
    for (int64_t t0 = 0; t0 < g.n_tok; t0 += kTok) {
      const int nt = static_cast<int>(std::min<int64_t>(kTok, g.n_tok - t0));
      const uint8_t* act[kTok];
      for (int t = 0; t < nt; ++t) {
        act[t] = g.act + (t0 + t) * g.act_stride;
        fill(t, act[t]);
      }
      for (int64_t r = s0; r < s1; r += 16) {
        float* y[kTok];
        double* y64[kTok];
        for (int t = 0; t < nt; ++t) {
          y[t] = g.y ? g.y + (t0 + t) * g.y_stride + r : nullptr;
          y64[t] = exact ? g.y64 + (t0 + t) * g.y_stride + r : nullptr;
        }
        tile(nt, exact, g.w + r * g.w_stride, act, y, y64);
      }
    }
  }
}

}  // namespace parallama::x16
