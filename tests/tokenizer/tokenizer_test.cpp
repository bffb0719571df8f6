// Byte-level BPE tokenizer against llama.cpp: expected ids, pieces and
// detokenized text come from tools/make_tokenizer_fixtures.py (llama-cpp-python).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/check.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "test_util.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace parallama {
namespace {

using nlohmann::json;

json load_fixture(const std::string& name) {
  std::ifstream in(test::fixture_path("tokenizer/" + name));
  EXPECT_TRUE(in.good()) << "missing fixture " << name << " (run tools/make_tokenizer_fixtures.py)";
  return json::parse(in);
}

std::string bytes_of(const json& arr) {
  std::string s;
  for (const auto& b : arr) s.push_back(char(b.get<int>()));
  return s;
}

// Strict UTF-8 check (no truncated or stray sequences).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = uint8_t(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

std::string show(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else o.push_back(char(c));
  }
  return o;
}

class SmolLM2Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = test::default_model_path();
    if (path.empty()) return;
    fixture_ = new json(load_fixture("smollm2_tokens.json"));
    if (std::filesystem::path(path).filename() != (*fixture_)["model"].get<std::string>()) return;
    file_ = GgufFile::open(path).release();
    tok_ = Tokenizer::from_gguf(*file_).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete file_;
    delete fixture_;
    tok_ = nullptr;
    file_ = nullptr;
    fixture_ = nullptr;
  }
  void SetUp() override {
    if (test::default_model_path().empty()) FAIL() << test::missing_model_message();
    // PARALLAMA_MODEL names another model: the fixture is SmolLM2-135M-Instruct's.
    if (!tok_) GTEST_SKIP() << "PARALLAMA_MODEL is not the fixture's model (SmolLM2-135M-Instruct)";
  }
  static json* fixture_;
  static GgufFile* file_;
  static Tokenizer* tok_;
};
json* SmolLM2Tokenizer::fixture_ = nullptr;
GgufFile* SmolLM2Tokenizer::file_ = nullptr;
Tokenizer* SmolLM2Tokenizer::tok_ = nullptr;

TEST_F(SmolLM2Tokenizer, VocabInfoMatchesLlamaCpp) {
  const json& info = (*fixture_)["info"];
  EXPECT_EQ(tok_->type(), Tokenizer::Type::Bpe);
  EXPECT_EQ(tok_->pre_name(), "smollm");
  EXPECT_EQ(tok_->n_vocab(), info["n_vocab"].get<int>());
  EXPECT_EQ(tok_->bos_id(), info["bos"].get<int>());
  EXPECT_EQ(tok_->eos_id(), info["eos"].get<int>());
  EXPECT_EQ(tok_->eot_id(), info["eot"].get<int>());
  EXPECT_EQ(tok_->add_bos(), info["add_bos"].get<bool>());
  EXPECT_EQ(tok_->add_eos(), info["add_eos"].get<bool>());
  std::set<int32_t> want, got;
  for (const auto& id : info["eog"]) want.insert(id.get<int32_t>());
  for (int32_t id = 0; id < tok_->n_vocab(); ++id)
    if (tok_->is_eog(id)) got.insert(id);
  EXPECT_EQ(got, want);
  EXPECT_TRUE(tok_->is_eog(tok_->token_id("<|im_end|>")));
  EXPECT_TRUE(tok_->is_eog(tok_->token_id("<|endoftext|>")));
  EXPECT_FALSE(tok_->is_eog(tok_->token_id("<|im_start|>")));
  EXPECT_EQ(tok_->token_id("<|im_start|>"), 1);
  EXPECT_EQ(tok_->token_id("no such token text"), -1);
}

TEST_F(SmolLM2Tokenizer, IdsPiecesAndDecodeMatchLlamaCpp) {
  int n = 0;
  for (const auto& c : (*fixture_)["cases"]) {
    const std::string text = c["text"];
    const bool add_special = c["add_special"], parse_special = c["parse_special"];
    const auto want = c["ids"].get<std::vector<int32_t>>();
    const auto got = tok_->encode(text, add_special, parse_special);
    EXPECT_EQ(got, want) << "text='" << show(text) << "' add_special=" << add_special
                         << " parse_special=" << parse_special;
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(tok_->token_to_piece(want[i]), bytes_of(c["pieces"][i])) << "token " << want[i];
    EXPECT_EQ(tok_->decode(want), bytes_of(c["detokenized"])) << "text='" << show(text) << "'";
    ++n;
  }
  EXPECT_GE(n, 160);  // >= 40 strings x 4 flag combinations
}

TEST_F(SmolLM2Tokenizer, DecodeInvertsEncode) {
  for (const auto& c : (*fixture_)["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(tok_->decode(tok_->encode(text, false, false)), text) << show(text);
    EXPECT_EQ(tok_->decode(tok_->encode(text, false, true)), text) << show(text);
  }
  // Malformed UTF-8 is replaced by U+FFFD before BPE, as llama.cpp does.
  EXPECT_EQ(tok_->decode(tok_->encode("a\xff" "b", false, false)), "a\xef\xbf\xbd" "b");
}

TEST_F(SmolLM2Tokenizer, SpecialTokensOnlyWhenParsed) {
  const auto parsed = tok_->encode("<|im_start|>user\nhi<|im_end|>", false, true);
  ASSERT_GE(parsed.size(), 3u);
  EXPECT_EQ(parsed.front(), tok_->token_id("<|im_start|>"));
  EXPECT_EQ(parsed.back(), tok_->token_id("<|im_end|>"));
  const auto plain = tok_->encode("<|im_start|>user\nhi<|im_end|>", false, false);
  for (int32_t id : plain) EXPECT_FALSE(tok_->token_attr(id) & kAttrControl) << id;
  EXPECT_EQ(tok_->token_to_piece(tok_->token_id("<|im_end|>")), "<|im_end|>");
}

TEST_F(SmolLM2Tokenizer, StreamDecoderNeverSplitsCharacters) {
  int split_chars = 0;  // how many tokens ended inside a UTF-8 character
  for (const auto& c : (*fixture_)["cases"]) {
    if (c["add_special"].get<bool>() || !c["parse_special"].get<bool>()) continue;
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    StreamDecoder sd(*tok_);
    std::string all;
    for (int32_t id : ids) {
      const std::string chunk = sd.push(id);
      EXPECT_TRUE(valid_utf8(chunk)) << "partial UTF-8 emitted for '" << show(c["text"]) << "'";
      if (!valid_utf8(tok_->token_to_piece(id))) ++split_chars;
      all += chunk;
    }
    all += sd.flush();
    EXPECT_EQ(all, tok_->decode(ids)) << show(c["text"]);
  }
  EXPECT_GT(split_chars, 0) << "fixture should contain characters split across tokens";
  // Explicit case: an emoji made of byte tokens.
  const auto ids = tok_->encode("🦙", false, false);
  ASSERT_GT(ids.size(), 1u);
  StreamDecoder sd(*tok_);
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) out += sd.push(ids[i]);
  EXPECT_EQ(out, "");
  out += sd.push(ids.back());
  EXPECT_EQ(out, "🦙");
  EXPECT_EQ(sd.flush(), "");
}

TEST_F(SmolLM2Tokenizer, BadIdsThrow) {
  EXPECT_THROW(tok_->token_to_piece(-1), Error);
  EXPECT_THROW(tok_->token_to_piece(tok_->n_vocab()), Error);
  EXPECT_THROW(tok_->decode({0, 1 << 30}), Error);
}

// Rebuilds the model's tokenizer metadata as an in-memory GGUF, with edits.
std::unique_ptr<GgufFile> rebuilt(const GgufFile& src, const std::function<void(GgufWriter&)>& edit,
                                  const std::vector<std::string>& drop = {}) {
  GgufWriter w;
  for (const auto& kv : src.metadata()) {
    if (std::find(drop.begin(), drop.end(), kv.key) != drop.end()) continue;
    if (kv.key.rfind("tokenizer.", 0) == 0 || kv.key.rfind("general.", 0) == 0) w.set(kv.key, kv.value);
  }
  edit(w);
  const std::vector<uint8_t> bytes = w.to_bytes();
  // from_memory does not copy: keep the image alive alongside the file.
  static std::vector<std::vector<uint8_t>> keep;
  keep.push_back(bytes);
  return GgufFile::from_memory(keep.back().data(), keep.back().size(), "rebuilt.gguf");
}

TEST_F(SmolLM2Tokenizer, PreTokenizersMatchLlamaCpp) {
  const json fx = load_fixture("bpe_pre_tokens.json");
  ASSERT_GE(fx["pre"].size(), 10u);
  for (const auto& [pre, data] : fx["pre"].items()) {
    auto f = rebuilt(*file_, [&](GgufWriter& w) { w.set_string("tokenizer.ggml.pre", pre); });
    auto tok = Tokenizer::from_gguf(*f);
    EXPECT_EQ(tok->add_bos(), data["info"]["add_bos"].get<bool>()) << pre;
    int mismatches = 0;
    for (const auto& c : data["cases"]) {
      const std::string text = c["text"];
      const auto want = c["ids"].get<std::vector<int32_t>>();
      const auto got = tok->encode(text, false, c["parse_special"].get<bool>());
      if (got != want) ++mismatches;
      EXPECT_EQ(got, want) << "pre=" << pre << " text='" << show(text) << "'";
    }
    EXPECT_EQ(mismatches, 0) << pre;
  }
  // An unknown name falls back to the default regexes (llama.cpp refuses to load it).
  auto f = rebuilt(*file_, [](GgufWriter& w) { w.set_string("tokenizer.ggml.pre", "no-such-pre"); });
  auto tok = Tokenizer::from_gguf(*f);
  for (const auto& c : fx["pre"]["default"]["cases"])
    EXPECT_EQ(tok->encode(c["text"].get<std::string>(), false, c["parse_special"].get<bool>()),
              c["ids"].get<std::vector<int32_t>>());
}

TEST_F(SmolLM2Tokenizer, AddBosAndEosFollowMetadata) {
  auto f = rebuilt(*file_, [](GgufWriter& w) {
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    w.set_bool("tokenizer.ggml.add_eos_token", true);
  });
  auto tok = Tokenizer::from_gguf(*f);
  const auto ids = tok->encode("hi", true, false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids.front(), tok->bos_id());
  EXPECT_EQ(ids.back(), tok->eos_id());
  EXPECT_EQ(tok->encode("hi", false, false).size(), 1u);
}

TEST_F(SmolLM2Tokenizer, BadMetadataGivesClearErrors) {
  auto expect_error = [&](const std::unique_ptr<GgufFile>& f, const std::string& needle) {
    try {
      Tokenizer::from_gguf(*f);
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(rebuilt(*file_, [](GgufWriter&) {}, {"tokenizer.ggml.tokens"}), "tokenizer.ggml.tokens");
  expect_error(rebuilt(*file_, [](GgufWriter&) {}, {"tokenizer.ggml.model"}), "tokenizer.ggml.model");
  expect_error(rebuilt(*file_, [](GgufWriter&) {}, {"tokenizer.ggml.merges"}), "tokenizer.ggml.merges");
  expect_error(rebuilt(*file_, [](GgufWriter& w) { w.set_string("tokenizer.ggml.model", "rwkv"); }),
               "unsupported tokenizer.ggml.model");
  expect_error(rebuilt(*file_, [&](GgufWriter& w) {
                 auto merges = file_->get_string_array("tokenizer.ggml.merges");
                 merges[5] = "Ġ zzzznotatoken";
                 w.set_string_array("tokenizer.ggml.merges", merges);
               }),
               "zzzznotatoken");
  expect_error(rebuilt(*file_, [&](GgufWriter& w) {
                 auto merges = file_->get_string_array("tokenizer.ggml.merges");
                 merges[7] = "nospace";
                 w.set_string_array("tokenizer.ggml.merges", merges);
               }),
               "merges[7]");
  expect_error(rebuilt(*file_, [&](GgufWriter& w) {
                 std::vector<int32_t> types(tok_->n_vocab() - 1, 1);
                 w.set_i32_array("tokenizer.ggml.token_type", types);
               }),
               "tokenizer.ggml.token_type has");
  expect_error(rebuilt(*file_, [&](GgufWriter& w) {
                 w.set_f32_array("tokenizer.ggml.scores", std::vector<float>(3, 0.0f));
               }),
               "tokenizer.ggml.scores has");
  expect_error(rebuilt(*file_, [&](GgufWriter& w) { w.set_u32("tokenizer.ggml.tokens", 7); }),
               "tokenizer.ggml.tokens");
}

TEST(PreTokenizer, WhitespaceRewriteKeepsClassesBalanced) {
  const std::string r = rewrite_whitespace_classes(R"([^\s\p{L}]+|\s+(?!\S)|a\\s)");
  EXPECT_EQ(r.find("\\s"), r.find("\\\\s") + 1);  // only the escaped backslash + 's' remains
  EXPECT_NE(r.find("[^\\t\\n"), std::string::npos);
  PreTokenizer p({R"(\s+(?!\S)|\s+|\S+)"});
  // U+00A0 and U+3000 are whitespace for llama.cpp.
  const auto w = p.split("a\xc2\xa0\xc2\xa0" "b\xe3\x80\x80");
  // "a", NBSP (followed by whitespace), NBSP, "b", IDEOGRAPHIC SPACE
  ASSERT_EQ(w.size(), 5u);
  EXPECT_EQ(w[1], "\xc2\xa0");
  EXPECT_EQ(w[2], "\xc2\xa0");
  EXPECT_EQ(w[4], "\xe3\x80\x80");
}

TEST(PreTokenizer, KeepsUnmatchedGapsAndHandlesBadUtf8) {
  PreTokenizer p({R"(\p{N})"});
  const auto w = p.split("ab12c");
  EXPECT_EQ(w, (std::vector<std::string>{"ab", "1", "2", "c"}));
  const auto bad = p.split("x\xe2\x82y1");
  ASSERT_EQ(bad.size(), 2u);
  EXPECT_EQ(bad[0], "x\xef\xbf\xbd\xef\xbf\xbdy");
  EXPECT_THROW(PreTokenizer({"(unclosed"}), Error);
}

TEST(Utf8, CompletePrefix) {
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("a\xf0\x9f"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xf0\x9f\xa6\x99"), 5u);
  EXPECT_EQ(utf8_complete_prefix("\xe4"), 0u);
  EXPECT_EQ(utf8_complete_prefix("\x80\x80"), 2u);  // stray continuation bytes pass through
}

}  // namespace
}  // namespace parallama
