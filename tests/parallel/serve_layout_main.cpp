// Under mpirun: the serving engine on a TP x PP layout gives every request the
// tokens the single-rank engine gives it alone (batch invariance across
// layouts). 16 requests arrive in waves into a KV pool so small that sequences
// are preempted and recomputed; some share a prefix; a few sample with a seed.
// Every block is free at the end. Exit status 1 on any failure.
// usage: mpirun -n N serve_layout_main --tp T --pp P (--model FILE | --synthetic)
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/check.h"
#include "model/synthetic_model.h"
#include "parallel/communicator.h"
#include "parallel/mpi_communicator.h"
#include "serve/generate.h"
#include "serve_workload.h"

using namespace parallama;

int main(int argc, char** argv) {
  MpiContext ctx(&argc, &argv);
  int tp = 1, pp = 1;
  std::string model;
  bool synthetic = false;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--tp" && i + 1 < argc) tp = std::atoi(argv[++i]);
    else if (k == "--pp" && i + 1 < argc) pp = std::atoi(argv[++i]);
    else if (k == "--model" && i + 1 < argc) model = argv[++i];
    else if (k == "--synthetic") synthetic = true;
  }
  int failures = 0;
  try {
    if (synthetic) {  // SmolLM2's head layout, quantized: exact splits
      SyntheticModelSpec s;
      s.seed = 5;
      s.n_layer = 4, s.n_head = 9, s.n_head_kv = 3, s.head_dim = 32, s.n_ff = 160;
      model = "/tmp/parallama_serve_layout_" + std::to_string(ctx.world_rank()) + ".gguf";
      write_synthetic_model(model, s);
    }
    auto f = GgufFile::open(model);
    const ModelConfig cfg = ModelConfig::from_gguf(*f);
    const WorldConfig w = WorldConfig::create(tp, pp, ctx.world_rank(), ctx.world_size(), cfg.n_head,
                                              cfg.n_head_kv, cfg.n_layer);
    ParallelComms comms = make_parallel_comms(ctx, w);
    ParallelSetup par{w, comms.tp.get(), comms.pipe.get()};
    EngineOptions opt;
    opt.threads = 1;
    opt.kv_blocks = 20;  // 320 tokens for 16 requests of up to ~140: preemption
    auto e = Engine::load(model, opt, &par);
    const auto reqs = test::mixed_requests(cfg.n_vocab);

    std::vector<std::vector<int32_t>> want;
    if (w.rank == 0) {  // the single-rank engine, each request alone
      EngineOptions o1;
      o1.threads = 1;
      o1.kv_blocks = 64;
      auto ref = Engine::load(model, o1);
      for (const Request& r : reqs) want.push_back(generate(*ref, {r})[0].tokens);
    }
    ServingEngine se(*e, ServeConfig{});
    if (w.rank == 0) {
      const auto got = test::run_in_waves(se, reqs, 4, 3);
      se.stop_workers();
      const ServeStats st = se.stats();
      for (size_t i = 0; i < reqs.size(); ++i)
        if (got[i] != want[i]) {
          std::fprintf(stderr, "FAIL: request %zu differs from its single-rank solo run\n", i);
          ++failures;
        }
      if (se.pool().n_free() != se.pool().n_blocks()) {
        std::fprintf(stderr, "FAIL: %d of %d blocks still held\n", se.pool().n_blocks() - se.pool().n_free(),
                     se.pool().n_blocks());
        ++failures;
      }
      if (st.preemptions == 0) {
        std::fprintf(stderr, "FAIL: the small pool preempted nothing\n");
        ++failures;
      }
      std::printf("tp=%d pp=%d: %lld steps, %lld preemptions, prefix hits %lld of %lld tokens: %s\n", tp, pp,
                  static_cast<long long>(st.steps), static_cast<long long>(st.preemptions),
                  static_cast<long long>(st.prefix.hits), static_cast<long long>(st.prefix.queries),
                  failures ? "FAILED" : "every request identical to its single-rank solo run");
    } else {
      se.run();
    }
    comms.world->all_reduce_sum(&failures, 1);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "rank %d: error: %s\n", ctx.world_rank(), ex.what());
    MpiContext::abort(1);
  }
  if (synthetic) std::remove(model.c_str());
  return failures ? 1 : 0;
}
