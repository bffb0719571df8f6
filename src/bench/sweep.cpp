#include "bench/sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "bench/serve_metrics.h"
#include "core/check.h"

namespace parallama::bench {

namespace {

std::vector<std::string> split_trim(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, sep);) {
    const size_t a = x.find_first_not_of(" \t\n"), b = x.find_last_not_of(" \t\n");
    if (a != std::string::npos) out.push_back(x.substr(a, b - a + 1));
  }
  return out;
}

int positive_int(const std::string& key, const std::string& v, int lo) {
  char* end = nullptr;
  const long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < lo || x > 4096)
    PL_THROW("layout: " << key << "=" << v << " is not an integer >= " << lo);
  return static_cast<int>(x);
}

std::string fmt(double x, const char* f = "%.2f") {
  char b[64];
  std::snprintf(b, sizeof(b), f, x);
  return b;
}

}  // namespace

std::vector<SweepLayout> parse_layouts(const std::string& spec) {
  std::vector<SweepLayout> out;
  for (const std::string& item : split_trim(spec, ';')) {
    SweepLayout l;
    bool map_given = false;
    for (const std::string& kv : split_trim(item, ',')) {
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) PL_THROW("layout '" << item << "': '" << kv << "' is not key=value");
      const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      if (k == "tp") l.tp = positive_int(k, v, 1);
      else if (k == "pp") l.pp = positive_int(k, v, 1);
      else if (k == "threads") l.threads = positive_int(k, v, 1);
      else if (k == "hosts") l.hosts = positive_int(k, v, 1);
      else if (k == "map") {
        if (v != "slot" && v != "node") PL_THROW("layout '" << item << "': map must be slot or node, got '" << v << "'");
        l.map_by = v;
        map_given = true;
      } else if (k == "link") {
        if (v.empty() || v.find_first_not_of("0123456789.kmgitbKMGTB") != std::string::npos)
          PL_THROW("layout '" << item << "': link '" << v << "' is not a rate like 1gbit");
        l.link = v;
      } else if (k == "name") l.name = v;
      else PL_THROW("layout '" << item << "': unknown key '" << k << "' (tp, pp, threads, hosts, map, link, name)");
    }
    if (l.hosts > 0 && (l.tp * l.pp) % l.hosts != 0)
      PL_THROW("layout '" << item << "': " << l.tp * l.pp << " ranks do not split evenly over " << l.hosts << " hosts");
    if (l.hosts == 0 && (map_given || !l.link.empty()))
      PL_THROW("layout '" << item << "': map and link need hosts=N (emulated hosts)");
    std::string s = "tp=" + std::to_string(l.tp) + ",pp=" + std::to_string(l.pp);
    if (l.threads) s += ",threads=" + std::to_string(l.threads);
    if (l.hosts) s += ",hosts=" + std::to_string(l.hosts) + ",map=" + l.map_by;
    if (!l.link.empty()) s += ",link=" + l.link;
    l.spec = s;
    out.push_back(l);
  }
  if (out.empty()) PL_THROW("no layout given (e.g. \"tp=1,threads=2; tp=2; pp=2\")");
  return out;
}

std::vector<double> parse_rates(const std::string& spec) {
  std::vector<double> out;
  for (const std::string& r : split_trim(spec, ',')) {
    if (r == "inf") {
      out.push_back(INFINITY);
      continue;
    }
    char* end = nullptr;
    const double x = std::strtod(r.c_str(), &end);
    if (*end != '\0' || !(x > 0) || std::isinf(x)) PL_THROW("--rates: '" << r << "' is not a positive rate or inf");
    out.push_back(x);
  }
  if (out.empty()) PL_THROW("--rates: no rate given");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string> serve_command(const SweepLayout& l, const std::string& model, int port,
                                       const std::string& host_prefix) {
  std::vector<std::string> a = {"serve", "--host", "127.0.0.1", "--port", std::to_string(port), "--no-log-requests"};
  if (!model.empty()) a.insert(a.end(), {"-m", model});
  if (l.tp > 1) a.insert(a.end(), {"--tp", std::to_string(l.tp)});
  if (l.pp > 1) a.insert(a.end(), {"--pp", std::to_string(l.pp)});
  if (l.threads > 0) a.insert(a.end(), {"-t", std::to_string(l.threads)});
  if (l.hosts > 0) {
    std::string hosts;
    const int slots = l.tp * l.pp / l.hosts;
    for (int h = 1; h <= l.hosts; ++h)
      hosts += (h > 1 ? "," : "") + host_prefix + "h" + std::to_string(h) + ":" + std::to_string(slots);
    a.insert(a.end(), {"--hosts", hosts, "--map-by", l.map_by});
  }
  return a;
}

KeepUp keeps_up(const std::vector<double>& arrival, const std::vector<double>& end, int64_t failed,
                double min_pace) {
  PL_CHECK_MSG(arrival.size() == end.size(), "keeps_up: " << arrival.size() << " arrivals, " << end.size() << " ends");
  KeepUp k;
  if (arrival.empty()) return k;
  const double T = *std::max_element(arrival.begin(), arrival.end()), a = T / 4;
  for (size_t i = 0; i < arrival.size(); ++i) {
    k.arrived += arrival[i] >= a && arrival[i] <= T;
    k.ended += end[i] >= a && end[i] <= T;
  }
  k.pace = k.arrived > 0 ? static_cast<double>(k.ended) / static_cast<double>(k.arrived) : 1.0;
  k.keeps_up = failed == 0 && static_cast<double>(k.ended) >= min_pace * static_cast<double>(k.arrived) - 1;
  return k;
}

double sustained_rate(const std::vector<std::pair<double, bool>>& runs) {
  std::vector<std::pair<double, bool>> r = runs;
  std::sort(r.begin(), r.end());
  double best = 0;
  for (const auto& [rate, ok] : r) {
    if (!ok || std::isinf(rate)) break;
    best = rate;
  }
  return best;
}

std::string sweep_markdown(const nlohmann::json& sweep) {
  std::string md =
      "| layout | rate (req/s) | achieved (req/s) | output tok/s | median TTFT (ms) | median TPOT (ms) | "
      "p90 E2EL (ms) | p99 E2EL (ms) | failed | keeps up |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const auto& lay : sweep.at("layouts")) {
    const std::string label = lay.at("label").get<std::string>();
    if (lay.contains("error") && !lay["error"].is_null() && lay.value("runs", nlohmann::json::array()).empty()) {
      md += "| " + label + " | | | | | | | | | error: " + lay["error"].get<std::string>() + " |\n";
      continue;
    }
    for (const auto& r : lay.at("runs")) {
      const auto& rate = r.at("request_rate");
      const std::string rs = rate.is_string() ? rate.get<std::string>() : fmt(rate.get<double>(), "%g");
      const bool ok = r.contains("keeps_up") && r["keeps_up"].is_boolean() && r["keeps_up"].get<bool>();
      md += "| " + label + " | " + rs + " | " + fmt(r.at("request_throughput").get<double>()) + " | " +
            fmt(r.at("output_throughput").get<double>(), "%.1f") + " | " +
            fmt(r.at("median_ttft_ms").get<double>(), "%.1f") + " | " +
            fmt(r.at("median_tpot_ms").get<double>(), "%.1f") + " | " +
            fmt(r.at("p90_e2el_ms").get<double>(), "%.0f") + " | " + fmt(r.at("p99_e2el_ms").get<double>(), "%.0f") +
            " | " + std::to_string(r.at("failed").get<int64_t>()) + " | " +
            (rate.is_string() ? std::string("n/a")
             : ok        ? std::string("yes")
                         : "no (pace " + fmt(r.value("pace", 0.0)) + ")") +
            " |\n";
    }
  }
  md += "\nSustained rate (the highest rate kept up with, every lower one too):\n\n";
  for (const auto& lay : sweep.at("layouts")) {
    const double s = lay.value("sustained_rate", 0.0);
    md += "- " + lay.at("label").get<std::string>() + ": " + (s > 0 ? fmt(s, "%g") + " req/s" : "none of the rates") +
          "\n";
  }
  return md;
}

}  // namespace parallama::bench
