// Starting a multi-rank run: detect mpirun, re-execute ourselves under it when
// the user asked for tp*pp > 1 without it, divide host cores among local ranks,
// and gather host names for the start-up table. No MPI types here.
#pragma once

#include <string>
#include <vector>

namespace parallama {

class Communicator;

// True when this process was started by an MPI launcher (OMPI_COMM_WORLD_SIZE,
// PMIX_RANK or PMI_RANK set).
bool under_mpi();

// Ranks of this job on this host (OMPI_COMM_WORLD_LOCAL_SIZE, MPI_LOCALNRANKS),
// 1 when not under MPI.
int local_rank_count();

// CPUs this process may run on (sched affinity, so cgroup/cpuset limits count).
int host_cpu_count();
// The host's CPUs shared among local_ranks ranks, at least 1.
int default_threads_per_rank(int local_ranks);

// Absolute path of `name` found on PATH, or "" (names containing '/' are
// returned as they are if executable).
std::string find_on_path(const std::string& name);

// Where the ranks of a relaunched job run (the CLI's --hosts, --hostfile,
// --map-by, --mpi-net).
struct HostPlacement {
  std::string hosts;            // "h1:2,h2:2": host names with their slots (ranks), or ""
  std::string hostfile;         // an Open MPI host file, or ""
  std::string map_by = "slot";  // slot: ranks fill a host in order (a TP group stays on one host); node: round robin
  std::string mpi_net;          // CIDR of the network MPI uses between hosts, e.g. 10.0.0.0/24, or ""
  bool multi_host() const { return !hosts.empty() || !hostfile.empty(); }
};

// mpirun arguments for p (none when it names no hosts and no network): the
// hosts and mapping, TCP keepalive so a lost host ends mpirun within seconds,
// and the interfaces. Throws parallama::Error on a malformed list or when the
// slots do not add up to n_ranks.
std::vector<std::string> placement_args(const HostPlacement& p, int n_ranks);

// The full command relaunch_under_mpirun executes: mpirun -n N --oversubscribe
// --bind-to none --mca mpi_yield_when_idle 1 [placement...] [PARALLAMA_MPIRUN_ARGS...]
// exe args... args excludes argv[0]. Exposed for tests.
std::vector<std::string> mpirun_command(const std::string& mpirun, int n_ranks,
                                        const std::string& exe,
                                        const std::vector<std::string>& args,
                                        const std::vector<std::string>& placement = {});

// Runs this binary (/proc/self/exe) with the same arguments under mpirun with
// n_ranks ranks, as a child in its own process group, and exits with mpirun's
// status. SIGINT/SIGTERM to this process reach the ranks as SIGUSR1 (the first)
// and mpirun as SIGTERM (any later one). mpirun is PARALLAMA_MPIRUN if set, else found on PATH. As root, sets
// OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM). Throws parallama::Error if mpirun is missing,
// if exec fails, or if we are already a relaunched child (no loops).
[[noreturn]] void relaunch_under_mpirun(int n_ranks, int argc, char** argv,
                                        const std::vector<std::string>& placement = {});

// A rank about to end the job on a fault it detected tells our mpirun
// supervisor (relaunch_under_mpirun), when it runs on the same host: if mpirun
// then cannot reach a host to tear the job down (a cut link keeps its kill
// message in TCP retransmission for many minutes), the supervisor ends it
// after a grace period instead of waiting. No-op without a supervisor.
void notify_supervisor_of_failure();

std::string this_hostname();
// Every rank's host name, indexed by rank of `comm`. Collective.
std::vector<std::string> gather_hostnames(Communicator& comm);

}  // namespace parallama
