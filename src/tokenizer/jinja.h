// Public entry of the Jinja2 subset interpreter used for chat templates:
// parse once, render many times with a dict of variables.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_value.h"

namespace parallama::jinja {

class Template {
 public:
  // Parses `source`; throws Error "template syntax error at line L, column C: ...".
  explicit Template(std::string_view source);
  // Renders with `context` (a dict of global variables). raise_exception() in the
  // template throws TemplateRaise with the template's message; other runtime
  // failures throw Error naming the template line.
  std::string render(const Value& context) const;

 private:
  std::shared_ptr<const Body> body_;
};

}  // namespace parallama::jinja
