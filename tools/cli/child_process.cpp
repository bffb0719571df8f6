#include "cli/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "core/check.h"
#include "core/clock.h"

extern char** environ;

namespace parallama::cli {

pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log) {
  PL_CHECK_MSG(!argv.empty(), "spawn_logged: no command");
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.emplace_back(*e);
  if (geteuid() == 0) {
    envs.emplace_back("OMPI_ALLOW_RUN_AS_ROOT=1");
    envs.emplace_back("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1");
  }
  std::vector<char*> av, ev;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (const auto& e : envs) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  // fork + exec rather than posix_spawn, for PR_SET_PDEATHSIG. The child calls
  // only async-signal-safe functions.
  const pid_t pid = fork();
  if (pid < 0) PL_THROW("cannot start " << argv[0] << ": fork: " << std::strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execve(av[0], av.data(), ev.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid, double timeout_s) {
  const double until = now_seconds() + timeout_s;
  for (;;) {
    int st = 0;
    const pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r < 0) return -2;
    if (now_seconds() > until) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int run_logged(const std::vector<std::string>& argv, const std::string& log, double timeout_s) {
  const pid_t pid = spawn_logged(argv, log);
  const int rc = wait_exit(pid, timeout_s);
  if (rc == -1) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  return rc;
}

}  // namespace parallama::cli
