#include "cli/emulated_hosts.h"

#include <unistd.h>

#include "cli/child_process.h"
#include "cli/paths.h"
#include "core/check.h"

namespace parallama::cli {

EmulatedHosts::EmulatedHosts(int n, const std::string& prefix, const std::string& rate, const std::string& log,
                             const std::string& what)
    : script_(source_root() + "/scripts/emulate_hosts.sh"), prefix_(prefix), log_(log) {
  if (geteuid() != 0) PL_THROW(what << ": emulated hosts need root (network namespaces)");
  if (!file_exists(script_)) PL_THROW(what << ": " << script_ << " not found");
  run_logged({script_, "down", "--prefix", prefix_}, log_);  // leftovers of an interrupted run
  std::vector<std::string> up = {script_, "up", std::to_string(n), "--prefix", prefix_};
  if (!rate.empty()) up.insert(up.end(), {"--rate", rate});
  if (run_logged(up, log_) != 0) PL_THROW(what << ": emulate_hosts.sh up failed (see " << log_ << ")");
}

EmulatedHosts::~EmulatedHosts() { run_logged({script_, "down", "--prefix", prefix_}, log_); }

std::vector<std::string> EmulatedHosts::run_prefix() const { return {script_, "run", "--prefix", prefix_, "--"}; }

}  // namespace parallama::cli
