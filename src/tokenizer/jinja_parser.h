// Jinja2 parser: token stream -> statement tree. Grammar and operator
// precedence follow jinja2's parser (filters bind tighter than arithmetic,
// unary minus tighter than **, comparisons chain).
#pragma once

#include <string_view>

#include "tokenizer/jinja_ast.h"

namespace parallama::jinja {

inline constexpr int kMaxParseDepth = 128;  // nesting of expressions and blocks

// Throws parallama::Error with line and column on syntax errors.
Body parse_template(std::string_view source);

}  // namespace parallama::jinja
