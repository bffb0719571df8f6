// parallama bench: prompt-processing and decode speed of one model, the way
// llama-bench measures them (pp: one batch of N prompt tokens; tg: N single-token
// steps), decode twice: after the prompt (depth N, as a chat turn decodes) and
// from an empty context (llama-bench's plain tg, where the weights are nearly
// all that a step reads). With --paired-reads, the empty-context steps run once
// more in groups, each group between two plain reads of a buffer beyond the
// caches: decode speed next to the bandwidth of the same moment (see below).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <tuple>
#include <utility>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/read_bandwidth.h"
#include "core/check.h"
#include "core/clock.h"
#include "core/cpu_isa.h"
#include "engine/engine.h"

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


int32_t argmax(const float* x, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

// The sequence of `table`, n single-token steps at positions [pos0, pos0 + n), each
// step fed the argmax of the one before (starting from tok); returns the last argmax
// and the elapsed seconds. The batch and logits are the caller's, reused.
std::pair<int32_t, double> decode_steps(Engine& e, std::vector<int32_t>& table, int32_t tok, int32_t pos0,
                                        int n, Batch& b, std::vector<float>& logits) {
  const int32_t V = e.config().n_vocab;
  const double t0 = now_seconds();
  for (int i = 0; i < n; ++i) {
    b.clear();
    b.add_seq(&tok, 1, pos0 + i, &table);
    e.forward(b, logits);
    tok = argmax(logits.data(), V);
  }
  return {tok, now_seconds() - t0};
}

// Decode steps from position 0 in `groups` groups of gen_tokens / groups steps, a
// plain read of `mib` MiB (every load width, the fastest counts) before each group
// and after the last. Why: the bound of decode is the read bandwidth, and on a
// shared VM that moves by 2x within a minute, so readings seconds away from the
// steps (`parallama membw` between runs) leave a wide spread; a group and its two
// readings lie within ~0.1 s. Each read also empties the caches of weights, so a
// group starts from memory as the bound assumes.
nlohmann::json paired_decode(Engine& e, std::vector<int32_t>& table, int32_t tok, int gen_tokens, int groups,
                             int mib, Batch& b, std::vector<float>& logits) {
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
  reads.push_back(reading());
  for (int g = 0; g < groups; ++g) {
    double dt = 0;
    std::tie(tok, dt) = decode_steps(e, table, tok, g * k, k, b, logits);
    group_s.push_back(dt);
    reads.push_back(reading());
  }
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
  std::vector<int32_t> table;
  BlockAllocator& alloc = e->kv().allocator();
  PL_CHECK(alloc.reserve(table, opt.n_ctx, e->kv().block_size()));
  std::vector<float> logits;
  Batch b;

  // Warm-up: one short batch so first-touch costs stay out of the timings.
  std::vector<int32_t> warm = {1, 2, 3, 4};
  b.add_seq(warm.data(), 4, 0, &table);
  e->forward(b, logits);

  // Deterministic pseudo-random prompt ids, away from the special tokens.
  std::vector<int32_t> prompt(a.prompt_tokens);
  uint32_t s = 12345;
  for (auto& t : prompt) {
    s = s * 1664525u + 1013904223u;
    t = 100 + static_cast<int32_t>((s >> 8) % static_cast<uint32_t>(V - 200));
  }
  b.clear();
  b.add_seq(prompt.data(), a.prompt_tokens, 0, &table);
  double t0 = now_seconds();
  e->forward(b, logits);
  const double pp_s = now_seconds() - t0;

  int32_t tok = argmax(logits.data(), V);
  double tg_s = 0, tg0_s = 0;
  std::tie(tok, tg_s) = decode_steps(*e, table, tok, a.prompt_tokens, a.gen_tokens, b, logits);
  // The same steps from position 0: a new sequence in the same blocks (each step
  // attends only to the positions this loop has written).
  std::tie(tok, tg0_s) = decode_steps(*e, table, tok, 0, a.gen_tokens, b, logits);
  nlohmann::json paired;
  if (a.paired_reads > 0)
    paired = paired_decode(*e, table, tok, a.gen_tokens, a.paired_reads, a.paired_mib, b, logits);
  alloc.release(table);

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
  c->callback([a, &run] { run = [a] { return run_bench(*a); }; });
}

}  // namespace parallama::cli
