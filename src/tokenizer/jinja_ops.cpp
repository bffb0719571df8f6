#include "tokenizer/jinja_ops.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace parallama::jinja {

namespace {

uint32_t decode_cp(std::string_view c) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(c[i])); };
  if (c.empty()) return 0;
  if (c.size() == 1) return b(0);
  if (c.size() == 2) return ((b(0) & 0x1f) << 6) | (b(1) & 0x3f);
  if (c.size() == 3) return ((b(0) & 0x0f) << 12) | ((b(1) & 0x3f) << 6) | (b(2) & 0x3f);
  return ((b(0) & 0x07) << 18) | ((b(1) & 0x3f) << 12) | ((b(2) & 0x3f) << 6) | (b(3) & 0x3f);
}

// str.isspace() code points.
bool py_space(std::string_view c) {
  uint32_t cp = decode_cp(c);
  return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

[[noreturn]] void type_error(std::string_view op, const Value& l, const Value& r) {
  PL_THROW("unsupported operand type(s) for " << op << ": '" << l.type_name() << "' and '"
                                              << r.type_name() << "'");
}

void check_overflow(bool overflow) {
  if (overflow) PL_THROW("integer overflow");
}

Value int_pow(int64_t base, int64_t exp) {
  if (exp < 0) return Value(std::pow(static_cast<double>(base), static_cast<double>(exp)));
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1) check_overflow(__builtin_mul_overflow(result, base, &result));
    exp >>= 1;
    if (exp > 0) check_overflow(__builtin_mul_overflow(base, base, &base));
  }
  return Value(result);
}

Value repeat(const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? Value("") : Value::list({}, seq.get_list()->is_tuple);
  if (seq.is_string()) {
    const std::string& s = seq.get_string();
    if (!s.empty() && static_cast<uint64_t>(n) > kMaxStringBytes / s.size()) check_string_size(kMaxStringBytes + 1);
    std::string out;
    out.reserve(s.size() * n);
    for (int64_t i = 0; i < n; ++i) out += s;
    return Value(std::move(out));
  }
  const auto& items = seq.get_list()->items;
  if (!items.empty() && static_cast<uint64_t>(n) > kMaxListItems / items.size()) PL_THROW("list too large");
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::list(std::move(out), seq.get_list()->is_tuple);
}

Value bound(const Value& self, const std::string& name, std::function<Value(const Value&, const Args&)> fn) {
  return Value::function(name, [self, fn = std::move(fn)](const Args& a) { return fn(self, a); });
}

std::optional<std::string> opt_str(const Args& a, size_t i, std::string_view name) {
  const Value* v = a.get(i, name);
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) PL_THROW(name << " must be a string, not " << v->type_name());
  return v->get_string();
}

std::string req_str(const Args& a, size_t i, std::string_view name) {
  auto s = opt_str(a, i, name);
  if (!s) PL_THROW("missing string argument '" << name << "'");
  return *s;
}

int64_t opt_int(const Args& a, size_t i, std::string_view name, int64_t def) {
  const Value* v = a.get(i, name);
  if (!v || v->is_none()) return def;
  if (!v->is_int() && !v->is_bool()) PL_THROW(name << " must be an integer, not " << v->type_name());
  return v->as_int();
}

// startswith/endswith accept a string or a tuple of strings.
bool affix_match(const std::string& s, const Value& what, bool prefix) {
  auto one = [&](const Value& p) {
    if (!p.is_string()) PL_THROW("startswith/endswith argument must be str or a tuple of str");
    const std::string& x = p.get_string();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (what.is_list()) {
    for (const auto& p : what.get_list()->items)
      if (one(p)) return true;
    return false;
  }
  return one(what);
}

Value string_method(const Value& self, const std::string& name) {
  using A = const Args&;
  using V = const Value&;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    return bound(self, name, [l, r](V s, A a) { return Value(py_strip(s.get_string(), opt_str(a, 0, "chars"), l, r)); });
  }
  if (name == "upper") return bound(self, name, [](V s, A) { return Value(py_upper(s.get_string())); });
  if (name == "lower") return bound(self, name, [](V s, A) { return Value(py_lower(s.get_string())); });
  if (name == "title") return bound(self, name, [](V s, A) { return Value(py_title(s.get_string())); });
  if (name == "capitalize")
    return bound(self, name, [](V s, A) { return Value(py_capitalize(s.get_string())); });
  if (name == "startswith" || name == "endswith") {
    bool prefix = name == "startswith";
    return bound(self, name, [prefix](V s, A a) {
      const Value* p = a.get(0, "prefix");
      if (!p) PL_THROW("startswith/endswith takes one argument");
      return Value(affix_match(s.get_string(), *p, prefix));
    });
  }
  if (name == "split")
    return bound(self, name, [](V s, A a) {
      return Value::list(py_split(s.get_string(), opt_str(a, 0, "sep"), opt_int(a, 1, "maxsplit", -1)));
    });
  if (name == "replace")
    return bound(self, name, [](V s, A a) {
      return Value(py_replace(s.get_string(), req_str(a, 0, "old"), req_str(a, 1, "new"), opt_int(a, 2, "count", -1)));
    });
  if (name == "find" || name == "count") {
    bool find = name == "find";
    return bound(self, name, [find](V s, A a) {
      std::string sub = req_str(a, 0, "sub");
      const std::string& str = s.get_string();
      if (find) {
        size_t p = str.find(sub);
        return p == std::string::npos ? Value(-1) : Value(static_cast<int64_t>(utf8_length(str.substr(0, p))));
      }
      if (sub.empty()) return Value(static_cast<int64_t>(utf8_length(str) + 1));
      int64_t n = 0;
      for (size_t p = str.find(sub); p != std::string::npos; p = str.find(sub, p + sub.size())) ++n;
      return Value(n);
    });
  }
  if (name == "join")
    return bound(self, name, [](V s, A a) {
      const Value* it = a.get(0, "iterable");
      if (!it) PL_THROW("join takes one argument");
      std::string out;
      bool first = true;
      for (const auto& v : it->iterate()) {
        if (!v.is_string()) PL_THROW("sequence item: expected str instance, " << v.type_name() << " found");
        if (!first) out += s.get_string();
        first = false;
        out += v.get_string();
        check_string_size(out.size());
      }
      return Value(std::move(out));
    });
  if (name == "isspace" || name == "isdigit" || name == "isalpha" || name == "isalnum") {
    return bound(self, name, [name](V s, A) {
      const std::string& str = s.get_string();
      if (str.empty()) return Value(false);
      for (const auto& c : utf8_chars(str)) {
        unsigned char b = static_cast<unsigned char>(c[0]);
        bool ok = name == "isspace" ? py_space(c)
                  : name == "isdigit" ? std::isdigit(b) != 0
                  : name == "isalpha" ? std::isalpha(b) != 0
                                      : std::isalnum(b) != 0;
        if (!ok) return Value(false);
      }
      return Value(true);
    });
  }
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value dict_method(const Value& self, const std::string& name) {
  using A = const Args&;
  using V = const Value&;
  if (name == "items")
    return bound(self, name, [](V d, A) {
      std::vector<Value> out;
      for (const auto& [k, v] : d.get_dict()->items) out.push_back(Value::list({k, v}, true));
      return Value::list(std::move(out));
    });
  if (name == "keys")
    return bound(self, name, [](V d, A) {
      std::vector<Value> out;
      for (const auto& kv : d.get_dict()->items) out.push_back(kv.first);
      return Value::list(std::move(out));
    });
  if (name == "values")
    return bound(self, name, [](V d, A) {
      std::vector<Value> out;
      for (const auto& kv : d.get_dict()->items) out.push_back(kv.second);
      return Value::list(std::move(out));
    });
  if (name == "get")
    return bound(self, name, [](V d, A a) {
      const Value* k = a.get(0, "key");
      if (!k) PL_THROW("get expected at least 1 argument");
      const Value* v = d.get_dict()->find(*k);
      if (v) return *v;
      const Value* def = a.get(1, "default");
      return def ? *def : Value(None{});
    });
  return Value();
}

}  // namespace

void require_defined(const Value& v) {
  if (v.is_undefined()) PL_THROW((v.undefined_hint().empty() ? "value is undefined" : v.undefined_hint()));
}

Value unary_minus(const Value& v) {
  require_defined(v);
  if (v.is_float()) return Value(-v.get_float());
  if (v.is_int() || v.is_bool()) {
    int64_t x = v.as_int();
    if (x == INT64_MIN) PL_THROW("integer overflow");
    return Value(-x);
  }
  PL_THROW("bad operand type for unary -: '" << v.type_name() << "'");
}

Value binary_op(std::string_view op, const Value& l, const Value& r) {
  if (op == "~") {
    std::string s = l.to_str() + r.to_str();
    check_string_size(s.size());
    return Value(std::move(s));
  }
  require_defined(l);
  require_defined(r);
  if (l.is_number() && r.is_number()) {
    bool fl = l.is_float() || r.is_float();
    if (op == "/") {
      double d = r.as_float();
      if (d == 0.0) PL_THROW("division by zero");
      return Value(l.as_float() / d);
    }
    if (fl) {
      double a = l.as_float(), b = r.as_float();
      if (op == "+") return Value(a + b);
      if (op == "-") return Value(a - b);
      if (op == "*") return Value(a * b);
      if (op == "**") return Value(std::pow(a, b));
      if (b == 0.0) PL_THROW("float division by zero");
      if (op == "//") return Value(std::floor(a / b));
      if (op == "%") {
        double m = std::fmod(a, b);
        if (m != 0.0 && ((m < 0) != (b < 0))) m += b;
        return Value(m);
      }
    } else {
      int64_t a = l.as_int(), b = r.as_int(), v = 0;
      if (op == "+") return check_overflow(__builtin_add_overflow(a, b, &v)), Value(v);
      if (op == "-") return check_overflow(__builtin_sub_overflow(a, b, &v)), Value(v);
      if (op == "*") return check_overflow(__builtin_mul_overflow(a, b, &v)), Value(v);
      if (op == "**") return int_pow(a, b);
      if (b == 0) PL_THROW("integer division or modulo by zero");
      if (a == INT64_MIN && b == -1) PL_THROW("integer overflow");
      if (op == "//") {
        int64_t q = a / b;
        if (a % b != 0 && ((a < 0) != (b < 0))) --q;
        return Value(q);
      }
      if (op == "%") {
        int64_t m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) m += b;
        return Value(m);
      }
    }
    type_error(op, l, r);
  }
  if (op == "+") {
    if (l.is_string() && r.is_string()) {
      check_string_size(l.get_string().size() + r.get_string().size());
      return Value(l.get_string() + r.get_string());
    }
    if (l.is_list() && r.is_list() && l.get_list()->is_tuple == r.get_list()->is_tuple) {
      std::vector<Value> items = l.get_list()->items;
      const auto& more = r.get_list()->items;
      if (items.size() + more.size() > kMaxListItems) PL_THROW("list too large");
      items.insert(items.end(), more.begin(), more.end());
      return Value::list(std::move(items), l.get_list()->is_tuple);
    }
    if (l.is_string() || r.is_string())
      PL_THROW("can only concatenate str (not \"" << (l.is_string() ? r : l).type_name() << "\") to str");
  }
  if (op == "*") {
    if ((l.is_string() || l.is_list()) && (r.is_int() || r.is_bool())) return repeat(l, r.as_int());
    if ((r.is_string() || r.is_list()) && (l.is_int() || l.is_bool())) return repeat(r, l.as_int());
  }
  if (op == "%" && l.is_string()) PL_THROW("printf-style string formatting is not supported");
  type_error(op, l, r);
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::String:
      if (!item.is_string())
        PL_THROW("'in <string>' requires string as left operand, not " << item.type_name());
      return container.get_string().find(item.get_string()) != std::string::npos;
    case Value::Kind::List:
      for (const auto& v : container.get_list()->items)
        if (values_equal(v, item)) return true;
      return false;
    case Value::Kind::Dict:
      if (container.is_namespace()) break;
      return container.get_dict()->find(item) != nullptr;
    case Value::Kind::Undefined: return false;
    default: break;
  }
  PL_THROW("argument of type '" << container.type_name() << "' is not iterable");
}

bool compare_op(std::string_view op, const Value& l, const Value& r) {
  if (op == "==") return values_equal(l, r);
  if (op == "!=") return !values_equal(l, r);
  if (op == "in") return contains(r, l);
  if (op == "not in") return !contains(r, l);
  require_defined(l);
  require_defined(r);
  int c = values_compare(l, r);
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  if (op == ">=") return c >= 0;
  PL_THROW("unknown comparison operator " << op);
}

Value get_attr(const Value& obj, const std::string& name) {
  require_defined(obj);
  if (obj.is_string()) return string_method(obj, name);
  if (obj.is_dict()) {
    if (!obj.is_namespace()) {
      Value m = dict_method(obj, name);
      if (!m.is_undefined()) return m;
    }
    if (const Value* v = obj.get_dict()->find(Value(name))) return *v;
  }
  std::string msg = "'";  // built by appending: GCC 12 misfires -Wrestrict on "lit" + std::string
  msg += obj.is_dict() ? (obj.is_namespace() ? "Namespace" : "dict object") : obj.type_name() + " object";
  msg += "' has no attribute '";
  msg += name;
  msg += "'";
  return Value::undefined(std::move(msg));
}

Value get_item(const Value& obj, const Value& key) {
  require_defined(obj);
  require_defined(key);
  if (obj.is_dict()) {
    if (const Value* v = obj.get_dict()->find(key)) return *v;
    if (key.is_string()) return get_attr(obj, key.get_string());
    return Value::undefined("'dict object' has no attribute " + key.repr());
  }
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const auto& items = obj.get_list()->items;
      int64_t n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return items[i];
      std::string msg = "'";
      msg += obj.type_name();
      msg += " object' has no element ";
      msg += std::to_string(key.as_int());
      return Value::undefined(std::move(msg));
    }
    auto chars = utf8_chars(obj.get_string());
    int64_t n = static_cast<int64_t>(chars.size());
    if (i < 0) i += n;
    if (i >= 0 && i < n) return Value(chars[i]);
    return Value::undefined("'str object' has no element " + std::to_string(key.as_int()));
  }
  if (key.is_string()) return get_attr(obj, key.get_string());
  std::string msg = "'";
  msg += obj.type_name();
  msg += " object' has no element ";
  msg += key.repr();
  return Value::undefined(std::move(msg));
}

Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  require_defined(obj);
  auto idx = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_int() && !v.is_bool()) PL_THROW("slice " << what << " must be an integer or None");
    return v.as_int();
  };
  int64_t st = idx(step, "step").value_or(1);
  if (st == 0) PL_THROW("slice step cannot be zero");
  std::vector<Value> items;
  bool is_str = obj.is_string();
  if (is_str) {
    for (auto& c : utf8_chars(obj.get_string())) items.emplace_back(std::move(c));
  } else if (obj.is_list()) {
    items = obj.get_list()->items;
  } else {
    PL_THROW("'" << obj.type_name() << "' object is not subscriptable");
  }
  int64_t n = static_cast<int64_t>(items.size());
  // Python's slice.indices clamping.
  auto clamp = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v;
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t b = clamp(idx(start, "start"), st > 0 ? 0 : n - 1);
  int64_t e = clamp(idx(stop, "stop"), st > 0 ? n : -1);
  std::vector<Value> out;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(items[i]);
  if (is_str) {
    std::string s;
    for (const auto& c : out) s += c.get_string();
    return Value(std::move(s));
  }
  return Value::list(std::move(out), obj.get_list()->is_tuple);
}

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  auto cs = utf8_chars(s);
  std::vector<std::string> set;
  if (chars) set = utf8_chars(*chars);
  auto strip_it = [&](const std::string& c) {
    if (!chars) return py_space(c);
    for (const auto& x : set)
      if (x == c) return true;
    return false;
  };
  size_t b = 0, e = cs.size();
  if (left)
    while (b < e && strip_it(cs[b])) ++b;
  if (right)
    while (e > b && strip_it(cs[e - 1])) --e;
  std::string out;
  for (size_t i = b; i < e; ++i) out += cs[i];
  return out;
}

std::vector<Value> py_split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<Value> out;
  if (sep) {
    if (sep->empty()) PL_THROW("empty separator");
    size_t p = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      size_t q = s.find(*sep, p);
      if (q == std::string::npos) break;
      out.emplace_back(s.substr(p, q - p));
      p = q + sep->size();
    }
    out.emplace_back(s.substr(p));
    return out;
  }
  auto cs = utf8_chars(s);
  size_t i = 0, n = cs.size();
  while (true) {
    while (i < n && py_space(cs[i])) ++i;
    if (i >= n) break;
    std::string word;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      for (; i < n; ++i) word += cs[i];
      out.emplace_back(std::move(word));
      break;
    }
    while (i < n && !py_space(cs[i])) word += cs[i++];
    out.emplace_back(std::move(word));
  }
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
  std::string out;
  int64_t done = 0;
  if (old.empty()) {  // Python inserts `repl` around every code point
    auto cs = utf8_chars(s);
    for (size_t i = 0; i <= cs.size(); ++i) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      if (i < cs.size()) out += cs[i];
      check_string_size(out.size());
    }
    return out;
  }
  size_t p = 0;
  while (count < 0 || done < count) {
    size_t q = s.find(old, p);
    if (q == std::string::npos) break;
    out.append(s, p, q - p);
    out += repl;
    check_string_size(out.size());
    p = q + old.size();
    ++done;
  }
  out.append(s, p, std::string::npos);
  return out;
}

std::string py_upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  return s;
}

std::string py_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return s;
}

std::string py_title(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
    if (lower && !prev_cased) c = static_cast<char>(c - 32);
    else if (upper && prev_cased) c = static_cast<char>(c + 32);
    prev_cased = lower || upper;
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  std::string out = py_lower(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 32);
  return out;
}

}  // namespace parallama::jinja
