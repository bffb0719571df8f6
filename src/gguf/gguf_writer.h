// Writes GGUF v3 files: used by the synthetic-model tool and by tests that
// need small models or deliberately corrupt files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"

namespace parallama {

class GgufWriter {
 public:
  void set(const std::string& key, GgufValue v);  // replaces an existing key
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);

  // dims[0] is the row length. `data` must hold exactly the tensor's bytes.
  void add_tensor(const std::string& name, const std::vector<int64_t>& dims, GgmlType type,
                  const void* data, size_t n_bytes);

  // Serialises everything; throws Error on I/O failure.
  std::vector<uint8_t> to_bytes(uint64_t alignment = 32) const;
  void write(const std::string& path, uint64_t alignment = 32) const;

 private:
  std::vector<GgufKV> kvs_;
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    GgmlType type;
    std::vector<uint8_t> data;
  };
  std::vector<Tensor> tensors_;
};

}  // namespace parallama
