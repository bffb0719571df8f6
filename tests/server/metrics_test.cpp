// Metrics (server/metrics.h): the rendered Prometheus text is parsed back by a
// small parser below and checked against values worked out by hand: gauges,
// counters moved by the growth of engine totals, histogram buckets (cumulative,
// le inclusive), request_success_total per finished_reason, the model_name
// label on every sample and HELP/TYPE lines for every family.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/metrics.h"

using namespace parallama;

namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> help, type;  // family -> text / type
  std::vector<Sample> samples;

  // The one sample with this name whose labels include `want`; fails if not one.
  double value(const std::string& name, const std::map<std::string, std::string>& want = {}) const {
    const Sample* found = nullptr;
    int n = 0;
    for (const Sample& s : samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : want) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) match = false;
      }
      if (match) found = &s, ++n;
    }
    EXPECT_EQ(n, 1) << name;
    return found ? found->value : -1;
  }
  // (le, cumulative count) of a histogram's buckets, in order.
  std::vector<std::pair<std::string, double>> buckets(const std::string& family) const {
    std::vector<std::pair<std::string, double>> out;
    for (const Sample& s : samples)
      if (s.name == family + "_bucket") out.emplace_back(s.labels.at("le"), s.value);
    return out;
  }
};

// Text format 0.0.4: "# HELP name text", "# TYPE name type", and
// name{k="v",...} value, with \\, \" and \n escaped in label values.
Exposition parse(const std::string& text) {
  Exposition e;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const size_t sp = line.find(' ', 7);
      EXPECT_NE(sp, std::string::npos) << line;
      (line[2] == 'H' ? e.help : e.type)[line.substr(7, sp - 7)] = line.substr(sp + 1);
      continue;
    }
    EXPECT_NE(line[0], '#') << line;
    Sample s;
    size_t i = line.find_first_of("{ ");
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (line[i] != '}') {
        const size_t eq = line.find('=', i);
        const std::string key = line.substr(i, eq - i);
        EXPECT_EQ(line[eq + 1], '"') << line;
        std::string val;
        for (i = eq + 2; line[i] != '"'; ++i) {
          if (line[i] == '\\') {
            ++i;
            val += line[i] == 'n' ? '\n' : line[i];
          } else {
            val += line[i];
          }
        }
        s.labels[key] = val;
        ++i;  // closing quote
        if (line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    EXPECT_EQ(line[i], ' ') << line;
    s.value = std::stod(line.substr(i + 1));
    e.samples.push_back(s);
  }
  return e;
}

const std::string kModel = "org/Model-7B";
const std::map<std::string, std::string> kLabel = {{"model_name", kModel}};

const std::map<std::string, std::string> kFamilies = {
    {"parallama:num_requests_running", "gauge"},
    {"parallama:num_requests_waiting", "gauge"},
    {"parallama:kv_cache_usage_perc", "gauge"},
    {"parallama:prefix_cache_queries_total", "counter"},
    {"parallama:prefix_cache_hits_total", "counter"},
    {"parallama:num_preemptions_total", "counter"},
    {"parallama:prompt_tokens_total", "counter"},
    {"parallama:generation_tokens_total", "counter"},
    {"parallama:request_success_total", "counter"},
    {"parallama:time_to_first_token_seconds", "histogram"},
    {"parallama:inter_token_latency_seconds", "histogram"},
    {"parallama:e2e_request_latency_seconds", "histogram"},
    {"parallama:request_queue_time_seconds", "histogram"},
    {"parallama:request_prompt_tokens", "histogram"},
    {"parallama:request_generation_tokens", "histogram"},
};

// The family a sample belongs to (a histogram's _bucket/_sum/_count stripped).
std::string family_of(const std::string& name) {
  if (kFamilies.count(name)) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string sfx = suffix;
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0)
      return name.substr(0, name.size() - sfx.size());
  }
  return name;
}

EngineSnapshot totals(int64_t n) {
  EngineSnapshot s;
  s.prefix_queries = n;
  s.prefix_hits = n / 2;
  s.preemptions = n / 5;
  s.prompt_tokens = n;
  s.generation_tokens = 2 * n;
  return s;
}

}  // namespace

TEST(Metrics, HelpTypeAndModelNameEverywhere) {
  Metrics m(kModel);
  m.observe_engine(totals(10));
  RequestRecord r;
  r.finish_reason = "stop";
  r.ttft_s = 0.1;
  r.itl_s = {0.01};
  m.observe_request(r);
  const std::string text = m.render();
  const Exposition e = parse(text);
  EXPECT_EQ(e.type, kFamilies);  // exactly vLLM's set, nothing else
  for (const auto& [family, type] : kFamilies) EXPECT_FALSE(e.help.at(family).empty()) << family;
  std::set<std::string> seen;
  for (const Sample& s : e.samples) {
    EXPECT_EQ(s.labels.count("model_name"), 1u) << s.name;
    EXPECT_EQ(s.labels.at("model_name"), kModel) << s.name;
    EXPECT_TRUE(kFamilies.count(family_of(s.name))) << s.name;
    seen.insert(family_of(s.name));
  }
  EXPECT_EQ(seen.size(), kFamilies.size());  // every family has samples
  // Every sample line carries the label textually, too.
  size_t pos = 0, lines = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    ++lines;
    EXPECT_NE(line.find("model_name=\"org/Model-7B\""), std::string::npos) << line;
  }
  EXPECT_EQ(lines, e.samples.size());
}

TEST(Metrics, GaugesFollowTheLastSnapshot) {
  Metrics m(kModel);
  EngineSnapshot s;
  s.running = 3;
  s.waiting = 7;
  s.kv_usage = 0.375;
  m.observe_engine(s);
  Exposition e = parse(m.render());
  EXPECT_EQ(e.value("parallama:num_requests_running", kLabel), 3);
  EXPECT_EQ(e.value("parallama:num_requests_waiting", kLabel), 7);
  EXPECT_DOUBLE_EQ(e.value("parallama:kv_cache_usage_perc", kLabel), 0.375);
  s.running = 1;
  s.waiting = 0;
  s.kv_usage = 0.0625;
  m.observe_engine(s);  // gauges go down as well as up
  e = parse(m.render());
  EXPECT_EQ(e.value("parallama:num_requests_running", kLabel), 1);
  EXPECT_EQ(e.value("parallama:num_requests_waiting", kLabel), 0);
  EXPECT_DOUBLE_EQ(e.value("parallama:kv_cache_usage_perc", kLabel), 0.0625);
}

TEST(Metrics, CountersMoveByTheGrowthOfTotals) {
  Metrics m(kModel);
  auto counters = [&](double q, double h, double pre, double p, double g) {
    const Exposition e = parse(m.render());
    EXPECT_EQ(e.value("parallama:prefix_cache_queries_total", kLabel), q);
    EXPECT_EQ(e.value("parallama:prefix_cache_hits_total", kLabel), h);
    EXPECT_EQ(e.value("parallama:num_preemptions_total", kLabel), pre);
    EXPECT_EQ(e.value("parallama:prompt_tokens_total", kLabel), p);
    EXPECT_EQ(e.value("parallama:generation_tokens_total", kLabel), g);
  };
  counters(0, 0, 0, 0, 0);
  m.observe_engine(totals(10));  // +10 +5 +2 +10 +20
  counters(10, 5, 2, 10, 20);
  m.observe_engine(totals(25));  // +15 +7 +3 +15 +30
  counters(25, 12, 5, 25, 50);
  m.observe_engine(totals(25));  // no growth
  counters(25, 12, 5, 25, 50);
  m.observe_engine(totals(20));  // smaller totals (a restart): nothing moves back
  counters(25, 12, 5, 25, 50);
  m.observe_engine(totals(30));  // growth from the new base 20: +10 +5 +2 +10 +20
  counters(35, 17, 7, 35, 70);
}

TEST(Metrics, RequestHistogramsLandInTheRightBuckets) {
  Metrics m(kModel, /*max_model_len=*/100);
  RequestRecord r;
  r.finish_reason = "length";
  r.prompt_tokens = 7;
  r.generation_tokens = 20;
  r.queue_s = 0.1;
  r.ttft_s = 0.05;
  r.e2e_s = 1.2;
  r.itl_s = {0.01, 0.02};
  m.observe_request(r);
  const Exposition e = parse(m.render());

  // ITL: 0.01 is in le="0.01" (le is inclusive), 0.02 first in le="0.025".
  const std::string itl = "parallama:inter_token_latency_seconds";
  const auto b = e.buckets(itl);
  const std::vector<double> bounds = Metrics::itl_buckets();
  ASSERT_EQ(b.size(), bounds.size() + 1);
  for (size_t i = 0; i < bounds.size(); ++i) {
    EXPECT_DOUBLE_EQ(std::stod(b[i].first), bounds[i]);
    EXPECT_EQ(b[i].second, i == 0 ? 1 : 2) << "le=" << b[i].first;
  }
  EXPECT_EQ(b[0].first, "0.01");
  EXPECT_EQ(b[1].first, "0.025");
  EXPECT_EQ(b.back().first, "+Inf");
  EXPECT_EQ(b.back().second, 2);
  EXPECT_EQ(e.value(itl + "_count", kLabel), 2);
  EXPECT_NEAR(e.value(itl + "_sum", kLabel), 0.03, 1e-12);

  // TTFT 0.05: not in le="0.04", in le="0.06".
  const std::string ttft = "parallama:time_to_first_token_seconds";
  EXPECT_EQ(e.value(ttft + "_bucket", {{"le", "0.04"}}), 0);
  EXPECT_EQ(e.value(ttft + "_bucket", {{"le", "0.06"}}), 1);
  EXPECT_EQ(e.value(ttft + "_bucket", {{"le", "+Inf"}}), 1);
  EXPECT_EQ(e.buckets(ttft).size(), 23u);  // 22 bounds + +Inf
  EXPECT_DOUBLE_EQ(e.value(ttft + "_sum", kLabel), 0.05);
  // e2e 1.2: not in le="1", in le="1.5"; queue 0.1 in the first bucket le="0.3".
  const std::string e2e = "parallama:e2e_request_latency_seconds";
  EXPECT_EQ(e.value(e2e + "_bucket", {{"le", "1"}}), 0);
  EXPECT_EQ(e.value(e2e + "_bucket", {{"le", "1.5"}}), 1);
  EXPECT_EQ(e.buckets(e2e).size(), 22u);  // 21 bounds + +Inf
  EXPECT_DOUBLE_EQ(e.value(e2e + "_sum", kLabel), 1.2);
  const std::string queue = "parallama:request_queue_time_seconds";
  EXPECT_EQ(e.value(queue + "_bucket", {{"le", "0.3"}}), 1);
  EXPECT_EQ(e.value(queue + "_count", kLabel), 1);
  // Token counts with max_model_len 100: buckets 1 2 5 10 20 50 100 +Inf.
  const std::string prompt = "parallama:request_prompt_tokens";
  const std::vector<std::pair<std::string, double>> want_prompt = {
      {"1", 0}, {"2", 0}, {"5", 0}, {"10", 1}, {"20", 1}, {"50", 1}, {"100", 1}, {"+Inf", 1}};
  EXPECT_EQ(e.buckets(prompt), want_prompt);
  EXPECT_EQ(e.value(prompt + "_sum", kLabel), 7);
  const std::string gen = "parallama:request_generation_tokens";
  const std::vector<std::pair<std::string, double>> want_gen = {
      {"1", 0}, {"2", 0}, {"5", 0}, {"10", 0}, {"20", 1}, {"50", 1}, {"100", 1}, {"+Inf", 1}};
  EXPECT_EQ(e.buckets(gen), want_gen);
  EXPECT_EQ(e.value(gen + "_sum", kLabel), 20);
  EXPECT_EQ(e.value(gen + "_count", kLabel), 1);
}

TEST(Metrics, RequestSuccessPerFinishedReason) {
  Metrics m(kModel);
  RequestRecord len;
  len.finish_reason = "length";
  len.ttft_s = 0.2;
  m.observe_request(len);
  m.observe_request(len);
  RequestRecord abort;  // aborted before its first token: no TTFT
  abort.finish_reason = "abort";
  m.observe_request(abort);
  const Exposition e = parse(m.render());
  const std::string name = "parallama:request_success_total";
  EXPECT_EQ(e.value(name, {{"model_name", kModel}, {"finished_reason", "length"}}), 2);
  EXPECT_EQ(e.value(name, {{"model_name", kModel}, {"finished_reason", "abort"}}), 1);
  EXPECT_EQ(e.value(name, {{"model_name", kModel}, {"finished_reason", "stop"}}), 0);  // present at 0
  EXPECT_EQ(e.value(name, {{"model_name", kModel}, {"finished_reason", "error"}}), 0);
  EXPECT_EQ(e.value("parallama:time_to_first_token_seconds_count", kLabel), 2);
  EXPECT_EQ(e.value("parallama:e2e_request_latency_seconds_count", kLabel), 3);
  EXPECT_EQ(e.value("parallama:request_prompt_tokens_count", kLabel), 3);
}

TEST(Metrics, BucketsAreVllms) {
  const std::vector<double> want = {1, 2, 5, 10, 20, 50, 100};
  EXPECT_EQ(Metrics::token_buckets(100), want);
  EXPECT_EQ(Metrics::token_buckets(99).back(), 50);
  EXPECT_TRUE(Metrics::token_buckets(0).empty());
  EXPECT_EQ(Metrics::ttft_buckets().size(), 22u);
  EXPECT_EQ(Metrics::itl_buckets().size(), 19u);
  EXPECT_EQ(Metrics::request_latency_buckets().size(), 21u);
  EXPECT_EQ(Metrics::request_latency_buckets().back(), 7680.0);
  // Default bound for the token histograms: up to 1e6.
  Metrics m(kModel);
  const auto b = parse(m.render()).buckets("parallama:request_prompt_tokens");
  ASSERT_GE(b.size(), 2u);
  EXPECT_DOUBLE_EQ(std::stod(b[b.size() - 2].first), 1e6);
}

TEST(Metrics, ModelNameIsEscaped) {
  const std::string odd = "a \"quoted\" \\ name\nline";
  Metrics m(odd);
  const Exposition e = parse(m.render());
  ASSERT_FALSE(e.samples.empty());
  for (const Sample& s : e.samples) EXPECT_EQ(s.labels.at("model_name"), odd) << s.name;
}

TEST(Metrics, ConcurrentReportersAndRenderers) {
  Metrics m(kModel);
  constexpr int kThreads = 4, kPerThread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, t] {
      RequestRecord r;
      r.finish_reason = t % 2 ? "stop" : "length";
      r.ttft_s = 0.01;
      r.itl_s = {0.01, 0.01};
      for (int i = 0; i < kPerThread; ++i) {
        m.observe_request(r);
        if (t == 0) m.observe_engine(totals(i + 1));
        if (i % 100 == 0) parse(m.render());
      }
    });
  }
  for (auto& th : threads) th.join();
  const Exposition e = parse(m.render());
  const std::string name = "parallama:request_success_total";
  EXPECT_EQ(e.value(name, {{"finished_reason", "stop"}}), kThreads / 2 * kPerThread);
  EXPECT_EQ(e.value(name, {{"finished_reason", "length"}}), kThreads / 2 * kPerThread);
  EXPECT_EQ(e.value("parallama:inter_token_latency_seconds_count", kLabel), 2 * kThreads * kPerThread);
  EXPECT_EQ(e.value("parallama:prompt_tokens_total", kLabel), kPerThread);
}
