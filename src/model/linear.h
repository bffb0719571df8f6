// Linear layers y = x·Wᵀ (+ b) whose weights stay in the mapped GGUF file (no
// copy) or in storage they own (sharded slices), and their tensor-parallel
// forms, which load only this rank's shard:
//
//   ColumnParallel  W rows [r0, r1) (output features): a pointer into the
//                   mapping; each rank computes a slice of y, no communication.
//   RowParallel     W columns [c0, c1) (input features), copied out at block
//                   boundaries; each rank computes a partial y over its slice of
//                   x and the layer all-reduces the partial sums over the TP group.
//
// A column split that falls inside a quantization block is widened to whole
// blocks and the input columns outside [c0, c1) are fed as zeros, so every
// input column still counts exactly once across ranks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
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

class Linear {
 public:
  Linear() = default;
  // Whole weight [n_out, n_in]; bias `<base>.bias` is loaded when present and `bias` is set.
  static Linear load(const GgufFile& f, const std::string& base, int64_t n_in, int64_t n_out,
                     bool bias);
  // Column-parallel shard: output rows [r0, r1) of a [n_out, n_in] weight (and bias).
  static Linear load_rows(const GgufFile& f, const std::string& base, int64_t n_in, int64_t n_out,
                          int64_t r0, int64_t r1, bool bias);

  // x: [n_tok, n_in] f32 -> y: [n_tok, n_out] f32
  void forward(const float* x, int64_t n_tok, float* y, ThreadPool& pool) const;
  const WeightView& weight() const { return w_; }
  int64_t n_in() const { return w_.n_cols; }
  int64_t n_out() const { return w_.n_rows; }

 private:
  WeightView w_;              // [n_out, n_in] in its GGUF type
  std::vector<float> bias_;   // [n_out] f32, empty when none
};

// Row-parallel shard of a [n_out, n_in] weight: input columns [c0, c1).
class RowParallelLinear {
 public:
  RowParallelLinear() = default;
  static RowParallelLinear load(const GgufFile& f, const std::string& base, int64_t n_in,
                                int64_t n_out, int64_t c0, int64_t c1);
  // x: [n_tok, c1 - c0] f32 (this rank's slice) -> y: [n_tok, n_out] f32, the
  // full sum over all ranks when comm is given (all-reduce), else the partial sum.
  void forward(const float* x, int64_t n_tok, float* y, ThreadPool& pool, Communicator* comm);
  int64_t n_out() const { return w_.n_rows; }
  size_t weight_bytes() const;  // bytes of the (widened) slice this rank reads

 private:
  WeightView w_;                  // [n_out, wide columns] in its GGUF type
  std::vector<uint8_t> storage_;  // owned copy of the column slice (empty if whole)
  int64_t pad_front_ = 0;         // zero columns before c0 in the widened slice
  int64_t n_slice_ = 0;           // c1 - c0
  std::vector<float> xwide_;      // [n_tok, wide] scratch when padded
};

}  // namespace parallama
