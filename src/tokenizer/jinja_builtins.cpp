#include "tokenizer/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <unordered_map>

#include "tokenizer/jinja_ops.h"

namespace parallama::jinja {

namespace {

using FilterFn = Value (*)(const Value&, const Args&);
using TestFn = bool (*)(const Value&, const Args&);

const Value& arg_or(const Args& a, size_t i, std::string_view name, const Value& def) {
  const Value* v = a.get(i, name);
  return v ? *v : def;
}

bool flag(const Args& a, size_t i, std::string_view name, bool def) {
  const Value* v = a.get(i, name);
  return v ? v->truthy() : def;
}

const Value& need(const Args& a, size_t i, std::string_view name) {
  const Value* v = a.get(i, name);
  if (!v) PL_THROW("missing argument '" << name << "'");
  return *v;
}

std::string str_arg(const Args& a, size_t i, std::string_view name) {
  const Value& v = need(a, i, name);
  if (!v.is_string()) PL_THROW("argument '" << name << "' must be a string");
  return v.get_string();
}

// Attribute path lookup as jinja's make_attrgetter: "a.b.0".
Value attr_path(const Value& v, const Value& path) {
  if (path.is_int()) return get_item(v, path);
  if (!path.is_string()) PL_THROW("attribute must be a string");
  Value cur = v;
  const std::string& p = path.get_string();
  size_t s = 0;
  while (true) {
    size_t e = p.find('.', s);
    std::string part = p.substr(s, e == std::string::npos ? std::string::npos : e - s);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = digits ? get_item(cur, Value(std::stoll(part))) : get_item(cur, Value(part));
    if (e == std::string::npos) break;
    s = e + 1;
  }
  return cur;
}

// Sort key: strings lowercased unless case_sensitive (jinja's ignore_case).
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(py_lower(v.get_string()));
  return v;
}

std::string join_strs(const std::vector<Value>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i].to_str();
    check_string_size(out.size());
  }
  return out;
}

Value f_default(const Value& v, const Args& a) {
  static const Value empty("");
  bool boolean = flag(a, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !v.truthy())) return arg_or(a, 0, "default_value", empty);
  return v;
}

Value f_length(const Value& v, const Args&) { return Value(static_cast<int64_t>(v.length())); }
Value f_upper(const Value& v, const Args&) { return Value(py_upper(v.to_str())); }
Value f_lower(const Value& v, const Args&) { return Value(py_lower(v.to_str())); }
Value f_capitalize(const Value& v, const Args&) { return Value(py_capitalize(v.to_str())); }
Value f_title(const Value& v, const Args&) { return Value(py_title(v.to_str())); }
Value f_string(const Value& v, const Args&) { return Value(v.to_str()); }
Value f_safe(const Value& v, const Args&) { return v; }
Value f_list(const Value& v, const Args&) { return Value::list(v.iterate()); }

Value f_trim(const Value& v, const Args& a) {
  const Value* c = a.get(0, "chars");
  std::optional<std::string> chars;
  if (c && !c->is_none()) chars = c->to_str();
  return Value(py_strip(v.to_str(), chars, true, true));
}

// HF's override: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
Value f_tojson(const Value& v, const Args& a) {
  JsonOptions o;
  o.ensure_ascii = flag(a, 0, "ensure_ascii", false);
  const Value* indent = a.get(1, "indent");
  if (indent && !indent->is_none()) {
    if (!indent->is_int()) PL_THROW("tojson: indent must be an integer");
    o.indent = static_cast<int>(std::clamp<int64_t>(indent->get_int(), 0, 64));
  }
  std::string seps[2];
  const Value* sep = a.get(2, "separators");
  if (sep && !sep->is_none()) {
    if (!sep->is_list() || sep->get_list()->items.size() != 2) PL_THROW("tojson: separators must be a pair");
    seps[0] = sep->get_list()->items[0].to_str();
    seps[1] = sep->get_list()->items[1].to_str();
    o.item_sep = seps[0].c_str();
    o.key_sep = seps[1].c_str();
  }
  o.sort_keys = flag(a, 3, "sort_keys", false);
  return Value(v.to_json(o));
}

Value f_join(const Value& v, const Args& a) {
  static const Value empty("");
  std::string sep = arg_or(a, 0, "d", empty).to_str();
  std::vector<Value> items = v.iterate();
  if (const Value* attr = a.get(1, "attribute"); attr && !attr->is_none())
    for (auto& it : items) it = attr_path(it, *attr);
  return Value(join_strs(items, sep));
}

Value f_first(const Value& v, const Args&) {
  auto items = v.iterate();
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(const Value& v, const Args&) {
  auto items = v.iterate();
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value f_items(const Value& v, const Args&) {
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict() || v.is_namespace()) PL_THROW("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, x] : v.get_dict()->items) out.push_back(Value::list({k, x}, true));
  return Value::list(std::move(out));
}

Value f_replace(const Value& v, const Args& a) {
  const Value* count = a.get(2, "count");
  int64_t n = count && !count->is_none() ? count->as_int() : -1;
  return Value(py_replace(v.to_str(), need(a, 0, "old").to_str(), need(a, 1, "new").to_str(), n));
}

Value f_int(const Value& v, const Args& a) {
  static const Value zero(0);
  const Value& def = arg_or(a, 0, "default", zero);
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) {
    double d = v.get_float();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return def;
    return Value(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    std::string s = py_strip(v.get_string(), std::nullopt, true, true);
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end && *end == 0 && errno == 0) return Value(static_cast<int64_t>(i));
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == 0 && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value(static_cast<int64_t>(d));
  }
  return def;
}

Value f_float(const Value& v, const Args& a) {
  static const Value zero(0.0);
  if (v.is_number()) return Value(v.as_float());
  if (v.is_string()) {
    std::string s = py_strip(v.get_string(), std::nullopt, true, true);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == 0) return Value(d);
  }
  return arg_or(a, 0, "default", zero);
}

Value f_abs(const Value& v, const Args&) {
  if (v.is_float()) return Value(std::fabs(v.get_float()));
  int64_t i = v.as_int();
  return i < 0 ? unary_minus(Value(i)) : Value(i);
}

Value f_round(const Value& v, const Args& a) {
  int64_t prec = arg_or(a, 0, "precision", Value(0)).as_int();
  std::string method = arg_or(a, 1, "method", Value("common")).to_str();
  double x = v.as_float(), scale = std::pow(10.0, static_cast<double>(prec));
  double y = x * scale;
  if (method == "common") y = std::nearbyint(y);  // round-half-even like Python's round()
  else if (method == "ceil") y = std::ceil(y);
  else if (method == "floor") y = std::floor(y);
  else PL_THROW("round: method must be common, ceil or floor");
  return Value(y / scale);
}

Value f_reverse(const Value& v, const Args&) {
  if (v.is_string()) {
    auto cs = utf8_chars(v.get_string());
    std::string out;
    for (auto it = cs.rbegin(); it != cs.rend(); ++it) out += *it;
    return Value(std::move(out));
  }
  auto items = v.iterate();
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_sort(const Value& v, const Args& a) {
  bool reverse = flag(a, 0, "reverse", false);
  bool cs = flag(a, 1, "case_sensitive", false);
  const Value* attr = a.get(2, "attribute");
  auto items = v.iterate();
  auto key = [&](const Value& x) { return sort_key(attr && !attr->is_none() ? attr_path(x, *attr) : x, cs); };
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return reverse ? values_compare(key(y), key(x)) < 0 : values_compare(key(x), key(y)) < 0;
  });
  return Value::list(std::move(items));
}

Value f_dictsort(const Value& v, const Args& a) {
  bool cs = flag(a, 0, "case_sensitive", false);
  std::string by = arg_or(a, 1, "by", Value("key")).to_str();
  bool reverse = flag(a, 2, "reverse", false);
  Value pairs = f_items(v, Args{});
  auto items = pairs.get_list()->items;
  size_t k = by == "value" ? 1 : 0;
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    Value kx = sort_key(x.get_list()->items[k], cs), ky = sort_key(y.get_list()->items[k], cs);
    return reverse ? values_compare(ky, kx) < 0 : values_compare(kx, ky) < 0;
  });
  return Value::list(std::move(items));
}

Value f_unique(const Value& v, const Args& a) {
  bool cs = flag(a, 0, "case_sensitive", false);
  const Value* attr = a.get(1, "attribute");
  std::vector<Value> out, seen;
  for (const auto& x : v.iterate()) {
    Value k = sort_key(attr && !attr->is_none() ? attr_path(x, *attr) : x, cs);
    bool dup = std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return values_equal(s, k); });
    if (!dup) {
      seen.push_back(k);
      out.push_back(x);
    }
  }
  return Value::list(std::move(out));
}

Value min_max(const Value& v, const Args& a, bool want_max) {
  bool cs = flag(a, 0, "case_sensitive", false);
  const Value* attr = a.get(1, "attribute");
  auto items = v.iterate();
  if (items.empty()) return Value::undefined(std::string("No ") + (want_max ? "largest" : "smallest") + " item, sequence was empty.");
  size_t best = 0;
  auto key = [&](const Value& x) { return sort_key(attr && !attr->is_none() ? attr_path(x, *attr) : x, cs); };
  for (size_t i = 1; i < items.size(); ++i) {
    int c = values_compare(key(items[i]), key(items[best]));
    if (want_max ? c > 0 : c < 0) best = i;
  }
  return items[best];
}
Value f_max(const Value& v, const Args& a) { return min_max(v, a, true); }
Value f_min(const Value& v, const Args& a) { return min_max(v, a, false); }

Value f_sum(const Value& v, const Args& a) {
  const Value* attr = a.get(0, "attribute");
  Value total = arg_or(a, 1, "start", Value(0));
  for (const auto& x : v.iterate()) total = binary_op("+", total, attr && !attr->is_none() ? attr_path(x, *attr) : x);
  return total;
}

Value f_wordcount(const Value& v, const Args&) {
  return Value(static_cast<int64_t>(py_split(v.to_str(), std::nullopt, -1).size()));
}

Value f_escape(const Value& v, const Args&) {
  std::string out;
  for (char c : v.to_str()) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value(std::move(out));
}

Value f_indent(const Value& v, const Args& a) {
  const Value& w = arg_or(a, 0, "width", Value(4));
  std::string ind = w.is_string() ? w.get_string() : std::string(std::clamp<int64_t>(w.as_int(), 0, 1024), ' ');
  bool first = flag(a, 1, "first", false), blank = flag(a, 2, "blank", false);
  std::string s = v.to_str() + "\n";
  std::vector<std::string> lines;  // splitlines() of s
  size_t p = 0;
  while (p < s.size()) {
    size_t q = s.find('\n', p);
    std::string line = s.substr(p, q - p);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    p = q + 1;
  }
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) {
      out += "\n";
      if (blank || !lines[i].empty()) out += ind;
    }
    out += lines[i];
    check_string_size(out.size());
  }
  if (first) out = ind + out;
  return Value(std::move(out));
}

// jinja's attr filter only sees Python attributes: for dicts that is their methods.
Value f_attr(const Value& v, const Args& a) {
  std::string name = str_arg(a, 0, "name");
  if (v.is_dict() && !v.is_namespace() && name != "items" && name != "keys" && name != "values" && name != "get")
    return Value::undefined("'dict object' has no attribute '" + name + "'");
  return get_attr(v, name);
}

// select/reject: keep items passing test (args[0] names it; none: truthiness).
std::vector<Value> select_items(const Value& v, const Args& a, bool by_attr, bool keep) {
  std::vector<Value> out;
  size_t first_test_arg = by_attr ? 1 : 0;
  std::string test;
  if (a.pos.size() > first_test_arg) test = a.pos[first_test_arg].to_str();
  Args targs;
  for (size_t i = first_test_arg + 1; i < a.pos.size(); ++i) targs.pos.push_back(a.pos[i]);
  for (const auto& x : v.iterate()) {
    Value subject = by_attr ? attr_path(x, need(a, 0, "attribute")) : x;
    bool ok = test.empty() ? subject.truthy() : call_test(test, subject, targs);
    if (ok == keep) out.push_back(x);
  }
  return out;
}
Value f_select(const Value& v, const Args& a) { return Value::list(select_items(v, a, false, true)); }
Value f_reject(const Value& v, const Args& a) { return Value::list(select_items(v, a, false, false)); }
Value f_selectattr(const Value& v, const Args& a) { return Value::list(select_items(v, a, true, true)); }
Value f_rejectattr(const Value& v, const Args& a) { return Value::list(select_items(v, a, true, false)); }

Value f_map(const Value& v, const Args& a) {
  std::vector<Value> out;
  if (const Value* attr = a.get(99, "attribute")) {
    const Value* def = a.get(99, "default");
    for (const auto& x : v.iterate()) {
      Value r = attr_path(x, *attr);
      out.push_back(r.is_undefined() && def ? *def : r);
    }
    return Value::list(std::move(out));
  }
  if (a.pos.empty()) PL_THROW("map requires a filter name or attribute=");
  std::string filter = a.pos[0].to_str();
  Args fargs;
  for (size_t i = 1; i < a.pos.size(); ++i) fargs.pos.push_back(a.pos[i]);
  fargs.kw = a.kw;
  for (const auto& x : v.iterate()) out.push_back(call_filter(filter, x, fargs));
  return Value::list(std::move(out));
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> m = {
      {"abs", f_abs},         {"attr", f_attr},           {"capitalize", f_capitalize},
      {"count", f_length},    {"d", f_default},           {"default", f_default},
      {"dictsort", f_dictsort}, {"e", f_escape},          {"escape", f_escape},
      {"first", f_first},     {"float", f_float},         {"indent", f_indent},
      {"int", f_int},         {"items", f_items},         {"join", f_join},
      {"last", f_last},       {"length", f_length},       {"list", f_list},
      {"lower", f_lower},     {"map", f_map},             {"max", f_max},
      {"min", f_min},         {"reject", f_reject},       {"rejectattr", f_rejectattr},
      {"replace", f_replace}, {"reverse", f_reverse},     {"round", f_round},
      {"safe", f_safe},       {"select", f_select},       {"selectattr", f_selectattr},
      {"sort", f_sort},       {"string", f_string},       {"sum", f_sum},
      {"title", f_title},     {"tojson", f_tojson},       {"trim", f_trim},
      {"unique", f_unique},   {"upper", f_upper},         {"wordcount", f_wordcount},
  };
  return m;
}

// ---- tests ----

bool t_defined(const Value& v, const Args&) { return !v.is_undefined(); }
bool t_undefined(const Value& v, const Args&) { return v.is_undefined(); }
bool t_none(const Value& v, const Args&) { return v.is_none(); }
bool t_boolean(const Value& v, const Args&) { return v.is_bool(); }
bool t_true(const Value& v, const Args&) { return v.is_bool() && v.get_bool(); }
bool t_false(const Value& v, const Args&) { return v.is_bool() && !v.get_bool(); }
bool t_integer(const Value& v, const Args&) { return v.is_int(); }
bool t_float(const Value& v, const Args&) { return v.is_float(); }
bool t_number(const Value& v, const Args&) { return v.is_number(); }
bool t_string(const Value& v, const Args&) { return v.is_string(); }
bool t_mapping(const Value& v, const Args&) { return v.is_dict() && !v.is_namespace(); }
bool t_iterable(const Value& v, const Args&) {
  return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
}
bool t_sequence(const Value& v, const Args&) {
  return v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
}
bool t_callable(const Value& v, const Args&) { return v.is_callable(); }
bool t_eq(const Value& v, const Args& a) { return values_equal(v, need(a, 0, "other")); }
bool t_ne(const Value& v, const Args& a) { return !values_equal(v, need(a, 0, "other")); }
bool t_lt(const Value& v, const Args& a) { return compare_op("<", v, need(a, 0, "other")); }
bool t_le(const Value& v, const Args& a) { return compare_op("<=", v, need(a, 0, "other")); }
bool t_gt(const Value& v, const Args& a) { return compare_op(">", v, need(a, 0, "other")); }
bool t_ge(const Value& v, const Args& a) { return compare_op(">=", v, need(a, 0, "other")); }
bool t_in(const Value& v, const Args& a) { return contains(need(a, 0, "seq"), v); }
bool t_odd(const Value& v, const Args&) { return binary_op("%", v, Value(2)).as_int() == 1; }
bool t_even(const Value& v, const Args&) { return binary_op("%", v, Value(2)).as_int() == 0; }
bool t_divisibleby(const Value& v, const Args& a) {
  return binary_op("%", v, need(a, 0, "num")).as_float() == 0.0;
}
bool t_lower(const Value& v, const Args&) { return v.to_str() == py_lower(v.to_str()); }
bool t_upper(const Value& v, const Args&) { return v.to_str() == py_upper(v.to_str()); }
bool t_sameas(const Value& v, const Args& a) {
  const Value& o = need(a, 0, "other");
  if (v.kind() != o.kind()) return false;
  if (v.is_list()) return v.get_list() == o.get_list();
  if (v.is_dict()) return v.get_dict() == o.get_dict();
  if (v.is_none() || v.is_undefined()) return true;
  if (v.is_bool()) return v.get_bool() == o.get_bool();
  return false;
}
bool t_escaped(const Value&, const Args&) { return false; }

const std::unordered_map<std::string, TestFn>& tests() {
  static const std::unordered_map<std::string, TestFn> m = {
      {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none},
      {"boolean", t_boolean}, {"true", t_true},           {"false", t_false},
      {"integer", t_integer}, {"float", t_float},         {"number", t_number},
      {"string", t_string},   {"mapping", t_mapping},     {"iterable", t_iterable},
      {"sequence", t_sequence}, {"callable", t_callable}, {"sameas", t_sameas},
      {"eq", t_eq},           {"equalto", t_eq},          {"==", t_eq},
      {"ne", t_ne},           {"!=", t_ne},               {"lt", t_lt},
      {"lessthan", t_lt},     {"<", t_lt},                {"le", t_le},
      {"<=", t_le},           {"gt", t_gt},               {"greaterthan", t_gt},
      {">", t_gt},            {"ge", t_ge},               {">=", t_ge},
      {"in", t_in},           {"odd", t_odd},             {"even", t_even},
      {"divisibleby", t_divisibleby}, {"lower", t_lower}, {"upper", t_upper},
      {"escaped", t_escaped},
  };
  return m;
}

// ---- globals ----

Value g_range(const Args& a) {
  if (!a.kw.empty() || a.pos.empty() || a.pos.size() > 3) PL_THROW("range expects 1 to 3 integer arguments");
  for (const auto& v : a.pos)
    if (!v.is_int() && !v.is_bool()) PL_THROW("range: '" << v.type_name() << "' object cannot be interpreted as an integer");
  int64_t start = 0, stop, step = 1;
  if (a.pos.size() == 1) {
    stop = a.pos[0].as_int();
  } else {
    start = a.pos[0].as_int();
    stop = a.pos[1].as_int();
    if (a.pos.size() == 3) step = a.pos[2].as_int();
  }
  if (step == 0) PL_THROW("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (out.size() >= kMaxListItems) PL_THROW("range too large");
    out.emplace_back(i);
    if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
  }
  return Value::list(std::move(out));
}

Value g_namespace(const Args& a) {
  std::vector<std::pair<Value, Value>> items;
  for (const auto& p : a.pos) {
    if (!p.is_dict()) PL_THROW("namespace() positional argument must be a dict");
    for (const auto& kv : p.get_dict()->items) items.push_back(kv);
  }
  for (const auto& [k, v] : a.kw) items.emplace_back(Value(k), v);
  return Value::namespace_(std::move(items));
}

Value g_dict(const Args& a) {
  std::vector<std::pair<Value, Value>> items;
  for (const auto& p : a.pos) {
    if (!p.is_dict()) PL_THROW("dict() positional argument must be a dict");
    for (const auto& kv : p.get_dict()->items) items.push_back(kv);
  }
  for (const auto& [k, v] : a.kw) items.emplace_back(Value(k), v);
  return Value::dict(std::move(items));
}

Value g_raise_exception(const Args& a) {
  const Value* m = a.get(0, "message");
  throw TemplateRaise(m ? m->to_str() : std::string("raise_exception called"));
}

Value g_strftime_now(const Args& a) {
  std::string fmt = str_arg(a, 0, "format");
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[256];
  size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
  return Value(std::string(buf, n));
}

}  // namespace

Value call_filter(const std::string& name, const Value& input, const Args& args) {
  auto it = filters().find(name);
  if (it == filters().end()) PL_THROW("no filter named '" << name << "'");
  return it->second(input, args);
}

bool call_test(const std::string& name, const Value& input, const Args& args) {
  auto it = tests().find(name);
  if (it == tests().end()) PL_THROW("no test named '" << name << "'");
  return it->second(input, args);
}

bool has_filter(const std::string& name) { return filters().count(name) != 0; }
bool has_test(const std::string& name) { return tests().count(name) != 0; }

Value builtin_global(const std::string& name) {
  if (name == "range") return Value::function(name, g_range);
  if (name == "namespace") return Value::function(name, g_namespace);
  if (name == "dict") return Value::function(name, g_dict);
  if (name == "raise_exception") return Value::function(name, g_raise_exception);
  if (name == "strftime_now") return Value::function(name, g_strftime_now);
  return Value::undefined("'" + name + "' is undefined");
}

}  // namespace parallama::jinja
