// Operators, attribute/item access and Python str/dict methods of the Jinja
// subset. These follow what jinja2's sandbox does with Python objects.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "tokenizer/jinja_value.h"

namespace parallama::jinja {

// Arithmetic and string operators: + - * / // % ** ~, with Python semantics.
Value binary_op(std::string_view op, const Value& l, const Value& r);
Value unary_minus(const Value& v);
// Comparisons ==, !=, <, <=, >, >=, in, "not in".
bool compare_op(std::string_view op, const Value& l, const Value& r);
bool contains(const Value& container, const Value& item);

// obj.name: bound methods of str/dict first, then items (jinja's getattr order).
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: items first, then attributes (jinja's getitem order).
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] on lists, tuples and strings; absent parts are Undefined/None.
Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step);

// Python str helpers working on UTF-8 code points.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
std::vector<Value> py_split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);
std::string py_upper(std::string s);
std::string py_lower(std::string s);
std::string py_title(const std::string& s);
std::string py_capitalize(const std::string& s);

// Throws the "undefined" error if v is Undefined (operations on Undefined fail in Jinja).
void require_defined(const Value& v);

}  // namespace parallama::jinja
