// A linear layer y = x·Wᵀ (+ b) whose weight points into the mapped GGUF file
// (no copy) or into storage it owns (repacked or sharded weights).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "ops/matmul.h"

namespace parallama {

class GgufFile;

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

  // x: [n_tok, n_in] f32 -> y: [n_tok, n_out] f32
  void forward(const float* x, int64_t n_tok, float* y, ThreadPool& pool) const;
  const WeightView& weight() const { return w_; }
  int64_t n_in() const { return w_.n_cols; }
  int64_t n_out() const { return w_.n_rows; }

 private:
  WeightView w_;              // [n_out, n_in] in its GGUF type
  std::vector<float> bias_;   // [n_out] f32, empty when none
};

}  // namespace parallama
