// CHECK macros: internal invariants fail loudly with file and line.
// At the edges (file parsing, CLI, HTTP) code throws parallama::Error with a
// message meant for users instead.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace parallama {

// Every user-facing failure is a parallama::Error; the CLI prints what() and exits 1.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
[[noreturn]] inline void check_failed(const char* file, int line, const char* cond,
                                      const std::string& msg) {
  std::ostringstream os;
  os << file << ":" << line << ": check failed: " << cond;
  if (!msg.empty()) os << ": " << msg;
  throw Error(os.str());
}
}  // namespace detail

}  // namespace parallama

// PL_CHECK(cond) << is not supported; pass an optional message string expression.
#define PL_CHECK(cond)                                                          \
  do {                                                                          \
    if (!(cond)) ::parallama::detail::check_failed(__FILE__, __LINE__, #cond, ""); \
  } while (0)

#define PL_CHECK_MSG(cond, msg)                                                 \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::ostringstream pl_check_os_;                                          \
      pl_check_os_ << msg;                                                      \
      ::parallama::detail::check_failed(__FILE__, __LINE__, #cond, pl_check_os_.str()); \
    }                                                                           \
  } while (0)

// Throws a user-facing error built with stream syntax: PL_THROW("bad " << x).
#define PL_THROW(msg)                                  \
  do {                                                 \
    std::ostringstream pl_throw_os_;                   \
    pl_throw_os_ << msg;                               \
    throw ::parallama::Error(pl_throw_os_.str());      \
  } while (0)
