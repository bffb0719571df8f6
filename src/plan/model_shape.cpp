#include "plan/model_shape.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include "core/check.h"
#include "core/ggml_type.h"
#include "gguf/gguf_file.h"
#include "model/model_config.h"

namespace parallama::plan {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// GGUF type ids are small; the traits table answers nullptr for unknown ones.
constexpr uint32_t kMaxTypeId = 64;

}  // namespace

int64_t ModelShape::bytes_of_layer(int64_t i) const {
  PL_CHECK_MSG(i >= 0 && i < n_layers, "layer " << i << " of " << n_layers);
  return layer_bytes.empty() ? layer_weight_bytes : layer_bytes[static_cast<size_t>(i)];
}

int64_t ModelShape::other_bytes() const {
  int64_t layers = 0;
  for (int64_t i = 0; i < n_layers; ++i) layers += bytes_of_layer(i);
  return std::max<int64_t>(0, weight_bytes - layers - embd_bytes - (tied ? 0 : head_bytes));
}

int64_t ModelShape::layer_params() const {
  const int64_t q = n_heads * head_dim, kv = n_kv_heads * head_dim;
  return n_embd * q + 2 * n_embd * kv + q * n_embd + 3 * n_embd * n_ff;
}

double dtype_bytes_per_param(const std::string& dtype) {
  const std::string d = lower(dtype);
  if (d == "bf16" || d == "fp16" || d == "f16") return 2.0;
  if (d == "fp32" || d == "f32") return 4.0;
  std::string known = "bf16, fp16, f16, fp32, f32";
  for (uint32_t id = 0; id < kMaxTypeId; ++id) {
    const TypeTraits t = type_traits(id);
    if (!t.name) continue;
    if (lower(t.name) == d) return static_cast<double>(t.type_size) / static_cast<double>(t.block_size);
    known += ", " + lower(t.name);
  }
  PL_THROW("unknown weight type '" << dtype << "' (known: " << known << ")");
}

ModelShape shape_from_spec(const ModelSpec& spec, const std::string& dtype) {
  const double bpp = dtype_bytes_per_param(dtype);
  auto bytes = [bpp](int64_t params) { return static_cast<int64_t>(std::llround(static_cast<double>(params) * bpp)); };
  ModelShape m;
  static_cast<ModelDims&>(m) = spec;
  m.name = spec.name;
  m.dtype = lower(dtype);
  // A layer: its matrices and two RMSNorm vectors (attention, FFN).
  m.layer_weight_bytes = bytes(m.layer_params() + 2 * m.n_embd);
  m.embd_bytes = bytes(m.head_params());
  m.head_bytes = m.embd_bytes;  // same matrix shape; the same tensor when tied
  const int64_t final_norm = bytes(m.n_embd);
  m.weight_bytes = m.n_layers * m.layer_weight_bytes + m.embd_bytes + (m.tied ? 0 : m.head_bytes) + final_norm;
  return m;
}

ModelShape shape_from_gguf(const GgufFile& f) {
  const ModelConfig c = ModelConfig::from_gguf(f);
  ModelShape m;
  m.name = c.name.empty() ? f.path() : c.name;
  m.dtype = "gguf";
  m.n_layers = c.n_layer;
  m.n_embd = c.n_embd;
  m.n_heads = c.n_head;
  m.n_kv_heads = c.n_head_kv;
  m.head_dim = c.head_dim;
  m.n_ff = c.n_ff;
  m.n_vocab = c.n_vocab;
  m.tied = c.tied_output;
  m.n_ctx_train = c.n_ctx_train;
  std::vector<int64_t> layers(static_cast<size_t>(m.n_layers), 0);
  for (const GgufTensorInfo& t : f.tensors()) {
    const int64_t n = static_cast<int64_t>(t.n_bytes);
    m.weight_bytes += n;
    if (t.name == "token_embd.weight") {
      m.embd_bytes = n;
    } else if (t.name == "output.weight") {
      m.head_bytes = n;
    } else if (t.name.rfind("blk.", 0) == 0) {
      const size_t dot = t.name.find('.', 4);
      int64_t layer = -1;
      if (dot != std::string::npos && dot > 4) {
        try {
          layer = std::stoll(t.name.substr(4, dot - 4));
        } catch (const std::exception&) {
        }
      }
      if (layer < 0 || layer >= m.n_layers)
        PL_THROW(f.path() << ": tensor '" << t.name << "' names a layer outside [0, " << m.n_layers << ")");
      layers[static_cast<size_t>(layer)] += n;
    }
  }
  if (m.tied) m.head_bytes = m.embd_bytes;
  const int64_t total = std::accumulate(layers.begin(), layers.end(), int64_t{0});
  m.layer_weight_bytes = (total + m.n_layers / 2) / m.n_layers;
  if (std::any_of(layers.begin(), layers.end(), [&](int64_t b) { return b != layers[0]; })) m.layer_bytes = layers;
  return m;
}

ModelShape shape_from_gguf(const std::string& path) {
  const auto f = GgufFile::open(path);
  return shape_from_gguf(*f);
}

}  // namespace parallama::plan
