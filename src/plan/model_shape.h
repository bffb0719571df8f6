// What the planner needs to know about a model: its dimensions and how many
// bytes its weights take, per transformer layer, for the output head and for
// the token embedding. Built from a catalogue entry and a weight type (bf16,
// fp16, or a GGUF quantization such as q4_0 at 4.5 bits per weight), or from a
// GGUF file, whose metadata is read as src/model reads it (ModelConfig) and
// whose byte counts are the tensors' own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plan/catalog.h"

namespace parallama {
class GgufFile;
}

namespace parallama::plan {

struct ModelShape : ModelDims {  // the dimensions (catalog.h), then what the weights take
  std::string name;          // catalogue name or GGUF general.name
  std::string dtype;         // weight type: "bf16", "q4_0", ..., or "gguf" (as stored)
  int64_t weight_bytes = 0;        // every weight as stored (embedding, layers, norms, head once)
  int64_t layer_weight_bytes = 0;  // one transformer layer (matrices and norms); the mean when layers differ
  int64_t head_bytes = 0;          // output head (lm_head); the embedding's size when tied
  int64_t embd_bytes = 0;          // token embedding
  // [n_layers] bytes of each layer where they differ (a GGUF file may give some
  // layers a wider type); empty: every layer has layer_weight_bytes.
  std::vector<int64_t> layer_bytes;

  // Bytes of layer i (0-based).
  int64_t bytes_of_layer(int64_t i) const;
  // Weights outside the layers, the embedding and the head: the final norm.
  int64_t other_bytes() const;
  // Matrix parameters of one layer: q, k, v, o and the three FFN matrices
  // (norms and biases are negligible in flops).
  int64_t layer_params() const;
  // Parameters of the output head (n_vocab x n_embd).
  int64_t head_params() const { return n_vocab * n_embd; }
};

// Bytes one weight takes in `dtype`: "bf16", "fp16"/"f16" = 2, "fp32"/"f32" = 4,
// or any GGUF type name the project knows ("q4_0" = 18 bytes / 32 = 0.5625,
// "q4_k", "q8_0", ...; case-insensitive). Throws parallama::Error listing the
// accepted names.
double dtype_bytes_per_param(const std::string& dtype);

// A catalogue model with every weight (norms included) in `dtype`: a
// quantized file's norms are f32 and its embedding may be another type, which
// these estimates ignore (norms are < 0.01% of the bytes).
ModelShape shape_from_spec(const ModelSpec& spec, const std::string& dtype);

// From a GGUF file: ModelConfig::from_gguf's dimensions, and byte counts summed
// over the tensor infos (blk.N.* per layer, token_embd.weight, output.weight;
// when tied the head is token_embd.weight).
ModelShape shape_from_gguf(const GgufFile& file);
ModelShape shape_from_gguf(const std::string& path);

}  // namespace parallama::plan
