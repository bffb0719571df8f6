// parallama bench: prompt-processing and decode speed of one model, the way
// llama-bench measures them (pp: one batch of N prompt tokens; tg: N single-token
// steps), decode twice: after the prompt (depth N, as a chat turn decodes) and
// from an empty context (llama-bench's plain tg, where the weights are nearly
// all that a step reads). With --paired-reads, the empty-context steps run once
// more in groups, each group between two plain reads of a buffer beyond the
// caches: decode speed next to the bandwidth of the same moment (see below).
//
// A client of the serving engine (serve/generate.h), one request at a time:
// the times are taken in the token callback, which runs on the engine thread
// between steps. pp: from submission to the first token of a request whose
// prompt is N pseudo-random tokens (one step: the prompt fits the step's token
// budget); tg @ dN: from that token to the last of gen_tokens more (one decode
// step each); tg: the same for a request with a one-token prompt.
// `parallama bench throughput` (cmd_bench_throughput.cpp) is the many-request
// counterpart.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <utility>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/read_bandwidth.h"
#include "core/check.h"
#include "core/clock.h"
#include "core/cpu_isa.h"
#include "engine/engine.h"
#include "serve/generate.h"

namespace parallama::cli {

namespace {

struct BenchArgs {
  std::string model;
  int threads = 0;
  int prompt_tokens = 512;
  int gen_tokens = 128;
  bool json = false;
  bool no_repack = false;
  int thread_shards = -1;
  std::string kv_type = "f16";
  int paired_reads = 0;
  int paired_mib = 256;
};

// One greedy request through the serving engine that generates n_steps + 1
// tokens (ignoring end-of-generation): the first from the prompt, then one per
// decode step. on_step(n) runs in the token callback after the n-th token
// (n = 1 .. n_steps + 1). Returns the submission time.
double run_request(Engine& e, const ServeConfig& cfg, std::vector<int32_t> prompt, int n_steps,
                   const std::function<void(int)>& on_step) {
  Request r;
  r.prompt = std::move(prompt);
  r.max_tokens = n_steps + 1;
  r.ignore_eos = true;
  int n = 0;
  const double t0 = now_seconds();
  auto res = generate(e, {r}, cfg, nullptr, [&](size_t, int32_t) { on_step(++n); });
  PL_CHECK_MSG(res.size() == 1 && n == n_steps + 1,
               "bench request ended after " << n << " tokens, expected " << n_steps + 1);
  return t0;
}

// Timings of one request: submission to first token, first to last token.
struct RequestTimes {
  double first_s = 0;   // submission -> first token (the prompt's step)
  double decode_s = 0;  // first token -> last token (n_steps decode steps)
};

RequestTimes timed_request(Engine& e, const ServeConfig& cfg, std::vector<int32_t> prompt, int n_steps) {
  double t_first = 0, t_last = 0;
  const double t0 = run_request(e, cfg, std::move(prompt), n_steps, [&](int n) {
    const double t = now_seconds();
    if (n == 1) t_first = t;
    t_last = t;
  });
  return {t_first - t0, t_last - t_first};
}

// Decode steps from an empty context (a one-token prompt) in `groups` groups of
// gen_tokens / groups steps, a plain read of `mib` MiB (every load width, the
// fastest counts) before each group and after the last. The reads run in the
// token callback, between engine steps, on the engine's threads; each group's time
// leaves them out. Why: the bound of decode is the read bandwidth, and on a
// shared VM that moves by 2x within a minute, so readings seconds away from the
// steps (`parallama membw` between runs) leave a wide spread; a group and its two
// readings lie within ~0.1 s. Each read also empties the caches of weights, so a
// group starts from memory as the bound assumes.
nlohmann::json paired_decode(Engine& e, const ServeConfig& cfg, int32_t tok, int gen_tokens, int groups,
                             int mib) {
  const int k = gen_tokens / groups;
  ReadBandwidth rb([&e](const std::function<void(int, int)>& fn) { e.run_on_threads(fn); }, e.threads(), mib);
  const std::vector<LoadWidth> widths = load_widths(active_cpu_isa());
  for (const LoadWidth& w : widths) rb.pass(w);  // page-table warm-up
  auto reading = [&] {
    double best = 0;
    for (const LoadWidth& w : widths) best = std::max(best, rb.pass(w));
    return best;
  };
  std::vector<double> reads, group_s;
  double t_group = 0;
  // Token n (1-based) ends decode step n - 1; a group ends every k steps.
  run_request(e, cfg, {tok}, groups * k, [&](int n) {
    if (n > 1 && (n - 1) % k == 0) group_s.push_back(now_seconds() - t_group);
    if (n == 1 || (n - 1) % k == 0) {
      reads.push_back(reading());
      t_group = now_seconds();
    }
  });
  return {{"mib", mib}, {"group_tokens", k}, {"group_s", group_s}, {"read_gb_s", reads},
          {"checksum", rb.checksum()}};
}

int run_bench(const BenchArgs& a) {
  if (a.prompt_tokens <= 0 || a.gen_tokens <= 0) PL_THROW("token counts must be positive");
  if (a.paired_reads < 0 || a.paired_reads > a.gen_tokens)
    PL_THROW("--paired-reads must be in [0, gen-tokens = " << a.gen_tokens << "], got " << a.paired_reads);
  if (a.paired_mib < 1 || a.paired_mib > (1 << 20)) PL_THROW("--paired-mib must be in [1, 1048576]");
  EngineOptions opt;
  opt.threads = a.threads;
  opt.n_ctx = a.prompt_tokens + a.gen_tokens + 16;
  opt.repack = !a.no_repack;
  opt.thread_shards = a.thread_shards;
  opt.kv_type = parse_kv_type(a.kv_type);
  auto e = Engine::load(a.model.empty() ? default_model_path() : a.model, opt);
  const int32_t V = e->config().n_vocab;
  if (V <= 200) PL_THROW("bench needs a vocabulary of more than 200 tokens, the model has " << V);

  // One request at a time, its prompt in one step, nothing shared between them
  // (each request computes its whole prompt), every position up to n_ctx allowed.
  ServeConfig cfg;
  cfg.prefix_caching = false;
  cfg.max_model_len = opt.n_ctx;
  cfg.sched.max_num_seqs = 1;
  cfg.sched.max_num_batched_tokens = std::max(a.prompt_tokens, 16);

  // Warm-up: a short prompt and one decode step, so first-touch costs stay out
  // of the timings.
  run_request(*e, cfg, {1, 2, 3, 4}, 1, [](int) {});

  // Deterministic pseudo-random prompt ids, away from the special tokens.
  std::vector<int32_t> prompt(a.prompt_tokens);
  uint32_t s = 12345;
  for (auto& t : prompt) {
    s = s * 1664525u + 1013904223u;
    t = 100 + static_cast<int32_t>((s >> 8) % static_cast<uint32_t>(V - 200));
  }
  const int32_t tok0 = prompt.front();
  const RequestTimes deep = timed_request(*e, cfg, std::move(prompt), a.gen_tokens);
  const double pp_s = deep.first_s, tg_s = deep.decode_s;
  // The same steps from position 0: a one-token prompt, then gen_tokens decode steps.
  const double tg0_s = timed_request(*e, cfg, {tok0}, a.gen_tokens).decode_s;
  nlohmann::json paired;
  if (a.paired_reads > 0) paired = paired_decode(*e, cfg, tok0, a.gen_tokens, a.paired_reads, a.paired_mib);

  nlohmann::json out = {{"model", e->file().path()},
                        {"threads", e->threads()},
                        {"thread_shards", e->thread_shards()},
                        {"isa", cpu_isa_name(active_cpu_isa())},
                        {"repack", opt.repack},
                        {"kv_type", kv_type_name(opt.kv_type)},
                        {"prompt_tokens", a.prompt_tokens},
                        {"gen_tokens", a.gen_tokens},
                        {"prompt_s", pp_s},
                        {"decode_s", tg_s},
                        {"prompt_tok_s", a.prompt_tokens / pp_s},
                        {"decode_tok_s", a.gen_tokens / tg_s},
                        {"decode0_s", tg0_s},
                        {"decode0_tok_s", a.gen_tokens / tg0_s}};
  if (!paired.is_null()) out["paired"] = paired;
  if (a.json) {
    std::cout << out.dump() << "\n";
  } else {
    std::printf("pp%d: %.1f tok/s   tg%d @ d%d: %.1f tok/s   tg%d: %.1f tok/s   (%d threads, %d shards, %s)\n",
                a.prompt_tokens, a.prompt_tokens / pp_s, a.gen_tokens, a.prompt_tokens, a.gen_tokens / tg_s,
                a.gen_tokens, a.gen_tokens / tg0_s, e->threads(), e->thread_shards(), cpu_isa_name(active_cpu_isa()));
    if (!paired.is_null()) {
      const auto gs = paired["group_s"].get<std::vector<double>>();
      const auto rd = paired["read_gb_s"].get<std::vector<double>>();
      std::printf("paired: %zu groups of %d steps, decode tok/s (read GB/s before | after):\n", gs.size(),
                  paired["group_tokens"].get<int>());
      for (size_t g = 0; g < gs.size(); ++g)
        std::printf("  %7.1f  (%.1f | %.1f)\n", paired["group_tokens"].get<int>() / gs[g], rd[g], rd[g + 1]);
    }
  }
  return 0;
}

}  // namespace

void add_bench(CLI::App& app, std::function<int()>& run) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* c = app.add_subcommand("bench", "Measure prompt and decode speed");
  c->add_option("-m,--model", a->model, "GGUF model");
  c->add_option("-t,--threads", a->threads, "Compute threads (default: all cores)");
  c->add_option("--prompt-tokens", a->prompt_tokens)->capture_default_str();
  c->add_option("--gen-tokens", a->gen_tokens)->capture_default_str();
  c->add_flag("--json", a->json, "One JSON object");
  c->add_flag("--no-repack", a->no_repack, "Run from the mapped file in GGUF layout (no x16 weight copy)");
  c->add_option("--thread-shards", a->thread_shards,
                "Tensor-parallel shards over the threads (1: one model, rows split over threads; "
                "-1: as many as threads when the split is exact)")
      ->capture_default_str();
  c->add_option("--kv-type", a->kv_type, "KV cache element type: f16, f32 or q8_0")->capture_default_str();
  c->add_option("--paired-reads", a->paired_reads,
                "Then decode from an empty context again in this many groups, each between two plain "
                "memory reads (0: off)")
      ->capture_default_str();
  c->add_option("--paired-mib", a->paired_mib, "Buffer of the paired reads (beyond the caches)")
      ->capture_default_str();
  add_bench_throughput(c, run);
  add_bench_serve(c, run);
  add_bench_sweep(c, run);
  // CLI11 runs this callback after a chosen `bench throughput`'s own one: leave
  // `run` to the subcommand then.
  c->callback([a, c, &run] {
    if (!c->get_subcommands().empty()) return;
    run = [a] { return run_bench(*a); };
  });
}

}  // namespace parallama::cli
