// parallama bench sweep: for each layout, start `parallama serve` (on emulated
// hosts where the layout asks), wait for /health, run the serving benchmark
// at each request rate, stop the server, and write the sweep as JSON, a
// Markdown table and a plot (tools/plot_sweep.py, matplotlib). The computing
// parts (layouts, keep-up rule, table) are src/bench/sweep.h.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "bench/sweep.h"
#include "cli/bench_serve.h"
#include "cli/child_process.h"
#include "cli/emulated_hosts.h"
#include "cli/commands.h"
#include "cli/paths.h"
#include "core/check.h"
#include "core/clock.h"
#include "engine/engine.h"

namespace parallama::cli {

namespace {

struct SweepArgs {
  BenchServeArgs bench;
  std::string layouts = "tp=1";
  std::string rates = "1,2,4";
  std::string model;        // GGUF the servers load (default: the default model)
  std::string out = "sweep";
  std::string server_args;  // more `parallama serve` options, space-separated
  int port = 18480;
  double server_timeout = 300;  // seconds to wait for /health
  int max_unsustained = 0;      // stop a layout after this many rates it could not keep up with (0: run all)
  double min_pace = 0.9;
  bool no_plot = false;
};

constexpr const char* kHostPrefix = "sw";

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Runs fn on a thread inside network namespace ns ("" = ours): the client of
// a server on an emulated host talks to it there, over that host's loopback.
// Threads fn starts inherit the namespace.
void in_netns(const std::string& ns, const std::function<void()>& fn) {
  std::exception_ptr err;
  std::thread t([&] {
    try {
      if (!ns.empty()) {
        const std::string path = "/var/run/netns/" + ns;
        const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) PL_THROW("cannot open " << path << ": " << std::strerror(errno));
        const int rc = setns(fd, CLONE_NEWNET);
        close(fd);
        if (rc != 0) PL_THROW("cannot enter network namespace " << ns << ": " << std::strerror(errno));
      }
      fn();
    } catch (...) {
      err = std::current_exception();
    }
  });
  t.join();
  if (err) std::rethrow_exception(err);
}

bool port_in_use(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(2, 0);
  return static_cast<bool>(c.Get("/health"));
}

// Until /health answers 200 (true), the server exits or the time is up.
bool wait_healthy(int port, pid_t server, double timeout_s) {
  const double until = now_seconds() + timeout_s;
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(2, 0);
  while (now_seconds() < until) {
    if (auto r = c.Get("/health"); r && r->status == 200) return true;
    if (waitpid(server, nullptr, WNOHANG) == server) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return false;
}

std::string fmt2(double x) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.2f", x);
  return b;
}

// ": <the log's last line naming an error>", or "".
std::string last_error(const std::string& log) {
  std::ifstream in(log);
  std::string line, found;
  while (std::getline(in, line))
    if (line.find("rror") != std::string::npos) found = line;
  return found.empty() ? "" : ": " + found;
}

std::string rate_str(double r) {
  char b[32];
  std::snprintf(b, sizeof(b), "%g", r);
  return std::isinf(r) ? "inf" : b;
}

nlohmann::json run_layout(const SweepArgs& a, const bench::SweepLayout& l, const std::vector<double>& rates,
                          const std::string& log, int index, int n_layouts) {
  nlohmann::json lay = {{"label", l.label()}, {"layout", l.spec}, {"tp", l.tp}, {"pp", l.pp},
                        {"threads", l.threads}, {"hosts", l.hosts}, {"map_by", l.hosts ? l.map_by : ""},
                        {"link", l.link}, {"log", log}, {"runs", nlohmann::json::array()}};
  std::vector<std::string> argv = {self_exe()};
  for (auto& s : bench::serve_command(l, a.model, a.port, kHostPrefix)) argv.push_back(s);
  for (auto& s : split_words(a.server_args)) argv.push_back(s);
  std::string ns;
  std::unique_ptr<EmulatedHosts> hosts;  // removed when this returns or throws, after the server stops
  if (l.hosts > 0) {
    hosts = std::make_unique<EmulatedHosts>(l.hosts, kHostPrefix, l.link, log, "layout " + l.spec);
    const std::vector<std::string> pre = hosts->run_prefix();
    argv.insert(argv.begin(), pre.begin(), pre.end());
    ns = hosts->first_host();
  }
  std::string cmdline;
  for (const auto& s : argv) cmdline += (cmdline.empty() ? "" : " ") + s;
  lay["server_command"] = cmdline;
  std::fprintf(stderr, "bench sweep: [%d/%d] %s: starting the server (log %s)\n", index, n_layouts,
               l.label().c_str(), log.c_str());
  bool taken = false;
  in_netns(ns, [&] { taken = port_in_use(a.port); });
  if (taken) {
    PL_THROW("layout " << l.spec << ": something already listens on port " << a.port
                       << " (another server? pick one with --port)");
  }
  const double t0 = now_seconds();
  const pid_t server = spawn_logged(argv, log);
  int unsustained = 0;
  try {
    bool healthy = false;
    in_netns(ns, [&] { healthy = wait_healthy(a.port, server, a.server_timeout); });
    if (!healthy)
      PL_THROW("the server did not become healthy within " << a.server_timeout << " s" << last_error(log)
                                                            << " (log " << log << ")");
    lay["startup_s"] = now_seconds() - t0;
    for (size_t i = 0; i < rates.size(); ++i) {
      if (a.max_unsustained > 0 && unsustained >= a.max_unsustained) break;
      BenchServeArgs b = a.bench;
      b.base_url = "http://127.0.0.1:" + std::to_string(a.port);
      b.request_rate = rates[i];
      b.seed = a.bench.seed + 1000 * i;  // new prompts per rate: no prefix-cache hits from the last one
      b.percentile_metrics = "ttft,tpot,itl,e2el";
      b.metric_percentiles = "50,90,99";
      nlohmann::json r;
      in_netns(ns, [&] { r = run_serve_benchmark(b, isatty(STDERR_FILENO)); });
      std::vector<double> arrival, end;
      nlohmann::json ttft_s = nlohmann::json::array(), e2el_s = nlohmann::json::array();
      nlohmann::json arrival_s = nlohmann::json::array(), end_s = nlohmann::json::array();
      auto ms01 = [](double x) { return std::round(x * 1e4) / 1e4; };
      for (const auto& q : r["requests"]) {
        arrival.push_back(q["arrival"].get<double>());
        end.push_back(q["end"].get<double>());
        ttft_s.push_back(ms01(q["ttft"].get<double>()));
        e2el_s.push_back(ms01(q["latency"].get<double>()));
        arrival_s.push_back(ms01(arrival.back()));
        end_s.push_back(ms01(end.back()));
      }
      r.erase("requests");
      // Per request in arrival order (0.1 ms): for other rules, and as ground truth for the planner.
      r["arrival_s"] = arrival_s;
      r["end_s"] = end_s;
      r["ttft_s"] = ttft_s;
      r["e2el_s"] = e2el_s;
      const bench::KeepUp k = bench::keeps_up(arrival, end, r["failed"].get<int64_t>(), a.min_pace);
      r["keeps_up"] = std::isinf(rates[i]) ? nlohmann::json(nullptr) : nlohmann::json(k.keeps_up);
      r["pace"] = k.pace;  // requests ended / arrived over the steady window
      if (!std::isinf(rates[i]) && !k.keeps_up) ++unsustained;
      std::fprintf(stderr,
                   "bench sweep: %s @ %s req/s: %.2f req/s, %.1f out tok/s, median TTFT %.0f ms, TPOT %.1f ms, "
                   "p90 E2EL %.0f ms, %s\n",
                   l.label().c_str(), rate_str(rates[i]).c_str(), r["request_throughput"].get<double>(),
                   r["output_throughput"].get<double>(), r["median_ttft_ms"].get<double>(),
                   r["median_tpot_ms"].get<double>(), r["p90_e2el_ms"].get<double>(),
                   std::isinf(rates[i]) ? "all at once"
                   : k.keeps_up        ? "keeps up"
                                       : ("falls behind (pace " + fmt2(k.pace) + ")").c_str());
      lay["runs"].push_back(r);
    }
  } catch (const std::exception& e) {
    lay["error"] = e.what();
    std::fprintf(stderr, "bench sweep: %s: %s\n", l.label().c_str(), e.what());
  }
  // SIGTERM drains the server (and, under our supervisor, the whole job).
  kill(server, SIGTERM);
  int rc = wait_exit(server, 60);
  if (rc == -1) {
    kill(server, SIGKILL);
    rc = wait_exit(server, 10);
    lay["server_killed"] = true;
  }
  lay["server_exit"] = rc;
  std::vector<std::pair<double, bool>> kept;
  for (const auto& r : lay["runs"])
    if (!r["keeps_up"].is_null()) kept.emplace_back(r["request_rate"].get<double>(), r["keeps_up"].get<bool>());
  lay["sustained_rate"] = bench::sustained_rate(kept);
  return lay;
}

int run_bench_sweep(const SweepArgs& a0) {
  SweepArgs a = a0;
  const auto layouts = bench::parse_layouts(a.layouts);
  const auto rates = bench::parse_rates(a.rates);
  if (a.model.empty()) a.model = default_model_path();
  if (a.bench.tokenizer.empty()) a.bench.tokenizer = a.model;
  const std::string logs = a.out + "-logs";
  mkdir(logs.c_str(), 0755);
  nlohmann::json sweep = {{"model", a.model},
                          {"rates", nlohmann::json::array()},
                          {"num_prompts", a.bench.num_prompts},
                          {"dataset_name", a.bench.dataset_name},
                          {"random_input_len", a.bench.random_input_len},
                          {"random_output_len", a.bench.random_output_len},
                          {"random_range_ratio", a.bench.random_range_ratio},
                          {"ignore_eos", a.bench.ignore_eos},
                          {"burstiness", a.bench.burstiness},
                          {"seed", a.bench.seed},
                          {"server_args", a.server_args},
                          {"keep_up_rule", "no failures and, over the last 3/4 of the arrival window, requests ended >= " +
                                               std::to_string(a.min_pace) + " x requests arrived - 1"},
                          {"layouts", nlohmann::json::array()}};
  for (double r : rates) sweep["rates"].push_back(std::isinf(r) ? nlohmann::json("inf") : nlohmann::json(r));
  const double t0 = now_seconds();
  for (size_t i = 0; i < layouts.size(); ++i) {
    const std::string log = logs + "/" + std::to_string(i + 1) + ".log";
    std::remove(log.c_str());
    sweep["layouts"].push_back(run_layout(a, layouts[i], rates, log, static_cast<int>(i) + 1,
                                          static_cast<int>(layouts.size())));
    sweep["duration_s"] = now_seconds() - t0;
    std::ofstream(a.out + ".json") << sweep.dump(1) << "\n";  // after every layout: a partial sweep survives
  }
  const std::string md = bench::sweep_markdown(sweep);
  std::ofstream(a.out + ".md") << md;
  std::printf("%s", md.c_str());
  std::fprintf(stderr, "bench sweep: wrote %s.json and %s.md\n", a.out.c_str(), a.out.c_str());
  int status = 0;
  for (const auto& l : sweep["layouts"])
    if (l.contains("error")) status = 1;
  if (!a.no_plot) {
    const std::string py = python_for_tools();
    const std::string plot_log = logs + "/plot.log";
    const int rc = run_logged({py, source_root() + "/tools/plot_sweep.py", a.out + ".json", a.out + ".png"}, plot_log);
    if (rc == 0) std::fprintf(stderr, "bench sweep: wrote %s.png\n", a.out.c_str());
    else std::fprintf(stderr, "bench sweep: no plot (%s tools/plot_sweep.py failed, see %s)\n", py.c_str(),
                      plot_log.c_str());
  }
  return status;
}

}  // namespace

void add_bench_sweep(CLI::App* bench, std::function<int()>& run) {
  auto a = std::make_shared<SweepArgs>();
  a->bench.num_prompts = 100;
  a->bench.random_input_len = 128;
  a->bench.random_output_len = 64;
  CLI::App* c = bench->add_subcommand(
      "sweep", "Serving benchmark of our server over layouts and request rates, with a table and plots");
  c->add_option("--layouts", a->layouts,
                "Semicolon-separated layouts of keys tp, pp, threads, hosts (emulated), map (slot|node), "
                "link (e.g. 1gbit), name: \"tp=1,threads=2; tp=2; pp=2; tp=2,pp=2,hosts=2\"")
      ->capture_default_str();
  c->add_option("--rates", a->rates, "Request rates, comma-separated (inf: all at once)")->capture_default_str();
  c->add_option("-m,--model-file", a->model, "GGUF the servers load (default: SmolLM2-135M-Instruct Q4_1)");
  c->add_option("--out", a->out, "Writes OUT.json, OUT.md, OUT.png and the server logs in OUT-logs/")
      ->capture_default_str();
  c->add_option("--server-args", a->server_args, "More `parallama serve` options, e.g. \"--max-num-seqs 64\"");
  c->add_option("--port", a->port, "Port of the servers")->capture_default_str();
  c->add_option("--server-timeout", a->server_timeout, "Seconds a server may take to become healthy")
      ->capture_default_str();
  c->add_option("--max-unsustained", a->max_unsustained,
                "Skip a layout's higher rates after this many it could not keep up with (0: run every rate)")
      ->capture_default_str();
  c->add_option("--min-pace", a->min_pace,
                "Keep-up rule: over the last 3/4 of the arrivals, requests ended at least this times those arrived")
      ->capture_default_str();
  c->add_flag("--no-plot", a->no_plot, "No PNG (tools/plot_sweep.py needs matplotlib)");
  add_bench_workload_options(c, a->bench);
  c->callback([a, &run] { run = [a] { return run_bench_sweep(*a); }; });
}

}  // namespace parallama::cli
