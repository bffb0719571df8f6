#include "model/model_config.h"

#include <sstream>

#include "core/check.h"
#include "gguf/gguf_file.h"

namespace parallama {

namespace {
// Architectures that share the LLaMA block; value is their RoPE pairing.
bool arch_rope_type(const std::string& arch, RopeType* out) {
  if (arch == "llama" || arch == "mistral" || arch == "granite") {
    *out = RopeType::NORM;
    return true;
  }
  if (arch == "qwen2") {
    *out = RopeType::NEOX;
    return true;
  }
  return false;
}
}  // namespace

ModelConfig ModelConfig::from_gguf(const GgufFile& f) {
  ModelConfig c;
  c.arch = f.get_string("general.architecture");
  if (!arch_rope_type(c.arch, &c.rope_type))
    PL_THROW(f.path() << ": architecture '" << c.arch
                      << "' is not supported (supported: llama, mistral, qwen2)");
  c.name = f.get_string("general.name", "");
  const std::string a = c.arch + ".";
  c.n_layer = static_cast<int32_t>(f.get_int(a + "block_count"));
  c.n_embd = static_cast<int32_t>(f.get_int(a + "embedding_length"));
  c.n_head = static_cast<int32_t>(f.get_int(a + "attention.head_count"));
  c.n_head_kv = static_cast<int32_t>(f.get_int(a + "attention.head_count_kv", c.n_head));
  c.n_ff = static_cast<int32_t>(f.get_int(a + "feed_forward_length"));
  c.n_ctx_train = static_cast<int32_t>(f.get_int(a + "context_length", 2048));
  c.rms_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_freq_base = static_cast<float>(f.get_float(a + "rope.freq_base", 10000.0));
  if (c.n_head <= 0 || c.n_layer <= 0 || c.n_embd <= 0 || c.n_ff <= 0 || c.n_head_kv <= 0)
    PL_THROW(f.path() << ": non-positive model dimensions (layers " << c.n_layer << ", embd "
                      << c.n_embd << ", heads " << c.n_head << "/" << c.n_head_kv << ", ff "
                      << c.n_ff << ")");
  if (c.n_head % c.n_head_kv != 0)
    PL_THROW(f.path() << ": head_count " << c.n_head << " is not a multiple of head_count_kv "
                      << c.n_head_kv);
  c.head_dim = static_cast<int32_t>(f.get_int(a + "attention.key_length", c.n_embd / c.n_head));
  const int64_t vlen = f.get_int(a + "attention.value_length", c.head_dim);
  if (vlen != c.head_dim)
    PL_THROW(f.path() << ": key_length " << c.head_dim << " != value_length " << vlen
                      << " is not supported");
  c.n_rot = static_cast<int32_t>(f.get_int(a + "rope.dimension_count", c.head_dim));
  if (c.n_rot <= 0 || c.n_rot > c.head_dim || c.n_rot % 2 != 0 || c.n_rot > 1024)
    PL_THROW(f.path() << ": rope.dimension_count " << c.n_rot << " invalid for head_dim "
                      << c.head_dim);
  const std::string scaling = f.get_string(a + "rope.scaling.type", "none");
  if (scaling == "linear") {
    const double factor = f.get_float(a + "rope.scaling.factor", 1.0);
    if (factor <= 0) PL_THROW(f.path() << ": rope.scaling.factor must be > 0");
    c.rope_freq_scale = static_cast<float>(1.0 / factor);
  } else if (scaling != "none" && scaling != "") {
    PL_THROW(f.path() << ": rope scaling '" << scaling << "' is not supported (none, linear)");
  }
  if (f.has(a + "rope.scale_linear")) {  // older files store the linear factor here
    const double factor = f.get_float(a + "rope.scale_linear");
    if (factor <= 0) PL_THROW(f.path() << ": rope.scale_linear must be > 0");
    c.rope_freq_scale = static_cast<float>(1.0 / factor);
  }

  const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb) PL_THROW(f.path() << ": tensor 'token_embd.weight' is missing");
  if (emb->dims.size() != 2 || emb->dims[0] != c.n_embd)
    PL_THROW(f.path() << ": token_embd.weight has unexpected shape");
  c.n_vocab = static_cast<int32_t>(emb->dims[1]);
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  return c;
}

std::string ModelConfig::summary() const {
  std::ostringstream os;
  os << arch << " '" << name << "': " << n_layer << " layers, embd " << n_embd << ", heads "
     << n_head << " (kv " << n_head_kv << ", dim " << head_dim << "), ff " << n_ff << ", vocab "
     << n_vocab << (tied_output ? ", tied output" : "") << (qkv_bias ? ", qkv bias" : "");
  return os.str();
}

}  // namespace parallama
