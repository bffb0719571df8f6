#include "model/linear.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "ops/matmul_exact.h"
#include "ops/quant.h"
#include "parallel/communicator.h"

namespace parallama {

namespace {
std::string supported_types() { return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K"; }

void expect_supported(const GgufFile& f, const GgufTensorInfo& t) {
  if (!type_traits(t.type).supported)
    PL_THROW(f.path() << ": tensor '" << t.name << "' has type " << type_name(t.type)
                      << ", which Parallama does not support (supported: " << supported_types()
                      << ")");
}
}  // namespace

const GgufTensorInfo& expect_tensor(const GgufFile& f, const std::string& name, int64_t n_in,
                                    int64_t n_out) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t) PL_THROW(f.path() << ": tensor '" << name << "' is missing");
  expect_supported(f, *t);
  const bool ok = t->dims.size() == 2 && t->dims[0] == n_in && t->dims[1] == n_out;
  if (!ok) {
    std::string got;
    for (size_t i = 0; i < t->dims.size(); ++i) {
      if (i) got += ',';
      got += std::to_string(t->dims[i]);
    }
    PL_THROW(f.path() << ": tensor '" << name << "' has shape [" << got << "], expected ["
                      << n_in << "," << n_out << "]");
  }
  return *t;
}

std::vector<float> load_vector(const GgufFile& f, const std::string& name, int64_t n) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t) PL_THROW(f.path() << ": tensor '" << name << "' is missing");
  expect_supported(f, *t);
  if (t->n_elements() != n)
    PL_THROW(f.path() << ": tensor '" << name << "' has " << t->n_elements()
                      << " elements, expected " << n);
  std::vector<float> v(n);
  dequantize_row(t->ggml_type(), f.tensor_data(*t), v.data(), n);
  return v;
}

Linear Linear::load(const GgufFile& f, const std::string& base, int64_t n_in, int64_t n_out,
                    bool bias) {
  return load_rows(f, base, n_in, n_out, 0, n_out, bias);
}

Linear Linear::load_rows(const GgufFile& f, const std::string& base, int64_t n_in, int64_t n_out,
                         int64_t r0, int64_t r1, bool bias) {
  const GgufTensorInfo& t = expect_tensor(f, base + ".weight", n_in, n_out);
  PL_CHECK(0 <= r0 && r0 <= r1 && r1 <= n_out);
  Linear l;
  const size_t row = row_size(t.ggml_type(), n_in);
  l.w_ = WeightView{f.tensor_data(t) + r0 * row, t.ggml_type(), r1 - r0, n_in};
  if (bias && f.find_tensor(base + ".bias")) {
    std::vector<float> b = load_vector(f, base + ".bias", n_out);
    l.bias_.assign(b.begin() + r0, b.begin() + r1);
  }
  return l;
}

void Linear::add_bias(float* y, int64_t n_tok) const {
  if (bias_.empty()) return;
  for (int64_t t = 0; t < n_tok; ++t) {
    float* row = y + t * n_out();
    for (int64_t i = 0; i < n_out(); ++i) row[i] += bias_[i];
  }
}

void Linear::forward(const float* x, int64_t n_tok, float* y, ThreadPool& pool) const {
  if (n_out() == 0) return;
  matmul(w_, x, n_tok, y, pool);
  add_bias(y, n_tok);
}

void Linear::forward_many(const Linear* const* layers, float* const* y, int n, const float* x, int64_t n_tok,
                          ThreadPool& pool) {
  PL_CHECK_MSG(n >= 0 && n <= 4, "Linear::forward_many: 0 to 4 layers, got " << n);
  const WeightView* w[4] = {};
  float* out[4] = {};
  int m = 0;
  for (int i = 0; i < n; ++i) {
    if (layers[i]->n_out() == 0) continue;  // an empty shard (e.g. no heads on this rank)
    w[m] = &layers[i]->w_;
    out[m++] = y[i];
  }
  matmul_many(w, out, m, x, n_tok, pool);
  for (int i = 0; i < n; ++i) layers[i]->add_bias(y[i], n_tok);
}

RowParallelLinear RowParallelLinear::load(const GgufFile& f, const std::string& base, int64_t n_in,
                                          int64_t n_out, int64_t c0, int64_t c1, RowReduction reduction) {
  const GgufTensorInfo& t = expect_tensor(f, base + ".weight", n_in, n_out);
  PL_CHECK(0 <= c0 && c0 <= c1 && c1 <= n_in);
  RowParallelLinear l;
  l.reduction_ = reduction;
  const GgmlType type = t.ggml_type();
  const int64_t blk = type_traits(type).block_size;
  const int64_t w0 = c0 / blk * blk;                              // widen to whole blocks
  const int64_t w1 = std::min(n_in, (c1 + blk - 1) / blk * blk);
  l.pad_front_ = c0 - w0;
  l.n_slice_ = c1 - c0;
  const int64_t wide = w1 - w0;
  if (wide == n_in) {  // whole rows: point into the mapping
    l.w_ = WeightView{f.tensor_data(t), type, n_out, n_in};
    return l;
  }
  const size_t src_row = row_size(type, n_in), dst_row = row_size(type, wide);
  const size_t skip = row_size(type, w0);
  l.storage_.resize(dst_row * n_out);
  const uint8_t* src = f.tensor_data(t);
  for (int64_t r = 0; r < n_out; ++r)
    std::memcpy(l.storage_.data() + r * dst_row, src + r * src_row + skip, dst_row);
  l.w_ = WeightView{l.storage_.data(), type, n_out, wide};
  // The copy read pages of the whole tensor (slices of every row share pages);
  // drop them from this process so it stays resident for its slice only.
  release_mapped_pages(src, t.n_bytes);
  return l;
}

size_t RowParallelLinear::weight_bytes() const {
  return w_.n_cols == 0 ? 0 : row_size(w_.type, w_.n_cols) * static_cast<size_t>(w_.n_rows);
}

RowReduction row_reduction_for(const GgufFile& f) {
  for (const GgufTensorInfo& t : f.tensors()) {
    const GgmlType type = t.ggml_type();
    const bool is_float = type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16;
    if (t.dims.size() >= 2 && !is_float) return RowReduction::kExact;
  }
  return RowReduction::kFloat;
}

void RowParallelLinear::forward(const float* x, int64_t n_tok, float* y, ThreadPool& pool,
                                Communicator* comm) {
  const int64_t wide = w_.n_cols;
  const size_t n = static_cast<size_t>(n_tok * n_out());
  const float* xin = x;
  if (wide != n_slice_ && wide > 0 && n_slice_ > 0) {  // widened: zero the neighbours' columns
    xwide_.assign(static_cast<size_t>(n_tok * wide), 0.0f);
    for (int64_t t = 0; t < n_tok; ++t)
      std::copy_n(x + t * n_slice_, n_slice_, xwide_.data() + t * wide + pad_front_);
    xin = xwide_.data();
  }
  if (reduction_ == RowReduction::kFloat) {
    if (wide == 0 || n_slice_ == 0) std::fill(y, y + n, 0.0f);
    else matmul(w_, xin, n_tok, y, pool);
    if (comm && comm->size() > 1) comm->all_reduce_sum(y, n);
    return;
  }
  if (ysum_.size() < n) ysum_.resize(n);
  double* s = ysum_.data();
  if (wide == 0 || n_slice_ == 0) std::fill(s, s + n, 0.0);
  else matmul_exact(w_, xin, n_tok, s, pool);
  if (comm && comm->size() > 1) comm->all_reduce_sum(s, n);
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(s[i]);  // the one rounding
}

}  // namespace parallama
