// y = x · Wᵀ. Activations are quantized once into vec_dot_type(W); rows of W are
// split into one contiguous slice per thread; within a slice, tiles of
// kRowTile weight rows x kTokTile tokens keep the weight tile in L1 while every
// token of the tile reuses it, so weights stream from memory once per tile.
#include "ops/matmul.h"

#include <algorithm>
#include <optional>
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

int64_t row_chunk(int64_t n_rows, int64_t nth, int64_t n_tok, int64_t min_rows, int64_t align) {
  if (nth <= 1) return std::max<int64_t>(n_rows, 1);
  const int64_t per_thread = n_tok <= 4 ? 1 : 8;
  const int64_t chunk = std::max(min_rows, (n_rows + per_thread * nth - 1) / (per_thread * nth));
  return (chunk + align - 1) / align * align;
}

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

namespace {

// One weight's share of a matmul: its rows in chunks, each chunk a task.
class RowPlan {
 public:
  RowPlan(const WeightView& W, const uint8_t* act, size_t act_stride, int64_t n_tok, float* y, int64_t nth) {
    PL_CHECK_MSG(W.data != nullptr && y != nullptr, "matmul: null pointer");
    const TypeKernels& wk = type_kernels(W.type);
    dot_ = wk.vec_dot;
    PL_CHECK_MSG(dot_ != nullptr, "matmul: " << type_name(W.type) << " is not a weight type");
    const int64_t n_rows = W.n_rows;
    // x16-packed rows are processed in whole groups, so chunks are multiples of 16.
    packed_ = W.packed_rows;
    gemm_x16_ = packed_ > 0 ? wk.gemm_x16 : nullptr;
    PL_CHECK_MSG(packed_ == 0 || (gemm_x16_ != nullptr && packed_ % 16 == 0 && packed_ <= n_rows),
                 "matmul: weight repacked for kernels this CPU path lacks");
    // The GEMM kernel serves single tokens too, so that a prompt batch and token-by-token
    // decoding give bit-identical results (this model amplifies rounding differences).
    gemm_ = wk.gemm_rows;
    // Row chunks claimed dynamically; one token needs bigger ones to amortise the claim.
    chunk_ = row_chunk(n_rows, nth, n_tok, n_tok == 1 ? 16 : kRowTile, packed_ > 0 ? 16 : kRowTile);
    n_chunks_ = n_rows == 0 ? 0 : (n_rows + chunk_ - 1) / chunk_;
    g_.w = static_cast<const uint8_t*>(W.data);
    g_.w_stride = row_size(W.type, W.n_cols);  // checks the block multiple
    g_.n_cols = W.n_cols;
    g_.act = act;
    g_.act_stride = act_stride;
    g_.n_tok = n_tok;
    g_.y = y;
    g_.y_stride = n_rows;
    n_rows_ = n_rows;
  }
  int64_t n_chunks() const { return n_chunks_; }

  void run(int64_t c) const {
    int64_t r0 = c * chunk_;
    const int64_t r1 = std::min(n_rows_, r0 + chunk_);
    if (r0 < packed_) {
      const int64_t pe = std::min(r1, packed_);
      gemm_x16_(g_, r0, pe);
      r0 = pe;
      if (r0 == r1) return;
    }
    if (gemm_) {
      gemm_(g_, r0, r1);
      return;
    }
    const uint8_t* w = g_.w;
    const size_t ws = g_.w_stride;
    const int64_t n_tok = g_.n_tok;
    if (n_tok == 1) {
      for (int64_t r = r0; r < r1; ++r) g_.y[r] = dot_(g_.n_cols, w + r * ws, g_.act);
      return;
    }
    for (int64_t rt = r0; rt < r1; rt += kRowTile) {
      const int64_t re = std::min(r1, rt + kRowTile);
      for (int64_t tt = 0; tt < n_tok; tt += kTokTile) {
        const int64_t te = std::min(n_tok, tt + kTokTile);
        for (int64_t r = rt; r < re; ++r)
          for (int64_t t = tt; t < te; ++t)
            g_.y[t * n_rows_ + r] = dot_(g_.n_cols, w + r * ws, g_.act + t * g_.act_stride);
      }
    }
  }

 private:
  GemmArgs g_;
  VecDotFn dot_ = nullptr;
  GemmRowsFn gemm_ = nullptr, gemm_x16_ = nullptr;
  int64_t packed_ = 0, chunk_ = 0, n_chunks_ = 0, n_rows_ = 0;
};

}  // namespace

void matmul(const WeightView& W, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const WeightView* ws[1] = {&W};
  float* ys[1] = {y};
  matmul_many(ws, ys, 1, x, n_tok, pool);
}

void matmul_many(const WeightView* const* W, float* const* y, int n, const float* x, int64_t n_tok,
                 ThreadPool& pool) {
  PL_CHECK_MSG(x != nullptr && n >= 0 && n_tok >= 0, "matmul: bad arguments");
  if (n == 0 || n_tok == 0) return;
  for (int i = 1; i < n; ++i) {  // one activation format for all, else one call each
    if (W[i]->n_cols != W[0]->n_cols || vec_dot_type(W[i]->type) != vec_dot_type(W[0]->type)) {
      for (int j = 0; j < n; ++j) matmul(*W[j], x, n_tok, y[j], pool);
      return;
    }
  }
  for (int i = 0; i < n; ++i)
    PL_CHECK_MSG(W[i]->n_rows >= 0 && W[i]->n_cols >= 0, "matmul: negative size");
  size_t act_stride = 0;
  const uint8_t* act = prepare_activations(W[0]->type, x, n_tok, W[0]->n_cols, &act_stride, pool);
  constexpr int kMax = 4;
  PL_CHECK_MSG(n <= kMax, "matmul_many: at most " << kMax << " weights");
  std::optional<RowPlan> plans[kMax];
  int64_t first[kMax + 1] = {0};  // first task of each plan
  for (int i = 0; i < n; ++i) {
    plans[i].emplace(*W[i], act, act_stride, n_tok, y[i], pool.size());
    first[i + 1] = first[i] + plans[i]->n_chunks();
  }
  pool.run_tasks(first[n], [&](int64_t c) {
    int i = 0;
    while (c >= first[i + 1]) ++i;
    plans[i]->run(c - first[i]);
  });
}

}  // namespace parallama
