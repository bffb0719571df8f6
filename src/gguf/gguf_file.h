// Read-only view of a GGUF file (format versions 2 and 3), memory-mapped.
//
// Layout: header (magic "GGUF", version, tensor count, kv count), metadata
// key/values, tensor infos (name, dims, type, offset), padding to
// `general.alignment` (default 32), then the tensor data section.
// Every count, length, type and offset is validated against the file size;
// a bad file raises parallama::Error naming the file and the problem.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/ggml_type.h"

namespace parallama {

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

const char* gguf_value_type_name(GgufValueType t);

// One metadata value. Scalars live in the fields below; arrays hold their
// elements (arrays of arrays are allowed by the format and kept nested).
struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  uint64_t u = 0;         // UINT8/16/32/64, BOOL (0/1)
  int64_t i = 0;          // INT8/16/32/64
  double f = 0.0;         // FLOAT32/64
  std::string s;          // STRING
  GgufValueType elem_type = GgufValueType::UINT8;  // ARRAY element type
  std::vector<GgufValue> arr;                      // ARRAY elements

  bool is_integer() const;
  bool is_float() const;
  // Integer value of any integer type (or BOOL); throws if not an integer.
  int64_t as_int() const;
  // Numeric value of any integer or float type.
  double as_double() const;
  // Human-readable rendering; arrays are cut after max_items elements.
  std::string to_string(size_t max_items = 8) const;
};

struct GgufKV {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ne[0] first: dims[0] is the row length (fastest-varying)
  uint32_t type = 0;          // raw ggml type id (see GgmlType); validated to be known
  uint64_t offset = 0;        // byte offset inside the data section
  uint64_t n_bytes = 0;       // computed from dims and type
  int64_t n_elements() const;
  GgmlType ggml_type() const { return static_cast<GgmlType>(type); }
};

class GgufFile {
 public:
  // Opens and validates; throws parallama::Error("<path>: <problem>").
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses an in-memory image (used by the fuzzer and tests); `name` is used in errors.
  static std::unique_ptr<GgufFile> from_memory(const uint8_t* data, size_t size,
                                               const std::string& name);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  size_t file_size() const { return size_; }

  const std::vector<GgufKV>& metadata() const { return kvs_; }
  const GgufValue* find(std::string_view key) const;  // nullptr if absent
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters: throw Error naming the file and key if absent or of the wrong type.
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;  // any integer type
  double get_float(std::string_view key) const; // any numeric type
  bool get_bool(std::string_view key) const;
  // With defaults: return `def` when absent (still throw on a wrong type).
  std::string get_string(std::string_view key, const std::string& def) const;
  int64_t get_int(std::string_view key, int64_t def) const;
  double get_float(std::string_view key, double def) const;
  bool get_bool(std::string_view key, bool def) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<double> get_float_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;  // nullptr if absent
  // Pointer to the tensor's bytes inside the mapping (n_bytes long, bounds-checked at open).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const;
  // Start of the data section and the whole mapping, for partial (sharded) reads.
  const uint8_t* data_section() const { return base_ + data_offset_; }
  const uint8_t* mapping() const { return base_; }

 private:
  GgufFile() = default;
  void parse();

  std::string path_;
  const uint8_t* base_ = nullptr;  // mapping or caller's buffer
  size_t size_ = 0;
  bool mmapped_ = false;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> kvs_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;  // name -> index in tensors_
};

}  // namespace parallama
