// What one engine step runs, as world rank 0 decided it, in a form that
// travels to the other ranks: new sequences once (prompt, sampling
// parameters), then only what changes (the tokens to run, block-table
// deltas, released ids). Every rank applies the plans it receives in order,
// so block tables agree everywhere without any other rank allocating.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/sampler.h"
#include "serve/request.h"

namespace parallama {

struct PlanNewSeq {
  uint64_t id = 0;
  SamplingParams sampling;
  int32_t logprobs = -1;        // Request::logprobs
  std::vector<int32_t> prompt;  // the sampling rank's penalty history starts with it
};

struct PlanItem {
  uint64_t id = 0;
  int32_t n_past = 0;          // tokens already cached before this step
  int32_t kept_blocks = 0;     // leading entries of the rank's table that stay
  bool want_logits = true;     // the last token's logits are sampled
  std::vector<int32_t> new_blocks;  // appended after the kept ones
  std::vector<int32_t> tokens;      // ids at positions n_past, n_past + 1, ...
};

struct StepPlan {
  uint64_t step = 0;
  bool shutdown = false;              // the engine stops; nothing else is set
  bool heartbeat = false;             // rank 0 is alive but idle; nothing else is set
  std::vector<PlanNewSeq> added;      // announced before their first item
  std::vector<uint64_t> released;     // finished or aborted: drop their state
  std::vector<PlanItem> items;        // in batch order

  int32_t n_outputs() const {
    int32_t n = 0;
    for (const auto& it : items) n += it.want_logits;
    return n;
  }
  std::vector<uint8_t> serialize() const;
  // Throws parallama::Error on a truncated or malformed buffer.
  static StepPlan deserialize(const uint8_t* data, size_t size);
};

}  // namespace parallama
