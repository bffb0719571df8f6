// Syntax tree of the Jinja2 subset: expressions and statements as plain
// tagged nodes (the evaluator switches on `kind`).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace parallama::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
using KwArgs = std::vector<std::pair<std::string, ExprPtr>>;

struct Expr {
  enum class Kind {
    Literal,   // value
    Name,      // name
    List,      // args = items
    Tuple,     // args = items
    Dict,      // args = k0, v0, k1, v1, ...
    GetAttr,   // args = {obj}, name = attribute
    GetItem,   // args = {obj, key}
    Slice,     // args = {obj, start, stop, step}, absent parts are null
    Call,      // args = {callee, positional...}, kwargs
    Filter,    // args = {input (null inside filter blocks), positional...}, name, kwargs
    Test,      // args = {input, positional...}, name, kwargs, negated
    Unary,     // args = {operand}, name = "-", "+" or "not"
    Binary,    // args = {lhs, rhs}, name = operator ("+", "~", "//", "and", "or", ...)
    Compare,   // args = {first, rest...}, ops[i] joins args[i] and args[i + 1]
    CondExpr,  // args = {then, cond, else (may be null)}
  };
  Kind kind = Kind::Literal;
  int line = 0;
  int col = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  KwArgs kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    Text,         // text
    Output,       // expr
    If,           // branches (cond, body) in order, else_body
    For,          // targets, expr = iterable, cond = optional filter, body, else_body
    Set,          // targets (unpacking) or targets = {ns} + attr, expr = value
    SetBlock,     // targets = {name}, body, filter = optional filter chain
    Macro,        // name, params, body
    FilterBlock,  // filter chain applied to the rendered body
    Scope,        // body rendered as is ({% generation %})
    Break,
    Continue,
  };
  Kind kind = Kind::Text;
  int line = 0;
  int col = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  ExprPtr filter;  // Filter node whose innermost input is null
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  std::string attr;
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters, default may be null
};

}  // namespace parallama::jinja
