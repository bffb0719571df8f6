// y = x · Wᵀ. Activations are quantized once into vec_dot_type(W); rows of W are
// split into one contiguous slice per thread; within a slice, tiles of
// kRowTile weight rows x kTokTile tokens keep the weight tile in L1 while every
// token of the tile reuses it, so weights stream from memory once per tile.
#include "ops/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "ops/quant.h"
#include "ops/quant_kernels.h"

namespace parallama {
namespace {

constexpr int64_t kRowTile = 4;
constexpr int64_t kTokTile = 8;

}  // namespace

const uint8_t* prepare_activations(GgmlType w, const float* x, int64_t n_tok, int64_t n_cols, size_t* stride,
                                   ThreadPool& pool) {
  const GgmlType act_type = vec_dot_type(w);  // throws for unsupported weights
  if (act_type == GgmlType::F32) {
    *stride = static_cast<size_t>(n_cols) * sizeof(float);
    return reinterpret_cast<const uint8_t*>(x);
  }
  const QuantizeRowFn quant = type_kernels(act_type).quantize;
  const size_t st = row_size(act_type, n_cols);
  *stride = st;
  // Reused across calls so decode does not allocate; per calling thread.
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < st * n_tok) buf.resize(st * n_tok);
  uint8_t* dst = buf.data();
  auto rows = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) quant(x + t * n_cols, dst + t * st, n_cols);
  };
  if (n_tok >= 4 && pool.size() > 1) pool.parallel_for(n_tok, 1, rows);
  else rows(0, n_tok);
  return dst;
}

void matmul(const WeightView& W, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  PL_CHECK_MSG(W.data != nullptr && x != nullptr && y != nullptr, "matmul: null pointer");
  PL_CHECK_MSG(W.n_rows >= 0 && W.n_cols >= 0 && n_tok >= 0, "matmul: negative size");
  if (W.n_rows == 0 || n_tok == 0) return;
  const TypeKernels& wk = type_kernels(W.type);
  const VecDotFn dot = wk.vec_dot;
  PL_CHECK_MSG(dot != nullptr, "matmul: " << type_name(W.type) << " is not a weight type");
  const int64_t n_cols = W.n_cols;
  const size_t w_stride = row_size(W.type, n_cols);  // checks the block multiple
  size_t act_stride = 0;
  const uint8_t* act = prepare_activations(W.type, x, n_tok, n_cols, &act_stride, pool);

  const uint8_t* w = static_cast<const uint8_t*>(W.data);
  const int64_t n_rows = W.n_rows;
  // Row chunks claimed dynamically: enough of them (~8 per thread) that a thread the
  // OS delays does not hold the others up, each big enough to amortise the claim.
  const int64_t nth = pool.size();
  int64_t chunk = n_rows;
  // x16-packed rows are processed in whole groups, so chunks are multiples of 16.
  const int64_t packed = W.packed_rows;
  const GemmRowsFn gemm_x16 = packed > 0 ? wk.gemm_x16 : nullptr;
  PL_CHECK_MSG(packed == 0 || (gemm_x16 != nullptr && packed % 16 == 0 && packed <= n_rows),
               "matmul: weight repacked for kernels this CPU path lacks");
  const int64_t align = packed > 0 ? 16 : kRowTile;
  if (nth > 1) {
    const int64_t min_rows = n_tok == 1 ? 16 : kRowTile;
    chunk = std::max(min_rows, (n_rows + 8 * nth - 1) / (8 * nth));
    chunk = (chunk + align - 1) / align * align;
  }
  const int64_t n_chunks = (n_rows + chunk - 1) / chunk;
  // The GEMM kernel serves single tokens too, so that a prompt batch and token-by-token
  // decoding give bit-identical results (this model amplifies rounding differences).
  const GemmRowsFn gemm = wk.gemm_rows;
  GemmArgs g;
  g.w = w;
  g.w_stride = w_stride;
  g.n_cols = n_cols;
  g.act = act;
  g.act_stride = act_stride;
  g.n_tok = n_tok;
  g.y = y;
  g.y_stride = n_rows;
  pool.run_tasks(n_chunks, [&](int64_t c) {
    int64_t r0 = c * chunk;
    const int64_t r1 = std::min(n_rows, r0 + chunk);
    if (r0 < packed) {
      const int64_t pe = std::min(r1, packed);
      gemm_x16(g, r0, pe);
      r0 = pe;
      if (r0 == r1) return;
    }
    if (gemm) {
      gemm(g, r0, r1);
      return;
    }
    if (n_tok == 1) {
      for (int64_t r = r0; r < r1; ++r) y[r] = dot(n_cols, w + r * w_stride, act);
      return;
    }
    for (int64_t rt = r0; rt < r1; rt += kRowTile) {
      const int64_t re = std::min(r1, rt + kRowTile);
      for (int64_t tt = 0; tt < n_tok; tt += kTokTile) {
        const int64_t te = std::min(n_tok, tt + kTokTile);
        for (int64_t r = rt; r < re; ++r) {
          const uint8_t* wr = w + r * w_stride;
          for (int64_t t = tt; t < te; ++t) y[t * n_rows + r] = dot(n_cols, wr, act + t * act_stride);
        }
      }
    }
  });
}
}  // namespace parallama
