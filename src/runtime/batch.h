// The forward pass input: many sequences at once, flattened.
//
// Tokens of one sequence are contiguous. Each sequence brings its KV-cache
// block table, so prefill of a long prompt and decode of many sequences are
// the same call: a decode step is a batch of 1-token sequences.
//
//   tokens     t0 t1 t2 t3 | u0 | v0 v1
//   positions   0  1  2  3 | 17 |  5  6
//   seqs       {begin 0, n 4, ctx 4} {begin 4, n 1, ctx 18} {begin 5, n 2, ctx 7}
#pragma once

#include <cstdint>
#include <vector>

namespace parallama {

struct BatchSeq {
  int32_t token_begin = 0;  // index of its first token in Batch::tokens
  int32_t n_tokens = 0;     // tokens of this sequence in the batch
  int32_t n_ctx = 0;        // cached tokens after this batch = position of last token + 1
  const std::vector<int32_t>* block_table = nullptr;  // KV blocks, covering n_ctx tokens
  bool want_logits = true;  // produce logits for its last token
};

struct Batch {
  std::vector<int32_t> tokens;     // [n_tokens] token ids
  std::vector<int32_t> positions;  // [n_tokens] absolute positions in their sequence
  std::vector<BatchSeq> seqs;      // [n_seqs]

  int32_t n_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t n_seqs() const { return static_cast<int32_t>(seqs.size()); }
  int32_t n_outputs() const {
    int32_t n = 0;
    for (const auto& s : seqs) n += s.want_logits ? 1 : 0;
    return n;
  }

  // Appends a sequence's new tokens, at positions n_past, n_past+1, ...
  void add_seq(const int32_t* ids, int32_t n, int32_t n_past,
               const std::vector<int32_t>* block_table, bool want_logits = true) {
    BatchSeq s;
    s.token_begin = n_tokens();
    s.n_tokens = n;
    s.n_ctx = n_past + n;
    s.block_table = block_table;
    s.want_logits = want_logits;
    for (int32_t i = 0; i < n; ++i) {
      tokens.push_back(ids[i]);
      positions.push_back(n_past + i);
    }
    seqs.push_back(s);
  }
  void clear() {
    tokens.clear();
    positions.clear();
    seqs.clear();
  }
};

}  // namespace parallama
