// Tree-walking evaluator for the Jinja subset. Scoping follows jinja2: each
// for-loop iteration and each macro call gets its own frame, `if` does not, and
// `set` writes to the innermost frame (so loop-local sets do not leak; templates
// use namespace() objects to carry state out of loops).
#include "tokenizer/jinja.h"

#include <unordered_map>

#include "tokenizer/jinja_ops.h"
#include "tokenizer/jinja_parser.h"

namespace parallama::jinja {

namespace {

constexpr int kMaxEvalDepth = 1500;  // C++ recursion of exec/eval, macros included
constexpr int kMaxMacroDepth = 64;

// True if `v` (transitively) holds the dict `target`; used to refuse namespace cycles.
bool holds(const Value& v, const Dict* target, int depth) {
  if (depth > kMaxNesting) return true;
  if (v.is_list()) {
    for (const auto& x : v.get_list()->items)
      if (holds(x, target, depth + 1)) return true;
  } else if (v.is_dict()) {
    if (v.get_dict().get() == target) return true;
    for (const auto& [k, x] : v.get_dict()->items)
      if (holds(x, target, depth + 1)) return true;
  }
  return false;
}

class Renderer {
 public:
  explicit Renderer(const Value& context) : ctx_(context) { frames_.emplace_back(); }

  std::string run(const Body& body) {
    std::string out;
    out_ = &out;
    try {
      exec(body);
    } catch (const TemplateRaise&) {
      throw;
    } catch (const std::exception& e) {
      PL_THROW("template error at line " << line_ << ": " << e.what());
    }
    return out;
  }

 private:
  enum class Flow { Normal, Break, Continue };
  using Frame = std::unordered_map<std::string, Value>;

  const Value& ctx_;
  std::vector<Frame> frames_;
  size_t floor_ = 0;  // frames [1, floor_) are hidden while a macro runs
  std::string* out_ = nullptr;
  const Value* block_input_ = nullptr;  // input of filter chains in {% filter %} / {% set x | f %}
  int64_t iterations_ = 0;
  int depth_ = 0;
  int macro_depth_ = 0;
  int line_ = 0;

  struct DepthGuard {
    int& d;
    explicit DepthGuard(int& depth) : d(depth) {
      if (++d > kMaxEvalDepth) PL_THROW("template recursion too deep");
    }
    ~DepthGuard() { --d; }
  };

  void emit(const std::string& s) {
    out_->append(s);
    check_string_size(out_->size());
  }

  Value lookup(const std::string& name) const {
    for (size_t i = frames_.size(); i-- > 0;) {
      if (i > 0 && i < floor_) continue;
      auto it = frames_[i].find(name);
      if (it != frames_[i].end()) return it->second;
    }
    if (ctx_.is_dict())
      if (const Value* v = ctx_.get_dict()->find(Value(name))) return *v;
    return builtin_global(name);
  }

  static void bind(Frame& f, const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      f[targets[0]] = v;
      return;
    }
    auto items = v.iterate();
    if (items.size() < targets.size())
      PL_THROW("not enough values to unpack (expected " << targets.size() << ", got " << items.size() << ")");
    if (items.size() > targets.size()) PL_THROW("too many values to unpack (expected " << targets.size() << ")");
    for (size_t i = 0; i < targets.size(); ++i) f[targets[i]] = items[i];
  }

  std::string capture(const Body& body) {
    std::string tmp;
    std::string* saved = out_;
    out_ = &tmp;
    try {
      exec(body);
    } catch (...) {
      out_ = saved;
      throw;
    }
    out_ = saved;
    return tmp;
  }

  Value apply_block_filter(const Expr& filter, const Value& input) {
    const Value* saved = block_input_;
    block_input_ = &input;
    try {
      Value r = eval(filter);
      block_input_ = saved;
      return r;
    } catch (...) {
      block_input_ = saved;
      throw;
    }
  }

  Flow exec(const Body& body) {
    for (const auto& s : body) {
      Flow f = exec_stmt(*s);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec_stmt(const Stmt& s) {
    DepthGuard g(depth_);
    line_ = s.line;
    switch (s.kind) {
      case Stmt::Kind::Text: emit(s.text); break;
      case Stmt::Kind::Output: emit(eval(*s.expr).to_str()); break;
      case Stmt::Kind::If:
        for (const auto& [cond, body] : s.branches)
          if (eval(*cond).truthy()) return exec(body);
        return exec(s.else_body);
      case Stmt::Kind::For: return exec_for(s);
      case Stmt::Kind::Set: {
        Value v = eval(*s.expr);
        if (!s.attr.empty()) {
          Value ns = lookup(s.targets[0]);
          if (!ns.is_namespace()) PL_THROW("cannot assign attribute on non-namespace object");
          if (holds(v, ns.get_dict().get(), 0)) PL_THROW("cannot store a namespace inside itself");
          ns.get_dict()->set(Value(s.attr), std::move(v));
        } else {
          bind(frames_.back(), s.targets, v);
        }
        break;
      }
      case Stmt::Kind::SetBlock: {
        Value v(capture(s.body));
        if (s.filter) v = apply_block_filter(*s.filter, v);
        frames_.back()[s.targets[0]] = std::move(v);
        break;
      }
      case Stmt::Kind::Macro: {
        const Stmt* m = &s;
        frames_.back()[s.name] = Value::function(s.name, [this, m](const Args& a) { return call_macro(*m, a); });
        break;
      }
      case Stmt::Kind::FilterBlock: emit(apply_block_filter(*s.filter, Value(capture(s.body))).to_str()); break;
      case Stmt::Kind::Scope: return exec(s.body);
      case Stmt::Kind::Break: return Flow::Break;
      case Stmt::Kind::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  // The `loop` variable; built directly (keys are distinct) since it is made per iteration.
  static Value loop_object(size_t i, const std::vector<Value>& items) {
    int64_t n = static_cast<int64_t>(items.size()), k = static_cast<int64_t>(i);
    auto d = std::make_shared<Dict>();
    auto& kv = d->items;
    kv.reserve(12);
    kv.emplace_back("index", k + 1);
    kv.emplace_back("index0", k);
    kv.emplace_back("revindex", n - k);
    kv.emplace_back("revindex0", n - k - 1);
    kv.emplace_back("first", k == 0);
    kv.emplace_back("last", k == n - 1);
    kv.emplace_back("length", n);
    kv.emplace_back("depth", 1);
    kv.emplace_back("depth0", 0);
    if (i > 0) {
      kv.emplace_back("previtem", items[i - 1]);
      d->depth = std::max(d->depth, items[i - 1].depth() + 1);
    }
    if (k + 1 < n) {
      kv.emplace_back("nextitem", items[i + 1]);
      d->depth = std::max(d->depth, items[i + 1].depth() + 1);
    }
    kv.emplace_back("cycle", Value::function("cycle", [k](const Args& a) {
                      if (a.pos.empty()) PL_THROW("no items for cycling given");
                      return a.pos[static_cast<size_t>(k) % a.pos.size()];
                    }));
    return Value(std::move(d));
  }

  Flow exec_for(const Stmt& s) {
    Value seq = eval(*s.expr);
    std::vector<Value> items = seq.iterate();
    if (s.cond) {
      std::vector<Value> kept;
      for (auto& it : items) {
        frames_.emplace_back();
        try {
          bind(frames_.back(), s.targets, it);
          bool ok = eval(*s.cond).truthy();
          frames_.pop_back();
          if (ok) kept.push_back(std::move(it));
        } catch (...) {
          frames_.pop_back();
          throw;
        }
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body);
    for (size_t i = 0; i < items.size(); ++i) {
      if (++iterations_ > kMaxLoopIterations) PL_THROW("too many loop iterations");
      frames_.emplace_back();
      Flow f;
      try {
        bind(frames_.back(), s.targets, items[i]);
        frames_.back()["loop"] = loop_object(i, items);
        f = exec(s.body);
      } catch (...) {
        frames_.pop_back();
        throw;
      }
      frames_.pop_back();
      if (f == Flow::Break) break;
    }
    return Flow::Normal;
  }

  Value call_macro(const Stmt& m, const Args& a) {
    if (macro_depth_ >= kMaxMacroDepth) PL_THROW("macro recursion too deep");
    if (a.pos.size() > m.params.size())
      PL_THROW("macro '" << m.name << "' takes not more than " << m.params.size() << " argument(s)");
    for (const auto& [k, v] : a.kw) {
      bool known = false;
      for (const auto& p : m.params) known |= p.first == k;
      if (!known) PL_THROW("macro '" << m.name << "' takes no keyword argument '" << k << "'");
    }
    int saved_line = line_;
    size_t saved_floor = floor_;
    frames_.emplace_back();
    floor_ = frames_.size() - 1;
    ++macro_depth_;
    auto restore = [&] {
      --macro_depth_;
      frames_.pop_back();
      floor_ = saved_floor;
    };
    std::string out;
    try {
      for (size_t i = 0; i < m.params.size(); ++i) {
        const auto& [pname, def] = m.params[i];
        const Value* given = nullptr;
        for (const auto& [k, v] : a.kw)
          if (k == pname) given = &v;
        if (!given && i < a.pos.size()) given = &a.pos[i];
        Value v = given ? *given : def ? eval(*def) : Value::undefined("parameter '" + pname + "' was not provided");
        frames_.back()[pname] = std::move(v);
      }
      out = capture(m.body);
    } catch (...) {
      restore();
      throw;
    }
    restore();
    line_ = saved_line;
    return Value(std::move(out));
  }

  Args eval_args(const Expr& e) {
    Args a;
    for (size_t i = 1; i < e.args.size(); ++i) a.pos.push_back(eval(*e.args[i]));
    for (const auto& [k, v] : e.kwargs) a.kw.emplace_back(k, eval(*v));
    return a;
  }

  Value eval(const Expr& e) {
    DepthGuard g(depth_);
    line_ = e.line;
    switch (e.kind) {
      case Expr::Kind::Literal: return e.value;
      case Expr::Kind::Name: return lookup(e.name);
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        std::vector<Value> items;
        for (const auto& x : e.args) items.push_back(eval(*x));
        return Value::list(std::move(items), e.kind == Expr::Kind::Tuple);
      }
      case Expr::Kind::Dict: {
        std::vector<std::pair<Value, Value>> kv;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i]);
          if (k.is_list() && !k.get_list()->is_tuple) PL_THROW("unhashable type: 'list'");
          if (k.is_dict()) PL_THROW("unhashable type: 'dict'");
          kv.emplace_back(std::move(k), eval(*e.args[i + 1]));
        }
        return Value::dict(std::move(kv));
      }
      case Expr::Kind::GetAttr: return get_attr(eval(*e.args[0]), e.name);
      case Expr::Kind::GetItem: {
        Value obj = eval(*e.args[0]);
        return get_item(obj, eval(*e.args[1]));
      }
      case Expr::Kind::Slice: {
        Value obj = eval(*e.args[0]);
        Value parts[3];
        for (int i = 0; i < 3; ++i)
          if (e.args[i + 1]) parts[i] = eval(*e.args[i + 1]);
        return slice_value(obj, parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::Call: {
        Value callee = eval(*e.args[0]);
        require_defined(callee);
        if (!callee.is_callable()) PL_THROW("'" << callee.type_name() << "' object is not callable");
        Args a = eval_args(e);
        return callee.get_callable().fn(a);
      }
      case Expr::Kind::Filter: {
        Value input;
        if (e.args[0]) input = eval(*e.args[0]);
        else if (block_input_) input = *block_input_;
        Args a = eval_args(e);
        line_ = e.line;
        return call_filter(e.name, input, a);
      }
      case Expr::Kind::Test: {
        Value input = eval(*e.args[0]);
        Args a = eval_args(e);
        return Value(call_test(e.name, input, a) != e.negated);
      }
      case Expr::Kind::Unary: {
        Value v = eval(*e.args[0]);
        if (e.name == "not") return Value(!v.truthy());
        if (e.name == "-") return unary_minus(v);
        require_defined(v);
        if (!v.is_number()) PL_THROW("bad operand type for unary +: '" << v.type_name() << "'");
        return v.is_bool() ? Value(v.as_int()) : v;
      }
      case Expr::Kind::Binary: {
        Value l = eval(*e.args[0]);
        if (e.name == "and") return l.truthy() ? eval(*e.args[1]) : l;
        if (e.name == "or") return l.truthy() ? l : eval(*e.args[1]);
        Value r = eval(*e.args[1]);
        line_ = e.line;
        return binary_op(e.name, l, r);
      }
      case Expr::Kind::Compare: {
        Value l = eval(*e.args[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value r = eval(*e.args[i + 1]);
          line_ = e.line;
          if (!compare_op(e.ops[i], l, r)) return Value(false);
          l = std::move(r);
        }
        return Value(true);
      }
      case Expr::Kind::CondExpr:
        if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
        if (e.args[2]) return eval(*e.args[2]);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
    return Value();
  }
};

}  // namespace

Template::Template(std::string_view source) : body_(std::make_shared<const Body>(parse_template(source))) {}

std::string Template::render(const Value& context) const { return Renderer(context).run(*body_); }

}  // namespace parallama::jinja
