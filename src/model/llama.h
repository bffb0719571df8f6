// LLaMA-family decoder (llama, mistral, qwen2 with QKV bias): RMSNorm, RoPE,
// grouped-query attention over the paged KV cache, SwiGLU MLP, tied or
// separate output head.
#pragma once

#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "model/linear.h"
#include "model/model_config.h"
#include "runtime/batch.h"
#include "runtime/kv_cache.h"

namespace parallama {

class GgufFile;

struct LlamaLayer {
  std::vector<float> attn_norm;  // [n_embd] f32
  Linear wq;                     // [n_head*head_dim, n_embd]
  Linear wk;                     // [n_head_kv*head_dim, n_embd]
  Linear wv;                     // [n_head_kv*head_dim, n_embd]
  Linear wo;                     // [n_embd, n_head*head_dim]
  std::vector<float> ffn_norm;   // [n_embd] f32
  Linear w_gate;                 // [n_ff, n_embd]
  Linear w_up;                   // [n_ff, n_embd]
  Linear w_down;                 // [n_embd, n_ff]
};

class LlamaModel {
 public:
  // Weights stay in the mapping of `file`, which must outlive the model.
  LlamaModel(const GgufFile& file, const ModelConfig& cfg);

  const ModelConfig& config() const { return cfg_; }
  // A cache sized for this model: n_blocks blocks of block_size tokens.
  KvCacheShape kv_shape(int32_t n_blocks, int32_t block_size) const;

  // Runs the batch, writes K/V of its tokens into the cache and fills
  // logits: [batch.n_outputs(), n_vocab] f32, one row per sequence that wants logits.
  void forward(const Batch& batch, KvCache& kv, std::vector<float>& logits, ThreadPool& pool);

 private:
  void attention(const Batch& batch, KvCache& kv, int32_t layer, ThreadPool& pool);

  const GgufFile& file_;
  ModelConfig cfg_;
  RopeParams rope_;
  std::vector<float> rope_freqs_;  // [n_rot/2] optional (rope_freqs.weight)
  WeightView tok_embd_;            // [n_vocab, n_embd]
  std::vector<float> out_norm_;    // [n_embd] f32
  Linear output_;                  // [n_vocab, n_embd]
  std::vector<LlamaLayer> layers_;

  // Scratch, grown to the largest batch seen.
  std::vector<float> x_;       // [n_tokens, n_embd] residual stream
  std::vector<float> h_;       // [n_tokens, n_embd] normed input
  std::vector<float> q_;       // [n_tokens, n_head*head_dim]
  std::vector<float> k_;       // [n_tokens, n_head_kv*head_dim]
  std::vector<float> v_;       // [n_tokens, n_head_kv*head_dim]
  std::vector<float> attn_;    // [n_tokens, n_head*head_dim]
  std::vector<float> gate_;    // [n_tokens, n_ff]
  std::vector<float> up_;      // [n_tokens, n_ff]
  std::vector<float> out_;     // [n_tokens, n_embd]
  std::vector<float> scores_;  // [n_threads, max_ctx]
};

}  // namespace parallama
