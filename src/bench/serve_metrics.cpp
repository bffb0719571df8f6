#include "bench/serve_metrics.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/check.h"

namespace parallama::bench {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  if (!(p >= 0 && p <= 100)) PL_THROW("percentile " << p << " is outside [0, 100]");
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

std::map<std::string, double> parse_goodput(const std::string& spec) {
  std::map<std::string, double> out;
  std::istringstream ss(spec);
  for (std::string item; ss >> item;) {
    const size_t colon = item.find(':');
    const std::string name = item.substr(0, colon);
    if (colon == std::string::npos || (name != "ttft" && name != "tpot" && name != "e2el"))
      PL_THROW("--goodput: '" << item << "' is not ttft:MS, tpot:MS or e2el:MS");
    const std::string num = item.substr(colon + 1);
    char* end = nullptr;
    const double ms = std::strtod(num.c_str(), &end);
    if (num.empty() || *end != '\0' || !(ms >= 0) || !std::isfinite(ms))
      PL_THROW("--goodput: '" << item << "' needs a non-negative number of milliseconds");
    out[name] = ms;
  }
  return out;
}

namespace {

double tpot_of(const RequestRecord& r) { return (r.latency_s - r.ttft_s) / static_cast<double>(r.output_len - 1); }

std::string pct_name(double p) {
  std::ostringstream s;
  s << p;  // 99 -> "99", 99.9 -> "99.9" (vLLM's p99.9_ttft_ms)
  return s.str();
}

void add_metric(nlohmann::json& j, const std::string& name, const std::vector<double>& seconds,
                const std::vector<double>& percentiles) {
  std::vector<double> ms(seconds.size());
  std::transform(seconds.begin(), seconds.end(), ms.begin(), [](double s) { return 1e3 * s; });
  double mean = 0, var = 0;
  for (double x : ms) mean += x;
  if (!ms.empty()) mean /= static_cast<double>(ms.size());
  for (double x : ms) var += (x - mean) * (x - mean);
  if (!ms.empty()) var /= static_cast<double>(ms.size());  // population std, as numpy's default
  // Keys built by appending (GCC 12 warns falsely on "literal" + std::string, -Wrestrict).
  auto key = [&name](std::string stat) {
    stat += '_';
    stat += name;
    stat += "_ms";
    return stat;
  };
  j[key("mean")] = mean;
  j[key("median")] = percentile(ms, 50);
  j[key("std")] = std::sqrt(var);
  for (double p : percentiles) {
    std::string stat(1, 'p');
    stat += pct_name(p);
    j[key(std::move(stat))] = percentile(ms, p);
  }
}

}  // namespace

nlohmann::json compute_metrics(const std::vector<RequestRecord>& records, double duration_s, const MetricOptions& opt) {
  int64_t completed = 0, failed = 0, input = 0, output = 0, good = 0;
  std::vector<double> ttft, tpot, itl, e2el;
  std::map<std::string, int64_t> errors;
  for (const RequestRecord& r : records) {
    if (!r.success) {
      ++failed;
      ++errors[r.error.empty() ? "unknown" : r.error];
      continue;
    }
    ++completed;
    input += r.prompt_len;
    output += r.output_len;
    ttft.push_back(r.ttft_s);
    e2el.push_back(r.latency_s);
    itl.insert(itl.end(), r.itl_s.begin(), r.itl_s.end());
    if (r.output_len > 1) tpot.push_back(tpot_of(r));
    bool ok = true;
    for (const auto& [name, limit_ms] : opt.goodput_slo_ms) {
      // A one-token request has no TPOT; vLLM counts it as meeting that SLO.
      const double v_ms = name == "ttft" ? 1e3 * r.ttft_s
                          : name == "e2el" ? 1e3 * r.latency_s
                                           : (r.output_len > 1 ? 1e3 * tpot_of(r) : 0.0);
      ok = ok && v_ms <= limit_ms;
    }
    good += ok;
  }
  const double d = duration_s > 0 ? duration_s : 1e-9;
  nlohmann::json j = {{"duration", duration_s},
                      {"completed", completed},
                      {"failed", failed},
                      {"total_input_tokens", input},
                      {"total_output_tokens", output},
                      {"request_throughput", completed / d},
                      {"output_throughput", output / d},
                      {"total_token_throughput", (input + output) / d},
                      {"errors", errors}};
  if (!opt.goodput_slo_ms.empty()) j["request_goodput"] = good / d;
  for (const std::string& m : opt.metrics) {
    if (m == "ttft") add_metric(j, m, ttft, opt.percentiles);
    else if (m == "tpot") add_metric(j, m, tpot, opt.percentiles);
    else if (m == "itl") add_metric(j, m, itl, opt.percentiles);
    else if (m == "e2el") add_metric(j, m, e2el, opt.percentiles);
    else PL_THROW("--percentile-metrics: unknown metric '" << m << "' (ttft, tpot, itl, e2el)");
  }
  return j;
}

}  // namespace parallama::bench
