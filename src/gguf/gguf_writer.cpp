#include "gguf/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/check.h"

namespace parallama {

namespace {

class ByteSink {
 public:
  explicit ByteSink(std::vector<uint8_t>& out) : out_(out) {}
  template <typename T>
  void put(T v) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t alignment) {
    while (out_.size() % alignment) out_.push_back(0);
  }

 private:
  std::vector<uint8_t>& out_;
};

// Writes the payload of v (its type tag is written by the caller).
void put_value(ByteSink& b, const GgufValue& v, const std::string& key) {
  switch (v.type) {
    case GgufValueType::UINT8: b.put<uint8_t>(static_cast<uint8_t>(v.u)); break;
    case GgufValueType::INT8: b.put<int8_t>(static_cast<int8_t>(v.i)); break;
    case GgufValueType::UINT16: b.put<uint16_t>(static_cast<uint16_t>(v.u)); break;
    case GgufValueType::INT16: b.put<int16_t>(static_cast<int16_t>(v.i)); break;
    case GgufValueType::UINT32: b.put<uint32_t>(static_cast<uint32_t>(v.u)); break;
    case GgufValueType::INT32: b.put<int32_t>(static_cast<int32_t>(v.i)); break;
    case GgufValueType::UINT64: b.put<uint64_t>(v.u); break;
    case GgufValueType::INT64: b.put<int64_t>(v.i); break;
    case GgufValueType::FLOAT32: b.put<float>(static_cast<float>(v.f)); break;
    case GgufValueType::FLOAT64: b.put<double>(v.f); break;
    case GgufValueType::BOOL: b.put<uint8_t>(v.u ? 1 : 0); break;
    case GgufValueType::STRING: b.put_string(v.s); break;
    case GgufValueType::ARRAY:
      b.put<uint32_t>(static_cast<uint32_t>(v.elem_type));
      b.put<uint64_t>(v.arr.size());
      for (const GgufValue& e : v.arr) {
        if (e.type != v.elem_type)
          PL_THROW("GGUF writer: key '" << key << "': array of " << gguf_value_type_name(v.elem_type)
                                        << " holds a " << gguf_value_type_name(e.type));
        put_value(b, e, key);
      }
      break;
    default: PL_THROW("GGUF writer: key '" << key << "': unknown value type "
                                           << static_cast<uint32_t>(v.type));
  }
}

GgufValue scalar(GgufValueType t) {
  GgufValue v;
  v.type = t;
  return v;
}

GgufValue array_of(GgufValueType t) {
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.elem_type = t;
  return v;
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue v) {
  for (GgufKV& kv : kvs_) {
    if (kv.key == key) {
      kv.value = std::move(v);
      return;
    }
  }
  kvs_.push_back({key, std::move(v)});
}

void GgufWriter::set_u32(const std::string& key, uint32_t x) {
  GgufValue v = scalar(GgufValueType::UINT32);
  v.u = x;
  set(key, std::move(v));
}

void GgufWriter::set_i32(const std::string& key, int32_t x) {
  GgufValue v = scalar(GgufValueType::INT32);
  v.i = x;
  set(key, std::move(v));
}

void GgufWriter::set_f32(const std::string& key, float x) {
  GgufValue v = scalar(GgufValueType::FLOAT32);
  v.f = x;
  set(key, std::move(v));
}

void GgufWriter::set_bool(const std::string& key, bool x) {
  GgufValue v = scalar(GgufValueType::BOOL);
  v.u = x ? 1 : 0;
  set(key, std::move(v));
}

void GgufWriter::set_string(const std::string& key, const std::string& x) {
  GgufValue v = scalar(GgufValueType::STRING);
  v.s = x;
  set(key, std::move(v));
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& xs) {
  GgufValue v = array_of(GgufValueType::STRING);
  v.arr.reserve(xs.size());
  for (const std::string& x : xs) {
    GgufValue e = scalar(GgufValueType::STRING);
    e.s = x;
    v.arr.push_back(std::move(e));
  }
  set(key, std::move(v));
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& xs) {
  GgufValue v = array_of(GgufValueType::FLOAT32);
  v.arr.reserve(xs.size());
  for (float x : xs) {
    GgufValue e = scalar(GgufValueType::FLOAT32);
    e.f = x;
    v.arr.push_back(std::move(e));
  }
  set(key, std::move(v));
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& xs) {
  GgufValue v = array_of(GgufValueType::INT32);
  v.arr.reserve(xs.size());
  for (int32_t x : xs) {
    GgufValue e = scalar(GgufValueType::INT32);
    e.i = x;
    v.arr.push_back(std::move(e));
  }
  set(key, std::move(v));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& dims,
                            GgmlType type, const void* data, size_t n_bytes) {
  const TypeTraits tr = type_traits(type);
  if (!tr.name) PL_THROW("GGUF writer: tensor '" << name << "': unknown type " << type_name(type));
  if (dims.empty() || dims.size() > 4)
    PL_THROW("GGUF writer: tensor '" << name << "' has " << dims.size() << " dimensions (must be 1 to 4)");
  int64_t n_el = 1;
  for (int64_t d : dims) {
    if (d <= 0) PL_THROW("GGUF writer: tensor '" << name << "' has a non-positive dimension " << d);
    if (__builtin_mul_overflow(n_el, d, &n_el))
      PL_THROW("GGUF writer: tensor '" << name << "' element count overflows");
  }
  if (dims[0] % tr.block_size != 0)
    PL_THROW("GGUF writer: tensor '" << name << "' row length " << dims[0]
                                     << " is not a multiple of the block size " << tr.block_size
                                     << " of " << tr.name);
  const uint64_t expect = static_cast<uint64_t>(n_el / tr.block_size) * tr.type_size;
  if (n_bytes != expect)
    PL_THROW("GGUF writer: tensor '" << name << "' has " << n_bytes << " bytes, expected " << expect);
  for (const Tensor& t : tensors_)
    if (t.name == name) PL_THROW("GGUF writer: duplicate tensor name '" << name << "'");
  Tensor t{name, dims, type, {}};
  const uint8_t* p = static_cast<const uint8_t*>(data);
  t.data.assign(p, p + n_bytes);
  tensors_.push_back(std::move(t));
}

std::vector<uint8_t> GgufWriter::to_bytes(uint64_t alignment) const {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    PL_THROW("GGUF writer: alignment " << alignment << " is not a non-zero power of two");

  // The reader only knows the alignment from metadata, so record any non-default one.
  std::vector<const GgufKV*> kvs;
  bool has_alignment = false;
  for (const GgufKV& kv : kvs_) {
    if (kv.key == "general.alignment") {
      has_alignment = true;
      if (!kv.value.is_integer() || static_cast<uint64_t>(kv.value.as_int()) != alignment)
        PL_THROW("GGUF writer: general.alignment in metadata does not match alignment "
                 << alignment);
    }
    kvs.push_back(&kv);
  }
  GgufKV align_kv{"general.alignment", scalar(GgufValueType::UINT32)};
  align_kv.value.u = alignment;
  if (!has_alignment && alignment != 32) {
    if (alignment > 0xffffffffu) PL_THROW("GGUF writer: alignment " << alignment << " too large");
    kvs.push_back(&align_kv);
  }

  std::vector<uint8_t> out;
  ByteSink b(out);
  b.put<uint32_t>(0x46554747u);  // "GGUF" read as a little-endian u32
  b.put<uint32_t>(3);
  b.put<uint64_t>(tensors_.size());
  b.put<uint64_t>(kvs.size());
  for (const GgufKV* kv : kvs) {
    b.put_string(kv->key);
    b.put<uint32_t>(static_cast<uint32_t>(kv->value.type));
    put_value(b, kv->value, kv->key);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    b.put_string(t.name);
    b.put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) b.put<uint64_t>(static_cast<uint64_t>(d));
    b.put<uint32_t>(static_cast<uint32_t>(t.type));
    b.put<uint64_t>(offset);
    offset += t.data.size();
    offset += (alignment - offset % alignment) % alignment;
  }
  b.pad_to(alignment);
  for (const Tensor& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    b.pad_to(alignment);
  }
  return out;
}

void GgufWriter::write(const std::string& path, uint64_t alignment) const {
  const std::vector<uint8_t> bytes = to_bytes(alignment);
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) PL_THROW(path << ": cannot create: " << std::strerror(errno));
  if (std::fwrite(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
    PL_THROW(path << ": write failed: " << std::strerror(errno));
  FILE* raw = f.release();
  if (std::fclose(raw) != 0) PL_THROW(path << ": write failed: " << std::strerror(errno));
}

}  // namespace parallama
