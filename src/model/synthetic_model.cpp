#include "model/synthetic_model.h"

#include <cmath>
#include <random>
#include <vector>

#include "core/check.h"
#include "gguf/gguf_writer.h"
#include "ops/quant.h"

namespace parallama {

namespace {

// Deterministic across standard libraries (std::normal_distribution is not).
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  double uniform() { return (static_cast<double>(g_() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
  double normal() {  // Box-Muller
    return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform());
  }

 private:
  std::mt19937_64 g_;
};

// UTF-8 of code point cp (< 0x800 is all GPT-2's byte map needs).
std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xc0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return s;
}

// GPT-2 byte-level BPE shows each byte as a printable code point: printable
// Latin-1 bytes stand for themselves, the rest are moved to 256, 257, ...
std::vector<std::string> gpt2_byte_tokens() {
  std::vector<std::string> tok(256);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
    tok[b] = utf8(printable ? b : next++);
  }
  return tok;
}

// Merges in priority order; each uses only byte tokens or earlier merge results.
// "Ġ" (U+0120) is the space byte.
const std::vector<std::pair<std::string, std::string>>& merge_list() {
  static const std::vector<std::pair<std::string, std::string>> m = {
      {"\xc4\xa0", "t"},    {"h", "e"},   {"i", "n"},      {"e", "r"},
      {"\xc4\xa0", "a"},    {"o", "n"},   {"\xc4\xa0t", "he"}, {"r", "e"},
      {"\xc4\xa0", "s"},    {"a", "t"},   {"e", "n"},      {"o", "r"},
      {"\xc4\xa0", "w"},    {"\xc4\xa0", "o"}, {"i", "s"}, {"l", "l"},
      {"\xc4\xa0", "h"},    {"\xc4\xa0", "he"}, {"he", "ll"}, {"hell", "o"},
      {"\xc4\xa0he", "ll"}, {"\xc4\xa0hell", "o"}, {"\xc4\xa0w", "or"}, {"l", "d"},
      {"\xc4\xa0wor", "ld"},
  };
  return m;
}

// ChatML, as used by SmolLM2-Instruct.
constexpr const char* kChatTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

void add_tokenizer(GgufWriter& w, const SyntheticModelSpec& s) {
  constexpr int32_t kNormal = 1, kControl = 3;
  std::vector<std::string> tokens = gpt2_byte_tokens();
  std::vector<int32_t> types(256, kNormal);
  for (const char* t : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    tokens.push_back(t);
    types.push_back(kControl);
  }
  std::vector<std::string> merges;
  for (const auto& [a, b] : merge_list()) {
    if (static_cast<int>(tokens.size()) >= s.n_vocab) break;
    merges.push_back(a + " " + b);
    tokens.push_back(a + b);
    types.push_back(kNormal);
  }
  while (static_cast<int>(tokens.size()) < s.n_vocab) {
    tokens.push_back("<tok_" + std::to_string(tokens.size()) + ">");
    types.push_back(kNormal);
  }
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "smollm");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", merges);
  w.set_u32("tokenizer.ggml.bos_token_id", SyntheticVocab::kEndOfText);
  w.set_u32("tokenizer.ggml.eos_token_id", SyntheticVocab::kEndOfText);
  w.set_u32("tokenizer.ggml.padding_token_id", SyntheticVocab::kEndOfText);
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  w.set_string("tokenizer.chat_template", kChatTemplate);
}

void check_spec(const SyntheticModelSpec& s) {
  if (s.arch.empty()) PL_THROW("synthetic model: empty architecture");
  if (s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.head_dim <= 0 || s.n_ff <= 0 ||
      s.n_ctx <= 0 || s.n_embd < 0)
    PL_THROW("synthetic model: sizes must be positive");
  if (s.n_head % s.n_head_kv != 0)
    PL_THROW("synthetic model: n_head " << s.n_head << " is not a multiple of n_head_kv "
                                        << s.n_head_kv);
  if (s.n_vocab < 259) PL_THROW("synthetic model: n_vocab " << s.n_vocab << " < 259");
  const TypeTraits wt = type_traits(s.weight_type), et = type_traits(s.embd_type);
  if (!wt.supported || !et.supported)
    PL_THROW("synthetic model: cannot write tensors of type "
             << type_name(wt.supported ? s.embd_type : s.weight_type));
  auto rows_ok = [](const TypeTraits& t, int n, const char* what) {
    if (n % t.block_size != 0)
      PL_THROW("synthetic model: " << what << " = " << n << " is not a multiple of the block size "
                                   << t.block_size << " of " << t.name);
  };
  rows_ok(wt, s.embd(), "n_embd");
  rows_ok(wt, s.n_ff, "n_ff");
  rows_ok(wt, s.n_head * s.head_dim, "n_head * head_dim");
  rows_ok(et, s.embd(), "n_embd");
}

class TensorMaker {
 public:
  TensorMaker(GgufWriter& w, uint64_t seed) : w_(w), rng_(seed) {}

  // [n_in, n_out] matrix (n_out rows of n_in), values ~ N(0, std^2), stored as `type`.
  void matrix(const std::string& name, int n_in, int n_out, GgmlType type, double std) {
    const size_t rs = row_size(type, n_in);
    std::vector<uint8_t> data(rs * static_cast<size_t>(n_out));
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int r = 0; r < n_out; ++r) {
      for (float& x : row) x = static_cast<float>(std * rng_.normal());
      quantize_row(type, row.data(), data.data() + rs * static_cast<size_t>(r), n_in);
    }
    w_.add_tensor(name, {n_in, n_out}, type, data.data(), data.size());
  }

  // [n] F32 vector, values ~ mean + N(0, std^2).
  void vector(const std::string& name, int n, double mean, double std) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = static_cast<float>(mean + std * rng_.normal());
    w_.add_tensor(name, {n}, GgmlType::F32, v.data(), v.size() * sizeof(float));
  }

 private:
  GgufWriter& w_;
  Rng rng_;
};

}  // namespace

void write_synthetic_model(const std::string& path, const SyntheticModelSpec& s) {
  check_spec(s);
  const int n_embd = s.embd();
  const int n_q = s.n_head * s.head_dim;
  const int n_kv = s.n_head_kv * s.head_dim;
  const std::string a = s.arch;

  GgufWriter w;
  w.set_string("general.architecture", a);
  w.set_string("general.name", "synthetic");
  w.set_u32(a + ".context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32(a + ".embedding_length", static_cast<uint32_t>(n_embd));
  w.set_u32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", s.rms_eps);
  w.set_f32(a + ".rope.freq_base", s.rope_theta);
  w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(s.head_dim));
  w.set_u32(a + ".vocab_size", static_cast<uint32_t>(s.n_vocab));
  if (s.head_dim * s.n_head != n_embd) {
    w.set_u32(a + ".attention.key_length", static_cast<uint32_t>(s.head_dim));
    w.set_u32(a + ".attention.value_length", static_cast<uint32_t>(s.head_dim));
  }
  add_tokenizer(w, s);

  // Weights ~ N(0, 1/fan_in) keep every matmul output near unit scale; norm
  // weights near 1. Tensor order follows llama.cpp's converter.
  TensorMaker m(w, s.seed);
  const double embd_std = 1.0 / std::sqrt(static_cast<double>(n_embd));
  m.matrix("token_embd.weight", n_embd, s.n_vocab, s.embd_type, embd_std * 4.0);
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const double in_std = 1.0 / std::sqrt(static_cast<double>(n_embd));
    m.vector(p + "attn_norm.weight", n_embd, 1.0, 0.1);
    m.matrix(p + "attn_q.weight", n_embd, n_q, s.weight_type, in_std);
    m.matrix(p + "attn_k.weight", n_embd, n_kv, s.weight_type, in_std);
    m.matrix(p + "attn_v.weight", n_embd, n_kv, s.weight_type, in_std);
    if (s.qkv_bias) {
      m.vector(p + "attn_q.bias", n_q, 0.0, 0.1);
      m.vector(p + "attn_k.bias", n_kv, 0.0, 0.1);
      m.vector(p + "attn_v.bias", n_kv, 0.0, 0.1);
    }
    m.matrix(p + "attn_output.weight", n_q, n_embd, s.weight_type,
             1.0 / std::sqrt(static_cast<double>(n_q)));
    m.vector(p + "ffn_norm.weight", n_embd, 1.0, 0.1);
    m.matrix(p + "ffn_gate.weight", n_embd, s.n_ff, s.weight_type, in_std);
    m.matrix(p + "ffn_up.weight", n_embd, s.n_ff, s.weight_type, in_std);
    m.matrix(p + "ffn_down.weight", s.n_ff, n_embd, s.weight_type,
             1.0 / std::sqrt(static_cast<double>(s.n_ff)));
  }
  m.vector("output_norm.weight", n_embd, 1.0, 0.1);
  if (!s.tied_output) m.matrix("output.weight", n_embd, s.n_vocab, s.weight_type, embd_std);
  w.write(path);
}

}  // namespace parallama
