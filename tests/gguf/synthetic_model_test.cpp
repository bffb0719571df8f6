// write_synthetic_model -> GgufFile: llama.cpp tensor names, GGUF-order dims,
// types, metadata, a self-consistent BPE vocabulary, and sane weight scales.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "model/synthetic_model.h"
#include "ops/quant.h"
#include "test_util.h"

namespace parallama {
namespace {

struct Expect {
  std::string name;
  std::vector<int64_t> dims;
  GgmlType type;
};

std::vector<Expect> expected_tensors(const SyntheticModelSpec& s) {
  const int e = s.embd(), q = s.n_head * s.head_dim, kv = s.n_head_kv * s.head_dim;
  std::vector<Expect> x = {{"token_embd.weight", {e, s.n_vocab}, s.embd_type}};
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    x.push_back({p + "attn_norm.weight", {e}, GgmlType::F32});
    x.push_back({p + "attn_q.weight", {e, q}, s.weight_type});
    x.push_back({p + "attn_k.weight", {e, kv}, s.weight_type});
    x.push_back({p + "attn_v.weight", {e, kv}, s.weight_type});
    if (s.qkv_bias) {
      x.push_back({p + "attn_q.bias", {q}, GgmlType::F32});
      x.push_back({p + "attn_k.bias", {kv}, GgmlType::F32});
      x.push_back({p + "attn_v.bias", {kv}, GgmlType::F32});
    }
    x.push_back({p + "attn_output.weight", {q, e}, s.weight_type});
    x.push_back({p + "ffn_norm.weight", {e}, GgmlType::F32});
    x.push_back({p + "ffn_gate.weight", {e, s.n_ff}, s.weight_type});
    x.push_back({p + "ffn_up.weight", {e, s.n_ff}, s.weight_type});
    x.push_back({p + "ffn_down.weight", {s.n_ff, e}, s.weight_type});
  }
  x.push_back({"output_norm.weight", {e}, GgmlType::F32});
  if (!s.tied_output) x.push_back({"output.weight", {e, s.n_vocab}, s.weight_type});
  return x;
}

// Mean and standard deviation of a whole tensor, dequantized.
std::pair<double, double> moments(const GgufFile& f, const GgufTensorInfo& t) {
  const int64_t n = t.dims[0], rows = t.n_elements() / n;
  const size_t rs = row_size(t.ggml_type(), n);
  std::vector<float> row(static_cast<size_t>(n));
  double sum = 0, sq = 0;
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(t.ggml_type(), f.tensor_data(t) + rs * static_cast<size_t>(r), row.data(), n);
    for (float x : row) { sum += x; sq += double(x) * x; }
  }
  const double cnt = static_cast<double>(n * rows), mean = sum / cnt;
  return {mean, std::sqrt(std::max(0.0, sq / cnt - mean * mean))};
}

void check_model(const SyntheticModelSpec& s) {
  const std::string path = test::temp_path(std::string("synth_") + type_name(s.weight_type) + ".gguf");
  write_synthetic_model(path, s);
  auto f = GgufFile::open(path);
  const auto want = expected_tensors(s);
  ASSERT_EQ(f->tensors().size(), want.size());
  for (const Expect& e : want) {
    SCOPED_TRACE(e.name);
    const GgufTensorInfo* t = f->find_tensor(e.name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dims, e.dims);
    EXPECT_EQ(t->ggml_type(), e.type);
    auto [mean, sd] = moments(*f, *t);
    if (e.name.find("norm") != std::string::npos) {
      EXPECT_NEAR(mean, 1.0, 0.1);
    } else if (e.name.find("bias") == std::string::npos && e.name != "token_embd.weight") {
      // Linear weights ~ N(0, 1/fan_in); coarse quantizers add some noise.
      const double want_sd = 1.0 / std::sqrt(static_cast<double>(e.dims[0]));
      EXPECT_NEAR(sd, want_sd, 0.25 * want_sd);
      EXPECT_NEAR(mean, 0.0, 0.1 * want_sd);
    }
  }

  const std::string a = s.arch;
  EXPECT_EQ(f->get_string("general.architecture"), a);
  EXPECT_EQ(f->get_int(a + ".context_length"), s.n_ctx);
  EXPECT_EQ(f->get_int(a + ".embedding_length"), s.embd());
  EXPECT_EQ(f->get_int(a + ".block_count"), s.n_layer);
  EXPECT_EQ(f->get_int(a + ".feed_forward_length"), s.n_ff);
  EXPECT_EQ(f->get_int(a + ".attention.head_count"), s.n_head);
  EXPECT_EQ(f->get_int(a + ".attention.head_count_kv"), s.n_head_kv);
  EXPECT_FLOAT_EQ(static_cast<float>(f->get_float(a + ".attention.layer_norm_rms_epsilon")), s.rms_eps);
  EXPECT_FLOAT_EQ(static_cast<float>(f->get_float(a + ".rope.freq_base")), s.rope_theta);
  EXPECT_EQ(f->has(a + ".attention.key_length"), s.embd() != s.n_head * s.head_dim);

  // Vocabulary: unique tokens, consistent merges, control tokens where promised.
  const auto tokens = f->get_string_array("tokenizer.ggml.tokens");
  const auto types = f->get_int_array("tokenizer.ggml.token_type");
  ASSERT_EQ(static_cast<int>(tokens.size()), s.n_vocab);
  ASSERT_EQ(types.size(), tokens.size());
  std::set<std::string> vocab(tokens.begin(), tokens.end());
  EXPECT_EQ(vocab.size(), tokens.size());
  EXPECT_EQ(tokens[' '], "\xc4\xa0");   // GPT-2 shows the space byte as U+0120
  EXPECT_EQ(tokens['\n'], "\xc4\x8a");  // and newline as U+010A
  EXPECT_EQ(tokens['A'], "A");
  EXPECT_EQ(tokens[SyntheticVocab::kEndOfText], "<|endoftext|>");
  EXPECT_EQ(tokens[SyntheticVocab::kImStart], "<|im_start|>");
  EXPECT_EQ(tokens[SyntheticVocab::kImEnd], "<|im_end|>");
  EXPECT_EQ(types[SyntheticVocab::kImEnd], 3);
  EXPECT_EQ(types['A'], 1);
  EXPECT_EQ(f->get_int("tokenizer.ggml.bos_token_id"), SyntheticVocab::kEndOfText);
  EXPECT_EQ(f->get_int("tokenizer.ggml.eos_token_id"), SyntheticVocab::kEndOfText);
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "gpt2");
  const auto merges = f->get_string_array("tokenizer.ggml.merges");
  EXPECT_EQ(merges.size(), std::min<size_t>(25, s.n_vocab - 259));
  for (const std::string& m : merges) {
    const size_t sp = m.find(' ');
    ASSERT_NE(sp, std::string::npos) << m;
    const std::string l = m.substr(0, sp), r = m.substr(sp + 1);
    EXPECT_TRUE(vocab.count(l) && vocab.count(r) && vocab.count(l + r)) << m;
  }
  f.reset();
  std::remove(path.c_str());
}

class SyntheticPerType : public ::testing::TestWithParam<GgmlType> {};

TEST_P(SyntheticPerType, WritesReadableLlamaModel) {
  SyntheticModelSpec s;
  s.weight_type = GetParam();
  if (type_traits(s.weight_type).block_size == 256) {
    s.head_dim = 64;  // n_embd = 256
    s.n_ff = 512;
  }
  check_model(s);
}

INSTANTIATE_TEST_SUITE_P(Types, SyntheticPerType,
                         ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16,
                                           GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1,
                                           GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K),
                         [](const auto& info) { return type_name(info.param); });

TEST(Synthetic, UntiedBiasesAndExplicitEmbd) {
  SyntheticModelSpec s;
  s.tied_output = false;
  s.qkv_bias = true;
  s.n_embd = 96;  // != n_head * head_dim: key_length/value_length are written
  s.embd_type = GgmlType::Q8_0;
  s.n_vocab = 270;  // room for 11 merges only
  check_model(s);
}

TEST(Synthetic, RejectsBadSpecs) {
  const std::string path = test::temp_path("synth_bad.gguf");
  SyntheticModelSpec s;
  s.n_vocab = 100;
  EXPECT_THROW(write_synthetic_model(path, s), Error);
  s = {};
  s.weight_type = GgmlType::Q4_K;  // n_embd 64 is not a multiple of 256
  EXPECT_THROW(write_synthetic_model(path, s), Error);
  s = {};
  s.n_head_kv = 3;
  EXPECT_THROW(write_synthetic_model(path, s), Error);
  s = {};
  s.weight_type = GgmlType::Q5_0;
  EXPECT_THROW(write_synthetic_model(path, s), Error);
}

TEST(Synthetic, Deterministic) {
  SyntheticModelSpec s;
  const std::string p1 = test::temp_path("synth_a.gguf"), p2 = test::temp_path("synth_b.gguf");
  write_synthetic_model(p1, s);
  write_synthetic_model(p2, s);
  auto a = GgufFile::open(p1), b = GgufFile::open(p2);
  ASSERT_EQ(a->file_size(), b->file_size());
  EXPECT_EQ(0, std::memcmp(a->mapping(), b->mapping(), a->file_size()));
  b.reset();  // do not rewrite a file that is still mapped
  s.seed = 2;
  write_synthetic_model(p2, s);
  auto c = GgufFile::open(p2);
  EXPECT_NE(0, std::memcmp(a->mapping(), c->mapping(), a->file_size()));
  std::remove(p1.c_str());
  std::remove(p2.c_str());
}

}  // namespace
}  // namespace parallama
