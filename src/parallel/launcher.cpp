#include "parallel/launcher.h"

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "parallel/communicator.h"

namespace parallama {

namespace {
constexpr const char* kRelaunchedEnv = "PARALLAMA_MPI_RELAUNCHED";
constexpr const char* kSupervisorEnv = "PARALLAMA_SUPERVISOR";  // "PID@HOST" of the process that runs mpirun
constexpr double kTeardownGraceS = 3;  // after a rank's failure notice, before mpirun is killed

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return (end && *end == '\0' && x > 0 && x < INT_MAX) ? static_cast<int>(x) : fallback;
}
}  // namespace

bool under_mpi() {
  return env_set("OMPI_COMM_WORLD_SIZE") || env_set("PMIX_RANK") || env_set("PMI_RANK");
}

int local_rank_count() {
  if (!under_mpi()) return 1;
  return env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env_int("MPI_LOCALNRANKS", 1));
}

int host_cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

int default_threads_per_rank(int local_ranks) {
  return std::max(1, host_cpu_count() / std::max(1, local_ranks));
}

std::string find_on_path(const std::string& name) {
  if (name.empty()) return "";
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string p = dir.empty() ? std::string(1, '.') : dir;  // empty entry = cwd
    p += '/';
    p += name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::vector<std::string> placement_args(const HostPlacement& p, int n_ranks) {
  std::vector<std::string> out;
  if (!p.hosts.empty() && !p.hostfile.empty()) PL_THROW("--hosts and --hostfile exclude each other");
  if (p.map_by != "slot" && p.map_by != "node")
    PL_THROW("--map-by must be slot or node, got '" << p.map_by << "'");
  if (!p.hosts.empty()) {
    std::stringstream ss(p.hosts);
    int slots = 0;
    for (std::string item; std::getline(ss, item, ',');) {
      const size_t colon = item.find(':');
      const std::string name = item.substr(0, colon);
      if (name.empty() || name.find_first_of(" \t/") != std::string::npos)
        PL_THROW("--hosts: '" << item << "' is not HOST or HOST:SLOTS (e.g. h1:2,h2:2)");
      int n = 1;
      if (colon != std::string::npos) {
        const std::string num = item.substr(colon + 1);
        char* end = nullptr;
        const long v = std::strtol(num.c_str(), &end, 10);
        if (num.empty() || *end != '\0' || v < 1 || v > 4096)
          PL_THROW("--hosts: '" << item << "' has no slot count of 1 or more after ':'");
        n = static_cast<int>(v);
      }
      slots += n;
    }
    if (slots != n_ranks)
      PL_THROW("--hosts gives " << slots << " slots for " << n_ranks
                                << " ranks (tp x pp): give each host as many slots as ranks it runs");
    out.insert(out.end(), {"--host", p.hosts});
  }
  if (!p.hostfile.empty()) {
    if (access(p.hostfile.c_str(), R_OK) != 0) PL_THROW("--hostfile: cannot read '" << p.hostfile << "'");
    out.insert(out.end(), {"--hostfile", p.hostfile});
  }
  if (p.multi_host()) {
    // Without keepalive a host that vanishes (cut link) leaves mpirun waiting
    // for minutes; with it the job ends within about 5 s.
    out.insert(out.end(), {"--map-by", p.map_by, "--mca", "oob_tcp_keepalive_time", "3", "--mca",
                           "oob_tcp_keepalive_intvl", "1", "--mca", "oob_tcp_keepalive_probes", "3"});
  }
  if (!p.mpi_net.empty()) {
    if (p.mpi_net.find('/') == std::string::npos || p.mpi_net.find(' ') != std::string::npos)
      PL_THROW("--mpi-net must be a CIDR such as 10.0.0.0/24, got '" << p.mpi_net << "'");
    out.insert(out.end(), {"--mca", "btl_tcp_if_include", p.mpi_net, "--mca", "oob_tcp_if_include", p.mpi_net});
  }
  return out;
}

std::vector<std::string> mpirun_command(const std::string& mpirun, int n_ranks,
                                        const std::string& exe,
                                        const std::vector<std::string>& args,
                                        const std::vector<std::string>& placement) {
  // --oversubscribe: more ranks than cores is allowed (small hosts, tests).
  // --bind-to none: each rank runs its own thread pool; binding a rank to one core
  //   would squeeze all its threads onto it.
  // mpi_yield_when_idle: ranks waiting in MPI yield the CPU instead of spinning,
  //   which matters when ranks * threads exceed the cores.
  std::vector<std::string> cmd = {mpirun,          "-n",   std::to_string(n_ranks),
                                  "--oversubscribe", "--bind-to", "none",
                                  "--mca",         "mpi_yield_when_idle", "1"};
  cmd.insert(cmd.end(), placement.begin(), placement.end());
  if (const char* extra = std::getenv("PARALLAMA_MPIRUN_ARGS")) {  // e.g. "--hostfile hosts"
    std::stringstream ss(extra);
    std::string a;
    while (ss >> a) cmd.push_back(a);
  }
  cmd.push_back(exe);
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

void relaunch_under_mpirun(int n_ranks, int argc, char** argv, const std::vector<std::string>& placement) {
  if (n_ranks < 1) PL_THROW("cannot launch " << n_ranks << " ranks");
  if (env_set(kRelaunchedEnv))
    PL_THROW("relaunched under mpirun but MPI did not start this process as a rank "
             "(no OMPI_COMM_WORLD_SIZE/PMIX_RANK); check the MPI installation");
  const char* override_path = std::getenv("PARALLAMA_MPIRUN");
  const std::string want = override_path && *override_path ? override_path : "mpirun";
  const std::string mpirun = find_on_path(want);
  if (mpirun.empty())
    PL_THROW("running " << n_ranks << " ranks needs '" << want
                        << "' (Open MPI), which was not found on PATH; install openmpi-bin "
                           "or set PARALLAMA_MPIRUN to its path");

  // /proc/self/exe must be resolved now: after exec it would name mpirun.
  char exe[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len <= 0) PL_THROW("cannot resolve /proc/self/exe: " << std::strerror(errno));
  exe[len] = '\0';

  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<std::string> cmd = mpirun_command(mpirun, n_ranks, exe, args, placement);
  std::vector<char*> cargv;
  for (auto& s : cmd) cargv.push_back(s.data());
  cargv.push_back(nullptr);

  setenv(kRelaunchedEnv, "1", 1);
  setenv(kSupervisorEnv, (std::to_string(getpid()) + "@" + this_hostname()).c_str(), 1);
  if (geteuid() == 0) {  // Open MPI refuses to run as root without both of these
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }
  std::fflush(stdout);
  std::fflush(stderr);
  // mpirun runs as a child in its own process group, and this process stays as
  // its supervisor: a SIGINT or SIGTERM sent to us (or Ctrl-C, which reaches our
  // group only) goes to mpirun as SIGUSR1, which Open MPI forwards to every rank,
  // so a server can drain and every rank exit 0 (mpirun itself would kill the
  // job on SIGTERM). A second signal is passed on as SIGTERM.
  sigset_t sigs, old;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGUSR2);  // notify_supervisor_of_failure()
  sigprocmask(SIG_BLOCK, &sigs, &old);
  const pid_t child = fork();
  if (child < 0) PL_THROW("cannot fork to start mpirun: " << std::strerror(errno));
  if (child == 0) {
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, &old, nullptr);
    execv(mpirun.c_str(), cargv.data());
    std::fprintf(stderr, "error: cannot execute %s: %s\n", mpirun.c_str(), std::strerror(errno));
    _exit(127);
  }
  int n_signals = 0;
  double failing_since = -1;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(child, &status, WNOHANG);
    if (r == child) {
      const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      std::exit(failing_since >= 0 && rc == 0 ? 1 : rc);
    }
    timespec tick{0, 50 * 1000 * 1000};
    const int sig = sigtimedwait(&sigs, nullptr, &tick);
    const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    if (sig == SIGUSR2) {
      if (failing_since < 0) failing_since = now;
    } else if (sig > 0) {
      kill(child, n_signals++ == 0 ? SIGUSR1 : SIGTERM);
    }
    if (failing_since >= 0 && now - failing_since > kTeardownGraceS) {
      std::fprintf(stderr,
                   "parallama: mpirun has not ended %.0f s after a rank failed (a host it cannot reach?); "
                   "killing it\n",
                   kTeardownGraceS);
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      std::exit(1);
    }
  }
}

void notify_supervisor_of_failure() {
  const char* v = std::getenv(kSupervisorEnv);
  if (!v || !*v) return;
  const std::string s = v;
  const size_t at = s.find('@');
  if (at == std::string::npos || s.substr(at + 1) != this_hostname()) return;  // another host's process
  char* end = nullptr;
  const long pid = std::strtol(s.c_str(), &end, 10);
  if (pid > 1 && end == s.c_str() + at) kill(static_cast<pid_t>(pid), SIGUSR2);
}

std::string this_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "?";
  return buf;
}

std::vector<std::string> gather_hostnames(Communicator& comm) {
  constexpr size_t kLen = 256;  // fixed slot per rank; longer names are cut
  std::string me = this_hostname();
  std::vector<char> send(kLen, '\0'), recv(kLen * comm.size(), '\0');
  std::memcpy(send.data(), me.data(), std::min(me.size(), kLen - 1));
  comm.all_gather_bytes(send.data(), kLen, recv.data());
  std::vector<std::string> out(comm.size());
  for (int r = 0; r < comm.size(); ++r) out[r] = std::string(recv.data() + r * kLen);
  return out;
}

}  // namespace parallama
