// Hyper-parameters of a LLaMA-family model, read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

#include "ops/nn.h"

namespace parallama {

class GgufFile;

struct ModelConfig {
  std::string arch;        // general.architecture: llama, mistral, qwen2
  std::string name;        // general.name
  int32_t n_layer = 0;
  int32_t n_embd = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;    // key/value length per head
  int32_t n_ff = 0;
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;
  float rms_eps = 1e-5f;
  RopeType rope_type = RopeType::NORM;
  int32_t n_rot = 0;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;
  bool tied_output = false;  // output head shares token_embd
  bool qkv_bias = false;

  // Reads and validates; throws Error naming the file and the key.
  static ModelConfig from_gguf(const GgufFile& f);
  std::string summary() const;  // one line for logs
};

}  // namespace parallama
