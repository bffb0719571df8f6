// LLaMA-family decoder (llama, mistral, qwen2 with QKV bias): RMSNorm, RoPE,
// grouped-query attention over the paged KV cache, SwiGLU MLP, tied or
// separate output head.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "model/linear.h"
#include "model/model_config.h"
#include "runtime/batch.h"
#include "runtime/kv_cache.h"

namespace parallama {

class GgufFile;
class Communicator;

// The part of the model this rank holds: a contiguous range of layers (its
// pipeline stage) and, within it, a tensor-parallel slice of every layer.
struct ModelShard {
  int32_t layer_begin = 0;
  int32_t layer_end = -1;  // -1: through the last layer
  int32_t tp = 1;
  int32_t tp_rank = 0;
  Communicator* tp_comm = nullptr;  // all-reduce / gather over the TP group; null when tp == 1

  bool first_stage() const { return layer_begin == 0; }
  bool last_stage(int32_t n_layer) const { return layer_end < 0 || layer_end == n_layer; }
};

// What flows between pipeline stages and out of the last one.
struct StageIO {
  std::vector<float> hidden;  // [n_tokens, n_embd]: input of a non-first stage, output of a non-last one
  std::vector<float> logits;  // [n_outputs, n_vocab]: last stage only
};

// One decoder block; shapes are this rank's shard (q: local query heads,
// kv: local kv heads, ff: local slice of the MLP width).
struct LlamaLayer {
  std::vector<float> attn_norm;  // [n_embd] f32 (replicated)
  Linear wq;                     // [q*head_dim, n_embd]   column-parallel by heads
  Linear wk;                     // [kv*head_dim, n_embd]  column-parallel by kv heads
  Linear wv;                     // [kv*head_dim, n_embd]
  RowParallelLinear wo;          // [n_embd, q*head_dim]   row-parallel + all-reduce
  std::vector<float> ffn_norm;   // [n_embd] f32 (replicated)
  Linear w_gate;                 // [ff, n_embd]           column-parallel
  Linear w_up;                   // [ff, n_embd]
  RowParallelLinear w_down;      // [n_embd, ff]           row-parallel + all-reduce
};

// Reports loading work: done of total bytes.
using LoadProgress = std::function<void(size_t done, size_t total)>;

class LlamaModel {
 public:
  // Loads this rank's shard from `file` (which must outlive the model).
  // repack: copy every matrix into one huge-page arena (model/weight_arena.h),
  // in the x16 layout (ops/repack.h) where its type has those kernels; faster.
  // Without it the matrices stay in the mapping, in GGUF layout, except
  // row-parallel slices, which are copied.
  // progress(done, total) is called as matrices are placed, total = arena bytes.
  LlamaModel(const GgufFile& file, const ModelConfig& cfg, const ModelShard& shard = {}, bool repack = true,
             const LoadProgress& progress = {});

  // Whether every TP rank of a tp-way split of this file's layers gets the
  // single-rank result bit for bit: quantized row-parallel layers (exact double
  // partial sums) split on whole quantization blocks, and no more ranks than
  // query heads. Float-only files and unaligned splits round partial sums.
  static bool split_is_exact(const GgufFile& file, const ModelConfig& cfg, int32_t tp);

  const ModelConfig& config() const { return cfg_; }
  const ModelShard& shard() const { return shard_; }
  int32_t n_local_layers() const { return static_cast<int32_t>(layers_.size()); }
  // A cache for this rank's layers and kv heads: n_blocks blocks of block_size tokens.
  KvCacheShape kv_shape(int32_t n_blocks, int32_t block_size, KvType type = KvType::kF16) const;
  // Bytes of weights this rank reads (its shard), and of those it copied out.
  size_t weight_bytes() const { return weight_bytes_; }

  // Runs this stage on the batch: embeds tokens (first stage) or reads
  // io.hidden, writes K/V of its tokens into the cache, and leaves io.hidden
  // (non-last stage) or io.logits (last stage: one row per sequence that wants logits).
  void forward(const Batch& batch, KvCache& kv, StageIO& io, ThreadPool& pool);
  // Single-rank convenience: logits [batch.n_outputs(), n_vocab].
  void forward(const Batch& batch, KvCache& kv, std::vector<float>& logits, ThreadPool& pool);

 private:
  void attention(const Batch& batch, KvCache& kv, int32_t local_layer, ThreadPool& pool);
  void place_weights(const LoadProgress& progress);

  const GgufFile& file_;
  ModelConfig cfg_;
  ModelShard shard_;
  int32_t q_begin_ = 0, n_q_ = 0;    // local query heads (global index of the first)
  int32_t kv_begin_ = 0, n_kv_ = 0;  // local kv heads
  int32_t ff_ = 0;                   // local MLP width
  int32_t vocab_begin_ = 0;          // first vocab row of the local output shard
  std::vector<int32_t> vocab_counts_;  // [tp] output rows per TP rank
  size_t weight_bytes_ = 0;
  RopeParams rope_;
  std::vector<float> rope_freqs_;  // [n_rot/2] optional (rope_freqs.weight)
  WeightView tok_embd_;            // [n_vocab, n_embd]
  std::vector<float> out_norm_;    // [n_embd] f32
  Linear output_;                  // [local vocab, n_embd] vocab-parallel
  WeightArena arena_;              // the placed matrices (empty when not repacked)
  std::vector<LlamaLayer> layers_;

  // Scratch, grown to the largest batch seen.
  std::vector<float> x_;       // [n_tokens, n_embd] residual stream
  std::vector<float> h_;       // [n_tokens, n_embd] normed input
  std::vector<float> q_;       // [n_tokens, q*head_dim]
  std::vector<float> k_;       // [n_tokens, kv*head_dim]
  std::vector<float> kv_rows_;   // [2, head_dim] a K and a V row converted to the cache type
  // One attention task: a (token, local kv head) item, or one part of it when
  // its context is split; slot indexes the partials of split items.
  struct AttnTask {
    int32_t token, head, part, parts, slot;
  };
  std::vector<AttnTask> attn_tasks_;  // [n_tasks] in (token, head, part) order
  std::vector<float> part_acc_;  // [split tasks, group, head_dim] partial attention (split contexts)
  std::vector<float> part_mx_;   // [split tasks, group] their running max
  std::vector<float> part_sum_;  // [split tasks, group] and sum
  std::vector<float> v_;       // [n_tokens, kv*head_dim]
  std::vector<float> attn_;    // [n_tokens, q*head_dim]
  std::vector<float> gate_;    // [n_tokens, ff]
  std::vector<float> up_;      // [n_tokens, ff]
  std::vector<float> out_;     // [n_tokens, n_embd]
  std::vector<int32_t> seq_of_;  // [n_tokens] index of each token's sequence in the batch
  std::vector<float> rope_cs_;   // [n_tokens, n_rot/2] cos of each token's RoPE angles
  std::vector<float> rope_sn_;   // [n_tokens, n_rot/2] and sin (the same for every layer)
  std::vector<std::vector<const void*>> blk_ptrs_;  // [threads][2, n_blocks] K, V block pointers
  std::vector<float> part_;    // [n_outputs, local vocab] logits shard before the gather
  std::vector<float> gathered_;  // [n_outputs * n_vocab] rank-major gather
};

}  // namespace parallama
