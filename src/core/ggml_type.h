// Tensor element types as numbered in the GGUF format (ggml_type), and their
// block geometry. Quantized types store `block_size` elements in `type_size` bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace parallama {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

struct TypeTraits {
  const char* name;   // "Q4_K"; nullptr for ids we do not know
  int64_t block_size; // elements per block
  int64_t type_size;  // bytes per block
  bool supported;     // we can compute with it
};

// Traits for any raw GGUF type id; unknown ids get name == nullptr.
TypeTraits type_traits(uint32_t type_id);
inline TypeTraits type_traits(GgmlType t) { return type_traits(static_cast<uint32_t>(t)); }

// "Q4_K", or "unknown(42)".
std::string type_name(uint32_t type_id);
inline std::string type_name(GgmlType t) { return type_name(static_cast<uint32_t>(t)); }

// Bytes taken by a row of n elements; n must be a multiple of the block size.
size_t row_size(GgmlType t, int64_t n);

}  // namespace parallama
