// ShareGPT conversations as vLLM's serving benchmark reads them: a JSON list
// of {"conversations": [{"from": "human", "value": ...}, {"from": "gpt",
// "value": ...}, ...]}; the first two turns are a prompt and its answer. Both
// `bench serve` (prompts to send) and `plan` (lengths to simulate) take their
// requests from here, so the same file and seed give the same requests.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace parallama::bench {

struct SharegptPair {
  std::string prompt;  // the first turn
  std::string answer;  // the second: its token count is the request's output length
};

// Every usable conversation of the file (items without two string turns are
// skipped), shuffled by `seed`. Throws parallama::Error naming the file when
// it cannot be read, is not JSON or not a list, or has no usable conversation.
std::vector<SharegptPair> read_sharegpt(const std::string& path, uint64_t seed);

struct SharegptRequest {
  size_t pair = 0;          // index into the pairs
  int64_t prompt_len = 0;   // tokens
  int64_t output_len = 0;   // tokens of the answer
};

// The first n pairs, in order, whose prompt and answer both count at least 4
// tokens (vLLM's rule), with their token counts (count_tokens: a tokenizer).
// Throws parallama::Error when none qualifies.
std::vector<SharegptRequest> select_sharegpt(const std::vector<SharegptPair>& pairs, int64_t n,
                                             const std::function<int64_t(const std::string&)>& count_tokens);

}  // namespace parallama::bench
