#include "cli/paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "core/check.h"

namespace parallama::cli {

namespace {
std::string dir_of(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == std::string::npos ? "." : p.substr(0, s);
}
}  // namespace

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  PL_CHECK_MSG(n > 0, "cannot read /proc/self/exe");
  return std::string(buf, n);
}

std::string source_root() { return dir_of(dir_of(dir_of(self_exe()))); }

bool file_exists(const std::string& p) {
  struct stat st{};
  return stat(p.c_str(), &st) == 0;
}

std::string python_for_tools() {
  if (const char* env = std::getenv("PARALLAMA_PYTHON")) return env;
  const std::string venv = source_root() + "/build/venv/bin/python3";
  return file_exists(venv) ? venv : "/usr/bin/python3";
}

}  // namespace parallama::cli
