// Why prometheus-cpp (core only: Registry, the Counter/Gauge/Histogram families
// and TextSerializer; not its pull/push HTTP parts, the server serves
// /metrics itself): it is a maintained library, packaged by Debian
// (prometheus-cpp-dev), and its serializer writes the text exposition format
// correctly (HELP/TYPE lines, label-value escaping, cumulative buckets with
// le="+Inf", _sum/_count, number formatting), which a hand-written formatter
// would have to get right again. Its metrics are thread-safe (atomic counters,
// a mutex per histogram, a mutex per family and registry).
//
// prometheus-cpp writes a counter under the exact name it is given (unlike the
// Python client, which appends _total), so counters are registered with their
// _total suffix here: the series names match vLLM's (vllm:prompt_tokens_total ->
// parallama:prompt_tokens_total).
#include "server/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <mutex>

namespace parallama {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

// Bucket bounds from vLLM's v1 PrometheusStatLogger (vllm/v1/metrics/loggers.py):
// time to first token, inter-token latency (the same list as its
// time_per_output_token), the request_latency_buckets shared by e2e and queue
// time, and build_1_2_5_buckets(max_model_len) for the token-count histograms.
std::vector<double> Metrics::ttft_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}
std::vector<double> Metrics::itl_buckets() {
  return {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
          0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
}
std::vector<double> Metrics::request_latency_buckets() {
  return {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
          30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}
std::vector<double> Metrics::token_buckets(int64_t max_value) {
  std::vector<double> out;
  for (int64_t scale = 1; scale <= max_value; scale *= 10) {
    for (int64_t m : {1, 2, 5}) {
      if (m * scale > max_value) return out;
      out.push_back(static_cast<double>(m * scale));
    }
  }
  return out;
}

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::string model;
  Labels labels;
  Gauge *running = nullptr, *waiting = nullptr, *kv_usage = nullptr;
  Counter *prefix_queries = nullptr, *prefix_hits = nullptr, *preemptions = nullptr;
  Counter *prompt_tokens = nullptr, *generation_tokens = nullptr;
  prometheus::Family<Counter>* success = nullptr;  // labelled finished_reason too
  Histogram *ttft = nullptr, *itl = nullptr, *e2e = nullptr, *queue = nullptr;
  Histogram *req_prompt = nullptr, *req_generation = nullptr;

  // The totals last seen by observe_engine (under mu).
  std::mutex mu;
  EngineSnapshot last;

  Gauge* gauge(const std::string& name, const std::string& help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry).Add(labels);
  }
  Counter* counter(const std::string& name, const std::string& help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(*registry).Add(labels);
  }
  Histogram* histogram(const std::string& name, const std::string& help, const std::vector<double>& b) {
    return &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry).Add(labels, b);
  }
};

Metrics::Metrics(const std::string& model_name, int64_t max_model_len) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.model = model_name;
  m.labels = {{"model_name", model_name}};
  const std::string p = "parallama:";
  m.running = m.gauge(p + "num_requests_running", "Requests in the running batch.");
  m.waiting = m.gauge(p + "num_requests_waiting", "Requests queued, not yet scheduled.");
  m.kv_usage = m.gauge(p + "kv_cache_usage_perc", "Fraction of KV-cache blocks in use (0 to 1).");
  m.prefix_queries = m.counter(p + "prefix_cache_queries_total",
                               "Prompt tokens looked up in the prefix cache.");
  m.prefix_hits = m.counter(p + "prefix_cache_hits_total", "Prompt tokens found in the prefix cache.");
  m.preemptions = m.counter(p + "num_preemptions_total", "Sequences preempted by the scheduler.");
  m.prompt_tokens = m.counter(p + "prompt_tokens_total", "Prompt tokens of admitted requests.");
  m.generation_tokens = m.counter(p + "generation_tokens_total", "Tokens generated.");
  m.success = &prometheus::BuildCounter()
                   .Name(p + "request_success_total")
                   .Help("Finished requests by finish reason (aborts included).")
                   .Register(*m.registry);
  // Every reason present from the start (at 0), so rate() works before the first.
  for (const char* reason : {"stop", "length", "abort", "error"}) {
    m.success->Add({{"model_name", model_name}, {"finished_reason", reason}});
  }
  m.ttft = m.histogram(p + "time_to_first_token_seconds", "Seconds from arrival to the first token.",
                       ttft_buckets());
  m.itl = m.histogram(p + "inter_token_latency_seconds", "Seconds between consecutive tokens of a request.",
                      itl_buckets());
  m.e2e = m.histogram(p + "e2e_request_latency_seconds", "Seconds from arrival to finish.",
                      request_latency_buckets());
  m.queue = m.histogram(p + "request_queue_time_seconds",
                        "Seconds from arrival to first scheduling.", request_latency_buckets());
  const std::vector<double> tokens = token_buckets(max_model_len > 0 ? max_model_len : kDefaultTokenBucketMax);
  m.req_prompt = m.histogram(p + "request_prompt_tokens", "Prompt tokens per finished request.", tokens);
  m.req_generation = m.histogram(p + "request_generation_tokens", "Generated tokens per finished request.", tokens);
}

Metrics::~Metrics() = default;

namespace {

// Adds the growth of a total since the last call; a smaller total (a restart)
// adds nothing and becomes the new base.
void advance(Counter& c, int64_t& last, int64_t total) {
  if (total > last) c.Increment(static_cast<double>(total - last));
  last = total;
}

}  // namespace

void Metrics::observe_engine(const EngineSnapshot& s) {
  Impl& m = *impl_;
  m.running->Set(s.running);
  m.waiting->Set(s.waiting);
  m.kv_usage->Set(s.kv_usage);
  std::lock_guard<std::mutex> lock(m.mu);
  advance(*m.prefix_queries, m.last.prefix_queries, s.prefix_queries);
  advance(*m.prefix_hits, m.last.prefix_hits, s.prefix_hits);
  advance(*m.preemptions, m.last.preemptions, s.preemptions);
  advance(*m.prompt_tokens, m.last.prompt_tokens, s.prompt_tokens);
  advance(*m.generation_tokens, m.last.generation_tokens, s.generation_tokens);
}

void Metrics::observe_request(const RequestRecord& r) {
  Impl& m = *impl_;
  // Family::Add returns the existing series for known labels (thread-safe).
  m.success->Add({{"model_name", m.model}, {"finished_reason", r.finish_reason}}).Increment();
  if (r.ttft_s >= 0) m.ttft->Observe(r.ttft_s);
  for (double gap : r.itl_s) m.itl->Observe(gap);
  m.e2e->Observe(r.e2e_s);
  m.queue->Observe(r.queue_s);
  m.req_prompt->Observe(r.prompt_tokens);
  m.req_generation->Observe(r.generation_tokens);
}

std::string Metrics::render() const {
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

}  // namespace parallama
