// parallama plan calibrate: measures this machine the way the planner models
// it and writes a hardware profile (JSON) for `parallama plan --profile`.
//   device  one rank with --threads-per-device threads runs engine steps of a
//           model over a grid of batch shapes (decode batches at several
//           context lengths, prompt chunks, mixed steps); the cost model's
//           efficiencies and overheads are fitted to them (plan/calibrate.h);
//           its bandwidth is a plain read of memory by those threads.
//   links   timed all-reduces and messages at sizes from 256 B to 4 MiB:
//           "threads" (the engine's thread shards, in this process), "shm"
//           (two MPI ranks on this host) and, with --emulated-hosts, "tcp"
//           between two emulated hosts and "tcp-RATE" for each --link-rate.
// plan comm-probe is the MPI side of the links (two ranks; hidden helper).
#include <sched.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/child_process.h"
#include "cli/commands.h"
#include "cli/emulated_hosts.h"
#include "cli/paths.h"
#include "cli/read_bandwidth.h"
#include "core/check.h"
#include "core/clock.h"
#include "engine/engine.h"
#include "parallel/launcher.h"
#include "parallel/mpi_communicator.h"
#include "parallel/thread_communicator.h"
#include "plan/calibrate.h"
#include "gguf/gguf_file.h"
#include "model/model_config.h"

namespace parallama::cli {

namespace {

using nlohmann::json;

struct CalibrateArgs {
  std::string model, out = "profile.json";
  int threads_per_device = 1, reps = 7;
  bool emulated_hosts = false, no_mpi = false;
  std::vector<std::string> link_rates;
};

// Message and buffer sizes of the link probes, bytes.
std::vector<size_t> probe_sizes() { return {256, 4096, 32768, 262144, 1 << 20, 4 << 20}; }

double median_time(int reps, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_seconds();
    fn();
    t.push_back(now_seconds() - t0);
  }
  return median_of(t);
}

// Repetitions for a size: many for small ones (timer resolution), fewer for large.
int reps_for(size_t bytes) { return bytes <= 32768 ? 200 : bytes <= (1 << 20) ? 40 : 15; }

// ---- device: engine steps over a grid of shapes ----

struct GridPoint {
  int n_seqs, n_new, n_past;  // sequences; new tokens and cached tokens of each
};

std::vector<GridPoint> step_grid() {
  std::vector<GridPoint> g;
  for (int ctx : {32, 512, 2048})
    for (int b : {1, 2, 4, 8, 16, 32, 64}) g.push_back({b, 1, ctx - 1});
  for (int n : {16, 64, 128, 256, 512}) g.push_back({1, n, 0});
  g.push_back({4, 64, 256});  // prompt chunks behind a cached prefix
  return g;
}

std::vector<plan::StepSample> time_steps(Engine& e, int reps, const std::function<void(size_t, size_t)>& progress) {
  const std::vector<GridPoint> grid = step_grid();
  BlockAllocator alloc(e.kv().shape().n_blocks);
  const int32_t bs = e.kv().block_size(), vocab = e.config().n_vocab;
  std::vector<float> logits;
  std::vector<plan::StepSample> out;
  for (size_t gi = 0; gi < grid.size(); ++gi) {
    const GridPoint& p = grid[gi];
    progress(gi, grid.size());
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(p.n_seqs));
    std::vector<int32_t> ids(static_cast<size_t>(p.n_new));
    Batch b;
    plan::StepShape sh;
    for (int s = 0; s < p.n_seqs; ++s) {
      PL_CHECK_MSG(alloc.reserve(tables[static_cast<size_t>(s)], p.n_past + p.n_new, bs),
                   "calibration: the KV pool is too small for " << p.n_seqs << " x " << p.n_past + p.n_new);
      for (int j = 0; j < p.n_new; ++j) ids[static_cast<size_t>(j)] = (s * 131 + j * 17 + 1) % vocab;
      b.add_seq(ids.data(), p.n_new, p.n_past, &tables[static_cast<size_t>(s)]);
      sh.add_seq(p.n_past, p.n_new, p.n_new == 1, true);
    }
    const double t = median_time(reps, [&] { e.forward(b, logits); });
    out.push_back({sh, t});
    for (auto& t2 : tables) alloc.release(t2);
  }
  progress(grid.size(), grid.size());
  return out;
}

// ---- links ----

std::vector<plan::CommSample> probe_threads() {
  ThreadGroup g(2);
  std::vector<plan::CommSample> out;
  for (size_t bytes : probe_sizes()) {
    const size_t n = bytes / sizeof(float);
    std::vector<float> a(n, 1.0f), b(n, 2.0f);
    const int reps = reps_for(bytes);
    std::thread peer([&] {
      for (int i = 0; i < reps + 1; ++i) g.comm(1).all_reduce_sum(b.data(), n);
    });
    const double t = median_time(reps, [&] { g.comm(0).all_reduce_sum(a.data(), n); });
    peer.join();
    out.push_back({plan::CommSample::kAllReduce, 2, static_cast<double>(bytes), t});
  }
  return out;
}

json samples_json(const std::vector<plan::CommSample>& s) {
  json j = json::array();
  for (const auto& x : s)
    j.push_back({{"kind", x.kind == plan::CommSample::kAllReduce ? "all_reduce" : "send"},
                 {"ranks", x.ranks},
                 {"bytes", x.bytes},
                 {"seconds", x.seconds}});
  return j;
}

std::vector<plan::CommSample> samples_of(const json& j) {
  std::vector<plan::CommSample> out;
  for (const auto& x : j)
    out.push_back({x.at("kind") == "all_reduce" ? plan::CommSample::kAllReduce : plan::CommSample::kSend,
                   x.at("ranks").get<int>(), x.at("bytes").get<double>(), x.at("seconds").get<double>()});
  return out;
}

struct ProbeArgs {
  std::string out, model;
  int threads = 1, reps = 3;
  HostPlacement placement;
};

json steps_json(const std::vector<plan::StepSample>& s, const std::vector<double>& fitted = {}) {
  json j = json::array();
  for (size_t i = 0; i < s.size(); ++i) {
    const auto& x = s[i].shape;
    j.push_back({{"prefill_tokens", x.prefill_tokens}, {"decode_tokens", x.decode_tokens}, {"n_seqs", x.n_seqs},
                 {"kv_tokens_read", x.kv_tokens_read}, {"attn_pairs", x.attn_pairs}, {"seconds", s[i].seconds}});
    if (i < fitted.size()) j.back()["fitted_seconds"] = fitted[i];
  }
  return j;
}

std::vector<plan::StepSample> steps_of(const json& j) {
  std::vector<plan::StepSample> out;
  for (const auto& x : j) {
    plan::StepSample s;
    s.shape.prefill_tokens = x.at("prefill_tokens");
    s.shape.decode_tokens = x.at("decode_tokens");
    s.shape.n_seqs = x.at("n_seqs");
    s.shape.n_logits = s.shape.n_seqs;
    s.shape.kv_tokens_read = x.at("kv_tokens_read");
    s.shape.attn_pairs = x.at("attn_pairs");
    s.seconds = x.at("seconds");
    out.push_back(s);
  }
  return out;
}

// Two MPI ranks: rank 0's median time per all-reduce, and per one-way message
// (half a ping-pong); with a model, engine steps of a tp=2 split of it over
// the two ranks (the grid of calibrate). Writes `out` from rank 0.
int run_comm_probe(const ProbeArgs& a) {
  const std::string& out = a.out;
  const HostPlacement& placement = a.placement;
  if (!under_mpi())
    relaunch_under_mpirun(2, command_line().argc, command_line().argv, placement_args(placement, 2));
  MpiContext ctx(&command_line().argc, &command_line().argv);
  if (ctx.world_size() != 2) PL_THROW("plan comm-probe runs on 2 ranks, got " << ctx.world_size());
  auto world = make_world_communicator(ctx);
  std::vector<plan::CommSample> s;
  for (size_t bytes : probe_sizes()) {
    const size_t n = bytes / sizeof(float);
    std::vector<float> buf(n, 1.0f);
    const int reps = reps_for(bytes);
    world->barrier();
    const double ar = median_time(reps, [&] { world->all_reduce_sum(buf.data(), n); });
    world->barrier();
    const double rt = median_time(reps, [&] {
      if (world->rank() == 0) {
        world->send(buf.data(), bytes, 1, 7);
        world->recv(buf.data(), bytes, 1, 7);
      } else {
        world->recv(buf.data(), bytes, 0, 7);
        world->send(buf.data(), bytes, 0, 7);
      }
    });
    s.push_back({plan::CommSample::kAllReduce, 2, static_cast<double>(bytes), ar});
    s.push_back({plan::CommSample::kSend, 2, static_cast<double>(bytes), rt / 2});
  }
  json result = {{"samples", samples_json(s)}};
  if (!a.model.empty()) {
    auto f = GgufFile::open(a.model);
    const ModelConfig cfg = ModelConfig::from_gguf(*f);
    const WorldConfig w = WorldConfig::create(2, 1, ctx.world_rank(), 2, cfg.n_head, cfg.n_head_kv, cfg.n_layer);
    ParallelComms comms = make_parallel_comms(ctx, w);
    const ParallelSetup setup{w, comms.tp.get(), comms.pipe.get()};
    EngineOptions opt;
    opt.threads = a.threads;
    opt.n_ctx = 64 * 2048 + 4096;
    auto e = Engine::load(a.model, opt, &setup);
    result["tp_steps"] = steps_json(time_steps(*e, a.reps, [](size_t, size_t) {}));
  }
  if (world->rank() == 0) {
    std::ofstream f(out);
    f << result.dump(1) << "\n";
    if (!f) PL_THROW("comm-probe: cannot write " << out);
  }
  world->barrier();
  return 0;
}

// Runs the MPI probe as a child (it relaunches itself under mpirun), optionally
// as host 1 of emulated hosts, and reads its result.
json probe_mpi(const std::vector<std::string>& prefix_cmd, const std::vector<std::string>& extra,
               const std::string& tmp) {
  std::vector<std::string> cmd = prefix_cmd;
  for (const std::string& x : std::vector<std::string>{self_exe(), "plan", "comm-probe", "--out", tmp + ".json"})
    cmd.push_back(x);
  for (const auto& x : extra) cmd.push_back(x);
  if (run_logged(cmd, tmp + ".log", 600) != 0) PL_THROW("link probe failed: see " << tmp << ".log");
  std::ifstream in(tmp + ".json");
  if (!in) PL_THROW("link probe wrote no result: see " << tmp << ".log");
  json s = json::parse(in);
  std::remove((tmp + ".json").c_str());
  std::remove((tmp + ".log").c_str());
  return s;
}


void step_progress(const char* what, size_t i, size_t n) {
  std::fprintf(stderr, "\rcalibrate: %s %zu/%zu", what, i, n);
  if (i == n) std::fprintf(stderr, "\n");
}

int run_calibrate(const CalibrateArgs& a) {
  if (a.threads_per_device < 1) PL_THROW("--threads-per-device must be >= 1");
  const int cores = host_cpu_count();
  const int devices = std::max(1, cores / a.threads_per_device);
  {  // Another program's load ends up in the profile as a slow engine.
    double load = 0;
    if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
      if (std::fscanf(f, "%lf", &load) != 1) load = 0;
      std::fclose(f);
    }
    if (load > 0.25 * cores)
      std::fprintf(stderr, "calibrate: warning: the machine is busy (load %.2f on %d cores); the profile will "
                   "measure that too: calibrate on an idle machine\n", load, cores);
  }
  const plan::ModelShape shape = plan::shape_from_gguf(a.model);
  json links = json::object(), link_data = json::object();
  // The engines below pin this thread to a core; children (the MPI probes)
  // would inherit that and run both ranks on one core.
  cpu_set_t affinity;
  CPU_ZERO(&affinity);
  sched_getaffinity(0, sizeof(affinity), &affinity);

  // 1. The device: engine steps on one rank, the efficiencies fitted.
  EngineOptions opt;
  opt.threads = a.threads_per_device;
  opt.thread_shards = 1;
  opt.n_ctx = 64 * 2048 + 4096;
  plan::Hardware hw;
  std::vector<plan::StepSample> samples;
  {
    auto e = Engine::load(a.model, opt);
    ReadBandwidth rb([&e](const std::function<void(int, int)>& fn) { e->run_on_threads(fn); }, e->threads(), 512);
    double bw = 0;
    for (int i = 0; i < 3; ++i)
      for (const LoadWidth& w : load_widths(active_cpu_isa())) bw = std::max(bw, rb.pass(w));
    std::fprintf(stderr, "calibrate: memory read %.1f GB/s with %d thread(s)\n", bw, e->threads());
    samples = time_steps(*e, a.reps, [](size_t i, size_t n) { step_progress("engine steps, one device", i, n); });
    hw.dev.name = "cpu-" + std::to_string(a.threads_per_device) + "t";
    hw.dev.mem_bw_Bps = bw * 1e9;
  }
  // The peak: the best rate of matrix flops the grid reached (the fitted
  // curve then says how far below it other batch sizes run).
  for (const auto& s : samples)
    hw.dev.peak_flops =
        std::max(hw.dev.peak_flops, 2.0 * shape.layer_params() * shape.n_layers * s.shape.n_tokens() / s.seconds);
  struct sysinfo si {};
  sysinfo(&si);
  hw.dev.mem_bytes = static_cast<double>(si.totalram) * si.mem_unit / devices;
  plan::Efficiency start;
  start.comm = 1;       // the links hold achieved figures
  start.act_bytes = 4;  // activations travel as f32
  start.kv_bytes = 2;   // f16 KV cache
  const plan::EfficiencyFit fit = plan::fit_efficiency(shape, hw.dev, samples, start);
  std::fprintf(stderr, "calibrate: fitted mem %.2f, attn %.2f, step %.0f us, layer %.1f us (rms %.1f%%, max %.0f%%)\n",
               fit.eff.mem, fit.eff.attn, fit.eff.step_overhead_s * 1e6, fit.eff.per_layer_overhead_s * 1e6,
               fit.rms_log_error * 100, fit.max_rel_error * 100);
  hw.devices_per_node = devices;
  hw.eff = fit.eff;

  // 2. Links: a probe of each transport fits its bandwidth; TP steps of the
  // engine over it fit its latency as the engine pays it per collective.
  auto add_link = [&](const std::string& name, const std::vector<plan::CommSample>& probe,
                      const std::vector<plan::StepSample>& tp_steps) {
    const plan::LinkFit lf = plan::fit_link(name, probe);
    plan::Link link = lf.link;
    json d = {{"probe_fit_max_rel_error", lf.max_rel_error}, {"probe", samples_json(probe)}, {"probe_latency_s", link.latency_s}};
    std::string how = "probe";
    if (!tp_steps.empty()) {
      plan::Hardware h = hw;
      h.intra = link;
      link = plan::fit_tp_link(shape, h, 2, tp_steps);
      h.intra = link;
      const plan::CostModel cm(shape, plan::Layout{2, 1, {}, false}, h);
      std::vector<double> pred;
      double worst = 0;
      for (const auto& s : tp_steps) {
        pred.push_back(cm.step(s.shape).stage_s[0]);
        worst = std::max(worst, std::fabs(pred.back() / s.seconds - 1));
      }
      d["tp_steps"] = steps_json(tp_steps, pred);
      d["tp_steps_max_rel_error"] = worst;
      char b[64];
      std::snprintf(b, sizeof(b), "tp=2 engine steps within %.0f%%", worst * 100);
      how = b;
    }
    links[name] = link;
    link_data[name] = d;
    std::fprintf(stderr, "calibrate: link %-10s latency %7.1f us, %8.2f GB/s (%s)\n", name.c_str(),
                 link.latency_s * 1e6, link.bw_Bps / 1e9, how.c_str());
  };
  if (devices >= 2) {
    // "threads": two thread shards in this process, as `serve -t 2` runs.
    opt.threads = 2 * a.threads_per_device;
    opt.thread_shards = 2;
    auto e2 = Engine::load(a.model, opt);
    const auto s2 = time_steps(*e2, a.reps, [](size_t i, size_t n) { step_progress("engine steps, 2 thread shards", i, n); });
    e2.reset();
    add_link("threads", probe_threads(), s2);
  }
  const std::string tmp = a.out + ".probe";
  const std::vector<std::string> engine_args = {"-m", a.model, "--threads", std::to_string(a.threads_per_device),
                                                "--reps", std::to_string(a.reps)};
  auto mpi_link = [&](const std::string& name, const std::vector<std::string>& prefix, std::vector<std::string> extra) {
    sched_setaffinity(0, sizeof(affinity), &affinity);
    std::fprintf(stderr, "calibrate: link %s (two MPI ranks: probe, then tp=2 engine steps)...\n", name.c_str());
    extra.insert(extra.end(), engine_args.begin(), engine_args.end());
    const json r = probe_mpi(prefix, extra, tmp);
    add_link(name, samples_of(r.at("samples")), steps_of(r.at("tp_steps")));
  };
  if (!a.no_mpi) mpi_link("shm", {}, {});
  if (a.emulated_hosts) {
    std::vector<std::pair<std::string, std::string>> nets = {{"tcp", ""}};
    for (const auto& r : a.link_rates) nets.emplace_back("tcp-" + r, r);
    for (const auto& [name, rate] : nets) {
      {
        const EmulatedHosts hosts(2, "cal", rate, tmp + ".hosts.log", "link " + name);
        mpi_link(name, hosts.run_prefix(), {"--hosts", "calh1:1,calh2:1"});
      }
      std::remove((tmp + ".hosts.log").c_str());
    }
  }
  if (links.contains("shm")) hw.intra = links["shm"].get<plan::Link>();
  else if (links.contains("threads")) hw.intra = links["threads"].get<plan::Link>();
  hw.inter = links.contains("tcp") ? links["tcp"].get<plan::Link>() : hw.intra;

  json j = hw;
  j["links"] = links;
  j["cores"] = cores;
  j["threads_per_device"] = a.threads_per_device;
  j["calibration"] = {{"model", a.model},
                      {"model_name", shape.name},
                      {"cpu", cpu_isa_name(active_cpu_isa())},
                      {"steps", steps_json(samples, fit.predicted_s)},
                      {"fit_rms_log_error", fit.rms_log_error},
                      {"fit_max_rel_error", fit.max_rel_error},
                      {"links", link_data}};
  std::ofstream f(a.out);
  f << j.dump(1) << "\n";
  if (!f) PL_THROW("cannot write " << a.out);
  std::fprintf(stderr, "calibrate: wrote %s\n", a.out.c_str());
  return 0;
}

}  // namespace

void add_plan_calibrate(CLI::App* plan, std::function<int()>& run) {
  auto a = std::make_shared<CalibrateArgs>();
  CLI::App* c = plan->add_subcommand("calibrate", "Measure this machine's engine steps and links into a hardware profile");
  c->add_option("-m,--model", a->model, "GGUF model whose engine steps are timed")->required();
  c->add_option("-o,--out", a->out, "Profile to write (JSON)")->capture_default_str();
  c->add_option("--threads-per-device", a->threads_per_device, "Threads of one device (a rank)")->capture_default_str();
  c->add_option("--reps", a->reps, "Timed repetitions per step shape (the median is kept)")->capture_default_str();
  c->add_flag("--emulated-hosts", a->emulated_hosts, "Also measure TCP between two emulated hosts (root, netns)");
  c->add_option("--link-rate", a->link_rates, "With --emulated-hosts: also a link shaped to this rate (e.g. 1gbit)");
  c->add_flag("--no-mpi", a->no_mpi, "Skip the shared-memory MPI probe");
  c->callback([a, &run] { run = [a] { return run_calibrate(*a); }; });

  auto probe = std::make_shared<ProbeArgs>();
  CLI::App* p = plan->add_subcommand("comm-probe", "");  // empty description: hidden
  p->add_option("--out", probe->out)->required();
  p->add_option("--hosts", probe->placement.hosts);
  p->add_option("--mpi-net", probe->placement.mpi_net);
  p->add_option("-m,--model", probe->model);
  p->add_option("--threads", probe->threads);
  p->add_option("--reps", probe->reps);
  p->callback([probe, &run] { run = [probe] { return run_comm_probe(*probe); }; });
}

}  // namespace parallama::cli
