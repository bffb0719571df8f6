// The default model parses, and what we read matches the facts the reference
// `gguf` Python package reported (tools/gguf_dump_reference.py ->
// tests/fixtures/gguf_default_model.json).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "test_util.h"

namespace parallama {
namespace {

using nlohmann::json;

json load_fixture() {
  std::ifstream in(test::fixture_path("gguf_default_model.json"));
  EXPECT_TRUE(in.good());
  return json::parse(in);
}

// Compares one scalar value with its JSON rendering from the reference.
void expect_scalar_eq(const GgufValue& v, const json& j, const std::string& key) {
  SCOPED_TRACE(key);
  switch (v.type) {
    case GgufValueType::STRING: EXPECT_EQ(v.s, j.get<std::string>()); break;
    case GgufValueType::BOOL: EXPECT_EQ(v.u != 0, j.get<bool>()); break;
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: EXPECT_EQ(v.f, j.get<double>()); break;
    default: EXPECT_EQ(v.as_int(), j.get<int64_t>()); break;
  }
}

class DefaultModel : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = test::default_model_path();
    if (path_.empty()) FAIL() << test::missing_model_message();
    fx_ = load_fixture();
    f_ = GgufFile::open(path_);
  }
  std::string path_;
  json fx_;
  std::unique_ptr<GgufFile> f_;
};

TEST_F(DefaultModel, HeaderMatchesReference) {
  EXPECT_EQ(f_->file_size(), fx_["file_size"].get<size_t>());
  EXPECT_EQ(f_->version(), fx_["version"].get<uint32_t>());
  EXPECT_EQ(f_->tensors().size(), fx_["tensor_count"].get<size_t>());
  EXPECT_EQ(f_->metadata().size(), fx_["kv_count"].get<size_t>());
  EXPECT_EQ(f_->alignment(), fx_["alignment"].get<uint64_t>());
  EXPECT_EQ(static_cast<uint64_t>(f_->data_section() - f_->mapping()),
            fx_["data_offset"].get<uint64_t>());
}

TEST_F(DefaultModel, MetadataMatchesReference) {
  const json& kvs = fx_["metadata"];
  ASSERT_EQ(f_->metadata().size(), kvs.size());
  for (size_t k = 0; k < kvs.size(); ++k) {
    const json& e = kvs[k];
    const std::string key = e["key"];
    SCOPED_TRACE(key);
    EXPECT_EQ(f_->metadata()[k].key, key);  // file order is preserved
    const GgufValue* v = f_->find(key);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(gguf_value_type_name(v->type), e["type"].get<std::string>());
    if (v->type != GgufValueType::ARRAY) {
      expect_scalar_eq(*v, e["value"], key);
      continue;
    }
    EXPECT_EQ(gguf_value_type_name(v->elem_type), e["elem_type"].get<std::string>());
    ASSERT_EQ(v->arr.size(), e["count"].get<size_t>());
    const json& head = e["head"];
    for (size_t i = 0; i < head.size(); ++i) expect_scalar_eq(v->arr[i], head[i], key);
    const json& tail = e["tail"];
    for (size_t i = 0; i < tail.size(); ++i)
      expect_scalar_eq(v->arr[v->arr.size() - tail.size() + i], tail[i], key);
  }
}

TEST_F(DefaultModel, TypedGetters) {
  EXPECT_EQ(f_->get_string("general.architecture"), "llama");
  EXPECT_EQ(f_->get_int("llama.block_count"), 30);
  EXPECT_EQ(f_->get_int("llama.embedding_length"), 576);
  EXPECT_FLOAT_EQ(static_cast<float>(f_->get_float("llama.rope.freq_base")), 100000.0f);
  EXPECT_FALSE(f_->get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(f_->get_string_array("tokenizer.ggml.tokens").size(), 49152u);
  EXPECT_EQ(f_->get_int_array("tokenizer.ggml.token_type").size(), 49152u);
  EXPECT_EQ(f_->get_string_array("tokenizer.ggml.merges").front(), "Ġ t");
  EXPECT_EQ(f_->get_int("no.such.key", 7), 7);
  EXPECT_THROW(f_->get_int("general.architecture"), Error);
  EXPECT_THROW(f_->get_string("no.such.key"), Error);
}

TEST_F(DefaultModel, TensorsMatchReference) {
  const json& ts = fx_["tensors"];
  ASSERT_EQ(f_->tensors().size(), ts.size());
  for (size_t k = 0; k < ts.size(); ++k) {
    const json& e = ts[k];
    const GgufTensorInfo& t = f_->tensors()[k];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, e["name"].get<std::string>());
    EXPECT_EQ(t.type, e["type"].get<uint32_t>());
    EXPECT_EQ(t.dims, e["dims"].get<std::vector<int64_t>>());
    EXPECT_EQ(t.offset, e["offset"].get<uint64_t>());
    EXPECT_EQ(t.n_bytes, e["n_bytes"].get<uint64_t>());
    EXPECT_EQ(f_->find_tensor(t.name), &t);
    EXPECT_EQ(f_->tensor_data(t), f_->data_section() + t.offset);
  }
  EXPECT_EQ(f_->find_tensor("no.such.tensor"), nullptr);
}

}  // namespace
}  // namespace parallama
