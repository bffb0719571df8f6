// The communication watchdog: a thread that watches what this rank's
// communicators wait for (Communicator::wait_state) and, when one call has
// waited longer than the timeout plus the current step's allowance, reports
// the peer (world rank, host, and whether it is seen stopped or gone on this
// host) through a callback that ends the job. A stopped or hung rank, or a cut
// link, thus ends every rank with a message instead of a hang. Every wait is
// timed: a rank waiting for work hears from its sender at least every half
// timeout (the serving loop's heartbeat plans).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace parallama {

class Communicator;

// One rank of the job as seen from another: for messages and the /proc check.
struct RankInfo {
  std::string host;
  int64_t pid = 0;
};

// A peer on this host that no longer runs as it should: "stopped" (state T/t),
// "exited" (no such process, or a zombie), or "" (running, or on another host).
std::string local_process_state(const RankInfo& peer, const std::string& this_host);

// "world rank 3 (host h2)", with ", process PID stopped|exited" when this host
// sees it so.
std::string describe_rank(int world_rank, const std::vector<RankInfo>& ranks, const std::string& this_host);

class CommWatchdog {
 public:
  using Fire = std::function<void(const std::string& message)>;

  // ranks [world size]: every rank's host and pid; me: this world rank. fire
  // is called once, on the watchdog thread; it should end the job and not return.
  CommWatchdog(double timeout_s, int me, std::vector<RankInfo> ranks, Fire fire);
  ~CommWatchdog();
  CommWatchdog(const CommWatchdog&) = delete;
  CommWatchdog& operator=(const CommWatchdog&) = delete;

  // Before arm(): communicators to watch, with a label for messages.
  void watch(const Communicator* c, std::string label);
  // Timing starts and stops (calls outside the engine's loop are not timed:
  // loading, start-up tables, the final barrier).
  void arm(bool on) { armed_.store(on); }
  // Extra seconds a wait may take during the current step (the work the peers
  // do before they answer); set by the engine loop before each step.
  void set_allowance(double s) { allowance_.store(s < 0 ? 0 : s); }
  double timeout() const { return timeout_s_; }
  // Whether c's members run on more than one host (their traffic crosses a network).
  bool spans_hosts(const Communicator& c) const;

  // The message for the first watched call past its deadline at now_ns
  // (steady clock), or "". The thread calls this; tests call it directly.
  std::string overdue(int64_t now_ns) const;
  // This process did not run until now_ns (the thread's own tick came late):
  // time before it does not count against peers.
  void resumed_at(int64_t now_ns) { resumed_ns_.store(now_ns); }

 private:
  struct Watched {
    const Communicator* comm;
    std::string label;
  };
  void loop();
  std::string describe(const Watched& w, int peer, double waited) const;

  double timeout_s_;
  int me_;
  std::vector<RankInfo> ranks_;
  Fire fire_;
  std::vector<Watched> watched_;
  std::atomic<bool> armed_{false};
  std::atomic<double> allowance_{0};
  // Waits count from here at the earliest: the last time this process itself
  // was seen not running (stopped, then continued), whose gap is no peer's fault.
  std::atomic<int64_t> resumed_ns_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace parallama
