// A fixed set of requests run to completion through the serving engine: what
// `parallama generate`, `bench` and the tests use. Under TP x PP every rank
// calls generate() with the same arguments; rank 0 submits the requests and
// ends with the results, the other ranks run plans until rank 0 is done.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "serve/engine_loop.h"

namespace parallama {

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids
  std::string finish_reason;    // "stop" or "length"
};

// on_token(request index, token id) is called on rank 0 as tokens are produced.
// Returns one result per request on rank 0, an empty vector elsewhere. stats:
// prompt_s runs until every request has its first token, decode_s after it.
std::vector<GenerateResult> generate(Engine& engine, const std::vector<Request>& reqs,
                                     const ServeConfig& cfg = {}, GenerateStats* stats = nullptr,
                                     const std::function<void(size_t, int32_t)>& on_token = {},
                                     ServeStats* serve_stats = nullptr);

}  // namespace parallama
