// Chat template rendering vs python jinja2 configured as HF transformers does
// (fixtures from tools/make_chat_fixtures.py).
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gguf/gguf_file.h"
#include "test_util.h"

namespace parallama {
namespace {

using ojson = nlohmann::ordered_json;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ojson expected() { return ojson::parse(read_file(test::fixture_path("chat/expected.json"))); }

std::vector<ChatMessage> messages_of(const ojson& conv) {
  std::vector<ChatMessage> out;
  for (const auto& m : conv) out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  return out;
}

TEST(ChatTemplate, MatchesHfRendering) {
  ojson doc = expected();
  const auto& templates = doc["templates"];
  const auto& convs = doc["conversations"];
  ASSERT_GE(templates.size(), 6u);
  int checked = 0, raised = 0;
  for (const auto& c : doc["cases"]) {
    const std::string name = c["template"].get<std::string>();
    const std::string conv = c["conversation"].get<std::string>();
    const bool agp = c["add_generation_prompt"].get<bool>();
    SCOPED_TRACE(name + " / " + conv + (agp ? " / gen" : ""));
    const auto& info = templates[name];
    ChatTemplate tmpl(read_file(test::fixture_path("chat/" + info["file"].get<std::string>())),
                      info["bos_token"].get<std::string>(), info["eos_token"].get<std::string>());
    auto msgs = messages_of(convs[conv]);
    if (c.contains("output")) {
      try {
        EXPECT_EQ(tmpl.apply(msgs, agp), c["output"].get<std::string>());
      } catch (const std::exception& e) {
        ADD_FAILURE() << "threw: " << e.what();
      }
      ++checked;
      continue;
    }
    const std::string msg = c["error"].get<std::string>();
    try {
      tmpl.apply(msgs, agp);
      ADD_FAILURE() << "expected an error: " << msg;
    } catch (const Error& e) {
      if (c["error_type"] == "TemplateError") {  // raise_exception(msg): message verbatim
        EXPECT_EQ(std::string(e.what()), msg);
        ++raised;
      }
    }
  }
  EXPECT_GT(checked, 150);
  EXPECT_GT(raised, 10);
}

TEST(ChatTemplate, MistralRaisesOnBadAlternation) {
  ChatTemplate t(builtin_chat_template("mistral"), "<s>", "</s>");
  std::vector<ChatMessage> bad = {{"user", "a"}, {"user", "b"}};
  try {
    t.apply(bad, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "After the optional system message, conversation roles must alternate "
                 "user/assistant/user/assistant/...");
  }
}

TEST(ChatTemplate, BuiltinsAreTheFixtureTemplates) {
  ojson doc = expected();
  for (const char* name : {"chatml", "llama3", "llama2", "mistral", "qwen2", "gemma", "phi3", "zephyr"}) {
    SCOPED_TRACE(name);
    std::string file = read_file(test::fixture_path(std::string("chat/") + name + ".jinja"));
    while (!file.empty() && file.back() == '\n') file.pop_back();
    EXPECT_EQ(builtin_chat_template(name), file);
  }
  EXPECT_THROW(builtin_chat_template("nonexistent"), Error);
}

TEST(ChatTemplate, SyntaxErrorReportsLine) {
  try {
    ChatTemplate t("{% for m in messages %}\n{{ m.content }\n{% endfor %}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, KeepsSourceAndMoves) {
  ChatTemplate a(builtin_chat_template("chatml"));
  EXPECT_EQ(a.source(), builtin_chat_template("chatml"));
  ChatTemplate b = std::move(a);
  EXPECT_EQ(b.apply({{"user", "hi"}}, true), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, DefaultModelTemplateIsTheFixture) {
  std::string path = test::default_model_path();
  if (path.empty()) FAIL() << test::missing_model_message();
  auto gguf = GgufFile::open(path);
  std::string src = gguf->get_string("tokenizer.chat_template");
  EXPECT_EQ(src, read_file(test::fixture_path("chat/smollm2.jinja")));
  ChatTemplate t(src);
  EXPECT_EQ(t.apply({{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace
}  // namespace parallama
