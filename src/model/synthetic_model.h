// Small llama-style GGUF models with random weights, for tests and benchmarks
// that must not depend on a downloaded model.
//
// Tensor names and layouts follow llama.cpp (dims in GGUF order: dims[0] is
// the row length = input features). The tokenizer is GPT-2 style byte-level
// BPE: the 256 byte tokens, three ChatML-ish control tokens, a few merges and
// filler tokens up to n_vocab.
//
// Row lengths (n_embd, n_ff, n_head*head_dim) must be multiples of the block
// size of weight_type (32 for Q4_0/Q4_1/Q8_0, 256 for the K types, e.g.
// n_head=4, head_dim=64, n_ff=512 for Q4_K); n_embd must also be a multiple of
// the block size of embd_type.
#pragma once

#include <cstdint>
#include <string>

#include "core/ggml_type.h"

namespace parallama {

struct SyntheticModelSpec {
  std::string arch = "llama";
  int n_layer = 2;
  int n_head = 4;
  int n_head_kv = 2;
  int head_dim = 16;
  int n_embd = 0;  // 0: n_head * head_dim
  int n_ff = 96;
  int n_vocab = 300;  // >= 259: 256 byte tokens + 3 control tokens
  int n_ctx = 256;
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  GgmlType weight_type = GgmlType::Q8_0;  // attention and FFN matrices (and output.weight)
  GgmlType embd_type = GgmlType::F32;     // token_embd.weight
  bool tied_output = true;                // no output.weight: logits use token_embd
  bool qkv_bias = false;                  // attn_{q,k,v}.bias (F32)
  uint64_t seed = 1;

  int embd() const { return n_embd > 0 ? n_embd : n_head * head_dim; }
};

// Token ids of the synthetic vocabulary.
struct SyntheticVocab {
  static constexpr int kEndOfText = 256;  // "<|endoftext|>": bos and eos
  static constexpr int kImStart = 257;    // "<|im_start|>"
  static constexpr int kImEnd = 258;      // "<|im_end|>"
};

// Throws parallama::Error on an inconsistent spec or an I/O failure.
void write_synthetic_model(const std::string& path, const SyntheticModelSpec& spec);

}  // namespace parallama
