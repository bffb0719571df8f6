// Chat prompt formatting: renders a model's `tokenizer.chat_template` (Jinja2)
// the way HF transformers' apply_chat_template does.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"  // parallama::Error

namespace parallama {

namespace jinja {
class Template;
}

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", ...
  std::string content;
};

class ChatTemplate {
 public:
  // Parses the template; throws parallama::Error with line/column on syntax errors.
  explicit ChatTemplate(std::string source, std::string bos_token = "", std::string eos_token = "");
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // Renders with the variables HF passes: messages, add_generation_prompt,
  // bos_token, eos_token, tools=None, documents=None. raise_exception('msg') in
  // the template throws an Error whose what() is exactly msg.
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::string bos_;
  std::string eos_;
  std::unique_ptr<jinja::Template> tmpl_;
};

// Well-known templates for models whose GGUF has none: "chatml", "llama3",
// "llama2", "mistral", "qwen2", "gemma", "phi3", "zephyr". Throws on unknown names.
std::string builtin_chat_template(std::string_view name);

}  // namespace parallama
