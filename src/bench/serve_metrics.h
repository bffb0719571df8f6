// The statistics of a serving benchmark (`parallama bench serve`), defined as
// vLLM's `bench serve` defines them so that figures compare one to one:
//   TTFT  = first streamed token - request sent
//   E2EL  = last byte - request sent
//   TPOT  = (E2EL - TTFT) / (output tokens - 1), per request with > 1 output token
//   ITL   = every gap between consecutive streamed chunks, over all requests
//   percentiles: linear interpolation between closest ranks (numpy's default)
//   goodput = requests meeting every given SLO / benchmark duration
// Throughputs divide by the duration (first request sent to last one done).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parallama::bench {

struct RequestRecord {
  bool success = false;
  std::string error;           // why it failed ("" on success)
  int64_t prompt_len = 0;      // input tokens
  int64_t output_len = 0;      // output tokens (the server's usage)
  double ttft_s = 0;
  double latency_s = 0;        // E2EL
  std::vector<double> itl_s;   // gaps between consecutive chunks
};

// p in [0, 100]; v need not be sorted; 0 for an empty v.
double percentile(std::vector<double> v, double p);

// "ttft:500 tpot:50 e2el:3000" (milliseconds; any subset, in any order) ->
// {"ttft": 500, ...}. Throws parallama::Error naming a bad item.
std::map<std::string, double> parse_goodput(const std::string& spec);

struct MetricOptions {
  std::vector<std::string> metrics = {"ttft", "tpot", "itl"};  // --percentile-metrics (also "e2el")
  std::vector<double> percentiles = {99};                      // --metric-percentiles
  std::map<std::string, double> goodput_slo_ms;                 // --goodput
};

// The result object, with vLLM's field names: completed, failed, duration,
// total_input_tokens, total_output_tokens, request_throughput,
// output_throughput, total_token_throughput, request_goodput (with SLOs),
// and mean_/median_/std_/pNN_ X _ms for each selected metric X.
nlohmann::json compute_metrics(const std::vector<RequestRecord>& records, double duration_s,
                               const MetricOptions& opt);

}  // namespace parallama::bench
