// A loaded model ready to run forward passes: GGUF mapping, tokenizer, weights,
// paged KV cache storage and thread pool (or thread shards). Generation, i.e.
// which sequences run in which step, is the serving engine's (serve/engine_loop.h).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "gguf/gguf_file.h"
#include "model/llama.h"
#include "parallel/thread_communicator.h"
#include "parallel/world_config.h"
#include "runtime/kv_cache.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace parallama {

class CommWatchdog;

struct EngineOptions {
  int threads = 0;          // 0: all cores
  int32_t n_ctx = 4096;     // KV capacity in tokens, shared by all sequences
  int32_t block_size = 16;  // tokens per KV block
  // Instead of n_ctx: this many KV blocks, or as many as fit in this many bytes of
  // K and V for the whole model (all layers and KV heads, as one rank holds them;
  // every rank of a TP x PP world then has the same number of blocks).
  int32_t kv_blocks = 0;
  int64_t kv_cache_memory = 0;
  bool progress = false;    // draw a loading bar on stderr
  bool repack = true;       // x16 weight layout for the kernels (false: run from the mapping)
  KvType kv_type = KvType::kF16;  // element type of the KV cache (llama.cpp's default too)
  // Bind the pool's threads to CPUs (ThreadPool pin) in a single-process run;
  // PARALLAMA_PIN=0 turns it off. MPI ranks are left to mpirun's binding.
  bool pin_threads = true;
  // Tensor parallelism over threads in a single-process run: the model is
  // loaded as this many TP shards (the layers MPI ranks would hold), each run
  // by threads / thread_shards threads, with all-reduces through shared memory
  // (parallel/thread_communicator.h). A decode step then needs two hand-offs
  // per layer instead of one per matrix, and each thread streams its own
  // shard's weights. 1: one model, its matrices split by rows over the
  // threads. -1 (auto): the most shards that divide the threads, are at most
  // the model's KV heads and give the single-shard result bit for bit
  // (LlamaModel::split_is_exact); 1 when none does. Measured on 2 cores only
  // (git history of docs/PERF.md); on big machines fewer shards with several threads each
  // may do better.
  int thread_shards = -1;
};

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t decode_tokens = 0;
  double prompt_s = 0;   // wall time of prefill (single stage) or of the first round of micro-batches
  double decode_s = 0;   // wall time of decode steps
  double compute_s = 0;  // time inside this rank's forward passes (TP all-reduces included)
  double comm_s = 0;     // time inside communication calls (TP collectives + stage messages)
  double wall_s = 0;     // whole generate() call
};

// This rank's place in a TP x PP world and its communicators (not owned).
struct ParallelSetup {
  WorldConfig world;
  Communicator* tp = nullptr;    // this stage's TP group
  Communicator* pipe = nullptr;  // stage-to-stage messages, world ranks
  CommWatchdog* watchdog = nullptr;  // optional: the serving loop arms it and sets each step's allowance
};

class Engine {
 public:
  // Loads the whole model, or with `par` this rank's shard of it.
  static std::unique_ptr<Engine> load(const std::string& model_path, const EngineOptions& opt,
                                      const ParallelSetup* par = nullptr);

  const GgufFile& file() const { return *file_; }
  const ModelConfig& config() const { return model_->config(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int threads() const { return threads_; }
  int thread_shards() const { return 1 + static_cast<int>(extra_.size()); }

  // One forward pass of a single-stage engine over every thread shard:
  // logits [batch.n_outputs(), n_vocab]. Block ids are the caller's (for tests,
  // kv()'s allocator; for serving, the engine loop's BlockPool).
  void forward(const Batch& batch, std::vector<float>& logits);
  // This rank's pipeline stage (an MPI rank; no thread shards): io.hidden in
  // unless first, io.hidden or io.logits out.
  void forward_stage(const Batch& batch, StageIO& io) { model_->forward(batch, *kv_, io, *pool_); }

  // Raw access for benchmarks and tests. With thread shards, model() and kv()
  // are shard 0's (its layers' slice; config() is the whole model's) and the
  // allocator of kv() hands out the blocks of every shard's cache.
  LlamaModel& model() { return *model_; }
  const LlamaModel& model() const { return *model_; }
  KvCache& kv() { return *kv_; }
  ThreadPool& pool() { return *pool_; }
  // Runs fn(ith, nth) once on each of the engine's threads(), nth = threads(), on the
  // threads (and pinning) the forward pass uses: with thread shards, shard s's
  // threads are ith in [s * per_shard, (s + 1) * per_shard). For measurements that
  // must run where the kernels run (bench's paired bandwidth readings).
  void run_on_threads(const std::function<void(int ith, int nth)>& fn);
  const ParallelSetup* parallel() const { return par_.get(); }
  // Seconds this rank (shard 0) spent in TP collectives so far, MPI or threads.
  double tp_comm_seconds() const;

 private:
  Engine() = default;
  std::unique_ptr<ParallelSetup> par_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<KvCache> kv_;
  // Single shard: runs the model's kernels. Thread shards: one thread per shard,
  // each running its shard's forward on that shard's own pool.
  std::unique_ptr<ThreadPool> pool_;
  int threads_ = 1;
  // Thread shards 1..n-1 (shard 0 is model_, kv_); empty for one shard.
  struct Shard {
    std::unique_ptr<LlamaModel> model;
    std::unique_ptr<KvCache> kv;
    std::vector<float> logits;  // [n_outputs, n_vocab] this shard's copy
  };
  std::vector<Shard> extra_;
  std::vector<std::unique_ptr<ThreadPool>> shard_pools_;  // [n] threads / n threads each
  std::unique_ptr<ThreadGroup> group_;                    // their TP communicators
};

// Default model location: $PARALLAMA_MODEL, else ~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf.
std::string default_model_path();

// KV blocks an engine with these options holds: kv_blocks, else what fits in
// kv_cache_memory, else n_ctx tokens' worth. Throws on a non-positive size.
int32_t kv_block_count(const ModelConfig& cfg, const EngineOptions& opt);

}  // namespace parallama
