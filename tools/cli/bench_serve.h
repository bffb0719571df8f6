// `parallama bench serve` as a function, for `bench sweep` too: its options
// (vLLM's flag names), and one run against a server that returns the result
// object (vLLM's field names) with every request in arrival order.
#pragma once

#include <CLI/CLI.hpp>
#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

namespace parallama::cli {

struct BenchServeArgs {
  std::string base_url = "http://127.0.0.1:8080";
  std::string endpoint = "completions";
  std::string backend;    // vLLM's --backend: openai / vllm (completions), openai-chat (chat); overrides endpoint
  std::string model;      // "" -> the server's first model
  std::string tokenizer;  // GGUF whose tokenizer makes and measures prompts (default model)
  std::string api_key;
  std::string dataset_name = "random";
  std::string dataset_path;
  int num_prompts = 1000;
  int random_input_len = 1024;
  int random_output_len = 128;
  double random_range_ratio = 0;
  double request_rate = INFINITY;
  double burstiness = 1;
  int max_concurrency = 0;
  uint64_t seed = 0;
  bool ignore_eos = false;
  std::string percentile_metrics = "ttft,tpot,itl";
  std::string metric_percentiles = "99";
  std::string goodput;
  std::string result_filename;
  bool json = false;
};

// The workload options shared by `bench serve` and `bench sweep` (not the
// server's address, rate or output options, which each sets its own way).
void add_bench_workload_options(CLI::App* c, BenchServeArgs& a);

// Runs the benchmark; progress: a request counter on stderr. The result holds
// "requests": [{success, error, prompt_len, output_len, ttft, latency, itl}]
// in arrival order. Throws parallama::Error on bad options or no server.
nlohmann::json run_serve_benchmark(const BenchServeArgs& a, bool progress);

}  // namespace parallama::cli
