#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "ops/nn.h"
#include "ops/quant.h"
#include "ops/repack.h"
#include "parallel/communicator.h"
#include "parallel/world_config.h"

namespace parallama {

namespace {

void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// [begin, end) of part `i` when n units are split over `parts` as evenly as
// possible, the first n % parts parts taking one more.
std::pair<int64_t, int64_t> even_split(int64_t n, int64_t parts, int64_t i) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t b = i * base + std::min(i, extra);
  return {b, b + base + (i < extra ? 1 : 0)};
}

// Rank r's slice [f0, f1) of the MLP width under a tp-way split: whole blocks of
// blk.0's ffn_down type where there are enough, else single columns.
std::pair<int64_t, int64_t> ff_split(const GgufFile& f, const ModelConfig& cfg, int32_t tp, int32_t r) {
  const GgufTensorInfo* down = f.find_tensor("blk.0.ffn_down.weight");
  const int64_t unit = down ? std::max<int64_t>(1, type_traits(down->type).block_size) : 1;
  const int64_t u = cfg.n_ff % unit == 0 && cfg.n_ff / unit >= tp ? unit : 1;
  const auto [b, e] = even_split(cfg.n_ff / u, tp, r);
  return {b * u, e * u};
}

}  // namespace

LlamaModel::LlamaModel(const GgufFile& f, const ModelConfig& cfg, const ModelShard& shard, bool repack,
                       const LoadProgress& progress)
    : file_(f), cfg_(cfg), shard_(shard) {
  if (shard_.layer_end < 0) shard_.layer_end = cfg.n_layer;
  PL_CHECK(0 <= shard_.layer_begin && shard_.layer_begin < shard_.layer_end &&
           shard_.layer_end <= cfg.n_layer);
  PL_CHECK(shard_.tp >= 1 && shard_.tp_rank >= 0 && shard_.tp_rank < shard_.tp);
  PL_CHECK_MSG(shard_.tp == 1 || shard_.tp_comm, "tp > 1 needs a TP communicator");
  const int64_t E = cfg.n_embd, hd = cfg.head_dim;
  const int64_t Dq = int64_t(cfg.n_head) * hd;
  const int64_t Dkv = int64_t(cfg.n_head_kv) * hd;

  // Heads: query heads split evenly, kv heads covering them (replicated at boundaries).
  const HeadShard hs = WorldConfig::head_shard(cfg.n_head, cfg.n_head_kv, shard_.tp, shard_.tp_rank);
  q_begin_ = hs.q_begin;
  n_q_ = hs.n_q();
  kv_begin_ = hs.kv_begin;
  n_kv_ = hs.n_kv();

  auto count = [&](const WeightView& w) {
    weight_bytes_ += row_size(w.type, w.n_cols) * static_cast<size_t>(w.n_rows);
  };

  if (shard_.first_stage()) {
    const GgufTensorInfo& emb = expect_tensor(f, "token_embd.weight", E, cfg.n_vocab);
    tok_embd_ = WeightView{f.tensor_data(emb), emb.ggml_type(), cfg.n_vocab, E};
  }
  if (shard_.last_stage(cfg.n_layer)) {
    out_norm_ = load_vector(f, "output_norm.weight", E);
    // Vocab rows in whole x16 groups (ops/repack.h) where there are enough, the
    // last rank also taking the remainder: then every row runs the same kernel as
    // on a single rank (the rows past a matrix's last group take another path,
    // which rounds differently), so the logits match it bit for bit.
    const int64_t unit = cfg.n_vocab / kRepackRows >= shard_.tp ? kRepackRows : 1;
    for (int32_t r = 0; r < shard_.tp; ++r) {
      auto [b, e] = even_split(cfg.n_vocab / unit, shard_.tp, r);
      const int64_t row_end = r == shard_.tp - 1 ? cfg.n_vocab : e * unit;
      vocab_counts_.push_back(static_cast<int32_t>(row_end - b * unit));
      if (r == shard_.tp_rank) vocab_begin_ = static_cast<int32_t>(b * unit);
    }
    const std::string out = cfg.tied_output ? "token_embd" : "output";
    output_ = Linear::load_rows(f, out, E, cfg.n_vocab, vocab_begin_,
                                vocab_begin_ + vocab_counts_[shard_.tp_rank], false);
    count(output_.weight());
  }
  rope_.type = cfg.rope_type;
  rope_.n_rot = cfg.n_rot;
  rope_.freq_base = cfg.rope_freq_base;
  rope_.freq_scale = cfg.rope_freq_scale;
  if (f.find_tensor("rope_freqs.weight")) {
    rope_freqs_ = load_vector(f, "rope_freqs.weight", cfg.n_rot / 2);
    rope_.freq_factors = rope_freqs_.data();
  }

  // MLP width split in whole blocks of ffn_down's type where possible.
  const auto [f0, f1] = ff_split(f, cfg, shard_.tp, shard_.tp_rank);
  ff_ = static_cast<int32_t>(f1 - f0);

  const int64_t q0 = int64_t(q_begin_) * hd, q1 = int64_t(q_begin_ + n_q_) * hd;
  const int64_t k0 = int64_t(kv_begin_) * hd, k1 = int64_t(kv_begin_ + n_kv_) * hd;
  const RowReduction reduction = row_reduction_for(f);
  for (int32_t il = shard_.layer_begin; il < shard_.layer_end; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    LlamaLayer L;
    L.attn_norm = load_vector(f, b + "attn_norm.weight", E);
    L.wq = Linear::load_rows(f, b + "attn_q", E, Dq, q0, q1, true);
    L.wk = Linear::load_rows(f, b + "attn_k", E, Dkv, k0, k1, true);
    L.wv = Linear::load_rows(f, b + "attn_v", E, Dkv, k0, k1, true);
    L.wo = RowParallelLinear::load(f, b + "attn_output", Dq, E, q0, q1, reduction);
    L.ffn_norm = load_vector(f, b + "ffn_norm.weight", E);
    L.w_gate = Linear::load_rows(f, b + "ffn_gate", E, cfg.n_ff, f0, f1, false);
    L.w_up = Linear::load_rows(f, b + "ffn_up", E, cfg.n_ff, f0, f1, false);
    L.w_down = RowParallelLinear::load(f, b + "ffn_down", cfg.n_ff, E, f0, f1, reduction);
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.w_gate, &L.w_up}) count(l->weight());
    weight_bytes_ += L.wo.weight_bytes() + L.w_down.weight_bytes();
    layers_.push_back(std::move(L));
  }
  if (repack) place_weights(progress);
}

bool LlamaModel::split_is_exact(const GgufFile& f, const ModelConfig& cfg, int32_t tp) {
  if (tp <= 1) return true;
  if (tp > cfg.n_head || row_reduction_for(f) != RowReduction::kExact) return false;
  // The split points the constructor uses: query heads (attn_output's columns) and
  // the MLP width (ffn_down's columns), each a multiple of every layer's block size.
  std::vector<int64_t> ff_cuts;
  for (int32_t r = 0; r < tp; ++r) ff_cuts.push_back(ff_split(f, cfg, tp, r).second);
  for (int32_t il = 0; il < cfg.n_layer; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    const GgufTensorInfo* wo = f.find_tensor(b + "attn_output.weight");
    const GgufTensorInfo* down = f.find_tensor(b + "ffn_down.weight");
    if (!wo || !down) return false;
    const int64_t bo = type_traits(wo->ggml_type()).block_size;
    const int64_t bd = type_traits(down->ggml_type()).block_size;
    for (int32_t r = 0; r < tp; ++r) {
      const HeadShard hs = WorldConfig::head_shard(cfg.n_head, cfg.n_head_kv, tp, r);
      if ((int64_t(hs.q_begin) * cfg.head_dim) % bo != 0 || (int64_t(hs.q_end) * cfg.head_dim) % bo != 0)
        return false;
    }
    for (int64_t c : ff_cuts)
      if (c % bd != 0) return false;
  }
  return true;
}

void LlamaModel::place_weights(const LoadProgress& progress) {
  // All matrices in one huge-page arena, in the order a forward pass reads them.
  const bool has_output = shard_.last_stage(cfg_.n_layer);
  size_t total = has_output ? WeightArena::footprint(output_.arena_bytes()) : 0;
  for (const LlamaLayer& L : layers_) {
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.w_gate, &L.w_up})
      total += WeightArena::footprint(l->arena_bytes());
    total += WeightArena::footprint(L.wo.arena_bytes()) + WeightArena::footprint(L.w_down.arena_bytes());
  }
  arena_ = WeightArena(total);
  for (LlamaLayer& L : layers_) {
    for (Linear* l : {&L.wq, &L.wk, &L.wv}) l->place(arena_);
    L.wo.place(arena_);
    for (Linear* l : {&L.w_gate, &L.w_up}) l->place(arena_);
    L.w_down.place(arena_);
    if (progress) progress(arena_.used(), total);
  }
  if (has_output) output_.place(arena_);
  if (progress) progress(total, total);
}

KvCacheShape LlamaModel::kv_shape(int32_t n_blocks, int32_t block_size, KvType type) const {
  KvCacheShape s;
  s.type = type;
  s.n_layers = n_local_layers();
  s.n_blocks = n_blocks;
  s.block_size = block_size;
  s.n_kv_heads = n_kv_;
  s.head_dim = cfg_.head_dim;
  return s;
}

void LlamaModel::forward(const Batch& batch, KvCache& kv, std::vector<float>& logits,
                         ThreadPool& pool) {
  PL_CHECK_MSG(shard_.first_stage() && shard_.last_stage(cfg_.n_layer),
               "this rank holds one pipeline stage; use forward(batch, kv, StageIO&, pool)");
  StageIO io;
  io.logits.swap(logits);
  forward(batch, kv, io, pool);
  logits.swap(io.logits);
}

void LlamaModel::forward(const Batch& batch, KvCache& kv, StageIO& io, ThreadPool& pool) {
  const int64_t T = batch.n_tokens();
  PL_CHECK_MSG(T > 0, "empty batch");
  PL_CHECK(batch.positions.size() == batch.tokens.size());
  const int64_t E = cfg_.n_embd, hd = cfg_.head_dim;
  const int64_t Dq = int64_t(n_q_) * hd, Dkv = int64_t(n_kv_) * hd, F = ff_;
  const KvCacheShape& ks = kv.shape();
  PL_CHECK(ks.n_layers == n_local_layers() && ks.n_kv_heads == n_kv_ && ks.head_dim == hd);
  int32_t expect_begin = 0;  // sequences must tile the token array in order
  for (const BatchSeq& s : batch.seqs) {
    PL_CHECK_MSG(s.token_begin == expect_begin && s.n_tokens > 0,
                 "batch sequences must cover the tokens contiguously and in order");
    expect_begin += s.n_tokens;
    PL_CHECK_MSG(s.block_table != nullptr, "sequence without a block table");
    PL_CHECK_MSG(int64_t(s.block_table->size()) * ks.block_size >= s.n_ctx,
                 "block table covers " << s.block_table->size() * ks.block_size
                                       << " tokens, sequence needs " << s.n_ctx);
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

  if (shard_.first_stage()) {  // embedding lookup
    const size_t emb_row = row_size(tok_embd_.type, E);
    for (int64_t t = 0; t < T; ++t) {
      const int32_t id = batch.tokens[t];
      if (id < 0 || id >= cfg_.n_vocab)
        PL_THROW("token id " << id << " is outside the vocabulary [0, " << cfg_.n_vocab << ")");
      dequantize_row(tok_embd_.type, static_cast<const uint8_t*>(tok_embd_.data) + id * emb_row,
                     x_.data() + t * E, E);
    }
  } else {
    PL_CHECK_MSG(int64_t(io.hidden.size()) == T * E, "stage input has " << io.hidden.size()
                                                                         << " floats, expected " << T * E);
    std::copy_n(io.hidden.data(), T * E, x_.data());
  }

  PL_CHECK_MSG(expect_begin == T, "batch sequences cover " << expect_begin << " of " << T << " tokens");
  seq_of_.resize(T);  // once per forward, read by every layer's attention
  for (int32_t si = 0; si < batch.n_seqs(); ++si)
    for (int32_t i = 0; i < batch.seqs[si].n_tokens; ++i) seq_of_[batch.seqs[si].token_begin + i] = si;
  const int32_t half_rot = rope_.n_rot / 2;
  grow(rope_cs_, T * half_rot);
  grow(rope_sn_, T * half_rot);
  for (int64_t t = 0; t < T; ++t)
    nn::rope_angles(batch.positions[t], rope_, rope_cs_.data() + t * half_rot, rope_sn_.data() + t * half_rot);

  Communicator* comm = shard_.tp > 1 ? shard_.tp_comm : nullptr;
  for (int32_t il = 0; il < n_local_layers(); ++il) {
    LlamaLayer& L = layers_[il];
    for (int64_t t = 0; t < T; ++t)
      nn::rms_norm(x_.data() + t * E, L.attn_norm.data(), h_.data() + t * E, E, cfg_.rms_eps);
    const Linear* qkv[3] = {&L.wq, &L.wk, &L.wv};
    float* qkv_out[3] = {q_.data(), k_.data(), v_.data()};
    Linear::forward_many(qkv, qkv_out, 3, h_.data(), T, pool);
    attention(batch, kv, il, pool);
    L.wo.forward(attn_.data(), T, out_.data(), pool, comm);
    nn::add_inplace(x_.data(), out_.data(), T * E);

    for (int64_t t = 0; t < T; ++t)
      nn::rms_norm(x_.data() + t * E, L.ffn_norm.data(), h_.data() + t * E, E, cfg_.rms_eps);
    const Linear* gate_up[2] = {&L.w_gate, &L.w_up};
    float* gate_up_out[2] = {gate_.data(), up_.data()};
    Linear::forward_many(gate_up, gate_up_out, 2, h_.data(), T, pool);
    nn::silu_mul(gate_.data(), up_.data(), gate_.data(), T * F);
    L.w_down.forward(gate_.data(), T, out_.data(), pool, comm);
    nn::add_inplace(x_.data(), out_.data(), T * E);
  }

  if (!shard_.last_stage(cfg_.n_layer)) {
    io.hidden.assign(x_.begin(), x_.begin() + T * E);
    return;
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
  const int64_t V = cfg_.n_vocab;
  io.logits.resize(size_t(n_out) * V);
  if (n_out == 0) return;
  if (!comm) {
    output_.forward(h_.data(), n_out, io.logits.data(), pool);
    return;
  }
  // Vocab-parallel head: each rank computes its rows, then gather and interleave.
  const int64_t nv = output_.n_out();
  grow(part_, n_out * nv);
  output_.forward(h_.data(), n_out, part_.data(), pool);
  std::vector<size_t> counts;
  for (int32_t c : vocab_counts_) counts.push_back(size_t(c) * n_out);
  grow(gathered_, n_out * V);
  comm->all_gatherv(part_.data(), counts, gathered_.data());
  int64_t off = 0, v0 = 0;
  for (int32_t c : vocab_counts_) {
    for (int64_t row = 0; row < n_out; ++row)
      std::copy_n(gathered_.data() + off + row * c, c, io.logits.data() + row * V + v0);
    off += int64_t(c) * n_out;
    v0 += c;
  }
}

void LlamaModel::attention(const Batch& batch, KvCache& kv, int32_t il, ThreadPool& pool) {
  const int32_t hd = cfg_.head_dim, group = cfg_.n_head / cfg_.n_head_kv;
  const int64_t Dq = int64_t(n_q_) * hd, Dkv = int64_t(n_kv_) * hd;
  const int32_t bs = kv.block_size();
  const int64_t T = batch.n_tokens();

  // RoPE on q and k, then store k and v of every token in its cache slot
  // (rounded to f16 for an f16 cache, as ggml's F16 conversion does).
  const GgmlType kv_elem = kv.row_type();
  grow(kv_rows_, static_cast<size_t>(2 * hd));  // one K and one V row in the cache type (<= f32)
  uint8_t* krow = reinterpret_cast<uint8_t*>(kv_rows_.data());
  uint8_t* vrow = krow + kv.row_bytes();
  for (const BatchSeq& s : batch.seqs) {
    for (int32_t i = 0; i < s.n_tokens; ++i) {
      const int64_t t = s.token_begin + i;
      const int32_t pos = batch.positions[t];
      PL_CHECK_MSG(pos >= 0 && pos < s.n_ctx, "position " << pos << " outside context " << s.n_ctx);
      const float* cs = rope_cs_.data() + t * (rope_.n_rot / 2);
      const float* sn = rope_sn_.data() + t * (rope_.n_rot / 2);
      nn::rope_apply(q_.data() + t * Dq, n_q_, hd, cs, sn, rope_);
      nn::rope_apply(k_.data() + t * Dkv, n_kv_, hd, cs, sn, rope_);
      const int32_t block = (*s.block_table)[pos / bs];
      for (int32_t h = 0; h < n_kv_; ++h) {
        quantize_row(kv_elem, k_.data() + t * Dkv + h * hd, krow, hd);
        quantize_row(kv_elem, v_.data() + t * Dkv + h * hd, vrow, hd);
        kv.store(il, block, h, pos % bs, krow, vrow);
      }
    }
  }

  // One work item per (token, local kv head): the local query heads of that
  // kv head's group attend causally over the sequence's cached positions. An
  // item whose context is long is split into parts of whole 64-position chunks,
  // one task each, merged afterwards, so that few items (decode of a few
  // sequences: 3 KV heads on 2 threads) still spread over the threads. The
  // number of parts is a function of the token's own context length alone,
  // never of the batch or the thread count: the split changes the rounding, and
  // a request's result must not depend on what runs beside it (batch
  // invariance) nor on the layout.
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int32_t nth = pool.size();
  auto parts_of = [](int32_t n_ctx) { return std::clamp((n_ctx + 255) / 256, 1, 8); };
  attn_tasks_.clear();
  int32_t n_split = 0;  // tasks that write a partial result
  for (int64_t t = 0; t < T; ++t) {
    const int32_t parts = parts_of(batch.positions[t] + 1);
    for (int32_t h = 0; h < n_kv_; ++h)
      for (int32_t p = 0; p < parts; ++p)
        attn_tasks_.push_back({static_cast<int32_t>(t), h, p, parts, parts > 1 ? n_split++ : -1});
  }
  const int64_t n_tasks = static_cast<int64_t>(attn_tasks_.size());
  if (n_split > 0) {
    grow(part_acc_, static_cast<size_t>(n_split) * group * hd);
    grow(part_mx_, static_cast<size_t>(n_split) * group);
    grow(part_sum_, static_cast<size_t>(n_split) * group);
  }
  // Local query heads [qa, qb) belonging to global kv head kv_begin_ + h.
  auto q_range = [&](int32_t h) {
    const int32_t g = kv_begin_ + h;
    return std::pair<int32_t, int32_t>(std::max(g * group, q_begin_) - q_begin_,
                                       std::min((g + 1) * group, q_begin_ + n_q_) - q_begin_);
  };
  if (static_cast<int32_t>(blk_ptrs_.size()) < nth) blk_ptrs_.resize(nth);
  pool.run([&](int ith, int nth_run) {
    std::vector<const void*>& ptrs = blk_ptrs_[ith];  // distinct per concurrent ith (ThreadPool::run)
    for (int64_t task = ith; task < n_tasks; task += nth_run) {
      const AttnTask& a = attn_tasks_[task];
      const int64_t t = a.token;
      const auto [qa, qb] = q_range(a.head);
      if (qb <= qa) continue;
      const BatchSeq& s = batch.seqs[seq_of_[t]];
      const int32_t n_ctx = batch.positions[t] + 1;  // causal
      const int32_t n_blk = (n_ctx + bs - 1) / bs;
      if (static_cast<int32_t>(ptrs.size()) < 2 * n_blk) ptrs.resize(2 * n_blk);
      const void** kb = ptrs.data();
      const void** vb = kb + n_blk;
      for (int32_t b = 0; b < n_blk; ++b) {
        kb[b] = kv.k(il, (*s.block_table)[b], a.head);
        vb[b] = kv.v(il, (*s.block_table)[b], a.head);
      }
      PagedKv pk{kb, vb, bs, hd, kv.type() == KvType::kF16, kv.type() == KvType::kQ8_0};
      const float* q = q_.data() + t * Dq + int64_t(qa) * hd;
      if (a.parts == 1) {
        nn::attend(q, qb - qa, pk, n_ctx, scale, attn_.data() + t * Dq + int64_t(qa) * hd);
        continue;
      }
      const int32_t n_chunks = (n_ctx + 63) / 64;
      const int32_t p0 = 64 * (n_chunks * a.part / a.parts);
      const int32_t p1 = std::min(n_ctx, 64 * (n_chunks * (a.part + 1) / a.parts));
      nn::attend_partial(q, qb - qa, pk, p0, p1, scale, part_acc_.data() + int64_t(a.slot) * group * hd,
                         part_mx_.data() + int64_t(a.slot) * group, part_sum_.data() + int64_t(a.slot) * group);
    }
  });
  if (n_split == 0) return;
  for (int64_t task = 0; task < n_tasks;) {
    const AttnTask& a = attn_tasks_[task];
    if (a.parts > 1) {
      const auto [qa, qb] = q_range(a.head);
      if (qb > qa)
        nn::attend_merge(a.parts, qb - qa, hd, group, part_acc_.data() + int64_t(a.slot) * group * hd,
                         part_mx_.data() + int64_t(a.slot) * group, part_sum_.data() + int64_t(a.slot) * group,
                         attn_.data() + int64_t(a.token) * Dq + int64_t(qa) * hd);
    }
    task += a.parts;
  }
}

}  // namespace parallama
