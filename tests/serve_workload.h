// A serving workload for tests: 16 requests of different lengths, some
// sharing a 40-token prefix, a few sampling with a seed and a penalty; and a
// driver that feeds them to a ServingEngine in waves.
#pragma once

#include <functional>
#include <vector>

#include "serve/engine_loop.h"

namespace parallama::test {

inline std::vector<Request> mixed_requests(int32_t V) {
  std::vector<Request> out;
  std::vector<int32_t> prefix;
  for (int i = 0; i < 40; ++i) prefix.push_back(3 + (i * 53) % (V - 10));
  for (int r = 0; r < 16; ++r) {
    Request q;
    if (r >= 4 && r < 10) q.prompt = prefix;
    const int n = 3 + (r * 29) % 90;
    for (int i = 0; i < n; ++i) q.prompt.push_back(3 + (i * 31 + r * 17) % (V - 10));
    q.max_tokens = 6 + (r * 7) % 19;
    q.ignore_eos = true;
    if (r % 4 == 1) q.logprobs = 2;  // travels back from the last stage under PP
    if (r % 5 == 2) {
      q.sampling.temperature = 0.8f;
      q.sampling.top_k = 40;
      q.sampling.seed = 1000 + r;
      q.sampling.repeat_penalty = 1.1f;
    }
    out.push_back(q);
  }
  return out;
}

// Rank 0: adds `per_wave` requests every `gap` steps and steps until all are
// done; returns each request's tokens.
inline std::vector<std::vector<int32_t>> run_in_waves(ServingEngine& se, const std::vector<Request>& reqs,
                                                      size_t per_wave, int gap) {
  std::vector<std::vector<int32_t>> out(reqs.size());
  size_t next = 0;
  for (int steps = 0; next < reqs.size() || se.has_work(); ++steps) {
    if (next < reqs.size() && steps % gap == 0) {
      for (size_t k = 0; k < per_wave && next < reqs.size(); ++k, ++next)
        se.add_request(reqs[next], [&out, next](const TokenEvent& ev) {
          if (ev.token >= 0) out[next].push_back(ev.token);
        });
    }
    se.step();
  }
  return out;
}

}  // namespace parallama::test
