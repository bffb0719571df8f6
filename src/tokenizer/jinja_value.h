// Dynamic values of the Jinja2 subset used by chat templates. Semantics follow
// Python as jinja2 exposes it (str(), repr(), ==, truthiness, json.dumps), since
// the reference renderer is python jinja2 as HF transformers configures it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/check.h"

namespace parallama::jinja {

// Resource caps: templates come from model files, so a hostile one must fail
// with an Error instead of exhausting stack or memory.
inline constexpr int kMaxNesting = 200;                     // value nesting / recursion depth
inline constexpr size_t kMaxStringBytes = 32u << 20;        // any single string
inline constexpr size_t kMaxListItems = 1u << 20;           // any single list
inline constexpr int64_t kMaxLoopIterations = 1'000'000;     // per render

class Value;
struct List;
struct Dict;
struct Callable;
struct JsonOptions;
using ListPtr = std::shared_ptr<List>;
using DictPtr = std::shared_ptr<Dict>;
using CallablePtr = std::shared_ptr<const Callable>;

// Jinja's default Undefined: prints as "", is falsy, iterates as empty, but
// attribute access or arithmetic on it fails with `hint` as the message.
struct Undefined {
  std::string hint;
};
struct None {};

// Call arguments: positional then keyword, as written in the template.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Keyword `name` if given, else positional `index`; nullptr when absent.
  const Value* get(size_t index, std::string_view name) const;
};

class Value {
 public:
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Callable };

  Value() : v_(Undefined{}) {}
  Value(Undefined u) : v_(std::move(u)) {}
  Value(None) : v_(None{}) {}
  Value(bool b) : v_(b) {}
  template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool>)
  Value(T i) : v_(static_cast<int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(ListPtr l);
  Value(DictPtr d);
  Value(CallablePtr c) : v_(std::move(c)) {}

  static Value undefined(std::string hint) { return Value(Undefined{std::move(hint)}); }
  static Value list(std::vector<Value> items, bool tuple = false);
  static Value dict(std::vector<std::pair<Value, Value>> items = {});
  static Value namespace_(std::vector<std::pair<Value, Value>> items = {});
  static Value function(std::string name, std::function<Value(const Args&)> fn);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::Undefined; }
  bool is_none() const { return kind() == Kind::None; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }  // bools are not ints here
  bool is_float() const { return kind() == Kind::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::String; }
  bool is_list() const { return kind() == Kind::List; }
  bool is_dict() const { return kind() == Kind::Dict; }
  bool is_callable() const { return kind() == Kind::Callable; }
  bool is_namespace() const;

  bool get_bool() const { return std::get<bool>(v_); }
  int64_t get_int() const { return std::get<int64_t>(v_); }
  double get_float() const { return std::get<double>(v_); }
  const std::string& get_string() const { return std::get<std::string>(v_); }
  const ListPtr& get_list() const { return std::get<ListPtr>(v_); }
  const DictPtr& get_dict() const { return std::get<DictPtr>(v_); }
  const Callable& get_callable() const { return *std::get<CallablePtr>(v_); }
  const std::string& undefined_hint() const { return std::get<Undefined>(v_).hint; }

  // Numeric view with bool as 0/1 (Python bool is an int subclass).
  int64_t as_int() const;
  double as_float() const;

  int depth() const;          // nesting depth of containers (scalars: 0)
  bool truthy() const;
  std::string to_str() const;  // Python str()
  std::string repr() const;    // Python repr()
  // json.dumps(x, ...) with the options of HF's tojson filter.
  std::string to_json(const JsonOptions& opts) const;
  std::string type_name() const;  // Python type name for messages: "str", "dict", ...
  // Items of something iterable (list/tuple items, dict keys, string chars).
  std::vector<Value> iterate() const;
  size_t length() const;

 private:
  std::variant<Undefined, None, bool, int64_t, double, std::string, ListPtr, DictPtr, CallablePtr> v_;
};

struct List {
  std::vector<Value> items;
  bool is_tuple = false;
  int depth = 1;
};

// Insertion-ordered like Python dicts. Namespaces (namespace()) are the only
// mutable values; everything else is shared and never changed after creation.
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  bool is_namespace = false;
  int depth = 1;
  const Value* find(const Value& key) const;
  void set(Value key, Value value);
};

struct JsonOptions {
  int indent = -1;  // < 0: single line
  bool sort_keys = false;
  bool ensure_ascii = false;
  const char* item_sep = nullptr;  // nullptr: json.dumps defaults (", " or "," with indent)
  const char* key_sep = nullptr;   // nullptr: ": "
};

struct Callable {
  std::string name;
  std::function<Value(const Args&)> fn;
};

bool values_equal(const Value& a, const Value& b, int depth = 0);
// Python ordering (<0, 0, >0); throws Error for unorderable types.
int values_compare(const Value& a, const Value& b);

// UTF-8 helpers: Python strings index by code point.
std::vector<std::string> utf8_chars(std::string_view s);
size_t utf8_length(std::string_view s);
std::string python_float_repr(double d);
std::string json_quote(std::string_view s, bool ensure_ascii = false);
void check_string_size(size_t n);

}  // namespace parallama::jinja
