// parallama bench throughput: offline serving throughput, as vLLM's `bench
// throughput` measures it. N requests of random token ids (lengths around
// --input-len / --output-len, drawn from --seed) are all submitted at once to
// the serving engine in this process, which schedules them under its limits
// (--max-num-seqs, --max-num-batched-tokens, the KV pool); elapsed runs from
// the submission to the last generated token. Runs on any TP x PP layout (every
// rank takes part in the engine's steps; world rank 0 submits and prints).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <utility>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/parallel_run.h"
#include "cli/serve_options.h"
#include "core/check.h"
#include "core/clock.h"
#include "core/cpu_isa.h"
#include "engine/engine.h"
#include "parallel/launcher.h"
#include "serve/generate.h"

namespace parallama::cli {

namespace {

struct ThroughputArgs {
  std::string model;
  int threads = 0;
  int num_prompts = 100;
  int input_len = 128;
  int output_len = 128;
  double range_ratio = 0;
  uint64_t seed = 0;
  bool no_ignore_eos = false;
  bool json = false;
  ParallelArgs par;
  ServeArgs serve;
};

// Length `len` spread uniformly over [len * (1 - r), len * (1 + r)], at least 1.
int32_t draw_len(std::mt19937_64& rng, int len, double r) {
  const int lo = std::max(1, static_cast<int>(std::floor(len * (1 - r))));
  const int hi = std::max(lo, static_cast<int>(std::floor(len * (1 + r))));
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

// Each request's (prompt, output) lengths, drawn from the seed first (so they do
// not depend on the model), then the prompts: random ids in [100, n_vocab - 100),
// away from the special tokens at either end. The same on every rank.
std::vector<std::pair<int32_t, int32_t>> draw_lengths(const ThroughputArgs& a) {
  std::mt19937_64 rng(a.seed);
  std::vector<std::pair<int32_t, int32_t>> lens(a.num_prompts);
  for (auto& [in, out] : lens) {
    in = draw_len(rng, a.input_len, a.range_ratio);
    out = draw_len(rng, a.output_len, a.range_ratio);
  }
  return lens;
}

std::vector<Request> make_requests(const ThroughputArgs& a, int32_t n_vocab) {
  if (n_vocab <= 200) PL_THROW("bench throughput needs a vocabulary of more than 200 tokens, the model has " << n_vocab);
  const auto lens = draw_lengths(a);
  std::mt19937_64 rng(a.seed ^ 0x9e3779b97f4a7c15ull);
  std::uniform_int_distribution<int32_t> id(100, n_vocab - 101);
  std::vector<Request> reqs(lens.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    Request& r = reqs[i];
    r.prompt.resize(lens[i].first);
    for (int32_t& t : r.prompt) t = id(rng);
    r.max_tokens = lens[i].second;
    r.ignore_eos = !a.no_ignore_eos;
  }
  return reqs;
}

// KV capacity (tokens) for the fallback pool: the max_num_seqs largest requests
// at once, each in whole blocks, plus the scheduler's 1% admission watermark.
int32_t pool_tokens_for(const std::vector<std::pair<int32_t, int32_t>>& lens, int max_num_seqs, int block_size) {
  std::vector<int64_t> blocks;
  for (const auto& [in, out] : lens) blocks.push_back((int64_t(in) + out + block_size - 1) / block_size);
  std::sort(blocks.rbegin(), blocks.rend());
  int64_t n = 0;
  for (size_t i = 0; i < blocks.size() && i < static_cast<size_t>(std::max(1, max_num_seqs)); ++i) n += blocks[i];
  n += n / 100 + 1;
  return static_cast<int32_t>(std::min<int64_t>(n * block_size, int64_t(1) << 20));
}

// Progress on stderr, redrawn at most ten times a second.
class ProgressBar {
 public:
  ProgressBar(bool on, int64_t total_tokens, size_t n_requests)
      : on_(on), total_(std::max<int64_t>(1, total_tokens)), n_req_(n_requests), t0_(now_seconds()) {}
  void update(int64_t tokens, size_t done, bool force = false) {
    if (!on_) return;
    const double now = now_seconds();
    if (!force && now - last_ < 0.1) return;
    last_ = now;
    constexpr int kWidth = 30;
    const double f = std::min(1.0, static_cast<double>(tokens) / total_);
    const int fill = static_cast<int>(f * kWidth);
    std::string bar(fill, '#');
    bar.resize(kWidth, '.');
    const double dt = now - t0_;
    std::fprintf(stderr, "\r[%s] %3.0f%%  %zu/%zu requests  %lld tokens  %.1f tok/s ", bar.c_str(), 100 * f,
                 done, n_req_, static_cast<long long>(tokens), dt > 0 ? tokens / dt : 0.0);
    std::fflush(stderr);
  }
  void finish(int64_t tokens, size_t done) {
    if (!on_) return;
    update(tokens, done, true);
    std::fprintf(stderr, "\n");
  }

 private:
  bool on_;
  int64_t total_;
  size_t n_req_;
  double t0_, last_ = 0;
};

int run_throughput_on(const ThroughputArgs& a, ParallelRun* run) {
  if (a.num_prompts < 1) PL_THROW("--num-prompts must be at least 1, got " << a.num_prompts);
  if (a.input_len < 1 || a.output_len < 1)
    PL_THROW("--input-len and --output-len must be at least 1, got " << a.input_len << " and " << a.output_len);
  if (!(a.range_ratio >= 0 && a.range_ratio < 1)) PL_THROW("--range-ratio must be in [0, 1), got " << a.range_ratio);

  const bool leader = !run || run->leader();
  EngineOptions opt;
  opt.threads = run ? run->threads(a.threads) : a.threads;
  const ServeConfig scfg = apply_serve_options(a.serve, opt);
  opt.n_ctx = pool_tokens_for(draw_lengths(a), scfg.sched.max_num_seqs, opt.block_size);  // without --kv-*
  opt.progress = leader && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO) && !a.json;
  auto engine = Engine::load(a.model.empty() ? default_model_path() : a.model, opt, run ? &run->setup() : nullptr);
  if (run) run->print_layout(*engine);
  const std::vector<Request> reqs = make_requests(a, engine->config().n_vocab);

  int64_t prompt_tokens = 0, max_output = 0;
  for (const Request& r : reqs) {
    prompt_tokens += static_cast<int64_t>(r.prompt.size());
    max_output += r.max_tokens;
  }
  std::vector<int32_t> got(reqs.size(), 0);
  size_t done = 0;
  int64_t output_tokens = 0;
  double t_last = 0;
  ProgressBar bar(leader && isatty(STDERR_FILENO) && !a.json, max_output, reqs.size());
  const Tokenizer& tok = engine->tokenizer();
  GenerateStats st;
  ServeStats ss;
  const double t0 = now_seconds();
  auto res = generate(
      *engine, reqs, scfg, &st,
      [&](size_t i, int32_t t) {
        t_last = now_seconds();
        ++output_tokens;
        if (++got[i] == reqs[i].max_tokens || (!reqs[i].ignore_eos && tok.is_eog(t))) ++done;
        bar.update(output_tokens, done);
      },
      &ss);
  if (run) run->report(*engine, st);
  if (!leader) return 0;
  bar.finish(output_tokens, res.size());

  const double elapsed = std::max(t_last - t0, 1e-9);
  const double req_s = reqs.size() / elapsed;
  const double out_s = output_tokens / elapsed;
  const double total_s = (prompt_tokens + output_tokens) / elapsed;
  const int tp = engine->parallel() ? engine->parallel()->world.tp : 1;
  const int pp = engine->parallel() ? engine->parallel()->world.pp : 1;
  if (a.json) {
    nlohmann::json out = {{"model", engine->file().path()},
                          {"num_prompts", reqs.size()},
                          {"input_len", a.input_len},
                          {"output_len", a.output_len},
                          {"range_ratio", a.range_ratio},
                          {"seed", a.seed},
                          {"ignore_eos", !a.no_ignore_eos},
                          {"elapsed_s", elapsed},
                          {"requests_per_s", req_s},
                          {"output_tok_s", out_s},
                          {"total_tok_s", total_s},
                          {"prompt_tokens", prompt_tokens},
                          {"output_tokens", output_tokens},
                          {"peak_kv_usage", ss.peak_kv_usage},
                          {"preemptions", ss.preemptions},
                          {"cached_prompt_tokens", ss.cached_prompt_tokens},
                          {"steps", ss.steps},
                          {"kv_blocks", engine->kv().shape().n_blocks},
                          {"block_size", engine->kv().block_size()},
                          {"max_num_seqs", scfg.sched.max_num_seqs},
                          {"max_num_batched_tokens", scfg.sched.max_num_batched_tokens},
                          {"tp", tp},
                          {"pp", pp},
                          {"threads", engine->threads()},
                          {"thread_shards", engine->thread_shards()},
                          {"kv_type", kv_type_name(opt.kv_type)},
                          {"isa", cpu_isa_name(active_cpu_isa())}};
    if (run) out["parallel"] = run->summary_json();
    std::cout << out.dump() << "\n";
  } else {
    std::printf("Throughput: %.2f requests/s, %.1f total tokens/s, %.1f output tokens/s\n", req_s, total_s, out_s);
    std::printf("%zu requests: %lld prompt + %lld output tokens in %.2f s | peak KV usage %.1f%% of %d blocks, "
                "%lld preemptions | tp %d, pp %d, %d threads\n",
                reqs.size(), static_cast<long long>(prompt_tokens), static_cast<long long>(output_tokens), elapsed,
                100 * ss.peak_kv_usage, engine->kv().shape().n_blocks, static_cast<long long>(ss.preemptions), tp,
                pp, engine->threads());
  }
  return 0;
}

int run_throughput(const ThroughputArgs& a) {
  if (a.par.tp * a.par.pp == 1 && !under_mpi()) return run_throughput_on(a, nullptr);
  return with_parallel_run(a.par, a.model.empty() ? default_model_path() : a.model,
                           [&](ParallelRun& run) { return run_throughput_on(a, &run); });
}

}  // namespace

void add_bench_throughput(CLI::App* bench, std::function<int()>& run) {
  auto a = std::make_shared<ThroughputArgs>();
  CLI::App* c = bench->add_subcommand("throughput", "Offline serving throughput: many requests at once");
  c->add_option("-m,--model", a->model, "GGUF model");
  c->add_option("-t,--threads", a->threads, "Compute threads (default: all cores)");
  c->add_option("--num-prompts", a->num_prompts, "Requests, all submitted at once")->capture_default_str();
  c->add_option("--input-len", a->input_len, "Prompt tokens per request (random ids)")->capture_default_str();
  c->add_option("--output-len", a->output_len, "Generated tokens per request")->capture_default_str();
  c->add_option("--range-ratio", a->range_ratio,
                "Lengths uniform in [len * (1 - R), len * (1 + R)], drawn from --seed")
      ->capture_default_str();
  c->add_option("--seed", a->seed, "Seed of the prompts and lengths")->capture_default_str();
  c->add_flag("--no-ignore-eos", a->no_ignore_eos,
              "Stop a request at an end-of-generation token (default: every output has --output-len tokens)");
  c->add_flag("--json", a->json, "One JSON object");
  add_parallel_options(c, a->par);
  add_serve_options(c, a->serve);
  c->callback([a, &run] { run = [a] { return run_throughput(*a); }; });
}

}  // namespace parallama::cli
