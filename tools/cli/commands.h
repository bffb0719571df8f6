// Subcommand registration: each add_* adds its options to `app` and, when the
// subcommand is chosen, sets `run` to the function that executes it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace parallama::cli {

// The process's own command line, for re-executing itself under mpirun.
struct CommandLine {
  int argc = 0;
  char** argv = nullptr;
};
CommandLine& command_line();

void add_generate(CLI::App& app, std::function<int()>& run);
void add_tokenize(CLI::App& app, std::function<int()>& run);
void add_info(CLI::App& app, std::function<int()>& run);
void add_bench(CLI::App& app, std::function<int()>& run);
// `bench throughput` under `bench` (its parent): many requests at once through the
// serving engine; sets `run` when chosen.
void add_bench_throughput(CLI::App* bench, std::function<int()>& run);
void add_bench_serve(CLI::App* bench, std::function<int()>& run);
// `bench sweep`: our server over layouts (emulated hosts too) and request rates.
void add_bench_sweep(CLI::App* bench, std::function<int()>& run);
void add_synth(CLI::App& app, std::function<int()>& run);
void add_membw(CLI::App& app, std::function<int()>& run);
void add_serve(CLI::App& app, std::function<int()>& run);
// `plan`: predicted latency and throughput of every TP x PP layout (src/plan).
void add_plan(CLI::App& app, std::function<int()>& run);
// `plan calibrate` (and its hidden MPI helper `plan comm-probe`): a hardware profile of this machine.
void add_plan_calibrate(CLI::App* plan, std::function<int()>& run);

}  // namespace parallama::cli
