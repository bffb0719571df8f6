// Request parsing of the OpenAI API: fields land in the engine request,
// defaults are OpenAI's, and every bad field is refused naming it.
#include "server/openai_api.h"

#include <gtest/gtest.h>

#include "gguf/gguf_file.h"
#include "test_util.h"

using namespace parallama;
using json = nlohmann::json;

namespace {

struct Ctx {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ChatTemplate> chat;
  ApiContext ctx;
  Ctx() {
    const std::string m = test::default_model_path();
    if (m.empty()) throw std::runtime_error(test::missing_model_message());
    file = GgufFile::open(m);
    tok = Tokenizer::from_gguf(*file);
    chat = std::make_unique<ChatTemplate>(builtin_chat_template("chatml"));
    ctx.tokenizer = tok.get();
    ctx.chat_template = chat.get();
    ctx.model_name = "m";
    ctx.max_model_len = 100;
  }
};

ApiError refused(const json& body, bool chat, const ApiContext& ctx) {
  try {
    parse_job(body, chat, ctx);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body.dump();
  return ApiError(0, "");
}

}  // namespace

TEST(OpenAiApi, CompletionFieldsAndDefaults) {
  Ctx c;
  ApiJob j = parse_job(json{{"prompt", "Hello world"}}, false, c.ctx);
  ASSERT_EQ(j.prompts.size(), 1u);
  EXPECT_EQ(j.prompts[0], c.tok->encode("Hello world", true, true));
  EXPECT_EQ(j.base.max_tokens, 16);  // OpenAI's completions default
  EXPECT_EQ(j.base.sampling.temperature, 1.0f);
  EXPECT_EQ(j.base.logprobs, -1);
  EXPECT_EQ(j.n, 1);
  EXPECT_FALSE(j.stream);
  j = parse_job(json{{"model", "m"}, {"prompt", json::array({"a", json::array({1, 2, 3})})}, {"max_tokens", 7},
                     {"temperature", 0}, {"top_p", 0.5}, {"top_k", 40}, {"min_p", 0.1}, {"seed", 3},
                     {"presence_penalty", 0.5}, {"frequency_penalty", -0.5}, {"repetition_penalty", 1.2},
                     {"n", 2}, {"logprobs", 2}, {"stop", "x"}, {"stop_token_ids", {5}}, {"ignore_eos", true},
                     {"stream", true}, {"stream_options", {{"include_usage", true}}}},
                false, c.ctx);
  ASSERT_EQ(j.prompts.size(), 2u);
  EXPECT_EQ(j.prompts[1], (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(j.base.max_tokens, 7);
  EXPECT_EQ(j.base.sampling.temperature, 0.0f);
  EXPECT_EQ(j.base.sampling.top_p, 0.5f);
  EXPECT_EQ(j.base.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(j.base.sampling.min_p, 0.1f);
  EXPECT_EQ(j.base.sampling.seed, 3u);
  EXPECT_TRUE(j.seed_given);
  EXPECT_EQ(j.base.sampling.presence_penalty, 0.5f);
  EXPECT_EQ(j.base.sampling.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(j.base.sampling.repeat_penalty, 1.2f);
  EXPECT_EQ(j.n, 2);
  EXPECT_EQ(j.base.logprobs, 2);
  EXPECT_EQ(j.stop, (std::vector<std::string>{"x"}));
  EXPECT_EQ(j.base.stop_token_ids, (std::vector<int32_t>{5}));
  EXPECT_TRUE(j.base.ignore_eos && j.stream && j.include_usage);
}

TEST(OpenAiApi, ChatRendersTheTemplate) {
  Ctx c;
  const json msgs = json::array({{{"role", "user"}, {"content", "Hi"}}});
  ApiJob j = parse_job(json{{"messages", msgs}, {"max_completion_tokens", 5}, {"logprobs", true}, {"top_logprobs", 3}},
                       true, c.ctx);
  const std::string want = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(j.prompts[0], c.tok->encode(want, false, true));
  EXPECT_EQ(j.base.max_tokens, 5);
  EXPECT_EQ(j.base.logprobs, 3);
  // Without a limit a chat may use the rest of the context.
  EXPECT_EQ(parse_job(json{{"messages", msgs}}, true, c.ctx).base.max_tokens, 100);
  // Text content parts are concatenated.
  const json parts = json::array(
      {{{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "H"}}, {{"type", "text"}, {"text", "i"}}})}}});
  EXPECT_EQ(parse_job(json{{"messages", parts}}, true, c.ctx).prompts[0], j.prompts[0]);
}

TEST(OpenAiApi, BadFieldsAreNamed) {
  Ctx c;
  struct Case {
    json body;
    bool chat;
    int status;
    std::string param;
  };
  const std::vector<Case> cases = {
      {json::array(), false, 400, ""},
      {json{{"max_tokens", 3}}, false, 400, "prompt"},
      {json{{"prompt", ""}}, false, 400, "prompt"},
      {json{{"prompt", json::array({1, -1})}}, false, 400, "prompt"},
      {json{{"prompt", 5}}, false, 400, "prompt"},
      {json{{"prompt", "a"}, {"model", "other"}}, false, 404, "model"},
      {json{{"prompt", "a"}, {"temperature", 2.5}}, false, 400, "temperature"},
      {json{{"prompt", "a"}, {"temperature", "hot"}}, false, 400, "temperature"},
      {json{{"prompt", "a"}, {"top_p", 0}}, false, 400, "top_p"},
      {json{{"prompt", "a"}, {"max_tokens", 0}}, false, 400, "max_tokens"},
      {json{{"prompt", "a"}, {"max_tokens", 101}}, false, 400, "max_tokens"},
      {json{{"prompt", "a"}, {"max_tokens", 1.5}}, false, 400, "max_tokens"},
      {json{{"prompt", "a"}, {"n", 17}}, false, 400, "n"},
      {json{{"prompt", "a"}, {"seed", 9223372036854775808ull}}, false, 400, "seed"},
      {json{{"prompt", "a"}, {"seed", -9223372036854775809.0}}, false, 400, "seed"},
      {json{{"prompt", "a"}, {"max_tokens", "x"}, {"max_completion_tokens", 2}}, false, 400, "max_tokens"},
      {json{{"prompt", "a"}, {"max_tokens", 2}, {"max_completion_tokens", 0}}, false, 400, "max_completion_tokens"},
      {json{{"prompt", "a"}, {"logprobs", 6}}, false, 400, "logprobs"},
      {json{{"prompt", "a"}, {"stop", json::array({1})}}, false, 400, "stop"},
      {json{{"prompt", "a"}, {"stop", json(std::vector<std::string>(17, "x"))}}, false, 400, "stop"},
      {json{{"prompt", "a"}, {"stream", "yes"}}, false, 400, "stream"},
      {json{{"prompt", "a"}, {"stream_options", {{"include_usage", true}}}}, false, 400, "stream_options"},
      {json{{"prompt", std::string(300, 'a') + " b c d e f g h i j k l m n o p q r s t u v w x y z"}}, false, 400, "prompt"},
      {json{{"messages", json::array()}}, true, 400, "messages"},
      {json{{"messages", json::array({{{"content", "x"}}})}}, true, 400, "messages"},
      {json{{"messages", json::array({{{"role", "user"}, {"content", 3}}})}}, true, 400, "messages"},
      {json{{"messages", json::array({{{"role", "user"}, {"content", "x"}}})}, {"top_logprobs", 2}}, true, 400,
       "top_logprobs"},
  };
  for (const Case& k : cases) {
    const ApiError e = refused(k.body, k.chat, c.ctx);
    EXPECT_EQ(e.status, k.status) << k.body.dump();
    EXPECT_EQ(e.param, k.param) << k.body.dump();
    const json b = e.body();
    EXPECT_EQ(b["error"]["code"], k.status);
    EXPECT_FALSE(b["error"]["message"].get<std::string>().empty());
    EXPECT_EQ(b["error"]["param"].is_null(), k.param.empty());
  }
}
