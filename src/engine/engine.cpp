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

int32_t kv_block_count(const ModelConfig& cfg, const EngineOptions& opt) {
  if (opt.block_size <= 0) PL_THROW("the KV block size must be positive, got " << opt.block_size);
  if (opt.kv_blocks < 0 || opt.kv_cache_memory < 0)
    PL_THROW("--kv-blocks and --kv-cache-memory must not be negative");
  int64_t n = 0;
  if (opt.kv_blocks > 0) {
    n = opt.kv_blocks;
  } else if (opt.kv_cache_memory > 0) {
    // K and V rows of every layer and KV head, in the cache's element type.
    const GgmlType row = opt.kv_type == KvType::kF32 ? GgmlType::F32
                         : opt.kv_type == KvType::kF16 ? GgmlType::F16 : GgmlType::Q8_0;
    if (opt.kv_type == KvType::kQ8_0 && cfg.head_dim % 32 != 0)
      PL_THROW("a q8_0 KV cache needs head_dim a multiple of 32 (got " << cfg.head_dim << ")");
    const int64_t per_block = 2LL * cfg.n_layer * cfg.n_head_kv * int64_t(row_size(row, cfg.head_dim)) * opt.block_size;
    n = opt.kv_cache_memory / per_block;
    if (n < 1)
      PL_THROW("--kv-cache-memory " << opt.kv_cache_memory << " bytes holds no KV block (one takes " << per_block
                                    << " bytes)");
  } else {
    if (opt.n_ctx <= 0) PL_THROW("the context size must be positive, got " << opt.n_ctx);
    n = (int64_t(opt.n_ctx) + opt.block_size - 1) / opt.block_size;
  }
  if (n > (int64_t(1) << 24)) PL_THROW("KV pool of " << n << " blocks is too large");
  return static_cast<int32_t>(n);
}

std::unique_ptr<Engine> Engine::load(const std::string& path, const EngineOptions& opt,
                                     const ParallelSetup* par) {
  std::unique_ptr<Engine> e(new Engine());
  e->file_ = GgufFile::open(path);
  const ModelConfig cfg = ModelConfig::from_gguf(*e->file_);
  e->tokenizer_ = Tokenizer::from_gguf(*e->file_);
  if (e->tokenizer_->n_vocab() != cfg.n_vocab)
    PL_THROW(path << ": tokenizer has " << e->tokenizer_->n_vocab()
                  << " tokens but token_embd has " << cfg.n_vocab << " rows");
  const int32_t n_blocks = kv_block_count(cfg, opt);
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

}  // namespace parallama
