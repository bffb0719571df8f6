// Child processes of CLI commands (bench sweep's servers and scripts, plan's
// plotting): started with their output in a log file, waited for with a bound.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace parallama::cli {

// Starts argv (argv[0] a path) with stdout and stderr appended to log, and
// Open MPI's root permission in the environment when we are root. The child
// gets SIGTERM if this process dies (PR_SET_PDEATHSIG), so a server whose
// sweep is killed drains instead of holding its port. Throws parallama::Error
// when it cannot fork; an exec failure is exit status 127.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log);

// Exit status of pid within timeout_s (128 + signal when killed by one), -1
// while it still runs, -2 if it is not our child.
int wait_exit(pid_t pid, double timeout_s);

// spawn_logged, then its exit status; killed (SIGKILL) and -1 after timeout_s.
int run_logged(const std::vector<std::string>& argv, const std::string& log, double timeout_s = 120);

}  // namespace parallama::cli
