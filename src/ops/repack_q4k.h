// Row-interleaved ("x16") layout for Q4_K weights: the Q4_K counterpart of repack.h.
//
// Rows are taken in groups of 16. Super-block b (256 elements) of group g occupies
// the 2304 bytes at (g * nb + b) * 2304 (nb = n_cols / 256), exactly the bytes of
// 16 GGUF super-blocks, so rows past the last whole group stay at r * row_size:
//
//   [  0,  32)  d     16 x f16 (row r at 2r)
//   [ 32,  64)  dmin  16 x f16
//   [ 64, 160)  the 128 6-bit sub-block scales, 6-bit code below (96 B)
//   [160, 256)  the 128 6-bit sub-block mins, same code (96 B)
//   [256,2304)  qs: 32 chunks of 64 B; chunk 8c + i, bytes 4r..4r+3 = row r's GGUF
//               qs[32c + 4i .. 32c + 4i + 3]: low nibbles are elements 64c + 4i..+3
//               (sub-block 2c), high nibbles elements 64c + 32 + 4i..+3 (sub-block 2c+1)
//
// 6-bit code of 128 values V[0..127] in 96 bytes, L[64] then H[32], made so that two
// 64-byte vectors decode with a few shifts and masks (V[P] and V[64+P] side by side):
//   L[P] = (V[P] & 15) | (V[64+P] & 15) << 4                         (P < 64)
//   H[16h + i] bits 2q..2q+1 = top bits of V[16(2q + h) + i]       (q = 0, 1)
//                            = top bits of V[64 + 16(2(q-2) + h) + i] (q = 2, 3)
// i.e. with H broadcast to both 256-bit halves, byte P of the first (second) decoded
// vector takes its top bits from byte P of the broadcast, shifted by 2 * (P / 32)
// (4 + 2 * (P / 32)).
// Value order: scales V[16j + r] = scale of sub-block j of row r (one 16-byte lane
// per sub-block); mins V[32p + 2r + e] = min of sub-block 2p + e of row r (per pair
// p, 16 rows x 2 bytes: widened to int16 they are vpmaddwd operands).
#pragma once

#include <cstdint>

namespace parallama {

struct KernelTable;

constexpr int64_t kQ4KGroupBlockBytes = 16 * 144;  // one super-block of a group of 16 rows

// Repacks rows [0, n_rows) of a GGUF-order Q4_K matrix (src) into dst (same size;
// must not overlap). Returns the packed row count, n_rows rounded down to a multiple
// of 16; the remaining rows are copied unchanged. Throws if n_cols % 256 != 0.
int64_t repack_x16_q4_k(const void* src, int64_t n_rows, int64_t n_cols, void* dst);

// Row r (< packed rows) of an x16 Q4_K matrix back to GGUF order (row_size bytes).
void unpack_x16_row_q4_k(const void* packed, int64_t n_cols, int64_t r, void* dst_row);

// Set t[SLOT_Q4_K].gemm_x16 to the AVX-512 VNNI or the AVX2 kernel (CPU support is
// the caller's check).
void fill_x16_q4k_avx512vnni_kernels(KernelTable& k);
void fill_x16_q4k_avx2_kernels(KernelTable& k);

}  // namespace parallama
