// matmul_exact: activations quantized once per token; rows of W split into
// chunks claimed by the threads; within a chunk, each tile of kRowTile rows stays
// in L1 while every token uses it.
#include "ops/matmul_exact.h"

#include <algorithm>
#include <vector>

#include "core/check.h"
#include "ops/quant.h"
#include "ops/quant_exact.h"
#include "ops/quant_kernels.h"

namespace parallama {
namespace {

constexpr int64_t kRowTile = 16;

}  // namespace

void matmul_exact(const WeightView& W, const float* x, int64_t n_tok, double* y, ThreadPool& pool) {
  PL_CHECK_MSG(W.data != nullptr && x != nullptr && y != nullptr, "matmul_exact: null pointer");
  PL_CHECK_MSG(W.n_rows >= 0 && W.n_cols >= 0 && n_tok >= 0, "matmul_exact: negative size");
  if (W.n_rows == 0 || n_tok == 0) return;
  const ExactKernels& k = exact_kernels(W.type);  // throws for unsupported weights
  const ExactRowsFn rows = k.rows;
  const int64_t n_cols = W.n_cols;
  const size_t w_stride = row_size(W.type, n_cols);  // checks the block multiple
  size_t act_stride = 0;
  const uint8_t* act = prepare_activations(W.type, x, n_tok, n_cols, &act_stride, pool);

  const uint8_t* w = static_cast<const uint8_t*>(W.data);
  const int64_t n_rows = W.n_rows;
  const int64_t nth = pool.size();
  const int64_t chunk = row_chunk(n_rows, nth, n_tok, kRowTile, kRowTile);
  const int64_t n_chunks = (n_rows + chunk - 1) / chunk;
  // x16-repacked rows (ops/repack.h): their kernels accumulate the same exact block
  // terms in double (GemmArgs::y64). Chunks are multiples of 16 rows, so a chunk
  // starts either inside or past the packed rows.
  const int64_t packed = W.packed_rows;
  const GemmRowsFn x16 = packed > 0 ? type_kernels(W.type).gemm_x16 : nullptr;
  PL_CHECK_MSG(packed == 0 || (x16 != nullptr && packed % 16 == 0 && packed <= n_rows),
               "matmul_exact: weight repacked for kernels this CPU path lacks");
  GemmArgs g;
  g.w = w;
  g.w_stride = w_stride;
  g.n_cols = n_cols;
  g.act = act;
  g.act_stride = act_stride;
  g.n_tok = n_tok;
  g.y64 = y;
  g.y_stride = n_rows;
  pool.run_tasks(n_chunks, [&](int64_t c) {
    int64_t r0 = c * chunk;
    const int64_t r1 = std::min(n_rows, r0 + chunk);
    if (r0 < packed) {
      const int64_t pe = std::min(r1, packed);
      x16(g, r0, pe);
      r0 = pe;
    }
    for (int64_t rt = r0; rt < r1; rt += kRowTile) {
      const int64_t nr = std::min(r1, rt + kRowTile) - rt;
      if (k.gemm) {
        k.gemm(n_cols, w + rt * w_stride, w_stride, nr, act, act_stride, n_tok, y + rt, n_rows);
        continue;
      }
      for (int64_t t = 0; t < n_tok; ++t)
        rows(n_cols, w + rt * w_stride, w_stride, nr, act + t * act_stride, y + t * n_rows + rt);
    }
  });
}

}  // namespace parallama
