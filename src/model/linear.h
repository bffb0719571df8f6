// Linear layers y = x·Wᵀ (+ b) whose weights stay in the mapped GGUF file (no
// copy) or, once placed, in the model's WeightArena (x16-repacked where the type
// has such kernels), and their tensor-parallel forms, which load only this
// rank's shard:
//
//   ColumnParallel  W rows [r0, r1) (output features): a pointer into the
//                   mapping; each rank computes a slice of y, no communication.
//   RowParallel     W columns [c0, c1) (input features), copied out at block
//                   boundaries; each rank computes a partial y over its slice of
//                   x and the layer all-reduces the partial sums over the TP group.
//
// RowParallel in RowReduction::kExact computes its partial sums in double
// (ops/matmul_exact.h: exact per-block terms), all-reduces the doubles and rounds
// to float once, and the single-rank layer (comm null or of size 1) takes the same
// path. So a split at block boundaries gives the single-rank floats (up to double
// rounding, 1e-16), which matters because a later matmul quantizes activations to
// 8 bits and a last-bit difference can cross a rounding boundary there. A model
// whose matmuls all take float activations (F32/F16/BF16 weights) has nothing to
// amplify such a difference and uses kFloat: float partial sums (the plain
// matmul, twice as fast as double for float weights) and a float all-reduce,
// equal to the single rank to float rounding (~1e-6 relative).
//
// A column split that falls inside a quantization block is widened to whole
// blocks and the input columns outside [c0, c1) are fed as zeros, so every
// input column still counts exactly once across ranks. Such a split cannot be
// exact: the zero-padded block quantizes its activations with a different scale
// than the whole block does (e.g. K types, 256-element blocks, split at 64-wide
// heads); results then agree only to quantization accuracy. block_aligned() says
// which case a shard is in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/weight_arena.h"
#include "ops/matmul.h"

namespace parallama {

class GgufFile;
class Communicator;

// Checks that `name` exists with dims [n_in, n_out] (GGUF order) and a supported
// type; throws Error naming the file, tensor and problem otherwise.
const struct GgufTensorInfo& expect_tensor(const GgufFile& f, const std::string& name,
                                           int64_t n_in, int64_t n_out);

// Reads a 1-D tensor of n values (any supported type) as f32.
std::vector<float> load_vector(const GgufFile& f, const std::string& name, int64_t n);

// Drops the whole pages of a read-only file mapping in [p, p + n) from this process
// (their contents now live in a copy; re-reading them would fault them back in).
void release_mapped_pages(const void* p, size_t n);

class Linear {
 public:
  Linear() = default;
  // Whole weight [n_out, n_in]; bias `<base>.bias` is loaded when present and `bias` is set.
  static Linear load(const GgufFile& f, const std::string& base, int64_t n_in, int64_t n_out,
                     bool bias);
  // Column-parallel shard: output rows [r0, r1) of a [n_out, n_in] weight (and bias).
  static Linear load_rows(const GgufFile& f, const std::string& base, int64_t n_in, int64_t n_out,
                          int64_t r0, int64_t r1, bool bias);

  // Moves the weight into `arena` (arena_bytes() of it), in the x16 layout
  // (ops/repack.h) when its type has x16 kernels and it has 16 rows or more, else
  // as a plain copy, and drops the mapped pages it was read from.
  void place(WeightArena& arena);
  size_t arena_bytes() const;

  // x: [n_tok, n_in] f32 -> y: [n_tok, n_out] f32
  void forward(const float* x, int64_t n_tok, float* y, ThreadPool& pool) const;
  // n layers (<= 4) on the same x, y[i] as layers[i]->forward gives it, in one
  // matmul_many (x quantized once, one hand-off to the pool): Q/K/V, gate/up.
  static void forward_many(const Linear* const* layers, float* const* y, int n, const float* x, int64_t n_tok,
                           ThreadPool& pool);
  const WeightView& weight() const { return w_; }
  int64_t n_in() const { return w_.n_cols; }
  int64_t n_out() const { return w_.n_rows; }

 private:
  void add_bias(float* y, int64_t n_tok) const;

  WeightView w_;              // [n_out, n_in] in its GGUF type (x16 rows when repacked)
  std::vector<float> bias_;   // [n_out] f32, empty when none
};

// How a row-parallel layer sums its shards (see the top of this file).
enum class RowReduction { kExact, kFloat };

// kExact when any matrix of the file is quantized: then some matmul quantizes its
// activations and partial sums must add up to the single-rank result exactly.
RowReduction row_reduction_for(const GgufFile& f);

// Row-parallel shard of a [n_out, n_in] weight: input columns [c0, c1).
class RowParallelLinear {
 public:
  RowParallelLinear() = default;
  static RowParallelLinear load(const GgufFile& f, const std::string& base, int64_t n_in,
                                int64_t n_out, int64_t c0, int64_t c1,
                                RowReduction reduction = RowReduction::kExact);
  // x: [n_tok, c1 - c0] f32 (this rank's slice) -> y: [n_tok, n_out] f32, the
  // full sum over all ranks when comm is given (all-reduce), else the partial sum.
  void forward(const float* x, int64_t n_tok, float* y, ThreadPool& pool, Communicator* comm);
  int64_t n_out() const { return w_.n_rows; }
  size_t weight_bytes() const;  // bytes of the (widened) slice this rank reads
  // As Linear::place; the private slice copy, if any, is freed.
  void place(WeightArena& arena);
  size_t arena_bytes() const { return weight_bytes(); }
  // True when the slice starts and ends on block boundaries (no zero padding),
  // so the all-reduced result equals the single-rank one.
  bool block_aligned() const { return w_.n_cols == n_slice_; }

 private:
  WeightView w_;                  // [n_out, wide columns] in its GGUF type
  std::vector<uint8_t> storage_;  // copy of a column slice until placed (empty if whole)
  int64_t pad_front_ = 0;         // zero columns before c0 in the widened slice
  int64_t n_slice_ = 0;           // c1 - c0
  std::vector<float> xwide_;      // [n_tok, wide] scratch when padded
  RowReduction reduction_ = RowReduction::kExact;
  std::vector<double> ysum_;      // [n_tok, n_out] partial / reduced sums (kExact)
};

}  // namespace parallama
