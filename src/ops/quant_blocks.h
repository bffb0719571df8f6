// Block layouts of the quantized formats, bit-compatible with GGUF/ggml files.
#pragma once

#include <cstdint>

namespace parallama {

constexpr int QK = 32;    // elements per block of the simple types
constexpr int QK_K = 256; // elements per super-block of the K types

// value = (q - 8) * d; element j in the low nibble of qs[j], element j+16 in the high one.
struct BlockQ4_0 {
  uint16_t d;  // f16
  uint8_t qs[QK / 2];
};
// value = q * d + m; same nibble order as Q4_0.
struct BlockQ4_1 {
  uint16_t d, m;  // f16
  uint8_t qs[QK / 2];
};
// value = q * d.
struct BlockQ8_0 {
  uint16_t d;  // f16
  int8_t qs[QK];
};
// Activation type for Q4_1: s = d * sum(qs) lets the dot product add the weight minimum.
struct BlockQ8_1 {
  uint16_t d, s;  // f16
  int8_t qs[QK];
};
// 8 sub-blocks of 32: value = d*sc[j]*q - dmin*mn[j], sc/mn 6-bit packed in scales[12]
// (see unpack_scale_min_k4). qs[32*c + l] holds element 64c+l (low nibble) and 64c+32+l (high).
struct BlockQ4_K {
  uint16_t d, dmin;  // f16
  uint8_t scales[12];
  uint8_t qs[QK_K / 2];
};
// As Q4_K plus a 5th bit: bit c of qh[l] belongs to element 32c + l.
struct BlockQ5_K {
  uint16_t d, dmin;  // f16
  uint8_t scales[12];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
// 16 sub-blocks of 16: value = d * scales[i] * (q - 32), q 6-bit. Two halves of 128;
// in half h, element 32g + l (g 0..3, l 0..31) takes its low nibble from
// ql[64h + l + 32*(g&1)] (>> 4 if g >= 2) and its top 2 bits from qh[32h + l] >> 2g.
struct BlockQ6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;  // f16
};
// Activation type for the K types: bsums[i] = sum of qs[16i .. 16i+15].
struct BlockQ8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block: bytes 0-3 hold
// scales 0-3 (low 6 bits), bytes 4-7 mins 0-3; for j >= 4 the low 4 bits come from
// byte 8+(j-4) (scale low nibble, min high nibble) and the top 2 bits from the
// spare top bits of bytes j-4 (scale) and j (min).
inline void unpack_scale_min_k4(const uint8_t* q, int j, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *mn = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Inverse of unpack_scale_min_k4 for all 8 pairs (values < 64).
inline void pack_scale_min_k4(const uint8_t* sc, const uint8_t* mn, uint8_t* q) {
  for (int j = 0; j < 12; ++j) q[j] = 0;
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      q[j] = static_cast<uint8_t>(sc[j]);
      q[j + 4] = static_cast<uint8_t>(mn[j]);
    } else {
      q[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
      q[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      q[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
    }
  }
}

}  // namespace parallama
