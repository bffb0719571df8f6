// x16 repacking of Q4_K (layout in repack_q4k.h): byte shuffles and 6-bit recoding,
// run once per weight at load.
#include "ops/repack_q4k.h"

#include <cstring>

#include "core/check.h"
#include "ops/quant_blocks.h"

namespace parallama {
namespace {

constexpr size_t kD = 0, kDmin = 32, kScales = 64, kMins = 160, kQs = 256;
constexpr size_t kQsChunks = 32;

// Positions of row r's 8 values in the scale and min orders of the 6-bit code.
inline int scale_pos(int j, int r) { return 16 * j + r; }
inline int min_pos(int j, int r) { return 32 * (j / 2) + 2 * r + (j & 1); }

// 128 values (< 64) -> 96 bytes, and one value back (see repack_q4k.h).
void encode6(const uint8_t* v, uint8_t* out) {
  uint8_t* L = out;
  uint8_t* H = out + 64;
  std::memset(H, 0, 32);
  for (int p = 0; p < 64; ++p) {
    L[p] = static_cast<uint8_t>((v[p] & 15) | (v[64 + p] & 15) << 4);
    for (int half = 0; half < 2; ++half) {
      const int q = p / 32 + 2 * half;
      H[p % 32] |= static_cast<uint8_t>((v[64 * half + p] >> 4) << (2 * q));
    }
  }
}

uint8_t decode6(const uint8_t* in, int pos) {
  const int p = pos % 64, half = pos / 64;
  const int lo = (in[p] >> (4 * half)) & 15;
  const int hi = (in[64 + p % 32] >> (2 * (p / 32 + 2 * half))) & 3;
  return static_cast<uint8_t>(lo | hi << 4);
}

}  // namespace

int64_t repack_x16_q4_k(const void* src, int64_t n_rows, int64_t n_cols, void* dst) {
  PL_CHECK_MSG(n_cols % QK_K == 0, "repack: " << n_cols << " columns is not a multiple of " << QK_K);
  PL_CHECK_MSG(n_rows >= 0 && src != nullptr && dst != nullptr, "repack: bad arguments");
  const int64_t nb = n_cols / QK_K;
  const size_t rs = static_cast<size_t>(nb) * sizeof(BlockQ4_K);
  const int64_t packed = n_rows / 16 * 16;
  const uint8_t* s = static_cast<const uint8_t*>(src);
  uint8_t* d = static_cast<uint8_t*>(dst);
  uint8_t sc[128], mn[128];
  for (int64_t g = 0; g < packed / 16; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* out = d + (g * nb + b) * kQ4KGroupBlockBytes;
      for (int r = 0; r < 16; ++r) {
        const BlockQ4_K& blk = reinterpret_cast<const BlockQ4_K*>(s + (g * 16 + r) * rs)[b];
        std::memcpy(out + kD + 2 * r, &blk.d, 2);
        std::memcpy(out + kDmin + 2 * r, &blk.dmin, 2);
        for (int j = 0; j < 8; ++j) unpack_scale_min_k4(blk.scales, j, &sc[scale_pos(j, r)], &mn[min_pos(j, r)]);
        for (size_t k = 0; k < kQsChunks; ++k) std::memcpy(out + kQs + 64 * k + 4 * r, blk.qs + 4 * k, 4);
      }
      encode6(sc, out + kScales);
      encode6(mn, out + kMins);
    }
  }
  std::memcpy(d + packed * rs, s + packed * rs, (n_rows - packed) * rs);
  return packed;
}

void unpack_x16_row_q4_k(const void* packed, int64_t n_cols, int64_t r, void* dst_row) {
  PL_CHECK_MSG(n_cols % QK_K == 0 && r >= 0, "unpack: bad arguments");
  const int64_t nb = n_cols / QK_K;
  const int64_t g = r / 16;
  const int rr = static_cast<int>(r % 16);
  const uint8_t* p = static_cast<const uint8_t*>(packed);
  BlockQ4_K* out = static_cast<BlockQ4_K*>(dst_row);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* in = p + (g * nb + b) * kQ4KGroupBlockBytes;
    BlockQ4_K& blk = out[b];
    std::memcpy(&blk.d, in + kD + 2 * rr, 2);
    std::memcpy(&blk.dmin, in + kDmin + 2 * rr, 2);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = decode6(in + kScales, scale_pos(j, rr));
      mn[j] = decode6(in + kMins, min_pos(j, rr));
    }
    pack_scale_min_k4(sc, mn, blk.scales);
    for (size_t k = 0; k < kQsChunks; ++k) std::memcpy(blk.qs + 4 * k, in + kQs + 64 * k + 4 * rr, 4);
  }
}

}  // namespace parallama
