// Runs step plans on one rank: keeps the block tables (and, on the rank that
// samples, each sequence's sampler and penalty history) that the plans
// describe, builds the batch, runs this rank's stage and samples. The same on
// every rank; only who talks to whom differs (serve/engine_loop.cpp).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"
#include "serve/step_plan.h"

namespace parallama {

class StepExecutor {
 public:
  // samples: this rank turns logits into tokens (rank 0 with pp == 1, the last
  // stage's first TP rank with pp > 1).
  StepExecutor(Engine& engine, bool samples) : engine_(engine), samples_(samples) {}

  // Applies a plan's new sequences, releases and block-table deltas, and builds
  // the batch it runs. Throws parallama::Error on a plan that names unknown ids.
  void apply(const StepPlan& plan);
  // Runs this rank's stage on the batch of the last applied plan: io.hidden in
  // (non-first stage), io.hidden (non-last) or io.logits (last) out.
  void forward(StageIO& io);
  // One token per item that wants logits, in item order, from logits
  // [n_outputs, n_vocab]; appends them to the penalty histories. Log-probabilities
  // where the sequence asked for them.
  void sample(const StepPlan& plan, const std::vector<float>& logits, std::vector<SampledToken>& out);

  // The sampled tokens as bytes for the trip from the last stage to rank 0, and back.
  static std::vector<uint8_t> pack(const std::vector<SampledToken>& toks);
  static std::vector<SampledToken> unpack(const uint8_t* data, size_t size);

  const Batch& batch() const { return batch_; }
  size_t n_sequences() const { return tables_.size(); }
  double compute_seconds() const { return compute_s_; }

 private:
  struct SeqSampler {
    Sampler sampler;
    std::vector<int32_t> history;  // prompt, then sampled tokens
    int32_t logprobs = -1;
  };
  Engine& engine_;
  bool samples_;
  std::unordered_map<uint64_t, std::vector<int32_t>> tables_;  // block table per sequence
  std::unordered_map<uint64_t, SeqSampler> samplers_;
  Batch batch_;
  std::vector<std::pair<float, int32_t>> top_;  // scratch for the top log-probabilities
  double compute_s_ = 0;
};

}  // namespace parallama
