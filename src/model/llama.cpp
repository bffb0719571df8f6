#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "ops/nn.h"
#include "ops/quant.h"

namespace parallama {

LlamaModel::LlamaModel(const GgufFile& f, const ModelConfig& cfg) : file_(f), cfg_(cfg) {
  const int64_t E = cfg.n_embd, Dq = int64_t(cfg.n_head) * cfg.head_dim,
                Dkv = int64_t(cfg.n_head_kv) * cfg.head_dim;
  const GgufTensorInfo& emb = expect_tensor(f, "token_embd.weight", E, cfg.n_vocab);
  tok_embd_ = WeightView{f.tensor_data(emb), emb.ggml_type(), cfg.n_vocab, E};
  out_norm_ = load_vector(f, "output_norm.weight", E);
  if (cfg.tied_output) {
    output_ = Linear::load(f, "token_embd", E, cfg.n_vocab, false);
  } else {
    output_ = Linear::load(f, "output", E, cfg.n_vocab, false);
  }
  rope_.type = cfg.rope_type;
  rope_.n_rot = cfg.n_rot;
  rope_.freq_base = cfg.rope_freq_base;
  rope_.freq_scale = cfg.rope_freq_scale;
  if (f.find_tensor("rope_freqs.weight")) {
    rope_freqs_ = load_vector(f, "rope_freqs.weight", cfg.n_rot / 2);
    rope_.freq_factors = rope_freqs_.data();
  }
  layers_.resize(cfg.n_layer);
  for (int32_t il = 0; il < cfg.n_layer; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    LlamaLayer& L = layers_[il];
    L.attn_norm = load_vector(f, b + "attn_norm.weight", E);
    L.wq = Linear::load(f, b + "attn_q", E, Dq, true);
    L.wk = Linear::load(f, b + "attn_k", E, Dkv, true);
    L.wv = Linear::load(f, b + "attn_v", E, Dkv, true);
    L.wo = Linear::load(f, b + "attn_output", Dq, E, false);
    L.ffn_norm = load_vector(f, b + "ffn_norm.weight", E);
    L.w_gate = Linear::load(f, b + "ffn_gate", E, cfg.n_ff, false);
    L.w_up = Linear::load(f, b + "ffn_up", E, cfg.n_ff, false);
    L.w_down = Linear::load(f, b + "ffn_down", cfg.n_ff, E, false);
  }
}

KvCacheShape LlamaModel::kv_shape(int32_t n_blocks, int32_t block_size) const {
  KvCacheShape s;
  s.n_layers = cfg_.n_layer;
  s.n_blocks = n_blocks;
  s.block_size = block_size;
  s.n_kv_heads = cfg_.n_head_kv;
  s.head_dim = cfg_.head_dim;
  return s;
}

namespace {
void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}
}  // namespace

void LlamaModel::forward(const Batch& batch, KvCache& kv, std::vector<float>& logits,
                         ThreadPool& pool) {
  const int64_t T = batch.n_tokens();
  PL_CHECK_MSG(T > 0, "empty batch");
  PL_CHECK(batch.positions.size() == batch.tokens.size());
  const int64_t E = cfg_.n_embd, Dq = int64_t(cfg_.n_head) * cfg_.head_dim,
                Dkv = int64_t(cfg_.n_head_kv) * cfg_.head_dim, F = cfg_.n_ff;
  const KvCacheShape& ks = kv.shape();
  PL_CHECK(ks.n_layers == cfg_.n_layer && ks.n_kv_heads == cfg_.n_head_kv &&
           ks.head_dim == cfg_.head_dim);
  int32_t max_ctx = 0;
  for (const BatchSeq& s : batch.seqs) {
    PL_CHECK_MSG(s.block_table != nullptr, "sequence without a block table");
    PL_CHECK_MSG(int64_t(s.block_table->size()) * ks.block_size >= s.n_ctx,
                 "block table covers " << s.block_table->size() * ks.block_size
                                       << " tokens, sequence needs " << s.n_ctx);
    max_ctx = std::max(max_ctx, s.n_ctx);
  }
  grow(x_, T * E);
  grow(h_, T * E);
  grow(q_, T * Dq);
  grow(k_, T * Dkv);
  grow(v_, T * Dkv);
  grow(attn_, T * Dq);
  grow(gate_, T * F);
  grow(up_, T * F);
  grow(out_, T * E);
  grow(scores_, size_t(pool.size()) * max_ctx);

  // Embedding lookup.
  const size_t emb_row = row_size(tok_embd_.type, E);
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = batch.tokens[t];
    if (id < 0 || id >= cfg_.n_vocab)
      PL_THROW("token id " << id << " is outside the vocabulary [0, " << cfg_.n_vocab << ")");
    dequantize_row(tok_embd_.type, static_cast<const uint8_t*>(tok_embd_.data) + id * emb_row,
                   x_.data() + t * E, E);
  }

  for (int32_t il = 0; il < cfg_.n_layer; ++il) {
    const LlamaLayer& L = layers_[il];
    for (int64_t t = 0; t < T; ++t)
      nn::rms_norm(x_.data() + t * E, L.attn_norm.data(), h_.data() + t * E, E, cfg_.rms_eps);
    L.wq.forward(h_.data(), T, q_.data(), pool);
    L.wk.forward(h_.data(), T, k_.data(), pool);
    L.wv.forward(h_.data(), T, v_.data(), pool);
    attention(batch, kv, il, pool);
    L.wo.forward(attn_.data(), T, out_.data(), pool);
    nn::add_inplace(x_.data(), out_.data(), T * E);

    for (int64_t t = 0; t < T; ++t)
      nn::rms_norm(x_.data() + t * E, L.ffn_norm.data(), h_.data() + t * E, E, cfg_.rms_eps);
    L.w_gate.forward(h_.data(), T, gate_.data(), pool);
    L.w_up.forward(h_.data(), T, up_.data(), pool);
    nn::silu_mul(gate_.data(), up_.data(), gate_.data(), T * F);
    L.w_down.forward(gate_.data(), T, out_.data(), pool);
    nn::add_inplace(x_.data(), out_.data(), T * E);
  }

  // Final norm and output head for the last token of each sequence that wants logits.
  const int64_t n_out = batch.n_outputs();
  int64_t r = 0;
  for (const BatchSeq& s : batch.seqs) {
    if (!s.want_logits) continue;
    const int64_t t = s.token_begin + s.n_tokens - 1;
    nn::rms_norm(x_.data() + t * E, out_norm_.data(), h_.data() + r * E, E, cfg_.rms_eps);
    ++r;
  }
  logits.resize(size_t(n_out) * cfg_.n_vocab);
  if (n_out > 0) output_.forward(h_.data(), n_out, logits.data(), pool);
}

void LlamaModel::attention(const Batch& batch, KvCache& kv, int32_t il, ThreadPool& pool) {
  const int32_t hd = cfg_.head_dim, n_kv = cfg_.n_head_kv, group = cfg_.n_head / n_kv;
  const int64_t Dq = int64_t(cfg_.n_head) * hd, Dkv = int64_t(n_kv) * hd;
  const int32_t bs = kv.block_size();
  const int64_t T = batch.n_tokens();

  // RoPE on q and k, then store k and v of every token in its cache slot.
  for (const BatchSeq& s : batch.seqs) {
    for (int32_t i = 0; i < s.n_tokens; ++i) {
      const int64_t t = s.token_begin + i;
      const int32_t pos = batch.positions[t];
      PL_CHECK_MSG(pos >= 0 && pos < s.n_ctx, "position " << pos << " outside context " << s.n_ctx);
      nn::rope(q_.data() + t * Dq, cfg_.n_head, hd, pos, rope_);
      nn::rope(k_.data() + t * Dkv, n_kv, hd, pos, rope_);
      const int32_t block = (*s.block_table)[pos / bs];
      for (int32_t h = 0; h < n_kv; ++h) {
        std::copy_n(k_.data() + t * Dkv + h * hd, hd, kv.k(il, block, h) + (pos % bs) * hd);
        std::copy_n(v_.data() + t * Dkv + h * hd, hd, kv.v(il, block, h) + (pos % bs) * hd);
      }
    }
  }

  // One work item per (token, kv head): its query group attends causally.
  const int64_t n_items = T * n_kv;
  // Token index -> sequence index.
  std::vector<int32_t> seq_of(T);
  for (int32_t si = 0; si < batch.n_seqs(); ++si)
    for (int32_t i = 0; i < batch.seqs[si].n_tokens; ++i) seq_of[batch.seqs[si].token_begin + i] = si;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const size_t score_stride = scores_.size() / pool.size();
  pool.run([&](int ith, int nth) {
    std::vector<const float*> kb, vb;
    for (int64_t item = ith; item < n_items; item += nth) {
      const int64_t t = item / n_kv;
      const int32_t h = static_cast<int32_t>(item % n_kv);
      const BatchSeq& s = batch.seqs[seq_of[t]];
      const int32_t n_ctx = batch.positions[t] + 1;  // causal
      const int32_t n_blk = (n_ctx + bs - 1) / bs;
      kb.resize(n_blk);
      vb.resize(n_blk);
      for (int32_t b = 0; b < n_blk; ++b) {
        kb[b] = kv.k(il, (*s.block_table)[b], h);
        vb[b] = kv.v(il, (*s.block_table)[b], h);
      }
      PagedKv pk{kb.data(), vb.data(), bs, hd};
      nn::attend(q_.data() + t * Dq + int64_t(h) * group * hd, group, pk, n_ctx, scale,
                 attn_.data() + t * Dq + int64_t(h) * group * hd,
                 scores_.data() + ith * score_stride);
    }
  });
}

}  // namespace parallama
