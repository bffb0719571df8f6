#include "model/linear.h"

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "ops/quant.h"

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
    for (size_t i = 0; i < t->dims.size(); ++i) got += (i ? "," : "") + std::to_string(t->dims[i]);
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
  const GgufTensorInfo& t = expect_tensor(f, base + ".weight", n_in, n_out);
  Linear l;
  l.w_ = WeightView{f.tensor_data(t), t.ggml_type(), n_out, n_in};
  if (bias && f.find_tensor(base + ".bias")) l.bias_ = load_vector(f, base + ".bias", n_out);
  return l;
}

void Linear::forward(const float* x, int64_t n_tok, float* y, ThreadPool& pool) const {
  matmul(w_, x, n_tok, y, pool);
  if (!bias_.empty()) {
    for (int64_t t = 0; t < n_tok; ++t) {
      float* row = y + t * n_out();
      for (int64_t i = 0; i < n_out(); ++i) row[i] += bias_[i];
    }
  }
}

}  // namespace parallama
