#include "tokenizer/jinja_parser.h"

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_lexer.h"

namespace parallama::jinja {

namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  Body parse_all() {
    std::string end;
    return parse_body({}, &end);
  }

 private:
  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxParseDepth) p.fail("template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token& cur() const { return t_[i_]; }
  const Token& peek() const { return t_[std::min(i_ + 1, t_.size() - 1)]; }
  void next() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().value == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().value == n; }

  static std::string describe(const Token& t) {
    if (t.type == Tok::Op || t.type == Tok::Name) return "'" + t.value + "'";
    return tok_name(t.type);
  }

  [[noreturn]] void fail(const std::string& msg) const { syntax_error(cur().line, cur().col, msg); }

  void expect_op(const char* op) {
    if (!is_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
    next();
  }
  void expect(Tok t) {
    if (cur().type != t) fail(std::string("expected ") + tok_name(t) + ", got " + describe(cur()));
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail("expected a name, got " + describe(cur()));
    std::string n = cur().value;
    next();
    return n;
  }

  ExprPtr node(Expr::Kind k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->col = at.col;
    return e;
  }

  // ---- statements ----

  // Parses until one of `end_tags` opens a block; the tag name is consumed and
  // stored in *found, the rest of that block is left to the caller.
  Body parse_body(const std::vector<std::string>& end_tags, std::string* found) {
    DepthGuard g(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Eof) {
        if (end_tags.empty()) return body;
        std::string want;
        for (size_t k = 0; k < end_tags.size(); ++k) want += (k ? " or '" : "'") + end_tags[k] + "'";
        fail("unexpected end of template, expected " + want);
      }
      if (t.type == Tok::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->line = t.line;
        s->col = t.col;
        s->text = t.value;
        body.push_back(std::move(s));
        next();
      } else if (t.type == Tok::VarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->line = t.line;
        s->col = t.col;
        next();
        s->expr = parse_tuple(true);
        expect(Tok::VarEnd);
        body.push_back(std::move(s));
      } else if (t.type == Tok::BlockBegin) {
        next();
        if (cur().type != Tok::Name) fail("expected a tag name, got " + describe(cur()));
        for (const auto& e : end_tags)
          if (cur().value == e) {
            *found = e;
            next();
            return body;
          }
        body.push_back(parse_statement());
      } else {
        fail("unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement() {
    const Token& t = cur();
    auto s = std::make_unique<Stmt>();
    s->line = t.line;
    s->col = t.col;
    std::string tag = t.value;
    next();
    std::string end;
    if (tag == "if") {
      s->kind = Stmt::Kind::If;
      ExprPtr cond = parse_expression(true);
      while (true) {
        expect(Tok::BlockEnd);
        Body b = parse_body({"elif", "else", "endif"}, &end);
        s->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "elif") {
          cond = parse_expression(true);
          continue;
        }
        if (end == "else") {
          expect(Tok::BlockEnd);
          s->else_body = parse_body({"endif"}, &end);
        }
        break;
      }
    } else if (tag == "for") {
      s->kind = Stmt::Kind::For;
      bool paren = is_op("(");
      if (paren) next();
      s->targets.push_back(expect_name());
      while (is_op(",")) {
        next();
        if (is_name("in") || is_op(")")) break;
        s->targets.push_back(expect_name());
      }
      if (paren) expect_op(")");
      if (!is_name("in")) fail("expected 'in', got " + describe(cur()));
      next();
      s->expr = parse_tuple(false);
      if (is_name("if")) {
        next();
        s->cond = parse_expression(true);
      }
      if (is_name("recursive")) fail("recursive loops are not supported");
      expect(Tok::BlockEnd);
      ++loop_depth_;
      s->body = parse_body({"endfor", "else"}, &end);
      --loop_depth_;
      if (end == "else") {
        expect(Tok::BlockEnd);
        s->else_body = parse_body({"endfor"}, &end);
      }
    } else if (tag == "set") {
      s->targets.push_back(expect_name());
      if (is_op(".")) {
        next();
        s->attr = expect_name();
      } else {
        while (is_op(",")) {
          next();
          s->targets.push_back(expect_name());
        }
      }
      if (is_op("=")) {
        next();
        s->kind = Stmt::Kind::Set;
        s->expr = parse_tuple(true);
      } else {
        if (s->targets.size() != 1 || !s->attr.empty()) fail("expected '=' in set statement");
        s->kind = Stmt::Kind::SetBlock;
        if (is_op("|")) s->filter = parse_filter(nullptr);
        expect(Tok::BlockEnd);
        s->body = parse_body({"endset"}, &end);
      }
    } else if (tag == "macro") {
      s->kind = Stmt::Kind::Macro;
      s->name = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        std::string p = expect_name();
        ExprPtr def;
        if (is_op("=")) {
          next();
          def = parse_expression(true);
        }
        s->params.emplace_back(std::move(p), std::move(def));
        if (!is_op(",")) break;
        next();
      }
      expect_op(")");
      expect(Tok::BlockEnd);
      int saved = loop_depth_;
      loop_depth_ = 0;
      s->body = parse_body({"endmacro"}, &end);
      loop_depth_ = saved;
    } else if (tag == "filter") {
      s->kind = Stmt::Kind::FilterBlock;
      s->filter = parse_filter(nullptr, /*first_pipe=*/false);
      expect(Tok::BlockEnd);
      s->body = parse_body({"endfilter"}, &end);
    } else if (tag == "generation") {
      s->kind = Stmt::Kind::Scope;
      expect(Tok::BlockEnd);
      s->body = parse_body({"endgeneration"}, &end);
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) syntax_error(s->line, s->col, "'" + tag + "' outside of a loop");
      s->kind = tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
    } else {
      syntax_error(s->line, s->col, "unknown tag '" + tag + "'");
    }
    expect(Tok::BlockEnd);
    return s;
  }

  // ---- expressions ----

  // An expression, or a bare tuple `a, b` where Jinja allows one.
  ExprPtr parse_tuple(bool with_condexpr) {
    const Token& start = cur();
    ExprPtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto t = node(Expr::Kind::Tuple, start);
    t->args.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_name("if")) break;
      t->args.push_back(parse_expression(with_condexpr));
    }
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard g(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      auto c = node(Expr::Kind::CondExpr, cur());
      next();
      ExprPtr cond = parse_or();
      ExprPtr other;
      if (is_name("else")) {
        next();
        DepthGuard g(*this);
        other = parse_condexpr();
      }
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(other));
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(const Token& at, std::string op, ExprPtr l, ExprPtr r) {
    auto b = node(Expr::Kind::Binary, at);
    b->name = std::move(op);
    b->args.push_back(std::move(l));
    b->args.push_back(std::move(r));
    return b;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      Token at = cur();
      next();
      e = binary(at, "or", std::move(e), parse_and());
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      Token at = cur();
      next();
      e = binary(at, "and", std::move(e), parse_not());
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard g(*this);
      auto u = node(Expr::Kind::Unary, cur());
      u->name = "not";
      next();
      u->args.push_back(parse_not());
      return u;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token start = cur();
    ExprPtr e = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::Op && (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
                                    cur().value == "<=" || cur().value == ">" || cur().value == ">=")) {
        op = cur().value;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == Tok::Name && peek().value == "in") {
        op = "not in";
        next();
        next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(Expr::Kind::Compare, start);
        cmp->args.push_back(std::move(e));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(e);
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      Token at = cur();
      next();
      e = binary(at, at.value, std::move(e), parse_concat());
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      Token at = cur();
      next();
      e = binary(at, "~", std::move(e), parse_math2());
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      Token at = cur();
      next();
      e = binary(at, at.value, std::move(e), parse_pow());
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      Token at = cur();
      next();
      e = binary(at, "**", std::move(e), parse_unary(true));
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard g(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = node(Expr::Kind::Unary, cur());
      e->name = cur().value;
      next();
      e->args.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    ExprPtr e;
    switch (t.type) {
      case Tok::Name:
        e = node(Expr::Kind::Literal, t);
        if (t.value == "true" || t.value == "True") e->value = Value(true);
        else if (t.value == "false" || t.value == "False") e->value = Value(false);
        else if (t.value == "none" || t.value == "None") e->value = Value(None{});
        else {
          e->kind = Expr::Kind::Name;
          e->name = t.value;
        }
        next();
        return e;
      case Tok::String: {
        e = node(Expr::Kind::Literal, t);
        std::string s;
        while (cur().type == Tok::String) {  // adjacent literals concatenate
          s += cur().value;
          check_string_size(s.size());
          next();
        }
        e->value = Value(std::move(s));
        return e;
      }
      case Tok::Int:
        e = node(Expr::Kind::Literal, t);
        e->value = Value(t.ival);
        next();
        return e;
      case Tok::Float:
        e = node(Expr::Kind::Literal, t);
        e->value = Value(t.fval);
        next();
        return e;
      case Tok::Op:
        if (t.value == "(") return parse_paren();
        if (t.value == "[") return parse_list();
        if (t.value == "{") return parse_dict();
        break;
      default: break;
    }
    fail("expected an expression, got " + describe(t));
  }

  ExprPtr parse_paren() {
    auto tup = node(Expr::Kind::Tuple, cur());
    next();  // (
    if (is_op(")")) {
      next();
      return tup;
    }
    ExprPtr first = parse_expression(true);
    if (is_op(")")) {
      next();
      return first;  // plain parenthesized expression
    }
    tup->args.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (is_op(")")) break;
      tup->args.push_back(parse_expression(true));
    }
    expect_op(")");
    return tup;
  }

  ExprPtr parse_list() {
    auto l = node(Expr::Kind::List, cur());
    next();  // [
    while (!is_op("]")) {
      l->args.push_back(parse_expression(true));
      if (!is_op(",")) break;
      next();
    }
    expect_op("]");
    return l;
  }

  ExprPtr parse_dict() {
    auto d = node(Expr::Kind::Dict, cur());
    next();  // {
    while (!is_op("}")) {
      d->args.push_back(parse_expression(true));
      expect_op(":");
      d->args.push_back(parse_expression(true));
      if (!is_op(",")) break;
      next();
    }
    expect_op("}");
    return d;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        const Token at = cur();
        next();
        if (cur().type == Tok::Name) {
          auto g = node(Expr::Kind::GetAttr, at);
          g->name = cur().value;
          g->args.push_back(std::move(e));
          e = std::move(g);
        } else if (cur().type == Tok::Int) {
          auto g = node(Expr::Kind::GetItem, at);
          g->args.push_back(std::move(e));
          auto k = node(Expr::Kind::Literal, cur());
          k->value = Value(cur().ival);
          g->args.push_back(std::move(k));
          e = std::move(g);
        } else {
          fail("expected an attribute name, got " + describe(cur()));
        }
        next();
      } else if (is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    const Token at = cur();
    next();  // [
    ExprPtr start;
    if (!is_op(":")) start = parse_expression(true);
    if (!is_op(":")) {
      expect_op("]");
      auto g = node(Expr::Kind::GetItem, at);
      g->args.push_back(std::move(obj));
      g->args.push_back(std::move(start));
      return g;
    }
    next();  // :
    ExprPtr stop, step;
    if (!is_op("]") && !is_op(":")) stop = parse_expression(true);
    if (is_op(":")) {
      next();
      if (!is_op("]")) step = parse_expression(true);
    }
    expect_op("]");
    auto s = node(Expr::Kind::Slice, at);
    s->args.push_back(std::move(obj));
    s->args.push_back(std::move(start));
    s->args.push_back(std::move(stop));
    s->args.push_back(std::move(step));
    return s;
  }

  // Parses `( args )` into e->args (after any existing operands) and e->kwargs.
  void parse_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().value == "=") {
        std::string k = cur().value;
        next();
        next();
        e.kwargs.emplace_back(std::move(k), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail("positional argument follows keyword argument");
        e.args.push_back(parse_expression(true));
      }
      if (!is_op(",")) break;
      next();
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto c = node(Expr::Kind::Call, cur());
    c->args.push_back(std::move(callee));
    parse_args(*c);
    return c;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  // `| name(args) | name ...`; with first_pipe=false the leading `|` is absent
  // ({% filter name %}). A null input marks the block body as the input.
  ExprPtr parse_filter(ExprPtr input, bool first_pipe = true) {
    bool first = true;
    while ((first && !first_pipe) || is_op("|")) {
      if (!(first && !first_pipe)) next();
      first = false;
      DepthGuard g(*this);
      auto f = node(Expr::Kind::Filter, cur());
      f->name = expect_name();
      if (!has_filter(f->name)) syntax_error(f->line, f->col, "no filter named '" + f->name + "'");
      f->args.push_back(std::move(input));
      if (is_op("(")) parse_args(*f);
      input = std::move(f);
    }
    return input;
  }

  ExprPtr parse_test(ExprPtr input) {
    auto t = node(Expr::Kind::Test, cur());
    next();  // is
    if (is_name("not")) {
      t->negated = true;
      next();
    }
    // Test names may be keywords that lex as literals elsewhere (none, true, false).
    const Token name_tok = cur();
    t->name = expect_name();
    if (!has_test(t->name)) syntax_error(name_tok.line, name_tok.col, "no test named '" + t->name + "'");
    t->args.push_back(std::move(input));
    const Token& c = cur();
    bool arg_start = (c.type == Tok::Name && c.value != "else" && c.value != "or" && c.value != "and") ||
                     c.type == Tok::String || c.type == Tok::Int || c.type == Tok::Float ||
                     (c.type == Tok::Op && (c.value == "[" || c.value == "{"));
    if (is_op("(")) {
      parse_args(*t);
    } else if (arg_start) {
      if (is_name("is")) fail("cannot chain multiple tests with 'is'");
      DepthGuard g(*this);
      t->args.push_back(parse_postfix(parse_primary()));
    }
    return t;
  }
};

}  // namespace

Body parse_template(std::string_view source) { return Parser(lex(source)).parse_all(); }

}  // namespace parallama::jinja
