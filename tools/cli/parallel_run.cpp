#include "cli/parallel_run.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

#include "cli/commands.h"
#include "core/check.h"
#include "parallel/launcher.h"
#include "parallel/mpi_communicator.h"

namespace parallama::cli {

struct ParallelRun::State {
  ParallelSetup setup;
  Communicator* world = nullptr;
  int local_ranks = 1;
  nlohmann::json summary;
  std::vector<RankInfo> ranks;
  std::mutex mu;
  std::function<void(const std::string&)> on_fatal;
};

void add_parallel_options(CLI::App* c, ParallelArgs& a) {
  c->add_option("--tp", a.tp, "Tensor-parallel ranks (per pipeline stage)")->capture_default_str();
  c->add_option("--pp", a.pp, "Pipeline-parallel stages")->capture_default_str();
  c->add_option("--pp-layers", a.pp_layers, "Layers per stage, e.g. 16,14 (default: even)");
  c->add_option("--comm-timeout", a.comm_timeout,
                "Seconds a rank waits on a peer, beyond the step's expected work, before it ends the job "
                "naming the peer (0: wait forever)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->add_option("--hosts", a.placement.hosts,
                "Run the ranks on these hosts, HOST:SLOTS,... (slots add up to tp*pp; mpirun reaches them by ssh)");
  c->add_option("--hostfile", a.placement.hostfile, "Run the ranks on the hosts of this Open MPI host file");
  c->add_option("--map-by", a.placement.map_by,
                "slot: consecutive ranks share a host (TP inside hosts, PP across); node: round robin (TP across)")
      ->capture_default_str();
  c->add_option("--mpi-net", a.placement.mpi_net, "Network (CIDR) MPI uses between hosts, e.g. 10.0.0.0/24");
}

void ParallelRun::set_on_fatal(std::function<void(const std::string&)> fn) {
  std::lock_guard<std::mutex> lock(s_->mu);
  s_->on_fatal = std::move(fn);
}

const std::vector<RankInfo>& ParallelRun::ranks() const { return s_->ranks; }

bool ParallelRun::leader() const { return s_->setup.world.rank == 0; }

int ParallelRun::threads(int requested) const {
  return requested > 0 ? requested : default_threads_per_rank(s_->local_ranks);
}

const ParallelSetup& ParallelRun::setup() const { return s_->setup; }

namespace {

// Resident bytes of this process from /proc/self/status: `field` is "RssFile:"
// (mapped model pages) or "RssAnon:" (heap: copied weight slices, KV cache, scratch).
double rss_bytes(const char* field) {
  std::ifstream in("/proc/self/status");
  const std::string f = field;
  for (std::string line; std::getline(in, line);)
    if (line.rfind(f, 0) == 0) return std::stod(line.substr(f.size())) * 1024.0;
  return 0;
}

std::vector<int> parse_layers(const std::string& s) {
  std::vector<int> out;
  if (s.empty()) return out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      size_t used = 0;
      out.push_back(std::stoi(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      PL_THROW("--pp-layers: '" << item << "' is not a layer count (expected e.g. 16,14)");
    }
  }
  return out;
}

void run_on_fatal(ParallelRun::State& st, const std::string& why) {
  std::function<void(const std::string&)> fn;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    fn = std::move(st.on_fatal);  // once
  }
  if (fn) fn(why);
}

std::vector<RankInfo> gather_rank_info(Communicator& world) {
  const std::vector<std::string> hosts = gather_hostnames(world);
  const int64_t me = getpid();
  std::vector<int64_t> pids(world.size());
  world.all_gather_bytes(&me, sizeof(me), pids.data());
  std::vector<RankInfo> out(world.size());
  for (int r = 0; r < world.size(); ++r) out[r] = {hosts[r], pids[r]};
  return out;
}

}  // namespace

void ParallelRun::print_layout(const Engine& e) {
  const WorldConfig& w = s_->setup.world;
  std::vector<std::string> hosts;
  for (const RankInfo& r : s_->ranks) hosts.push_back(r.host);
  double mine[2] = {static_cast<double>(e.model().weight_bytes()), 0.0};
  std::vector<double> all(2 * w.world_size());
  s_->world->all_gather_bytes(mine, sizeof(mine), all.data());
  s_->world->reset_stats();
  if (!leader()) return;
  std::fprintf(stderr, "%s", w.to_table(hosts, e.config().n_head, e.config().n_head_kv).c_str());
  std::fprintf(stderr, "weights per rank (MiB):");
  for (int r = 0; r < w.world_size(); ++r) std::fprintf(stderr, " %.1f", all[2 * r] / 1048576.0);
  std::fprintf(stderr, "\n");
}

void ParallelRun::report(const Engine& e, const GenerateStats& st) {
  const WorldConfig& w = s_->setup.world;
  double mine[5] = {st.compute_s, st.comm_s, st.wall_s, rss_bytes("RssFile:"),
                    rss_bytes("RssAnon:")};
  std::vector<double> all(5 * w.world_size());
  s_->world->all_gather_bytes(mine, sizeof(mine), all.data());
  nlohmann::json ranks = nlohmann::json::array();
  for (int r = 0; r < w.world_size(); ++r) {
    const double busy = all[5 * r], comm = all[5 * r + 1], wall = all[5 * r + 2];
    ranks.push_back({{"rank", r},
                     {"pp_stage", r / w.tp},
                     {"tp_rank", r % w.tp},
                     {"compute_s", busy},
                     {"comm_s", comm},
                     {"wall_s", wall},
                     {"idle_s", std::max(0.0, wall - busy)},
                     {"rss_file_mib", all[5 * r + 3] / 1048576.0},
                     {"rss_anon_mib", all[5 * r + 4] / 1048576.0}});
  }
  const int64_t tokens = st.decode_tokens;
  s_->summary = {{"tp", w.tp}, {"pp", w.pp}, {"ranks", ranks}};
  if (tokens > 0) s_->summary["comm_ms_per_token"] = 1e3 * st.comm_s / tokens;
  if (!leader()) return;
  std::fprintf(stderr, "rank stage tp   compute_s  comm_s  idle_s  busy%%  model_pages_MiB  heap_MiB\n");
  for (const auto& r : ranks) {
    const double wall = r["wall_s"], busy = r["compute_s"];
    std::fprintf(stderr, "%4d %5d %2d %11.3f %7.3f %7.3f %5.0f%% %16.1f %9.1f\n",
                 r["rank"].get<int>(), r["pp_stage"].get<int>(), r["tp_rank"].get<int>(), busy,
                 r["comm_s"].get<double>(), r["idle_s"].get<double>(),
                 wall > 0 ? 100.0 * busy / wall : 0.0, r["rss_file_mib"].get<double>(),
                 r["rss_anon_mib"].get<double>());
  }
}

nlohmann::json ParallelRun::summary_json() const { return s_->summary; }

int with_parallel_run(const ParallelArgs& a, const std::string& model_path,
                      const std::function<int(ParallelRun&)>& body) {
  const std::vector<int> manual = parse_layers(a.pp_layers);
  const bool mpi = under_mpi();
  {  // Validate against the model's metadata before any weight is loaded.
    auto f = GgufFile::open(model_path);
    const ModelConfig cfg = ModelConfig::from_gguf(*f);
    validate_layout(a.tp, a.pp, 0, cfg.n_head, cfg.n_layer, manual, cfg.n_head_kv);
  }
  if (!mpi) {
    relaunch_under_mpirun(a.tp * a.pp, command_line().argc, command_line().argv,
                          placement_args(a.placement, a.tp * a.pp));
  }
  if (a.placement.multi_host() || !a.placement.mpi_net.empty())
    if (std::getenv("OMPI_COMM_WORLD_RANK") && std::string(std::getenv("OMPI_COMM_WORLD_RANK")) == "0" &&
        !std::getenv("PARALLAMA_MPI_RELAUNCHED"))
      std::fprintf(stderr, "note: started under mpirun: --hosts/--hostfile/--mpi-net are mpirun's to give\n");

  CommandLine& cl = command_line();
  MpiContext ctx(&cl.argc, &cl.argv);
  ParallelRun::State st;
  int rc = 1;
  try {
    auto f = GgufFile::open(model_path);
    const ModelConfig cfg = ModelConfig::from_gguf(*f);
    const WorldConfig w = WorldConfig::create(a.tp, a.pp, ctx.world_rank(), ctx.world_size(),
                                              cfg.n_head, cfg.n_head_kv, cfg.n_layer, manual);
    ParallelComms comms = make_parallel_comms(ctx, w);
    st.setup = ParallelSetup{w, comms.tp.get(), comms.pipe.get()};
    st.world = comms.world.get();
    st.local_ranks = local_rank_count();
    st.ranks = gather_rank_info(*comms.world);
    std::unique_ptr<CommWatchdog> watchdog;
    if (a.comm_timeout > 0) {
      watchdog = std::make_unique<CommWatchdog>(a.comm_timeout, w.rank, st.ranks, [&st, &ctx](const std::string& m) {
        std::fprintf(stderr, "rank %d: error: %s\n", ctx.world_rank(), m.c_str());
        std::fflush(stderr);
        run_on_fatal(st, m);
        notify_supervisor_of_failure();
        // Not MPI_Abort: MPI is FUNNELED and the main thread is inside a call.
        // mpirun ends the whole job when a rank exits without MPI_Finalize.
        std::_Exit(1);
      });
      watchdog->watch(comms.tp.get(), "tp group of stage " + std::to_string(w.pp_rank()));
      watchdog->watch(comms.pipe.get(), "pipeline link");
      watchdog->watch(comms.world.get(), "world");
      st.setup.watchdog = watchdog.get();
    }
    ParallelRun run(&st);
    rc = body(run);
    comms.world->barrier();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: error: %s\n", ctx.world_rank(), e.what());
    std::fflush(stderr);
    run_on_fatal(st, e.what());
    notify_supervisor_of_failure();
    MpiContext::abort(1);
  }
  return rc;
}

}  // namespace parallama::cli
