// parallama bench serve: an open-loop load generator for any OpenAI-compatible
// server, with vLLM's `bench serve` flags, metric definitions and result field
// names (src/bench/serve_metrics.h). Requests are sent at Poisson or gamma
// arrival times (src/bench/arrivals.h), each on its own thread, at most
// --max-concurrency at once; every response is streamed and timed.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "bench/arrivals.h"
#include "bench/serve_client.h"
#include "bench/serve_metrics.h"
#include "bench/sharegpt.h"
#include "cli/bench_serve.h"
#include "cli/commands.h"
#include "core/check.h"
#include "core/clock.h"
#include "engine/engine.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace parallama::cli {

namespace {

struct Prompt {
  nlohmann::json body;  // model, prompt or messages, max_tokens, ...
  int64_t prompt_len = 0;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, sep);)
    if (!x.empty()) out.push_back(x);
  return out;
}

// Random prompts as vLLM's random dataset makes them: lengths uniform in
// [len (1 - r), len (1 + r)], token ids uniform over the vocabulary away from
// its special ends. Completions get the ids themselves (exact length); chat
// gets their text.
std::vector<Prompt> random_prompts(const BenchServeArgs& a, const Tokenizer& tok, bool chat) {
  std::mt19937_64 rng(a.seed);
  auto draw = [&](int len) {
    const int lo = std::max(1, static_cast<int>(std::floor(len * (1 - a.random_range_ratio))));
    const int hi = std::max(lo, static_cast<int>(std::floor(len * (1 + a.random_range_ratio))));
    return std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  const int32_t V = tok.n_vocab();
  std::uniform_int_distribution<int32_t> id(std::min(100, V / 4), std::max(V / 4 + 1, V - 100) - 1);
  std::vector<Prompt> out(a.num_prompts);
  for (Prompt& p : out) {
    const int in = draw(a.random_input_len), max_out = draw(a.random_output_len);
    std::vector<int32_t> ids(in);
    for (auto& x : ids) x = id(rng);
    p.prompt_len = in;
    p.body = {{"max_tokens", max_out}, {"temperature", 0}};
    if (chat) p.body["messages"] = {{{"role", "user"}, {"content", tok.decode(ids)}}};
    else p.body["prompt"] = ids;
  }
  return out;
}

// ShareGPT (bench/sharegpt.h): the first two turns of each conversation give
// the prompt and, tokenized, the output length. Shuffled by --seed.
std::vector<Prompt> sharegpt_prompts(const BenchServeArgs& a, const Tokenizer& tok, bool chat) {
  if (a.dataset_path.empty()) PL_THROW("--dataset-name sharegpt needs --dataset-path FILE.json");
  const auto pairs = bench::read_sharegpt(a.dataset_path, a.seed);
  const auto picked = bench::select_sharegpt(pairs, a.num_prompts, [&tok](const std::string& s) {
    return static_cast<int64_t>(tok.encode(s, false, false).size());
  });
  std::vector<Prompt> out;
  for (const auto& r : picked) {
    const std::string& q = pairs[r.pair].prompt;
    Prompt p;
    p.prompt_len = r.prompt_len;
    p.body = {{"max_tokens", r.output_len}, {"temperature", 0}};
    if (chat) p.body["messages"] = {{{"role", "user"}, {"content", q}}};
    else p.body["prompt"] = q;
    out.push_back(std::move(p));
  }
  return out;
}

void print_summary(const nlohmann::json& r, const std::vector<std::string>& metrics) {
  auto line = [](const char* k, const std::string& v) { std::printf("%-40s %s\n", k, v.c_str()); };
  auto num = [](double x) {
    char b[64];
    std::snprintf(b, sizeof(b), "%.2f", x);
    return std::string(b);
  };
  std::printf("============ Serving Benchmark Result ============\n");
  line("Successful requests:", std::to_string(r["completed"].get<int64_t>()));
  line("Failed requests:", std::to_string(r["failed"].get<int64_t>()));
  line("Benchmark duration (s):", num(r["duration"]));
  line("Total input tokens:", std::to_string(r["total_input_tokens"].get<int64_t>()));
  line("Total generated tokens:", std::to_string(r["total_output_tokens"].get<int64_t>()));
  line("Request throughput (req/s):", num(r["request_throughput"]));
  if (r.contains("request_goodput")) line("Request goodput (req/s):", num(r["request_goodput"]));
  line("Output token throughput (tok/s):", num(r["output_throughput"]));
  line("Total Token throughput (tok/s):", num(r["total_token_throughput"]));
  for (const std::string& m : metrics)
    for (const auto& [k, v] : r.items())
      if (k.size() > m.size() + 4 && k.compare(k.size() - m.size() - 3, std::string::npos, m + "_ms") == 0 &&
          k[k.size() - m.size() - 4] == '_')
        line((k + ":").c_str(), num(v));
  for (const auto& [why, n] : r["errors"].items()) line(("failed: " + why).c_str(), std::to_string(n.get<int64_t>()));
  std::printf("==================================================\n");
}

// One line on a terminal: [#####.....] 40/100 requests, 1 failed, 12.3 s
void progress_bar(int done, int n, int failed, double elapsed_s) {
  const int w = 30, filled = n ? done * w / n : w;
  std::fprintf(stderr, "\rbench serve [%.*s%.*s] %d/%d requests", filled, "##############################",
               w - filled, "..............................", done, n);
  if (failed) std::fprintf(stderr, ", %d failed", failed);
  std::fprintf(stderr, ", %.1f s ", elapsed_s);
}

}  // namespace

nlohmann::json run_serve_benchmark(const BenchServeArgs& a, bool progress) {
  if (a.num_prompts < 1) PL_THROW("--num-prompts must be at least 1");
  if (a.max_concurrency < 0) PL_THROW("--max-concurrency must be >= 0 (0: no limit)");
  if (a.random_input_len < 1 || a.random_output_len < 1) PL_THROW("--random-input-len/--random-output-len must be >= 1");
  if (!(a.random_range_ratio >= 0 && a.random_range_ratio < 1)) PL_THROW("--random-range-ratio must be in [0, 1)");
  const std::string endpoint = a.backend.empty() ? a.endpoint : a.backend == "openai-chat" ? "chat" : "completions";
  bench::Endpoint ep{a.base_url, bench::endpoint_path(endpoint), a.api_key, 600};
  const bool chat = ep.path.find("chat") != std::string::npos;
  bench::MetricOptions mopt;
  mopt.metrics = split(a.percentile_metrics, ',');
  mopt.percentiles.clear();
  for (const std::string& p : split(a.metric_percentiles, ',')) {
    char* end = nullptr;
    const double v = std::strtod(p.c_str(), &end);
    if (*end != '\0' || !(v > 0 && v < 100)) PL_THROW("--metric-percentiles: '" << p << "' is not in (0, 100)");
    mopt.percentiles.push_back(v);
  }
  mopt.goodput_slo_ms = bench::parse_goodput(a.goodput);
  const auto times = bench::arrival_times(a.num_prompts, a.request_rate, a.burstiness, a.seed);

  auto f = GgufFile::open(a.tokenizer.empty() ? default_model_path() : a.tokenizer);
  auto tok = Tokenizer::from_gguf(*f);
  std::vector<Prompt> prompts;
  if (a.dataset_name == "random") prompts = random_prompts(a, *tok, chat);
  else if (a.dataset_name == "sharegpt") prompts = sharegpt_prompts(a, *tok, chat);
  else PL_THROW("--dataset-name must be random or sharegpt, got '" << a.dataset_name << "'");
  const std::string model = a.model.empty() ? bench::first_model_id(ep) : a.model;
  for (Prompt& p : prompts) {
    p.body["model"] = model;
    if (a.ignore_eos) p.body["ignore_eos"] = true;
  }

  const int n = static_cast<int>(prompts.size());
  std::vector<bench::StreamResult> results(n);
  std::mutex mu;
  std::condition_variable cv;
  int running = 0, done = 0, failed = 0;
  std::vector<std::thread> threads;
  std::vector<double> ended(n);  // seconds after the start
  threads.reserve(n);
  const double t0 = now_seconds();
  for (int i = 0; i < n; ++i) {
    const double wait = t0 + times[i] - now_seconds();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return a.max_concurrency == 0 || running < a.max_concurrency; });
      ++running;
    }
    threads.emplace_back([&, i] {
      results[i] = bench::run_stream(ep, prompts[i].body, prompts[i].prompt_len);
      ended[i] = now_seconds() - t0;
      std::lock_guard<std::mutex> lock(mu);
      --running;
      ++done;
      if (!results[i].record.success) ++failed;
      if (progress) progress_bar(done, n, failed, now_seconds() - t0);
      cv.notify_all();
    });
  }
  for (auto& t : threads) t.join();
  const double duration = now_seconds() - t0;
  if (progress) std::fprintf(stderr, "\n");

  std::vector<bench::RequestRecord> records;
  int64_t mismatches = 0;
  for (const auto& r : results) {
    records.push_back(r.record);
    if (r.record.success && r.text_events != r.record.output_len) ++mismatches;
  }
  nlohmann::json out = bench::compute_metrics(records, duration, mopt);
  out["model_id"] = model;
  out["base_url"] = a.base_url;
  out["endpoint"] = ep.path;
  out["num_prompts"] = n;
  out["request_rate"] = std::isinf(a.request_rate) ? nlohmann::json("inf") : nlohmann::json(a.request_rate);
  out["burstiness"] = a.burstiness;
  out["max_concurrency"] = a.max_concurrency > 0 ? nlohmann::json(a.max_concurrency) : nlohmann::json(nullptr);
  out["dataset_name"] = a.dataset_name;
  // Streamed text events that differ from the server's usage (a server may send
  // several tokens in one event, or hold text back for stop strings).
  out["usage_chunk_mismatches"] = mismatches;
  std::vector<nlohmann::json> per;
  for (int i = 0; i < n; ++i) {
    const auto& r = records[i];
    // arrival: when it was due (a request held back by --max-concurrency waits from then); end: when it ended.
    per.push_back({{"success", r.success}, {"error", r.error}, {"prompt_len", r.prompt_len},
                   {"output_len", r.output_len}, {"ttft", r.ttft_s}, {"latency", r.latency_s}, {"itl", r.itl_s},
                   {"arrival", times[i]}, {"end", ended[i]}});
  }
  out["requests"] = per;
  return out;
}

namespace {

int run_bench_serve(const BenchServeArgs& a) {
  nlohmann::json out = run_serve_benchmark(a, isatty(STDERR_FILENO));
  if (!a.result_filename.empty()) {
    std::ofstream o(a.result_filename);
    if (!o) PL_THROW("--result-filename: cannot write '" << a.result_filename << "'");
    o << out.dump(1) << "\n";
  }
  out.erase("requests");
  if (a.json) std::cout << out.dump() << std::endl;
  else print_summary(out, split(a.percentile_metrics, ','));
  return 0;
}

}  // namespace

void add_bench_workload_options(CLI::App* c, BenchServeArgs& a) {
  c->add_option("--endpoint", a.endpoint, "completions, chat, or a path")->capture_default_str();
  // vLLM's --backend names for the two OpenAI endpoints (its others are not OpenAI servers).
  c->add_option("--backend", a.backend, "vLLM's names: openai or vllm (completions), openai-chat (chat)")
      ->check(CLI::IsMember({"openai", "vllm", "openai-chat"}));
  c->add_option("--model", a.model, "Model name in the requests (default: the server's first)");
  c->add_option("--tokenizer", a.tokenizer, "GGUF whose tokenizer makes the prompts (default: the default model)");
  c->add_option("--dataset-name", a.dataset_name, "random or sharegpt")->capture_default_str();
  c->add_option("--dataset-path", a.dataset_path, "ShareGPT-format JSON file");
  c->add_option("--num-prompts", a.num_prompts, "Requests to send")->capture_default_str();
  c->add_option("--random-input-len", a.random_input_len, "Prompt tokens (random dataset)")->capture_default_str();
  c->add_option("--random-output-len", a.random_output_len, "max_tokens (random dataset)")->capture_default_str();
  c->add_option("--random-range-ratio", a.random_range_ratio, "Lengths uniform in len x [1 - R, 1 + R]")
      ->capture_default_str();
  c->add_option("--burstiness", a.burstiness, "Gamma shape of the gaps (1: Poisson)")->capture_default_str();
  c->add_option("--max-concurrency", a.max_concurrency, "Requests in flight at most (0: no limit)");
  c->add_option("--seed", a.seed, "Seed of the prompts and arrival times")->capture_default_str();
  c->add_flag("--ignore-eos", a.ignore_eos, "Ask the server to ignore end-of-sequence (fixed output lengths)");
  c->add_option("--goodput", a.goodput, "SLOs in ms, e.g. \"ttft:500 tpot:50\"");
}

void add_bench_serve(CLI::App* bench, std::function<int()>& run) {
  auto a = std::make_shared<BenchServeArgs>();
  CLI::App* c = bench->add_subcommand("serve", "Open-loop serving benchmark against an OpenAI-compatible server");
  c->add_option("--base-url", a->base_url, "Server, e.g. http://127.0.0.1:8080")->capture_default_str();
  c->add_option("--api-key", a->api_key, "Authorization: Bearer KEY");
  c->add_option("--request-rate", a->request_rate, "Requests per second (inf: all at once)")->capture_default_str();
  c->add_option("--percentile-metrics", a->percentile_metrics, "Of ttft,tpot,itl,e2el")->capture_default_str();
  c->add_option("--metric-percentiles", a->metric_percentiles, "e.g. 50,90,99")->capture_default_str();
  add_bench_workload_options(c, *a);
  c->add_option("--result-filename", a->result_filename, "Write the result JSON (with every request) here");
  c->add_flag("--json", a->json, "Print the result as one JSON object");
  c->callback([a, &run] { run = [a] { return run_bench_serve(*a); }; });
}

}  // namespace parallama::cli
