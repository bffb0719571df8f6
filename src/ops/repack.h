// Row-interleaved ("x16") weight layout for the 32-element block types, built at
// load time when repacking is enabled (mmapped weights stay in GGUF order otherwise).
//
// Rows are taken in groups of 16. For block b of group g the bytes at
// (g * nb + b) * 16 * block_bytes hold, for the 16 rows of the group:
//
//   Q4_0  [d: 16 x f16][qs: 4 chunks x 64 B]                 (16 * 18 = 288 B)
//   Q4_1  [d: 16 x f16][m: 16 x f16][qs: 4 chunks x 64 B]    (16 * 20 = 320 B)
//   Q8_0  [d: 16 x f16][qs: 8 chunks x 64 B]                 (16 * 34 = 544 B)
//
//   Q4 chunk c, bytes 4r..4r+3 (row r):  low nibbles = elements 4c..4c+3,
//                                        high nibbles = elements 16+4c..16+4c+3
//   Q8 chunk k, bytes 4r..4r+3 (row r):  elements 4k..4k+3, stored + 128 (as u8)
//
// So one 64-byte load gives, per 32-bit lane, four weights of one row: a VNNI dot
// product against the broadcast four matching activations sums 16 rows at once
// with no horizontal reduction. A group of 16 rows occupies exactly the bytes of
// 16 GGUF rows, so rows past the last whole group stay in GGUF order at their
// usual offset (row r at r * row_size). Q4_K has its own x16 layout, same
// principle and size (ops/repack_q4k.h).
#pragma once

#include <cstdint>

#include "core/ggml_type.h"

namespace parallama {

constexpr int64_t kRepackRows = 16;

// True when t has an x16 layout and the CPU has kernels for it.
bool can_repack(GgmlType t);

// Repacks rows [0, n_rows) of a GGUF-order matrix (src) into dst (same size,
// row_size(t, n_cols) * n_rows bytes; must not overlap src). Returns the number
// of packed rows: n_rows rounded down to a multiple of kRepackRows (the rest is
// copied unchanged).
int64_t repack_x16(GgmlType t, const void* src, int64_t n_rows, int64_t n_cols, void* dst);

// Row r (< packed rows) of an x16 matrix back to GGUF order (tests, debugging).
void unpack_x16_row(GgmlType t, const void* packed, int64_t n_cols, int64_t r, void* dst_row);

}  // namespace parallama
