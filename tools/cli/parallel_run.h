// Running a CLI command over a TP x PP world: validating the layout before any
// weight is loaded, re-executing under mpirun when needed, building the
// communicators, and the start-up and end-of-run tables every rank takes part in.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "parallel/comm_watchdog.h"
#include "parallel/launcher.h"

namespace parallama::cli {

struct ParallelArgs {
  int tp = 1;
  int pp = 1;
  std::string pp_layers;  // "16,14": layers per stage
  double comm_timeout = 10;  // seconds a rank waits on a peer beyond the step's expected work; 0: never
  HostPlacement placement;   // --hosts, --hostfile, --map-by, --mpi-net (when we start mpirun)
};

void add_parallel_options(CLI::App* cmd, ParallelArgs& a);

class ParallelRun {
 public:
  struct State;
  explicit ParallelRun(State* s) : s_(s) {}
  bool leader() const;                  // world rank 0 prints results
  int threads(int requested) const;     // requested, or this host's cores shared among its ranks
  const ParallelSetup& setup() const;
  // Collective: the rank table (rank, host, stage, tp rank, layers, heads, weights).
  void print_layout(const Engine& e);
  // Collective: per-rank compute / communication / idle (bubble) time after a run.
  void report(const Engine& e, const GenerateStats& st);
  nlohmann::json summary_json() const;  // what report() printed, for --json
  // Called with the reason before this rank ends the job on a fault it detects
  // (a communication timeout, an error): a server fails its open requests.
  // Runs on any thread; should return within a second.
  void set_on_fatal(std::function<void(const std::string&)> fn);
  // Every rank's host and pid (gathered at start-up), for naming peers.
  const std::vector<RankInfo>& ranks() const;

 private:
  State* s_;
};

// Validates --tp/--pp/--pp-layers against the model, re-executes under mpirun
// if not already under it, then runs body on every rank. An error on any rank
// is printed with its rank and ends the whole job with a non-zero status.
int with_parallel_run(const ParallelArgs& a, const std::string& model_path,
                      const std::function<int(ParallelRun&)>& body);

}  // namespace parallama::cli
