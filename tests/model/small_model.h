// A small synthetic model file for layer tests: 4 query / 2 KV heads of 32,
// n_embd 128, MLP width 256, matrices in `weights`, f32 embeddings.
#pragma once

#include <memory>
#include <string>

#include "gguf/gguf_file.h"
#include "model/synthetic_model.h"
#include "test_util.h"

namespace parallama::test {

inline std::unique_ptr<GgufFile> small_model(GgmlType weights, const std::string& name) {
  SyntheticModelSpec s;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = 32;
  s.n_ff = 256;
  s.weight_type = weights;
  s.embd_type = GgmlType::F32;
  const std::string path = temp_path(name);
  write_synthetic_model(path, s);
  return GgufFile::open(path);
}

}  // namespace parallama::test
