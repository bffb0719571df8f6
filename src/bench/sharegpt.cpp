#include "bench/sharegpt.h"

#include <algorithm>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "core/check.h"

namespace parallama::bench {

std::vector<SharegptPair> read_sharegpt(const std::string& path, uint64_t seed) {
  std::ifstream in(path);
  if (!in) PL_THROW("ShareGPT file: cannot read '" << path << "'");
  nlohmann::json data;
  try {
    data = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    PL_THROW("ShareGPT file '" << path << "' is not JSON: " << e.what());
  }
  if (!data.is_array()) PL_THROW("ShareGPT file '" << path << "': expected a JSON list of conversations");
  std::vector<SharegptPair> pairs;
  for (const auto& item : data) {
    if (!item.is_object() || !item.contains("conversations") || !item["conversations"].is_array()) continue;
    const auto& c = item["conversations"];
    if (c.size() < 2 || !c[0].is_object() || !c[1].is_object() || !c[0].contains("value") || !c[1].contains("value"))
      continue;
    if (!c[0]["value"].is_string() || !c[1]["value"].is_string()) continue;
    pairs.push_back({c[0]["value"].get<std::string>(), c[1]["value"].get<std::string>()});
  }
  if (pairs.empty()) PL_THROW("ShareGPT file '" << path << "': no conversation with two turns");
  std::mt19937_64 rng(seed);
  std::shuffle(pairs.begin(), pairs.end(), rng);
  return pairs;
}

std::vector<SharegptRequest> select_sharegpt(const std::vector<SharegptPair>& pairs, int64_t n,
                                             const std::function<int64_t(const std::string&)>& count_tokens) {
  std::vector<SharegptRequest> out;
  for (size_t i = 0; i < pairs.size() && static_cast<int64_t>(out.size()) < n; ++i) {
    const int64_t in_len = count_tokens(pairs[i].prompt);
    const int64_t out_len = count_tokens(pairs[i].answer);
    if (in_len < 4 || out_len < 4) continue;
    out.push_back({i, in_len, out_len});
  }
  if (out.empty()) PL_THROW("ShareGPT: no conversation with a prompt and an answer of at least 4 tokens each");
  return out;
}

}  // namespace parallama::bench
