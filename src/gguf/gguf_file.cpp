#include "gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "core/check.h"

namespace parallama {

namespace {

constexpr uint32_t kMaxDims = 4;
// Arrays of arrays are legal, but real files never nest; a bound keeps the
// recursive parser's stack use small on hostile input.
constexpr int kMaxArrayDepth = 16;

// Size in bytes of a scalar value type; 0 for STRING/ARRAY/unknown.
size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64: return 8;
    case GgufValueType::STRING:
    case GgufValueType::ARRAY: break;
  }
  return 0;
}

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::FLOAT64); }

// Fewest bytes one value of type t can occupy in the file (used to reject
// counts that the remaining bytes could never hold before allocating).
size_t min_encoded_size(GgufValueType t) {
  if (t == GgufValueType::STRING) return 8;       // u64 length
  if (t == GgufValueType::ARRAY) return 4 + 8;    // element type + count
  return scalar_size(t);
}

// Bounds-checked little-endian reader over the file image.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& msg) const { throw Error(name_ + ": " + msg); }

  void need(size_t n, const char* what) const {
    if (n > remaining())
      fail("truncated file: need " + std::to_string(n) + " bytes for " + what + " at offset " +
           std::to_string(pos_) + ", but the file has " + std::to_string(size_) + " bytes");
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const size_t at = pos_;
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      fail(std::string(what) + ": string of length " + std::to_string(len) + " at offset " +
           std::to_string(at) + " runs past end of file");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

// Reads one value of type t (the tag has already been read). `key` is for errors.
GgufValue read_value(Cursor& c, GgufValueType t, const std::string& key, int depth) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufValueType::UINT8: v.u = c.read<uint8_t>("uint8 value"); break;
    case GgufValueType::INT8: v.i = c.read<int8_t>("int8 value"); break;
    case GgufValueType::UINT16: v.u = c.read<uint16_t>("uint16 value"); break;
    case GgufValueType::INT16: v.i = c.read<int16_t>("int16 value"); break;
    case GgufValueType::UINT32: v.u = c.read<uint32_t>("uint32 value"); break;
    case GgufValueType::INT32: v.i = c.read<int32_t>("int32 value"); break;
    case GgufValueType::UINT64: v.u = c.read<uint64_t>("uint64 value"); break;
    case GgufValueType::INT64: v.i = c.read<int64_t>("int64 value"); break;
    case GgufValueType::FLOAT32: v.f = c.read<float>("float32 value"); break;
    case GgufValueType::FLOAT64: v.f = c.read<double>("float64 value"); break;
    case GgufValueType::BOOL: {
      v.u = c.read<uint8_t>("bool value") != 0 ? 1 : 0;
      break;
    }
    case GgufValueType::STRING: v.s = c.read_string("string value"); break;
    case GgufValueType::ARRAY: {
      if (depth >= kMaxArrayDepth) c.fail("key '" + key + "': arrays nested too deeply");
      const uint32_t et = c.read<uint32_t>("array element type");
      if (!known_value_type(et))
        c.fail("key '" + key + "': unknown value type " + std::to_string(et) + " in array");
      v.elem_type = static_cast<GgufValueType>(et);
      const uint64_t n = c.read<uint64_t>("array length");
      const size_t min_sz = min_encoded_size(v.elem_type);
      if (n > c.remaining() / min_sz)
        c.fail("key '" + key + "': array length " + std::to_string(n) +
               " is larger than the file could hold");
      v.arr.reserve(static_cast<size_t>(n));
      for (uint64_t k = 0; k < n; ++k) v.arr.push_back(read_value(c, v.elem_type, key, depth + 1));
      break;
    }
  }
  return v;
}

void append_escaped(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (ch < 0x20 || ch == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", ch);
          out += buf;
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
  out += '"';
}

template <typename F>
std::string shortest(F x) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}

void render(std::string& out, const GgufValue& v, size_t max_items, bool quote) {
  switch (v.type) {
    case GgufValueType::UINT8:
    case GgufValueType::UINT16:
    case GgufValueType::UINT32:
    case GgufValueType::UINT64: out += std::to_string(v.u); break;
    case GgufValueType::INT8:
    case GgufValueType::INT16:
    case GgufValueType::INT32:
    case GgufValueType::INT64: out += std::to_string(v.i); break;
    case GgufValueType::FLOAT32: out += shortest(static_cast<float>(v.f)); break;
    case GgufValueType::FLOAT64: out += shortest(v.f); break;
    case GgufValueType::BOOL: out += v.u ? "true" : "false"; break;
    case GgufValueType::STRING:
      if (quote) append_escaped(out, v.s);
      else out += v.s;
      break;
    case GgufValueType::ARRAY: {
      out += '[';
      const size_t n = std::min(max_items, v.arr.size());
      for (size_t k = 0; k < n; ++k) {
        if (k) out += ", ";
        render(out, v.arr[k], max_items, true);
      }
      if (n < v.arr.size()) {
        if (n) out += ", ";
        out += "... (" + std::to_string(v.arr.size()) + " items)";
      }
      out += ']';
      break;
    }
  }
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: return "uint8";
    case GgufValueType::INT8: return "int8";
    case GgufValueType::UINT16: return "uint16";
    case GgufValueType::INT16: return "int16";
    case GgufValueType::UINT32: return "uint32";
    case GgufValueType::INT32: return "int32";
    case GgufValueType::FLOAT32: return "float32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "string";
    case GgufValueType::ARRAY: return "array";
    case GgufValueType::UINT64: return "uint64";
    case GgufValueType::INT64: return "int64";
    case GgufValueType::FLOAT64: return "float64";
  }
  return "unknown";
}

// ---- GgufValue -------------------------------------------------------------

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::UINT8: case GgufValueType::INT8:
    case GgufValueType::UINT16: case GgufValueType::INT16:
    case GgufValueType::UINT32: case GgufValueType::INT32:
    case GgufValueType::UINT64: case GgufValueType::INT64: return true;
    default: return false;
  }
}

bool GgufValue::is_float() const {
  return type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64;
}

static bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64 || t == GgufValueType::BOOL;
}

int64_t GgufValue::as_int() const {
  if (is_unsigned(type)) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      PL_THROW("value " << u << " does not fit in int64");
    return static_cast<int64_t>(u);
  }
  if (is_integer()) return i;
  PL_THROW("value of type " << gguf_value_type_name(type) << " is not an integer");
}

double GgufValue::as_double() const {
  if (is_float()) return f;
  if (is_unsigned(type)) return static_cast<double>(u);
  if (is_integer()) return static_cast<double>(i);
  PL_THROW("value of type " << gguf_value_type_name(type) << " is not a number");
}

std::string GgufValue::to_string(size_t max_items) const {
  std::string out;
  render(out, *this, max_items, false);
  return out;
}

int64_t GgufTensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // overflow excluded at parse time
  return n;
}

// ---- GgufFile --------------------------------------------------------------

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) PL_THROW(path << ": cannot open: " << std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    PL_THROW(path << ": cannot stat: " << std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    PL_THROW(path << ": not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    PL_THROW(path << ": truncated file: empty");
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int e = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED) PL_THROW(path << ": mmap failed: " << std::strerror(e));

  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->base_ = static_cast<const uint8_t*>(p);
  f->size_ = size;
  f->mmapped_ = true;  // from here the destructor unmaps, also if parse() throws
  f->parse();
  return f;
}

std::unique_ptr<GgufFile> GgufFile::from_memory(const uint8_t* data, size_t size,
                                                const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = name;
  f->base_ = data;
  f->size_ = size;
  f->parse();
  return f;
}

GgufFile::~GgufFile() {
  if (mmapped_ && base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

void GgufFile::parse() {
  Cursor c(base_, size_, path_);

  // Header.
  c.need(4, "magic");
  if (std::memcmp(base_, "GGUF", 4) != 0) c.fail("bad magic (not a GGUF file)");
  c.read<uint32_t>("magic");
  version_ = c.read<uint32_t>("version");
  if (version_ == 1) c.fail("unsupported GGUF version 1 (too old; reconvert the model)");
  if (version_ != 2 && version_ != 3) {
    std::string hint = (version_ & 0xffff) == 0 ? " (big-endian file?)" : "";
    c.fail("unsupported GGUF version " + std::to_string(version_) + hint);
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor
  // info at least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
  if (n_kv > c.remaining() / 13)
    c.fail("metadata count " + std::to_string(n_kv) + " is larger than the file could hold");
  if (n_tensors > c.remaining() / 32)
    c.fail("tensor count " + std::to_string(n_tensors) + " is larger than the file could hold");

  // Metadata.
  std::set<std::string, std::less<>> seen_keys;
  kvs_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    GgufKV kv;
    kv.key = c.read_string("metadata key");
    if (!seen_keys.insert(kv.key).second) c.fail("duplicate key '" + kv.key + "'");
    const uint32_t t = c.read<uint32_t>("value type");
    if (!known_value_type(t))
      c.fail("key '" + kv.key + "': unknown value type " + std::to_string(t));
    kv.value = read_value(c, static_cast<GgufValueType>(t), kv.key, 0);
    kvs_.push_back(std::move(kv));
  }

  alignment_ = 32;
  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || !is_unsigned(a->type))
      c.fail(std::string("general.alignment has type ") + gguf_value_type_name(a->type) +
             ", expected an unsigned integer");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      c.fail("general.alignment must be a non-zero power of two, got " + std::to_string(a->u));
    alignment_ = a->u;
  }

  // Tensor infos.
  std::set<std::string, std::less<>> seen_tensors;
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.read_string("tensor name");
    if (!seen_tensors.insert(t.name).second) c.fail("duplicate tensor name '" + t.name + "'");
    const std::string who = "tensor '" + t.name + "'";
    const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    if (n_dims == 0 || n_dims > kMaxDims)
      c.fail(who + " has " + std::to_string(n_dims) + " dimensions (must be 1 to 4)");
    int64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("tensor dimension");
      if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        c.fail(who + " dimension " + std::to_string(d) + " is " +
               std::to_string(static_cast<int64_t>(ne)) + " (must be positive)");
      t.dims.push_back(static_cast<int64_t>(ne));
      if (__builtin_mul_overflow(n_el, static_cast<int64_t>(ne), &n_el))
        c.fail(who + " element count overflows");
    }
    t.type = c.read<uint32_t>("tensor type");
    const TypeTraits tr = type_traits(t.type);
    if (tr.name == nullptr)
      c.fail(who + " has unknown type id " + std::to_string(t.type));
    if (t.dims[0] % tr.block_size != 0)
      c.fail(who + " row length " + std::to_string(t.dims[0]) + " is not a multiple of the block size " +
             std::to_string(tr.block_size) + " of type " + tr.name);
    // n_el / block_size * type_size fits: n_el < 2^63 and type_size / block_size < 10.
    uint64_t n_bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(n_el / tr.block_size),
                               static_cast<uint64_t>(tr.type_size), &n_bytes))
      c.fail(who + " byte size overflows");
    t.n_bytes = n_bytes;
    t.offset = c.read<uint64_t>("tensor offset");
    if (t.offset % alignment_ != 0)
      c.fail(who + " offset " + std::to_string(t.offset) + " is not aligned to " +
             std::to_string(alignment_));
    tensors_.push_back(std::move(t));
  }

  // Data section: starts at the next multiple of the alignment.
  const uint64_t end = c.pos();
  const uint64_t pad = (alignment_ - end % alignment_) % alignment_;
  if (pad > size_ - end) {
    // A file without tensors may end right after its metadata, unpadded.
    if (!tensors_.empty())
      c.fail("truncated file: data section would start at offset " +
             std::to_string(end + pad) + " past end of file (" + std::to_string(size_) + " bytes)");
    data_offset_ = size_;
  } else {
    data_offset_ = end + pad;
  }
  const uint64_t data_size = size_ - data_offset_;
  for (const GgufTensorInfo& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      c.fail("tensor '" + t.name + "' data (offset " + std::to_string(t.offset) + ", " +
             std::to_string(t.n_bytes) + " bytes) runs past end of file");
  }
  // Tensors must not share bytes: a loader may hand them out as independent buffers.
  std::vector<std::pair<uint64_t, size_t>> by_offset;
  by_offset.reserve(tensors_.size());
  for (size_t k = 0; k < tensors_.size(); ++k) by_offset.emplace_back(tensors_[k].offset, k);
  std::sort(by_offset.begin(), by_offset.end());
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensorInfo& a = tensors_[by_offset[k - 1].second];
    const GgufTensorInfo& b = tensors_[by_offset[k].second];
    if (a.offset + a.n_bytes > b.offset)
      c.fail("tensor '" + b.name + "' overlaps tensor '" + a.name + "'");
  }

  for (size_t k = 0; k < tensors_.size(); ++k) tensor_index_.emplace(tensors_[k].name, k);
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const GgufKV& kv : kvs_)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& t) const {
  return base_ + data_offset_ + t.offset;
}

// ---- typed getters ---------------------------------------------------------

namespace {
[[noreturn]] void wrong_type(const std::string& path, std::string_view key, const GgufValue& v,
                             const char* expected) {
  PL_THROW(path << ": key '" << key << "' has type " << gguf_value_type_name(v.type)
                << (v.type == GgufValueType::ARRAY
                        ? std::string(" of ") + gguf_value_type_name(v.elem_type)
                        : std::string())
                << ", expected " << expected);
}
}  // namespace

#define PL_GGUF_REQUIRE(key)                                                   \
  const GgufValue* v = find(key);                                              \
  if (!v) PL_THROW(path_ << ": missing key '" << key << "'")

std::string GgufFile::get_string(std::string_view key) const {
  PL_GGUF_REQUIRE(key);
  if (v->type != GgufValueType::STRING) wrong_type(path_, key, *v, "string");
  return v->s;
}

int64_t GgufFile::get_int(std::string_view key) const {
  PL_GGUF_REQUIRE(key);
  if (!v->is_integer()) wrong_type(path_, key, *v, "an integer");
  if (is_unsigned(v->type) && v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    PL_THROW(path_ << ": key '" << key << "' value " << v->u << " is too large");
  return v->as_int();
}

double GgufFile::get_float(std::string_view key) const {
  PL_GGUF_REQUIRE(key);
  if (!v->is_integer() && !v->is_float()) wrong_type(path_, key, *v, "a number");
  return v->as_double();
}

bool GgufFile::get_bool(std::string_view key) const {
  PL_GGUF_REQUIRE(key);
  if (v->type != GgufValueType::BOOL) wrong_type(path_, key, *v, "bool");
  return v->u != 0;
}

std::string GgufFile::get_string(std::string_view key, const std::string& def) const {
  return has(key) ? get_string(key) : def;
}
int64_t GgufFile::get_int(std::string_view key, int64_t def) const {
  return has(key) ? get_int(key) : def;
}
double GgufFile::get_float(std::string_view key, double def) const {
  return has(key) ? get_float(key) : def;
}
bool GgufFile::get_bool(std::string_view key, bool def) const {
  return has(key) ? get_bool(key) : def;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  PL_GGUF_REQUIRE(key);
  if (v->type != GgufValueType::ARRAY || v->elem_type != GgufValueType::STRING)
    wrong_type(path_, key, *v, "array of string");
  std::vector<std::string> out;
  out.reserve(v->arr.size());
  for (const GgufValue& e : v->arr) out.push_back(e.s);
  return out;
}

std::vector<double> GgufFile::get_float_array(std::string_view key) const {
  PL_GGUF_REQUIRE(key);
  GgufValue probe;
  probe.type = v->elem_type;
  if (v->type != GgufValueType::ARRAY || (!probe.is_integer() && !probe.is_float()))
    wrong_type(path_, key, *v, "array of numbers");
  std::vector<double> out;
  out.reserve(v->arr.size());
  for (const GgufValue& e : v->arr) out.push_back(e.as_double());
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  PL_GGUF_REQUIRE(key);
  GgufValue probe;
  probe.type = v->elem_type;
  if (v->type != GgufValueType::ARRAY || !probe.is_integer())
    wrong_type(path_, key, *v, "array of integers");
  std::vector<int64_t> out;
  out.reserve(v->arr.size());
  for (const GgufValue& e : v->arr) {
    if (is_unsigned(e.type) && e.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      PL_THROW(path_ << ": key '" << key << "' element " << e.u << " is too large");
    out.push_back(e.as_int());
  }
  return out;
}

#undef PL_GGUF_REQUIRE

}  // namespace parallama
