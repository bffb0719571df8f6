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

// Whether a run kept up with its arrival rate: every request succeeded and
// the number of requests in the system (arrived, not yet ended) did not grow
// over the run. Its time average over the last quarter of the arrival window
// [0, last arrival] is compared with that over the second quarter (the first
// starts from an empty server): below saturation both are the steady state
// (Little's law: rate x mean latency); past it the backlog grows linearly and
// the ratio is about 7/3. The count, not latency, because a server that
// batches every request (no queue) spreads the backlog over everyone's
// latency, and the last arrivals finish early, while the run drains. keeps_up
// when late <= max_growth x early + 1 (one request of slack: at light load
// both averages are below one and their ratio is noise).
struct KeepUp {
  bool keeps_up = false;
  double early = 0, late = 0;  // mean requests in the system, second and last quarter
  double growth = 0;           // late / early
};
KeepUp keeps_up(const std::vector<double>& arrival_s, const std::vector<double>& end_s, int64_t failed,
                double max_growth = 1.5);

// The largest rate of runs [(rate, kept up)] such that it and every lower rate
// kept up; 0 when the lowest did not (and for inf).
double sustained_rate(const std::vector<std::pair<double, bool>>& runs);

// One row per layout and rate: the sweep JSON written by bench sweep.
std::string sweep_markdown(const nlohmann::json& sweep);

}  // namespace parallama::bench
