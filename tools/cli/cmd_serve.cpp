// parallama serve: the OpenAI-compatible server on any TP x PP layout. World
// rank 0 runs the HTTP threads and the engine loop (on its main thread); the
// other ranks run plans. SIGINT/SIGTERM: stop accepting (503), let running
// requests finish up to --shutdown-timeout, abort the rest, exit 0.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "cli/parallel_run.h"
#include "cli/serve_options.h"
#include "core/check.h"
#include "core/clock.h"
#include "engine/engine.h"
#include "parallel/launcher.h"
#include "serve/engine_loop.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "tokenizer/chat_template.h"

namespace parallama::cli {

namespace {

struct ServeCmdArgs {
  std::string model;
  int threads = 0;
  int ctx = 16384;
  double shutdown_timeout = 10;
  ServerOptions srv;
  ParallelArgs par;
  ServeArgs serve;
};

std::string model_name_of(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') + 1);
  if (base.size() > 5 && base.substr(base.size() - 5) == ".gguf") base.resize(base.size() - 5);
  return base;
}

// SIGINT, SIGTERM and SIGUSR1 (what our mpirun supervisor turns the first two
// into, parallel/launcher.h) start a shutdown. They are blocked in every thread
// before MPI or HTTP threads exist and taken by one thread with sigwait on rank
// 0; the other ranks leave them pending and exit when rank 0 stops them.
sigset_t shutdown_signals() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGUSR1);
  return sigs;
}

// Why mpirun sent us SIGTERM: names the ranks on this host that are gone or
// stopped (other hosts' ranks cannot be seen from here).
std::string job_ended_by_mpirun(const std::vector<RankInfo>& ranks) {
  const std::string me = this_hostname();
  std::string dead;
  for (size_t r = 1; r < ranks.size(); ++r) {
    const std::string st = local_process_state(ranks[r], me);
    if (st.empty()) continue;
    dead += dead.empty() ? "" : ", ";
    dead += describe_rank(static_cast<int>(r), ranks, me);
  }
  if (!dead.empty()) return dead + "; mpirun is ending the job";
  std::string others;
  for (const RankInfo& r : ranks)
    if (r.host != me && others.find(r.host) == std::string::npos) others += (others.empty() ? "" : ", ") + r.host;
  if (others.empty()) return "mpirun is ending the job (SIGTERM): mpirun was stopped";
  return "mpirun is ending the job (SIGTERM): a rank on another host (" + others +
         ") ended or is unreachable, or mpirun was stopped";
}

int run_serve_on(const ServeCmdArgs& a, ParallelRun* run) {
  const bool leader = !run || run->leader();
  const std::string path = a.model.empty() ? default_model_path() : a.model;
  const sigset_t sigs = shutdown_signals();

  ServerOptions so = a.srv;
  if (so.served_model_name.empty()) so.served_model_name = model_name_of(path);
  std::unique_ptr<ApiServer> server;
  if (leader) {
    server = std::make_unique<ApiServer>(so);
    server->start();  // /health is 503 while the model loads
    std::fprintf(stderr, "loading %s; listening on http://%s:%d\n", path.c_str(), so.host.c_str(), server->port());
  }
  EngineOptions opt;
  opt.threads = run ? run->threads(a.threads) : a.threads;
  opt.n_ctx = a.ctx;
  opt.progress = leader && isatty(STDERR_FILENO);
  const ServeConfig scfg = apply_serve_options(a.serve, opt);
  auto engine = Engine::load(path, opt, run ? &run->setup() : nullptr);
  if (run) run->print_layout(*engine);
  ServingEngine se(*engine, scfg);
  if (!leader) {
    se.run();
    return 0;
  }
  std::string tmpl = engine->file().get_string("tokenizer.chat_template", "");
  if (tmpl.empty()) tmpl = builtin_chat_template("chatml");
  const Tokenizer& tok = engine->tokenizer();
  ChatTemplate chat(tmpl, tok.bos_id() >= 0 ? tok.token_to_piece(tok.bos_id()) : "",
                    tok.eos_id() >= 0 ? tok.token_to_piece(tok.eos_id()) : "");
  Metrics metrics(so.served_model_name, se.max_model_len());
  se.set_step_observer([&metrics](const ServeStats& s) {
    EngineSnapshot snap;
    snap.running = s.running;
    snap.waiting = s.waiting;
    snap.kv_usage = s.kv_usage;
    snap.prefix_queries = s.prefix.queries;
    snap.prefix_hits = s.prefix.hits;
    snap.preemptions = s.preemptions;
    snap.prompt_tokens = s.prompt_tokens;
    snap.generation_tokens = s.generated_tokens;
    metrics.observe_engine(snap);
  });
  server->attach(se, tok, chat, &metrics);
  std::fprintf(stderr, "ready: http://%s:%d/v1 serves '%s' (max_model_len %d, %d KV blocks)\n", so.host.c_str(),
               server->port(), so.served_model_name.c_str(), se.max_model_len(), se.pool().n_blocks());

  // Rank 0 fails its open requests before it ends the job on a fault it sees
  // (communication timeout, an error from MPI).
  if (run)
    run->set_on_fatal([&server](const std::string& why) {
      server->fail(why);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the HTTP threads send the errors
    });
  const bool multi_rank = run && run->setup().world.world_size() > 1;
  std::atomic<bool> exiting{false};
  std::thread drainer;
  std::thread signals([&] {
    for (;;) {
      int sig = 0;
      sigwait(&sigs, &sig);
      if (exiting) return;
      if (sig == SIGTERM && multi_rank) {
        // Our supervisor turns the user's signals into SIGUSR1: a SIGTERM is
        // mpirun ending the job, because a rank died (or mpirun was told to
        // stop). There is no time to drain; fail what is open and leave.
        const std::string why = job_ended_by_mpirun(run->ranks());
        std::fprintf(stderr, "rank 0: error: %s\n", why.c_str());
        server->fail(why);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        std::fflush(stderr);
        std::_Exit(1);
      }
      if (drainer.joinable()) continue;  // already draining
      std::fprintf(stderr, "signal %d: draining (%d requests in flight, up to %.0f s)\n", sig, server->in_flight(),
                   a.shutdown_timeout);
      drainer = std::thread([&] {
        server->drain();
        const double deadline = now_seconds() + a.shutdown_timeout;
        while (server->in_flight() > 0 && now_seconds() < deadline)
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (server->in_flight() > 0) {
          std::fprintf(stderr, "aborting %d requests still running\n", server->in_flight());
          se.abort_all();
        }
        se.request_stop();
      });
    }
  });
  se.run();  // the engine loop, until request_stop() and nothing is left
  exiting = true;
  pthread_kill(signals.native_handle(), SIGUSR1);
  signals.join();
  if (drainer.joinable()) drainer.join();
  server->stop();
  std::fprintf(stderr, "stopped\n");
  return 0;
}

int run_serve(const ServeCmdArgs& a) {
  signal(SIGPIPE, SIG_IGN);
  const sigset_t sigs = shutdown_signals();
  if (under_mpi()) pthread_sigmask(SIG_BLOCK, &sigs, nullptr);  // before MPI's threads start
  if (a.par.tp * a.par.pp == 1 && !under_mpi()) {
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    return run_serve_on(a, nullptr);
  }
  return with_parallel_run(a.par, a.model.empty() ? default_model_path() : a.model,
                           [&](ParallelRun& run) { return run_serve_on(a, &run); });
}

}  // namespace

void add_serve(CLI::App& app, std::function<int()>& run) {
  auto a = std::make_shared<ServeCmdArgs>();
  CLI::App* c = app.add_subcommand("serve", "OpenAI-compatible HTTP server");
  c->add_option("-m,--model", a->model, "GGUF model (default: SmolLM2-135M-Instruct Q4_1)");
  c->add_option("--host", a->srv.host, "Address to listen on")->capture_default_str();
  c->add_option("--port", a->srv.port, "Port (0: any free port)")->capture_default_str();
  c->add_option("--served-model-name", a->srv.served_model_name, "Model name in the API (default: file name)");
  c->add_option("--api-key", a->srv.api_key, "Require Authorization: Bearer KEY on /v1");
  c->add_option("--max-queue", a->srv.max_queue, "Requests in flight before 429")->capture_default_str();
  c->add_option("--shutdown-timeout", a->shutdown_timeout, "Seconds running requests may finish after SIGTERM")
      ->capture_default_str();
  c->add_option("-t,--threads", a->threads, "Compute threads (default: all cores)");
  c->add_option("-c,--ctx", a->ctx, "KV cache capacity in tokens (or --kv-cache-memory / --kv-blocks)")
      ->capture_default_str();
  c->add_flag("--no-log-requests", [a](int64_t) { a->srv.log_requests = false; }, "No request log lines");
  add_parallel_options(c, a->par);
  add_serve_options(c, a->serve);
  c->callback([a, &run] { run = [a] { return run_serve(*a); }; });
}

}  // namespace parallama::cli
