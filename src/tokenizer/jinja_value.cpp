#include "tokenizer/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace parallama::jinja {

const Value* Args::get(size_t index, std::string_view name) const {
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return index < pos.size() ? &pos[index] : nullptr;
}

void check_string_size(size_t n) {
  if (n > kMaxStringBytes) PL_THROW("string result too large (" << n << " bytes)");
}

static int child_depth(const Value& v) { return v.depth(); }

Value::Value(ListPtr l) : v_(std::move(l)) {}
Value::Value(DictPtr d) : v_(std::move(d)) {}

Value Value::list(std::vector<Value> items, bool tuple) {
  if (items.size() > kMaxListItems) PL_THROW("list too large (" << items.size() << " items)");
  auto l = std::make_shared<List>();
  int d = 0;
  for (const auto& it : items) d = std::max(d, child_depth(it));
  if (d + 1 > kMaxNesting) PL_THROW("values nested too deeply");
  l->items = std::move(items);
  l->is_tuple = tuple;
  l->depth = d + 1;
  return Value(std::move(l));
}

static Value make_dict(std::vector<std::pair<Value, Value>> items, bool ns) {
  auto d = std::make_shared<Dict>();
  d->is_namespace = ns;
  for (auto& [k, v] : items) d->set(std::move(k), std::move(v));
  return Value(std::move(d));
}

Value Value::dict(std::vector<std::pair<Value, Value>> items) { return make_dict(std::move(items), false); }
Value Value::namespace_(std::vector<std::pair<Value, Value>> items) {
  return make_dict(std::move(items), true);
}

Value Value::function(std::string name, std::function<Value(const Args&)> fn) {
  return Value(std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)}));
}

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (values_equal(k, key)) return &v;
  return nullptr;
}

void Dict::set(Value key, Value value) {
  int d = value.depth() + 1;
  if (d > kMaxNesting) PL_THROW("values nested too deeply");
  depth = std::max(depth, d);
  for (auto& [k, v] : items)
    if (values_equal(k, key)) {
      v = std::move(value);
      return;
    }
  if (items.size() >= kMaxListItems) PL_THROW("dict too large");
  items.emplace_back(std::move(key), std::move(value));
}

bool Value::is_namespace() const { return is_dict() && get_dict()->is_namespace; }

int64_t Value::as_int() const {
  if (is_bool()) return get_bool() ? 1 : 0;
  if (is_int()) return get_int();
  if (is_float()) return static_cast<int64_t>(get_float());
  PL_THROW("expected a number, got " << type_name());
}

double Value::as_float() const {
  if (is_float()) return get_float();
  return static_cast<double>(as_int());
}

int Value::depth() const {
  if (is_list()) return get_list()->depth;
  if (is_dict()) return get_dict()->depth;
  return 0;
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return get_bool();
    case Kind::Int: return get_int() != 0;
    case Kind::Float: return get_float() != 0.0;
    case Kind::String: return !get_string().empty();
    case Kind::List: return !get_list()->items.empty();
    case Kind::Dict: return get_dict()->is_namespace || !get_dict()->items.empty();
    case Kind::Callable: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List: return get_list()->is_tuple ? "tuple" : "list";
    case Kind::Dict: return get_dict()->is_namespace ? "Namespace" : "dict";
    case Kind::Callable: return "function";
  }
  return "?";
}

// Python's float repr: shortest round-trip digits, exponent form outside [1e-4, 1e16).
std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string s(buf, res.ptr);
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.erase(0, 1);
  size_t epos = s.find('e');
  std::string mant = s.substr(0, epos);
  int exp = std::stoi(s.substr(epos + 1));
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {  // Python switches to exponent form outside this range
    if (exp >= 0) {
      if (digits.size() <= static_cast<size_t>(exp) + 1) {
        out += digits + std::string(exp + 1 - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
      }
    } else {
      out += "0." + std::string(-exp - 1, '0') + digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  }
  return out;
}

static std::string python_str_repr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == static_cast<unsigned char>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += q;
  return out;
}

static void repr_into(const Value& v, std::string& out, int depth);

static void container_repr(const Value& v, std::string& out, int depth) {
  if (depth > kMaxNesting) PL_THROW("values nested too deeply");
  if (v.is_list()) {
    const List& l = *v.get_list();
    out += l.is_tuple ? '(' : '[';
    for (size_t i = 0; i < l.items.size(); ++i) {
      if (i) out += ", ";
      repr_into(l.items[i], out, depth + 1);
      check_string_size(out.size());
    }
    if (l.is_tuple && l.items.size() == 1) out += ',';
    out += l.is_tuple ? ')' : ']';
    return;
  }
  const Dict& d = *v.get_dict();
  if (d.is_namespace) out += "<Namespace ";
  out += '{';
  for (size_t i = 0; i < d.items.size(); ++i) {
    if (i) out += ", ";
    repr_into(d.items[i].first, out, depth + 1);
    out += ": ";
    repr_into(d.items[i].second, out, depth + 1);
    check_string_size(out.size());
  }
  out += '}';
  if (d.is_namespace) out += '>';
}

static void repr_into(const Value& v, std::string& out, int depth) {
  switch (v.kind()) {
    case Value::Kind::String: out += python_str_repr(v.get_string()); return;
    case Value::Kind::Undefined: return;  // str(Undefined) is "" even inside containers
    case Value::Kind::List:
    case Value::Kind::Dict: container_repr(v, out, depth); return;
    default: out += v.to_str(); return;
  }
}

std::string Value::to_str() const {
  switch (kind()) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return get_bool() ? "True" : "False";
    case Kind::Int: return std::to_string(get_int());
    case Kind::Float: return python_float_repr(get_float());
    case Kind::String: return get_string();
    case Kind::List:
    case Kind::Dict: {
      std::string out;
      container_repr(*this, out, 0);
      return out;
    }
    case Kind::Callable: return "<function " + get_callable().name + ">";
  }
  return "";
}

std::string Value::repr() const {
  std::string out;
  repr_into(*this, out, 0);
  return out;
}

static void json_escape_cp(std::string& out, uint32_t cp) {
  char b[16];
  if (cp >= 0x10000) {  // UTF-16 surrogate pair, as json.dumps writes it
    cp -= 0x10000;
    std::snprintf(b, sizeof(b), "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
  } else {
    std::snprintf(b, sizeof(b), "\\u%04x", cp);
  }
  out += b;
}

std::string json_quote(std::string_view s, bool ensure_ascii) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (ensure_ascii && c >= 0x80) {
      size_t n = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
      n = std::min(n, s.size() - i);
      uint32_t cp = n == 1 ? c : (c & (0x7f >> n));
      for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
      json_escape_cp(out, cp);
      i += n - 1;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof(b), "\\u%04x", c);
          out += b;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

static void json_into(const Value& v, std::string& out, const JsonOptions& o, int level) {
  const int indent = o.indent;
  if (level > kMaxNesting) PL_THROW("values nested too deeply for tojson");
  check_string_size(out.size());
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent) * lvl, ' ');
  };
  // json.dumps separators: (', ', ': ') without indent, (',', ': ') with one.
  const char* item_sep = o.item_sep ? o.item_sep : indent < 0 ? ", " : ",";
  const char* key_sep = o.key_sep ? o.key_sep : ": ";
  switch (v.kind()) {
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.get_bool() ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.get_int()); return;
    case Value::Kind::Float: {
      double d = v.get_float();
      if (std::isnan(d)) out += "NaN";
      else if (std::isinf(d)) out += d < 0 ? "-Infinity" : "Infinity";
      else out += python_float_repr(d);
      return;
    }
    case Value::Kind::String: out += json_quote(v.get_string(), o.ensure_ascii); return;
    case Value::Kind::List: {
      const auto& items = v.get_list()->items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        newline(level + 1);
        json_into(items[i], out, o, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      std::vector<const std::pair<Value, Value>*> items;
      for (const auto& kv : v.get_dict()->items) items.push_back(&kv);
      if (items.empty()) {
        out += "{}";
        return;
      }
      auto key_str = [](const Value& k) -> std::string {
        if (k.is_string()) return k.get_string();
        if (k.is_none()) return "null";
        if (k.is_bool()) return k.get_bool() ? "true" : "false";
        if (k.is_int() || k.is_float()) return k.to_str();
        PL_THROW("keys must be str, int, float, bool or None, not " << k.type_name());
      };
      if (o.sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](auto* a, auto* b) { return values_compare(a->first, b->first) < 0; });
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        newline(level + 1);
        out += json_quote(key_str(items[i]->first), o.ensure_ascii);
        out += key_sep;
        json_into(items[i]->second, out, o, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
    default: PL_THROW("Object of type " << v.type_name() << " is not JSON serializable");
  }
}

std::string Value::to_json(const JsonOptions& opts) const {
  std::string out;
  json_into(*this, out, opts, 0);
  return out;
}

std::vector<std::string> utf8_chars(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
    n = std::min(n, s.size() - i);
    out.emplace_back(s.substr(i, n));
    i += n;
  }
  return out;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) ++n;
  return n;
}

std::vector<Value> Value::iterate() const {
  std::vector<Value> out;
  switch (kind()) {
    case Kind::Undefined: return out;
    case Kind::List: return get_list()->items;
    case Kind::Dict:
      if (get_dict()->is_namespace) break;
      for (const auto& kv : get_dict()->items) out.push_back(kv.first);
      return out;
    case Kind::String:
      for (auto& c : utf8_chars(get_string())) out.emplace_back(std::move(c));
      return out;
    default: break;
  }
  PL_THROW("'" << type_name() << "' object is not iterable");
}

size_t Value::length() const {
  switch (kind()) {
    case Kind::Undefined: return 0;
    case Kind::String: return utf8_length(get_string());
    case Kind::List: return get_list()->items.size();
    case Kind::Dict:
      if (!get_dict()->is_namespace) return get_dict()->items.size();
      break;
    default: break;
  }
  PL_THROW("object of type '" << type_name() << "' has no len()");
}

bool values_equal(const Value& a, const Value& b, int depth) {
  if (depth > kMaxNesting) PL_THROW("values nested too deeply to compare");
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::String: return a.get_string() == b.get_string();
    case Value::Kind::List: {
      const List& x = *a.get_list();
      const List& y = *b.get_list();
      if (x.is_tuple != y.is_tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!values_equal(x.items[i], y.items[i], depth + 1)) return false;
      return true;
    }
    case Value::Kind::Dict: {
      const Dict& x = *a.get_dict();
      const Dict& y = *b.get_dict();
      if (x.is_namespace || y.is_namespace) return &x == &y;
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* o = y.find(k);
        if (!o || !values_equal(v, *o, depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::Callable: return &a.get_callable() == &b.get_callable();
    default: return false;
  }
}

int values_compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.as_float(), y = b.as_float();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.get_string().compare(b.get_string());  // UTF-8 byte order == code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.get_list()->is_tuple == b.get_list()->is_tuple) {
    const auto& x = a.get_list()->items;
    const auto& y = b.get_list()->items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (values_equal(x[i], y[i])) continue;
      return values_compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  PL_THROW("'<' not supported between instances of '" << a.type_name() << "' and '"
                                                     << b.type_name() << "'");
}

}  // namespace parallama::jinja
