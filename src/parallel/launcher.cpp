#include "parallel/launcher.h"

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

std::vector<std::string> mpirun_command(const std::string& mpirun, int n_ranks,
                                        const std::string& exe,
                                        const std::vector<std::string>& args) {
  // --oversubscribe: more ranks than cores is allowed (small hosts, tests).
  // --bind-to none: each rank runs its own thread pool; binding a rank to one core
  //   would squeeze all its threads onto it.
  // mpi_yield_when_idle: ranks waiting in MPI yield the CPU instead of spinning,
  //   which matters when ranks * threads exceed the cores.
  std::vector<std::string> cmd = {mpirun,          "-n",   std::to_string(n_ranks),
                                  "--oversubscribe", "--bind-to", "none",
                                  "--mca",         "mpi_yield_when_idle", "1"};
  if (const char* extra = std::getenv("PARALLAMA_MPIRUN_ARGS")) {  // e.g. "--hostfile hosts"
    std::stringstream ss(extra);
    std::string a;
    while (ss >> a) cmd.push_back(a);
  }
  cmd.push_back(exe);
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

void relaunch_under_mpirun(int n_ranks, int argc, char** argv) {
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
  std::vector<std::string> cmd = mpirun_command(mpirun, n_ranks, exe, args);
  std::vector<char*> cargv;
  for (auto& s : cmd) cargv.push_back(s.data());
  cargv.push_back(nullptr);

  setenv(kRelaunchedEnv, "1", 1);
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
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(child, &status, WNOHANG);
    if (r == child) std::exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    timespec tick{0, 50 * 1000 * 1000};
    const int sig = sigtimedwait(&sigs, nullptr, &tick);
    if (sig > 0) kill(child, n_signals++ == 0 ? SIGUSR1 : SIGTERM);
  }
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
