// What a client hands the serving engine, and what comes back token by token.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/sampler.h"

namespace parallama {

struct Request {
  std::vector<int32_t> prompt;  // token ids, at least one
  SamplingParams sampling;
  int32_t max_tokens = 16;      // generated tokens at most (also capped by the context)
  bool ignore_eos = false;      // do not stop at the tokenizer's end-of-generation tokens
  std::vector<int32_t> stop_token_ids;  // finish with "stop" after generating any of these
  // -1: no log-probabilities; k >= 0: each token's log-probability under the
  // model's raw distribution (log-softmax of the logits) and the k most likely
  // alternatives (at most kMaxTopLogprobs).
  int32_t logprobs = -1;
};
constexpr int32_t kMaxTopLogprobs = 20;

// One sampled token as the sampling rank returns it.
struct SampledToken {
  int32_t token = -1;
  float logprob = 0;                                  // when requested
  std::vector<std::pair<int32_t, float>> top;         // (id, logprob), most likely first
};

enum class FinishReason { kNone, kStop, kLength, kAbort };
const char* finish_reason_name(FinishReason r);  // "", "stop", "length", "abort"

// One generated token of a request, or its end. Called on the engine thread.
struct TokenEvent {
  uint64_t request_id = 0;
  int32_t token = -1;        // -1 when the event only ends the request (abort)
  float logprob = 0;         // with Request::logprobs >= 0
  std::vector<std::pair<int32_t, float>> top_logprobs;
  int32_t n_generated = 0;   // tokens generated so far, this one included
  FinishReason finish = FinishReason::kNone;  // kNone while it goes on
  int32_t n_prompt = 0;      // prompt tokens
  int32_t n_cached = 0;      // of those, served from the prefix cache at first admission
  double queue_s = 0;        // from arrival to first admission (0 until then)
};
using TokenCallback = std::function<void(const TokenEvent&)>;

}  // namespace parallama
