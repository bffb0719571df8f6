// Prometheus metrics for the server's GET /metrics: vLLM v1's metric names
// under a `parallama:` prefix instead of `vllm:` (a vLLM dashboard maps one to
// one by replacing the prefix), every sample labelled model_name="<served
// model name>". Rendered in the Prometheus text exposition format 0.0.4.
//
//   gauges      parallama:num_requests_running, parallama:num_requests_waiting,
//               parallama:kv_cache_usage_perc (a fraction, 0..1, as vLLM v1)
//   counters    parallama:prefix_cache_queries_total, parallama:prefix_cache_hits_total,
//               parallama:num_preemptions_total, parallama:prompt_tokens_total,
//               parallama:generation_tokens_total,
//               parallama:request_success_total{finished_reason}
//   histograms  parallama:time_to_first_token_seconds, parallama:inter_token_latency_seconds,
//               parallama:e2e_request_latency_seconds, parallama:request_queue_time_seconds,
//               parallama:request_prompt_tokens, parallama:request_generation_tokens
//
// Threads: every member may be called from any thread at any time (the engine
// thread reports, HTTP threads render).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace parallama {

// What the serving engine reports (serve/engine_loop.h ServeStats). Counts are
// totals since the engine started; Metrics turns them into counter increments.
struct EngineSnapshot {
  int32_t running = 0, waiting = 0;
  double kv_usage = 0;                              // fraction 0..1
  int64_t prefix_queries = 0, prefix_hits = 0;      // totals, tokens
  int64_t preemptions = 0;                          // total
  int64_t prompt_tokens = 0, generation_tokens = 0; // totals
};

// One finished request (any finish reason, aborts included).
struct RequestRecord {
  std::string finish_reason;   // "stop", "length", "abort", "error"
  int32_t prompt_tokens = 0, generation_tokens = 0;
  double queue_s = 0;          // arrival to first scheduling
  double ttft_s = -1;          // arrival to first token (-1: none)
  double e2e_s = 0;            // arrival to finish
  std::vector<double> itl_s;   // gaps between consecutive tokens
};

class Metrics {
 public:
  // Content-Type of render()'s text.
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // max_model_len bounds the token-count histograms' 1-2-5 buckets (as vLLM
  // does with its max_model_len); 0: up to kDefaultTokenBucketMax. Pass
  // ServingEngine::max_model_len() where it is known.
  static constexpr int64_t kDefaultTokenBucketMax = 1000000;
  explicit Metrics(const std::string& model_name, int64_t max_model_len = 0);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Gauges set; counters incremented by the growth of each total since the last
  // call. A total below the last one (an engine restart) moves no counter; the
  // growth after it counts from the new total.
  void observe_engine(const EngineSnapshot& s);
  // Histograms (TTFT only when ttft_s >= 0; one ITL observation per gap) and
  // request_success_total{finished_reason} (aborts counted too).
  void observe_request(const RequestRecord& r);
  // Prometheus text format: # HELP / # TYPE lines and samples.
  std::string render() const;

  // The bucket upper bounds used (without +Inf), for tests and docs.
  static std::vector<double> ttft_buckets();
  static std::vector<double> itl_buckets();
  static std::vector<double> request_latency_buckets();  // e2e and queue time
  static std::vector<double> token_buckets(int64_t max_value);  // 1, 2, 5, 10, 20, 50, ... <= max_value

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parallama
