#include "bench/arrivals.h"

#include <cmath>
#include <random>

#include "core/check.h"

namespace parallama::bench {

std::vector<double> arrival_times(int64_t n, double rate, double burstiness, uint64_t seed) {
  if (n < 0) PL_THROW("arrival_times: " << n << " requests");
  if (!(burstiness > 0) || !std::isfinite(burstiness))
    PL_THROW("--burstiness must be a positive number, got " << burstiness);
  std::vector<double> t(static_cast<size_t>(n), 0.0);
  if (!(rate > 0) || std::isinf(rate)) return t;
  std::mt19937_64 rng(seed);
  std::gamma_distribution<double> gap(burstiness, 1.0 / (rate * burstiness));
  double now = 0;
  for (auto& x : t) {
    x = now;
    now += gap(rng);
  }
  return t;
}

}  // namespace parallama::bench
