// Monotonic wall clock in seconds, for timings and reports.
#pragma once

#include <chrono>

namespace parallama {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace parallama
