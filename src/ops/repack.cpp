// x16 repacking (see repack.h): plain byte shuffles, run once per weight at load.
#include "ops/repack.h"

#include <cstring>

#include "core/check.h"
#include "core/cpu_isa.h"
#include "ops/quant_blocks.h"
#include "ops/quant_kernels.h"
#include "ops/repack_q4k.h"

namespace parallama {
namespace {

// Byte offsets inside one x16 block group.
struct X16Shape {
  size_t block_bytes = 0;  // bytes of one GGUF block
  size_t scales = 0;       // f16 arrays before qs (1 for d, 2 for d and m)
  size_t qs_bytes = 0;     // GGUF qs bytes per block
};

X16Shape shape_of(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return {sizeof(BlockQ4_0), 1, QK / 2};
    case GgmlType::Q4_1: return {sizeof(BlockQ4_1), 2, QK / 2};
    case GgmlType::Q8_0: return {sizeof(BlockQ8_0), 1, QK};
    default: PL_THROW("no x16 layout for " << type_name(t));
  }
}

// In both layouts a row's 4-byte word i of a block's qs goes to chunk i, bytes 4r..4r+3:
// for Q4 the word holds elements 4i..4i+3 (low nibbles) and 16+4i.. (high nibbles)
// exactly as the chunk wants them; Q8 words are flipped to unsigned (+128).
void move_words(GgmlType t, const uint8_t* from, uint8_t* to, size_t qs_bytes, int r, bool to_packed) {
  const uint32_t flip = t == GgmlType::Q8_0 ? 0x80808080u : 0u;
  for (size_t i = 0; i < qs_bytes / 4; ++i) {
    uint32_t v;
    const size_t packed_at = 64 * i + 4 * static_cast<size_t>(r);
    std::memcpy(&v, to_packed ? from + 4 * i : from + packed_at, 4);
    v ^= flip;
    std::memcpy(to_packed ? to + packed_at : to + 4 * i, &v, 4);
  }
}

}  // namespace

bool can_repack(GgmlType t) {
  const int s = quant_slot(t);
  return s >= 0 && active_kernel_table().t[s].gemm_x16 != nullptr;
}

int64_t repack_x16(GgmlType t, const void* src, int64_t n_rows, int64_t n_cols, void* dst) {
  if (t == GgmlType::Q4_K) return repack_x16_q4_k(src, n_rows, n_cols, dst);
  const X16Shape sh = shape_of(t);
  PL_CHECK_MSG(n_cols % QK == 0, "repack: " << n_cols << " columns is not a multiple of " << QK);
  const int64_t nb = n_cols / QK;
  const size_t rs = row_size(t, n_cols);
  const int64_t packed = n_rows / kRepackRows * kRepackRows;
  const uint8_t* s = static_cast<const uint8_t*>(src);
  uint8_t* d = static_cast<uint8_t*>(dst);
  for (int64_t g = 0; g < packed / kRepackRows; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* out = d + (g * nb + b) * kRepackRows * sh.block_bytes;
      uint8_t* qs = out + sh.scales * 2 * kRepackRows;
      for (int r = 0; r < kRepackRows; ++r) {
        const uint8_t* blk = s + (g * kRepackRows + r) * rs + b * sh.block_bytes;
        for (size_t f = 0; f < sh.scales; ++f) std::memcpy(out + (f * kRepackRows + r) * 2, blk + 2 * f, 2);
        move_words(t, blk + 2 * sh.scales, qs, sh.qs_bytes, r, true);
      }
    }
  }
  std::memcpy(d + packed * rs, s + packed * rs, (n_rows - packed) * rs);
  return packed;
}

void unpack_x16_row(GgmlType t, const void* packed, int64_t n_cols, int64_t r, void* dst_row) {
  if (t == GgmlType::Q4_K) return unpack_x16_row_q4_k(packed, n_cols, r, dst_row);
  const X16Shape sh = shape_of(t);
  const int64_t nb = n_cols / QK;
  const int64_t g = r / kRepackRows;
  const int rr = static_cast<int>(r % kRepackRows);
  const uint8_t* p = static_cast<const uint8_t*>(packed);
  uint8_t* out = static_cast<uint8_t*>(dst_row);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* in = p + (g * nb + b) * kRepackRows * sh.block_bytes;
    const uint8_t* qs = in + sh.scales * 2 * kRepackRows;
    uint8_t* blk = out + b * sh.block_bytes;
    for (size_t f = 0; f < sh.scales; ++f) std::memcpy(blk + 2 * f, in + (f * kRepackRows + rr) * 2, 2);
    move_words(t, qs, blk + 2 * sh.scales, sh.qs_bytes, rr, false);
  }
}

}  // namespace parallama
