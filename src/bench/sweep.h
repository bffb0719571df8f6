// The computing parts of `parallama bench sweep`: layouts and rates as the
// user writes them, the server command line for a layout, whether a run kept
// up with its request rate, and the Markdown table of a whole sweep. The
// command itself (tools/cli/cmd_bench_sweep.cpp) starts and stops servers.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parallama::bench {

struct SweepLayout {
  int tp = 1, pp = 1;
  int threads = 0;              // per rank (-t); 0: the server's default
  int hosts = 0;                // emulated hosts (scripts/emulate_hosts.sh); 0: this host
  std::string map_by = "slot";  // slot: TP inside hosts; node: ranks round-robin over hosts
  std::string link;             // shaped link rate of emulated hosts, e.g. "1gbit"; "": unshaped
  std::string name;             // label in tables and plots; "" -> the spec
  std::string spec;             // as written, normalised ("tp=2,pp=2,hosts=2")
  std::string label() const { return name.empty() ? spec : name; }
};

// "tp=1,threads=2; tp=2; pp=2; tp=2,pp=2,hosts=2,map=node,link=1gbit"
// (keys tp, pp, threads, hosts, map, link, name). Throws parallama::Error
// naming the bad item: unknown key, bad number, hosts that do not divide
// tp x pp, map or link without hosts.
std::vector<SweepLayout> parse_layouts(const std::string& spec);

// "0.5,1,2,inf" -> ascending rates (inf: all at once); throws on bad items.
std::vector<double> parse_rates(const std::string& spec);

// The `parallama serve` arguments after the binary for a layout (model,
// address and layout; the emulated hosts are named prefix + "h1", ...).
std::vector<std::string> serve_command(const SweepLayout& l, const std::string& model, int port,
                                       const std::string& host_prefix);

// Whether a run kept up with its arrival rate: every request succeeded and,
// over the steady part of the run (the last three quarters of the arrival
// window [0, last arrival]; the first quarter starts from an empty server),
// the server ended requests at the pace they arrived: ended >= min_pace x
// arrived - 1 in that window. ended - arrived is exactly the change in the
// number of requests in the system over the window, so a server below
// saturation, whose backlog stays bounded, scores about 1, and one past it,
// whose backlog grows by (rate - capacity) per second, scores capacity / rate.
// A pace within 10% of the rate counts as keeping up; the one-request slack
// keeps short runs from failing on one late request. Counting requests, not
// latency: a server that batches every request (no queue) spreads a backlog
// over everyone's latency, and its last arrivals finish early as it drains.
struct KeepUp {
  bool keeps_up = false;
  int64_t arrived = 0, ended = 0;  // in the steady window
  double pace = 0;                 // ended / arrived
};
KeepUp keeps_up(const std::vector<double>& arrival_s, const std::vector<double>& end_s, int64_t failed,
                double min_pace = 0.9);

// The largest rate of runs [(rate, kept up)] such that it and every lower rate
// kept up; 0 when the lowest did not (and for inf).
double sustained_rate(const std::vector<std::pair<double, bool>>& runs);

// One row per layout and rate: the sweep JSON written by bench sweep.
std::string sweep_markdown(const nlohmann::json& sweep);

}  // namespace parallama::bench
