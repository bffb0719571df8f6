// One request as the scheduler sees it on world rank 0: its tokens, how many
// of them have KV in the cache, its block table and its place in the queues.
#pragma once

#include <cstdint>
#include <vector>

#include "serve/request.h"

namespace parallama {

enum class SeqState { kWaiting, kRunning, kFinished };

struct Sequence {
  uint64_t id = 0;
  Request req;
  TokenCallback on_token;
  std::vector<int32_t> tokens;   // prompt, then generated ids
  int32_t n_prompt = 0;
  int32_t max_len = 0;           // tokens.size() at which it ends with "length"
  int32_t n_computed = 0;        // leading tokens whose KV is in (or scheduled into) the cache
  std::vector<int32_t> blocks;   // block table, covering n_computed and the tokens scheduled next
  std::vector<uint64_t> hashes;  // chain hashes of its leading full blocks known to the prefix cache
  SeqState state = SeqState::kWaiting;
  int64_t admitted = -1;         // admission counter: the highest is the newest (preempted first)
  bool in_flight = false;        // part of a micro-batch whose token has not come back
  bool abort_requested = false;
  int32_t n_cached_first = -1;   // prefix-cache hit tokens at the first admission
  int32_t n_preempted = 0;
  int32_t synced_blocks = 0;     // leading entries of `blocks` the other ranks already hold
  bool announced = false;        // the other ranks know its prompt and sampling parameters
  double t_arrival = 0, t_admitted = 0;

  int32_t n_generated() const { return static_cast<int32_t>(tokens.size()) - n_prompt; }
  // Tokens known but not yet in the cache: the prompt's rest, or the last sampled token.
  int32_t n_pending() const { return static_cast<int32_t>(tokens.size()) - n_computed; }
};

}  // namespace parallama
