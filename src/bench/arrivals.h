// When an open-loop benchmark sends its requests: gaps drawn from a gamma
// distribution with shape = burstiness and scale = 1 / (rate x burstiness),
// as vLLM's `bench serve` draws them. Burstiness 1 is a Poisson process
// (exponential gaps); below 1 the arrivals come in bursts, above 1 they are
// more even; the mean rate is `rate` in every case.
#pragma once

#include <cstdint>
#include <vector>

namespace parallama::bench {

// Send times in seconds from the start, n of them, non-decreasing; rate <= 0
// or infinite: all at 0 (every request at once). Same seed, same times.
// Throws parallama::Error for burstiness <= 0.
std::vector<double> arrival_times(int64_t n, double rate, double burstiness, uint64_t seed);

}  // namespace parallama::bench
