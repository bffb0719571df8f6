#include "tokenizer/jinja_lexer.h"

#include <cstring>

#include "core/check.h"

namespace parallama::jinja {

void syntax_error(int line, int col, const std::string& msg) {
  PL_THROW("template syntax error at line " << line << ", column " << col << ": " << msg);
}

const char* tok_name(Tok t) {
  switch (t) {
    case Tok::Text: return "template data";
    case Tok::VarBegin: return "'{{'";
    case Tok::VarEnd: return "end of print statement";
    case Tok::BlockBegin: return "'{%'";
    case Tok::BlockEnd: return "end of statement block";
    case Tok::Name: return "name";
    case Tok::String: return "string";
    case Tok::Int: return "integer";
    case Tok::Float: return "float";
    case Tok::Op: return "operator";
    case Tok::Eof: return "end of template";
  }
  return "?";
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Jinja splits on \r\n|\r|\n, rejoins with \n and drops one trailing newline
// (keep_trailing_newline=False).
std::string normalize_newlines(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out += src[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    size_t n = src_.size();
    while (pos_ < n) {
      size_t at = find_tag(pos_);
      if (at == std::string::npos) {
        emit_text(pos_, src_.substr(pos_));
        pos_ = n;
        break;
      }
      char kind = src_[at + 1];
      char sign = at + 2 < n && (src_[at + 2] == '-' || src_[at + 2] == '+') ? src_[at + 2] : 0;
      std::string text = src_.substr(pos_, at - pos_);
      bool line_starting = pos_ == 0 || src_[pos_ - 1] == '\n';
      if (sign == '-') {
        size_t e = text.size();
        while (e > 0 && is_space(text[e - 1])) --e;
        text.resize(e);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop spaces/tabs between the line start and a block/comment tag.
        size_t nl = text.rfind('\n');
        size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if (l_pos > 0 || line_starting) {
          bool blank = text.find_first_not_of(" \t", l_pos) == std::string::npos;
          if (blank) text.resize(l_pos);
        }
      }
      emit_text(pos_, text);
      size_t body = at + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        lex_comment(at, body);
      } else if (kind == '%' && try_raw(at, body)) {
        // handled
      } else {
        lex_tag(at, body, kind);
      }
    }
    push(Tok::Eof, n);
    return std::move(toks_);
  }

 private:
  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> toks_;
  size_t pos_ = 0;

  void where(size_t off, int& line, int& col) const {
    size_t lo = 0, hi = line_starts_.size();
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (line_starts_[mid] <= off) lo = mid;
      else hi = mid;
    }
    line = static_cast<int>(lo) + 1;
    col = static_cast<int>(off - line_starts_[lo]) + 1;
  }

  [[noreturn]] void fail(size_t off, const std::string& msg) const {
    int line, col;
    where(off, line, col);
    syntax_error(line, col, msg);
  }

  Token& push(Tok t, size_t off, std::string value = {}) {
    Token tok;
    tok.type = t;
    tok.value = std::move(value);
    where(off, tok.line, tok.col);
    toks_.push_back(std::move(tok));
    return toks_.back();
  }

  void emit_text(size_t off, std::string text) {
    if (!text.empty()) push(Tok::Text, off, std::move(text));
  }

  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  // After a block/comment end: `-` strips all following whitespace; trim_blocks
  // removes a single newline unless the end was written `+%}`.
  size_t after_end(size_t p, char modifier, bool trim_newline) const {
    if (modifier == '-') {
      while (p < src_.size() && is_space(src_[p])) ++p;
    } else if (modifier != '+' && trim_newline && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    return p;
  }

  void lex_comment(size_t at, size_t body) {
    size_t end = src_.find("#}", body);
    if (end == std::string::npos) fail(at, "missing end of comment tag");
    char mod = end > body && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : 0;
    pos_ = after_end(end + 2, mod, true);
  }

  // Matches `{%[-+]? raw [-+]?%}` at `at`; on success emits the raw body as text.
  bool try_raw(size_t at, size_t body) {
    size_t p = body;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0 || (p + 3 < src_.size() && is_name_char(src_[p + 3])))
      return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    char mod = 0;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) mod = src_[p++];
    if (src_.compare(p, 2, "%}") != 0) return false;
    size_t content = after_end(p + 2, mod, false);
    // Find the matching {% endraw %}.
    for (size_t q = src_.find("{%", content); q != std::string::npos; q = src_.find("{%", q + 2)) {
      size_t r = q + 2;
      char lmod = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) lmod = src_[r++];
      while (r < src_.size() && is_space(src_[r])) ++r;
      if (src_.compare(r, 6, "endraw") != 0) continue;
      r += 6;
      while (r < src_.size() && is_space(src_[r])) ++r;
      char emod = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) emod = src_[r++];
      if (src_.compare(r, 2, "%}") != 0) continue;
      std::string text = src_.substr(content, q - content);
      if (lmod == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      }
      emit_text(content, std::move(text));
      pos_ = after_end(r + 2, emod, true);
      return true;
    }
    fail(at, "missing end of raw directive");
  }

  void lex_tag(size_t at, size_t body, char kind) {
    push(kind == '{' ? Tok::VarBegin : Tok::BlockBegin, at);
    size_t p = body;
    const size_t n = src_.size();
    const char close = kind == '{' ? '}' : '%';
    while (true) {
      while (p < n && is_space(src_[p])) ++p;
      if (p >= n) fail(at, kind == '{' ? "unexpected end of template, expected '}}'"
                                       : "unexpected end of template, expected '%}'");
      // End delimiter, possibly with a whitespace modifier.
      char mod = 0;
      size_t q = p;
      if ((src_[q] == '-' || (src_[q] == '+' && kind == '%')) && q + 1 < n) mod = src_[q++];
      if (q + 1 < n && src_[q] == close && src_[q + 1] == '}') {
        push(kind == '{' ? Tok::VarEnd : Tok::BlockEnd, p);
        pos_ = after_end(q + 2, mod, kind == '%');
        return;
      }
      p = lex_expr_token(p);
    }
  }

  size_t lex_expr_token(size_t p) {
    const size_t n = src_.size();
    char c = src_[p];
    if (is_digit(c)) return lex_number(p);
    if (is_name_start(c)) {
      size_t e = p;
      while (e < n && is_name_char(src_[e])) ++e;
      push(Tok::Name, p, src_.substr(p, e - p));
      return e;
    }
    if (c == '\'' || c == '"') return lex_string(p);
    static const char* const kOps2[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kOps2)
      if (src_.compare(p, 2, op) == 0) {
        push(Tok::Op, p, op);
        return p + 2;
      }
    if (std::strchr("+-/*%~[](){}<>=.:|,;", c) && c != 0) {
      push(Tok::Op, p, std::string(1, c));
      return p + 1;
    }
    fail(p, std::string("unexpected char '") + c + "'");
  }

  size_t lex_number(size_t p) {
    const size_t n = src_.size();
    auto digits = [&](size_t q) {  // (\d+_)*\d+
      while (q < n && (is_digit(src_[q]) || (src_[q] == '_' && q + 1 < n && is_digit(src_[q + 1])))) ++q;
      return q;
    };
    if (src_[p] == '0' && p + 1 < n && (src_[p + 1] == 'x' || src_[p + 1] == 'X' || src_[p + 1] == 'o' ||
                                         src_[p + 1] == 'O' || src_[p + 1] == 'b' || src_[p + 1] == 'B')) {
      int base = (src_[p + 1] | 0x20) == 'x' ? 16 : (src_[p + 1] | 0x20) == 'o' ? 8 : 2;
      size_t q = p + 2;
      uint64_t v = 0;
      size_t start = q;
      while (q < n) {
        char c = static_cast<char>(src_[q] | 0x20);
        int d = is_digit(src_[q]) ? src_[q] - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (src_[q] == '_') {
          ++q;
          continue;
        }
        if (d < 0 || d >= base) break;
        if (v > (static_cast<uint64_t>(INT64_MAX) - d) / base) fail(p, "integer literal too large");
        v = v * base + d;
        ++q;
      }
      if (q == start) fail(p, "malformed integer literal");
      push(Tok::Int, p).ival = static_cast<int64_t>(v);
      return q;
    }
    size_t q = digits(p);
    bool is_float = false;
    if (q + 1 < n && src_[q] == '.' && is_digit(src_[q + 1])) {
      q = digits(q + 1);
      is_float = true;
    }
    if (q < n && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      if (r < n && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < n && is_digit(src_[r])) {
        q = digits(r);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = p; i < q; ++i)
      if (src_[i] != '_') text += src_[i];
    if (is_float) {
      push(Tok::Float, p).fval = std::strtod(text.c_str(), nullptr);
    } else {
      if (text.size() > 18 && text > "9223372036854775807") fail(p, "integer literal too large");
      push(Tok::Int, p).ival = std::stoll(text);
    }
    return q;
  }

  size_t lex_string(size_t p) {
    const size_t n = src_.size();
    char quote = src_[p];
    std::string out;
    size_t q = p + 1;
    auto hex = [&](size_t at, int count) -> uint32_t {
      uint32_t v = 0;
      for (int i = 0; i < count; ++i) {
        if (at + i >= n) fail(p, "malformed \\x/\\u escape in string literal");
        char ch = src_[at + i];
        char c = static_cast<char>(ch | 0x20);
        int d = is_digit(ch) ? ch - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) fail(at, "malformed \\x/\\u escape in string literal");
        v = v * 16 + d;
      }
      return v;
    };
    while (true) {
      if (q >= n) fail(p, "unterminated string literal");
      char c = src_[q];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++q;
        continue;
      }
      if (q + 1 >= n) fail(p, "unterminated string literal");
      char e = src_[q + 1];
      q += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'a': out += '\a'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;  // line continuation
        case 'x': append_utf8(out, hex(q, 2)); q += 2; break;
        case 'u': append_utf8(out, hex(q, 4)); q += 4; break;
        case 'U': {
          uint32_t cp = hex(q, 8);
          if (cp > 0x10ffff) fail(q, "invalid \\U escape");
          append_utf8(out, cp);
          q += 8;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {  // up to three octal digits
            uint32_t v = e - '0';
            for (int i = 0; i < 2 && q < n && src_[q] >= '0' && src_[q] <= '7'; ++i) v = v * 8 + (src_[q++] - '0');
            append_utf8(out, v);
          } else {  // unknown escapes stay verbatim, as in Python
            out += '\\';
            out += e;
          }
      }
    }
    push(Tok::String, p, std::move(out));
    return q + 1;
  }
};

}  // namespace

std::vector<Token> lex(std::string_view source) { return Lexer(normalize_newlines(source)).run(); }

}  // namespace parallama::jinja
