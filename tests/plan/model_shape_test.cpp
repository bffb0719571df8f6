// Model shapes: byte counts of catalogue models worked out by hand (and
// checked against the published parameter counts), and shapes read from GGUF
// files (a synthetic one whose tensor sizes are computed below, and the
// default model against its catalogue entry).
#include "plan/model_shape.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "model/synthetic_model.h"
#include "test_util.h"

using namespace parallama;
using namespace parallama::plan;

namespace {
const Catalog& catalog() {
  static const Catalog c = Catalog::load(std::string(PARALLAMA_SOURCE_DIR) + "/data/plan");
  return c;
}
}  // namespace

TEST(PlanModelShape, BytesPerParameterOfEachType) {
  EXPECT_EQ(dtype_bytes_per_param("bf16"), 2.0);
  EXPECT_EQ(dtype_bytes_per_param("fp16"), 2.0);
  EXPECT_EQ(dtype_bytes_per_param("F32"), 4.0);
  EXPECT_EQ(dtype_bytes_per_param("q4_0"), 18.0 / 32);   // 4.5 bits
  EXPECT_EQ(dtype_bytes_per_param("Q8_0"), 34.0 / 32);   // 8.5 bits
  EXPECT_EQ(dtype_bytes_per_param("q4_k"), 144.0 / 256);  // 4.5 bits
  try {
    dtype_bytes_per_param("int3");
    FAIL() << "int3 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q4_0"), std::string::npos) << e.what();
  }
}

TEST(PlanModelShape, Llama2_13bAtFp16) {
  const ModelShape m = shape_from_spec(catalog().model("llama-2-13b"), "fp16");
  // One layer: q, k, v, o 4 x 5120^2 = 104857600; gate, up, down 3 x 5120 x 13824 = 212336640;
  // two norms 2 x 5120 = 10240: 317204480 parameters x 2 B = 634408960 B.
  EXPECT_EQ(m.layer_params(), 104857600 + 212336640);
  EXPECT_EQ(m.layer_weight_bytes, 634408960);
  // Embedding and head: 32000 x 5120 x 2 B = 327680000 B each (untied).
  EXPECT_EQ(m.embd_bytes, 327680000);
  EXPECT_EQ(m.head_bytes, 327680000);
  // 40 layers + embedding + head + final norm (5120 x 2 B):
  // 25376358400 + 655360000 + 10240 = 26031728640 B (13.016 B parameters).
  EXPECT_EQ(m.weight_bytes, 26031728640);
  EXPECT_EQ(m.other_bytes(), 10240);
  EXPECT_EQ(m.bytes_of_layer(39), 634408960);
}

TEST(PlanModelShape, ParameterCountsMatchThePublishedOnes) {
  // Llama-2-7b: 6,738,415,616 parameters (Hugging Face model card). By hand:
  // layer 4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096 = 202383360, x 32 = 6476267520,
  // + 2 x 32000 x 4096 = 262144000 + final norm 4096 = 6738415616.
  EXPECT_EQ(shape_from_spec(catalog().model("llama-2-7b"), "bf16").weight_bytes, 2 * int64_t{6738415616});
  // Llama-3-8B: 8,030,261,248. Layer 2 x 4096^2 + 2 x 4096 x 1024 + 3 x 4096 x 14336 + 8192
  // = 218112000, x 32 = 6979584000, + 2 x 128256 x 4096 = 1050673152 + 4096 = 8030261248.
  EXPECT_EQ(shape_from_spec(catalog().model("llama-3-8b"), "bf16").weight_bytes, 2 * int64_t{8030261248});
  // SmolLM2-135M (tied: the embedding once): layer 2 x 576^2 + 2 x 576 x 192 + 3 x 576 x 1536
  // + 1152 = 3540096, x 30 = 106202880, + 49152 x 576 = 28311552 + 576 = 134515008.
  const ModelShape s = shape_from_spec(catalog().model("smollm2-135m"), "bf16");
  EXPECT_EQ(s.weight_bytes, 2 * int64_t{134515008});
  EXPECT_EQ(s.head_bytes, s.embd_bytes);  // the head reads the embedding matrix
}

TEST(PlanModelShape, QuantizedCatalogueModel) {
  // Llama-2-7b at q4_0 (18 bytes per 32 weights): a layer's 202383360 parameters x 9/16 = 113840640 B.
  const ModelShape m = shape_from_spec(catalog().model("llama-2-7b"), "q4_0");
  EXPECT_EQ(m.layer_weight_bytes, 113840640);
  EXPECT_EQ(m.dtype, "q4_0");
}

TEST(PlanModelShape, FromASyntheticGguf) {
  SyntheticModelSpec spec;  // 2 layers, 4 heads (2 KV) of 16, n_embd 64, n_ff 96, vocab 300, tied
  spec.weight_type = GgmlType::Q8_0;
  spec.embd_type = GgmlType::F32;
  const std::string path = test::temp_path("plan_shape.gguf");
  write_synthetic_model(path, spec);
  const ModelShape m = shape_from_gguf(path);
  EXPECT_EQ(m.n_layers, 2);
  EXPECT_EQ(m.n_embd, 64);
  EXPECT_EQ(m.n_heads, 4);
  EXPECT_EQ(m.n_kv_heads, 2);
  EXPECT_EQ(m.head_dim, 16);
  EXPECT_EQ(m.n_ff, 96);
  EXPECT_EQ(m.n_vocab, 300);
  EXPECT_EQ(m.n_ctx_train, 256);
  EXPECT_TRUE(m.tied);
  EXPECT_EQ(m.dtype, "gguf");
  // Q8_0 rows: 34 bytes per 32 weights. One layer: two f32 norms 2 x 64 x 4 = 512;
  // q and o 64 rows of 64 -> 64 x 68 = 4352 each; k and v 32 rows of 64 -> 2176 each;
  // gate and up 96 rows of 64 -> 6528 each; down 64 rows of 96 -> 64 x 102 = 6528:
  // 512 + 2 x 4352 + 2 x 2176 + 3 x 6528 = 33152 B.
  EXPECT_EQ(m.layer_weight_bytes, 33152);
  EXPECT_TRUE(m.layer_bytes.empty());  // every layer the same
  // Embedding f32 64 x 300 x 4 = 76800 B, the head too (tied); final norm 256 B.
  EXPECT_EQ(m.embd_bytes, 76800);
  EXPECT_EQ(m.head_bytes, 76800);
  EXPECT_EQ(m.weight_bytes, 2 * 33152 + 76800 + 256);
  EXPECT_EQ(m.other_bytes(), 256);

  spec.tied_output = false;  // + output.weight, Q8_0: 300 rows of 64 -> 300 x 68 = 20400 B
  write_synthetic_model(path, spec);
  const ModelShape u = shape_from_gguf(path);
  EXPECT_FALSE(u.tied);
  EXPECT_EQ(u.head_bytes, 20400);
  EXPECT_EQ(u.weight_bytes, 2 * 33152 + 76800 + 256 + 20400);
  std::filesystem::remove(path);
}

TEST(PlanModelShape, DefaultModelMatchesItsCatalogueEntry) {
  const std::string path = test::default_model_path();
  if (path.empty()) FAIL() << test::missing_model_message();
  const ModelShape g = shape_from_gguf(path);
  const ModelSpec& c = catalog().model("smollm2-135m");
  EXPECT_EQ(g.n_layers, c.n_layers);
  EXPECT_EQ(g.n_embd, c.n_embd);
  EXPECT_EQ(g.n_heads, c.n_heads);
  EXPECT_EQ(g.n_kv_heads, c.n_kv_heads);
  EXPECT_EQ(g.head_dim, c.head_dim);
  EXPECT_EQ(g.n_ff, c.n_ff);
  EXPECT_EQ(g.n_vocab, c.n_vocab);
  EXPECT_EQ(g.tied, c.tied);
  EXPECT_EQ(g.n_ctx_train, c.n_ctx_train);
  // The tensors' bytes add up, and the data section holds them.
  int64_t layers = 0;
  for (int64_t i = 0; i < g.n_layers; ++i) layers += g.bytes_of_layer(i);
  EXPECT_EQ(layers + g.embd_bytes + g.other_bytes(), g.weight_bytes);
  EXPECT_LT(g.weight_bytes, static_cast<int64_t>(GgufFile::open(path)->file_size()));
  // Q4_1 matrices (20 bytes per 32 weights) over the 134.5 M parameters, give or take the
  // wider embedding and f32 norms: between 0.6 and 1 byte per parameter.
  EXPECT_GT(g.weight_bytes, 0.6 * 134515008);
  EXPECT_LT(g.weight_bytes, 1.0 * 134515008);
}

TEST(PlanModelShape, RefusesAFileThatIsNotAModel) {
  EXPECT_THROW(shape_from_gguf("/nonexistent.gguf"), Error);
}
