#include "engine/engine.h"

#include <unistd.h>

#include <chrono>
#include <exception>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/check.h"
#include "core/clock.h"
#include "parallel/communicator.h"

namespace parallama {

std::string default_model_path() {
  if (const char* p = std::getenv("PARALLAMA_MODEL"); p && *p) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") +
         "/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

namespace {


// A 40-character loading bar on stderr, redrawn when the percentage changes.
LoadProgress loading_bar() {
  return [last = -1](size_t done, size_t total) mutable {
    const int pct = total ? static_cast<int>(100 * done / total) : 100;
    if (pct == last) return;
    last = pct;
    std::fprintf(stderr, "\rloading %-40.*s %3d%% (%.0f MiB)", pct * 40 / 100,
                 "########################################", pct, done / 1048576.0);
    if (done >= total) std::fprintf(stderr, "\n");
  };
}

// Touches every page of the tensor data so the first token does not pay for
// page faults (weights read from the mapping, i.e. not placed in an arena).
void prefault(const GgufFile& f, const LoadProgress& progress) {
  uint64_t total = 0, done = 0;
  for (const auto& t : f.tensors()) total += t.n_bytes;
  volatile uint8_t sink = 0;
  for (const auto& t : f.tensors()) {
    const uint8_t* p = f.tensor_data(t);
    for (uint64_t off = 0; off < t.n_bytes; off += 4096) sink = sink + p[off];
    done += t.n_bytes;
    if (progress) progress(done, total);
  }
}

}  // namespace

std::unique_ptr<Engine> Engine::load(const std::string& path, const EngineOptions& opt,
                                     const ParallelSetup* par) {
  std::unique_ptr<Engine> e(new Engine());
  e->file_ = GgufFile::open(path);
  const ModelConfig cfg = ModelConfig::from_gguf(*e->file_);
  e->tokenizer_ = Tokenizer::from_gguf(*e->file_);
  if (e->tokenizer_->n_vocab() != cfg.n_vocab)
    PL_THROW(path << ": tokenizer has " << e->tokenizer_->n_vocab()
                  << " tokens but token_embd has " << cfg.n_vocab << " rows");
  if (opt.n_ctx <= 0 || opt.block_size <= 0)
    PL_THROW("context size and block size must be positive (got " << opt.n_ctx << ", "
                                                                   << opt.block_size << ")");
  const int32_t n_blocks = (opt.n_ctx + opt.block_size - 1) / opt.block_size;
  int threads = opt.threads;
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  e->threads_ = threads;
  const LoadProgress progress = opt.progress ? loading_bar() : LoadProgress();
  const char* pin_env = std::getenv("PARALLAMA_PIN");
  const bool pin = opt.pin_threads && !par && !(pin_env && std::string(pin_env) == "0");

  int shards = opt.thread_shards;
  if (par) {
    if (shards > 1) PL_THROW("thread shards (" << shards << ") cannot be combined with MPI ranks");
    shards = 1;
  } else if (shards < 0) {
    // The most shards that divide the threads, split exactly, and need no more
    // KV heads than the model has (more shards than KV heads cache each KV head
    // several times over).
    shards = 1;
    for (int s = std::min(threads, cfg.n_head_kv); s > 1; --s)
      if (threads % s == 0 && LlamaModel::split_is_exact(*e->file_, cfg, s)) {
        shards = s;
        break;
      }
  }
  if (shards < 1 || threads % shards != 0)
    PL_THROW("thread shards must be at least 1 and divide the threads (" << threads << "), got " << shards);
  if (shards > cfg.n_head)
    PL_THROW("thread shards (" << shards << ") exceed the model's " << cfg.n_head << " attention heads");

  if (shards > 1) {
    // Each shard is loaded by its own thread (its arena first touched there) and
    // keeps its own KV cache of its kv heads; shard 0 reports the progress.
    e->group_ = std::make_unique<ThreadGroup>(shards);
    e->extra_.resize(shards - 1);
    std::vector<std::exception_ptr> errs(shards);
    auto load_shard = [&](int r) {
      try {
        ModelShard shard;
        shard.tp = shards;
        shard.tp_rank = r;
        shard.tp_comm = &e->group_->comm(r);
        auto m = std::make_unique<LlamaModel>(*e->file_, cfg, shard, opt.repack,
                                              r == 0 ? progress : LoadProgress());
        auto kv = std::make_unique<KvCache>(m->kv_shape(n_blocks, opt.block_size, opt.kv_type));
        if (r == 0) e->model_ = std::move(m), e->kv_ = std::move(kv);
        else e->extra_[r - 1].model = std::move(m), e->extra_[r - 1].kv = std::move(kv);
      } catch (...) {
        errs[r] = std::current_exception();
      }
    };
    std::vector<std::thread> loaders;
    for (int r = 1; r < shards; ++r) loaders.emplace_back(load_shard, r);
    load_shard(0);
    for (auto& t : loaders) t.join();
    for (auto& err : errs)
      if (err) std::rethrow_exception(err);
    for (int r = 0; r < shards; ++r) e->shard_pools_.push_back(std::make_unique<ThreadPool>(threads / shards));
    e->pool_ = std::make_unique<ThreadPool>(shards, pin);
    return e;
  }

  ModelShard shard;
  if (par) {
    e->par_ = std::make_unique<ParallelSetup>(*par);
    const WorldConfig& w = par->world;
    auto [l0, l1] = w.layer_range();
    shard.layer_begin = l0;
    shard.layer_end = l1;
    shard.tp = w.tp;
    shard.tp_rank = w.tp_rank();
    shard.tp_comm = par->tp;
  }
  e->model_ = std::make_unique<LlamaModel>(*e->file_, cfg, shard, opt.repack, progress);
  // Placed weights were read while being copied. A shard touches only its own
  // pages; faulting in the whole file would make every rank resident for all weights.
  if (!par && !opt.repack) prefault(*e->file_, progress);
  e->kv_ = std::make_unique<KvCache>(e->model_->kv_shape(n_blocks, opt.block_size, opt.kv_type));
  e->pool_ = std::make_unique<ThreadPool>(threads, pin);
  return e;
}

void Engine::forward(const Batch& batch, std::vector<float>& logits) {
  if (!group_) {
    model_->forward(batch, *kv_, logits, *pool_);
    return;
  }
  group_->reset();  // no shard is inside a collective between passes
  pool_->run([&](int ith, int) {
    try {
      if (ith == 0) model_->forward(batch, *kv_, logits, *shard_pools_[0]);
      else extra_[ith - 1].model->forward(batch, *extra_[ith - 1].kv, extra_[ith - 1].logits, *shard_pools_[ith]);
    } catch (...) {
      group_->abort();  // peers waiting in a collective for this shard throw too
      throw;
    }
  });
}

void Engine::run_on_threads(const std::function<void(int ith, int nth)>& fn) {
  if (!group_) {
    pool_->run(fn);
    return;
  }
  pool_->run([&](int s, int n_shards) {
    shard_pools_[s]->run([&](int j, int per) { fn(s * per + j, n_shards * per); });
  });
}

double Engine::tp_comm_seconds() const {
  if (group_) return group_->comm(0).stats().seconds;
  return par_ && par_->tp ? par_->tp->stats().seconds : 0.0;
}

void Engine::reserve_kv(const std::vector<GenerateRequest>& reqs, SequenceBlocks& tables) {
  BlockAllocator& alloc = kv_->allocator();
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (reqs[i].prompt.empty()) PL_THROW("request " << i << " has an empty prompt");
    if (reqs[i].max_tokens < 0) PL_THROW("request " << i << " has max_tokens < 0");
    const int32_t need = static_cast<int32_t>(reqs[i].prompt.size()) + reqs[i].max_tokens;
    if (!alloc.reserve(tables[i], need, kv_->block_size()))
      PL_THROW("KV cache too small: request " << i << " needs " << need << " tokens, "
                                              << alloc.n_free() * kv_->block_size()
                                              << " free (raise --ctx)");
  }
}

bool Engine::accept_token(const GenerateRequest& req, GenerateResult& res, int32_t tok) const {
  res.tokens.push_back(tok);
  if (req.stop_at_eog && tokenizer_->is_eog(tok)) {
    res.finish_reason = "stop";
    return false;
  }
  if (static_cast<int32_t>(res.tokens.size()) >= req.max_tokens) {
    res.finish_reason = "length";
    return false;
  }
  return true;
}

std::vector<GenerateResult> Engine::generate(const std::vector<GenerateRequest>& reqs,
                                             GenerateStats* stats,
                                             const std::function<void(size_t, int32_t)>& on_token) {
  if (par_ && par_->world.pp > 1) return generate_pipelined(reqs, stats, on_token);
  const double t_start = now_seconds();
  const double comm0 = tp_comm_seconds();
  const size_t n = reqs.size();
  std::vector<GenerateResult> res(n);
  SequenceBlocks tables(kv_->allocator(), n);
  reserve_kv(reqs, tables);
  std::vector<std::vector<int32_t>> history(n);
  std::vector<Sampler> samplers;
  std::vector<bool> live(n, true);
  std::vector<int32_t> n_past(n, 0), next(n, -1);
  const int32_t n_vocab = config().n_vocab;
  for (size_t i = 0; i < n; ++i) {
    samplers.emplace_back(reqs[i].sampling, n_vocab);
    history[i] = reqs[i].prompt;
  }

  std::vector<float> logits;
  Batch batch;
  auto consume = [&](const std::vector<size_t>& order) {
    for (size_t r = 0; r < order.size(); ++r) {
      const size_t i = order[r];
      const int32_t tok = samplers[i].sample(logits.data() + r * n_vocab, history[i]);
      history[i].push_back(tok);
      next[i] = tok;
      if (on_token) on_token(i, tok);
      live[i] = accept_token(reqs[i], res[i], tok);
    }
  };

  // Prefill: every prompt in one batch.
  double t0 = now_seconds();
  std::vector<size_t> order;
  for (size_t i = 0; i < n; ++i) {
    if (reqs[i].max_tokens <= 0) {
      live[i] = false;
      res[i].finish_reason = "length";
      continue;
    }
    const auto& p = reqs[i].prompt;
    batch.add_seq(p.data(), static_cast<int32_t>(p.size()), 0, &tables[i]);
    n_past[i] = static_cast<int32_t>(p.size());
    order.push_back(i);
    if (stats) stats->prompt_tokens += static_cast<int64_t>(p.size());
  }
  double compute = 0;
  auto forward = [&] {
    const double c0 = now_seconds();
    this->forward(batch, logits);
    compute += now_seconds() - c0;
  };
  if (!order.empty()) {
    forward();
    consume(order);
  }
  double t1 = now_seconds();
  if (stats) stats->prompt_s += t1 - t0;

  // Decode: one token per live sequence per step.
  for (;;) {
    batch.clear();
    order.clear();
    for (size_t i = 0; i < n; ++i) {
      if (!live[i]) continue;
      batch.add_seq(&next[i], 1, n_past[i], &tables[i]);
      ++n_past[i];
      order.push_back(i);
    }
    if (order.empty()) break;
    forward();
    if (stats) stats->decode_tokens += static_cast<int64_t>(order.size());
    consume(order);
  }
  if (stats) {
    stats->decode_s += now_seconds() - t1;
    stats->compute_s += compute;
    stats->comm_s += tp_comm_seconds() - comm0;
    stats->wall_s += now_seconds() - t_start;
  }
  return res;
}

}  // namespace parallama
