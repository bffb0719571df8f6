// Emulated hosts (scripts/emulate_hosts.sh: network namespaces joined by a
// bridge, links optionally shaped) for the lifetime of an object: made on
// construction, after removing any leftovers with the same prefix, and removed
// on destruction, also when the run in between throws. For bench sweep's
// servers and plan calibrate's link probes.
#pragma once

#include <string>
#include <vector>

namespace parallama::cli {

class EmulatedHosts {
 public:
  // n hosts named PREFIXh1..PREFIXhN, links capped at `rate` ("1gbit"; ""
  // unshaped); the script's output goes to `log`. Throws parallama::Error,
  // starting with `what`, when not root, the script is missing or `up` fails.
  EmulatedHosts(int n, const std::string& prefix, const std::string& rate, const std::string& log,
                const std::string& what);
  ~EmulatedHosts();
  EmulatedHosts(const EmulatedHosts&) = delete;
  EmulatedHosts& operator=(const EmulatedHosts&) = delete;

  // Put before a command to run it as host 1 (mpirun's host).
  std::vector<std::string> run_prefix() const;
  // Host 1's network namespace.
  std::string first_host() const { return prefix_ + "h1"; }

 private:
  std::string script_, prefix_, log_;
};

}  // namespace parallama::cli
