// Built-in filters, tests and globals of the Jinja subset, matching jinja2's
// behaviour plus the HF transformers additions (tojson without HTML escaping,
// raise_exception, strftime_now).
#pragma once

#include <string>

#include "tokenizer/jinja_value.h"

namespace parallama::jinja {

// Thrown by raise_exception(msg) in a template; what() is exactly msg.
class TemplateRaise : public Error {
 public:
  using Error::Error;
};

Value call_filter(const std::string& name, const Value& input, const Args& args);
bool call_test(const std::string& name, const Value& input, const Args& args);
bool has_filter(const std::string& name);
bool has_test(const std::string& name);
// Builtin global functions (range, namespace, dict, raise_exception, strftime_now);
// Undefined when `name` is not one.
Value builtin_global(const std::string& name);

}  // namespace parallama::jinja
