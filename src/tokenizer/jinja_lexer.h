// Jinja2 lexer: splits a template into text and tag tokens, applying the
// whitespace rules HF transformers renders with (trim_blocks, lstrip_blocks,
// `-`/`+` modifiers, one trailing newline dropped, newlines normalized to \n).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parallama::jinja {

enum class Tok : uint8_t {
  Text,        // literal template data (already whitespace-processed)
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,
  String,      // value holds the unescaped text
  Int,
  Float,
  Op,          // value holds the operator spelling: "+", "//", "==", "(", ...
  Eof,
};

struct Token {
  Tok type = Tok::Eof;
  std::string value;
  int64_t ival = 0;
  double fval = 0.0;
  int line = 1;
  int col = 1;
};

// Throws parallama::Error "syntax error at line L, column C: ..." on malformed input.
std::vector<Token> lex(std::string_view source);

// Formats the syntax error message used by lexer and parser.
[[noreturn]] void syntax_error(int line, int col, const std::string& msg);

const char* tok_name(Tok t);

}  // namespace parallama::jinja
