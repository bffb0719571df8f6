#include "parallel/comm_watchdog.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "parallel/communicator.h"

namespace parallama {

std::string local_process_state(const RankInfo& peer, const std::string& this_host) {
  if (peer.pid <= 0 || peer.host != this_host) return "";
  std::ifstream in("/proc/" + std::to_string(peer.pid) + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) return "exited";
  // pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return "";
  const char state = stat[close + 2];
  if (state == 'T' || state == 't') return "stopped";
  if (state == 'Z' || state == 'X') return "exited";
  return "";
}

std::string describe_rank(int world, const std::vector<RankInfo>& ranks, const std::string& this_host) {
  std::ostringstream s;
  s << "world rank " << world;
  if (world >= 0 && world < static_cast<int>(ranks.size())) {
    s << " (host " << ranks[world].host;
    const std::string st = local_process_state(ranks[world], this_host);
    if (!st.empty()) s << ", process " << ranks[world].pid << " " << st;
    s << ")";
  }
  return s.str();
}

CommWatchdog::CommWatchdog(double timeout_s, int me, std::vector<RankInfo> ranks, Fire fire)
    : timeout_s_(timeout_s), me_(me), ranks_(std::move(ranks)), fire_(std::move(fire)) {
  thread_ = std::thread([this] { loop(); });
}

CommWatchdog::~CommWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool CommWatchdog::spans_hosts(const Communicator& c) const {
  for (int r = 1; r < c.size(); ++r) {
    const int a = c.world_rank_of(0), b = c.world_rank_of(r);
    if (a < static_cast<int>(ranks_.size()) && b < static_cast<int>(ranks_.size()) && ranks_[a].host != ranks_[b].host)
      return true;
  }
  return false;
}

void CommWatchdog::watch(const Communicator* c, std::string label) {
  std::lock_guard<std::mutex> lock(mu_);
  watched_.push_back({c, std::move(label)});
}

std::string CommWatchdog::describe(const Watched& w, int peer, double waited) const {
  const std::string& my_host = me_ < static_cast<int>(ranks_.size()) ? ranks_[me_].host : std::string("?");
  auto name = [&](int world) { return describe_rank(world, ranks_, my_host); };
  const CommWait& ws = w.comm->wait_state();
  const char* op = ws.op.load();
  std::ostringstream m;
  m << "communication timeout: world rank " << me_ << " (host " << my_host << ") waited " << static_cast<int>(waited)
    << " s in " << (op ? op : "a call") << " on the " << w.label << " for ";
  if (peer >= 0) {
    m << name(w.comm->world_rank_of(peer));
  } else {
    m << "its peers";
    const char* sep = ": ";
    for (int r = 0; r < w.comm->size(); ++r) {
      const int world = w.comm->world_rank_of(r);
      if (world == me_) continue;
      m << sep << name(world);
      sep = ", ";
    }
  }
  // The rank that holds everything up may be further along the chain (a later
  // stage): name any rank this host sees stopped or gone.
  for (int r = 0; r < static_cast<int>(ranks_.size()); ++r) {
    const std::string named = "world rank " + std::to_string(r) + " (";
    if (r == me_ || local_process_state(ranks_[r], my_host).empty() || m.str().find(named) != std::string::npos)
      continue;
    m << "; this host sees " << name(r);
  }
  m << "; the peer is hung, stopped or unreachable (link down). --comm-timeout is " << timeout_s_
    << " s, plus " << allowance_.load() << " s for the current step";
  return m.str();
}

std::string CommWatchdog::overdue(int64_t now_ns) const {
  if (!armed_.load()) return "";
  const double limit = timeout_s_ + allowance_.load();
  for (const Watched& w : watched_) {
    const CommWait& ws = w.comm->wait_state();
    const int64_t since = ws.since_ns.load(std::memory_order_acquire);
    if (since == 0) continue;
    const int64_t from = std::max(since, resumed_ns_.load());
    const double waited = 1e-9 * static_cast<double>(now_ns - from);
    if (waited > limit) return describe(w, ws.peer.load(), waited);
  }
  return "";
}

void CommWatchdog::loop() {
  auto now_ns = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  std::unique_lock<std::mutex> lock(mu_);
  int64_t last = now_ns();
  while (!quit_) {
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (quit_) break;
    const int64_t now = now_ns();
    // A tick a second late: this process was stopped (SIGSTOP, a frozen VM) or
    // starved; its peers were not necessarily at fault meanwhile.
    if (now - last > 1000000000) resumed_at(now);
    last = now;
    const std::string msg = overdue(now);
    if (!msg.empty()) {
      lock.unlock();
      fire_(msg);
      lock.lock();
      armed_.store(false);  // fire returned (tests): report once
    }
  }
}

}  // namespace parallama
