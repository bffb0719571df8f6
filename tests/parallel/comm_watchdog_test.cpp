// The communication watchdog on a fake communicator whose calls block until
// the test releases them: what a wait publishes, when it becomes overdue, what
// the message names, a stopped process of our own, and the
// /proc check on real child processes (running, stopped, exited).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "parallel/comm_watchdog.h"
#include "parallel/communicator.h"

using namespace parallama;

namespace {

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Three ranks (this one is member 1 = world rank 5); recv/all_reduce block
// until release().
class BlockingComm final : public Communicator {
 public:
  int rank() const override { return 1; }
  int size() const override { return 3; }
  int world_rank_of(int r) const override { return r + 4; }
  void release() {
    std::lock_guard<std::mutex> l(mu_);
    go_ = true;
    cv_.notify_all();
  }

 protected:
  void block() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return go_; });
    go_ = false;
  }
  void do_all_reduce_sum(void*, size_t, CommType) override { block(); }
  void do_all_gather(const void*, size_t, void*) override {}
  void do_all_gatherv(const void*, const std::vector<size_t>&, void*) override {}
  void do_broadcast(void*, size_t, int) override { block(); }
  void do_send(const void*, size_t, int, int) override {}
  void do_recv(void*, size_t, int, int) override { block(); }
  void do_barrier() override {}

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool go_ = false;
};

// World ranks 0..6: the comm's members are 4 (hostB), 5 (this rank) and 6,
// both on hostA; no pids, so no /proc check.
std::vector<RankInfo> world_ranks() {
  std::vector<RankInfo> r(7, RankInfo{"hostA", 0});
  r[4].host = "hostB";
  return r;
}

// Waits until the comm publishes a wait (the call has started on its thread).
void until_waiting(const Communicator& c) {
  while (c.wait_state().since_ns.load() == 0) std::this_thread::yield();
}

}  // namespace

TEST(CommWatchdog, PublishesTheWaitAndClearsItAfter) {
  BlockingComm c;
  EXPECT_EQ(c.wait_state().since_ns.load(), 0);
  std::thread t([&] {
    int x = 0;
    c.recv(&x, sizeof(x), 2, 7);
  });
  until_waiting(c);
  EXPECT_STREQ(c.wait_state().op.load(), "recv");
  EXPECT_EQ(c.wait_state().peer.load(), 2);
  c.release();
  t.join();
  EXPECT_EQ(c.wait_state().since_ns.load(), 0);
}

TEST(CommWatchdog, OverdueOnlyPastTimeoutPlusAllowanceAndNamesThePeer) {
  BlockingComm c;
  CommWatchdog wd(2.0, 5, world_ranks(), [](const std::string&) { FAIL() << "the thread must not fire here"; });
  wd.watch(&c, "pipeline link");
  std::thread t([&] {
    int x = 0;
    c.recv(&x, sizeof(x), 0, 7);  // member 0 = world rank 4 on hostB
  });
  until_waiting(c);
  const int64_t since = c.wait_state().since_ns.load();
  const int64_t s = 1000000000;
  EXPECT_EQ(wd.overdue(since + 10 * s), "") << "not armed: nothing is timed";
  wd.arm(true);
  wd.set_allowance(1.5);
  EXPECT_EQ(wd.overdue(since + 3 * s), "") << "3 s < 2 s timeout + 1.5 s allowance";
  const std::string m = wd.overdue(since + 4 * s);
  EXPECT_NE(m.find("world rank 5 (host hostA) waited 4 s in recv on the pipeline link for world rank 4 (host hostB)"),
            std::string::npos)
      << m;
  // The time this process itself did not run does not count.
  wd.resumed_at(since + 3 * s);
  EXPECT_EQ(wd.overdue(since + 4 * s), "");
  EXPECT_NE(wd.overdue(since + 7 * s), "");
  wd.arm(false);
  c.release();
  t.join();
  EXPECT_EQ(wd.overdue(steady_ns() + 100 * s), "");
}

TEST(CommWatchdog, CollectiveNamesEveryOtherMember) {
  BlockingComm c;
  CommWatchdog wd(1.0, 5, world_ranks(), [](const std::string&) {});
  wd.watch(&c, "tp group of stage 1");
  wd.arm(true);
  std::thread t([&] {
    float x = 0;
    c.all_reduce_sum(&x, 1);
  });
  until_waiting(c);
  const int64_t s = 1000000000;
  const std::string m = wd.overdue(c.wait_state().since_ns.load() + 2 * s);
  EXPECT_NE(m.find("in all_reduce on the tp group of stage 1 for its peers: world rank 4 (host hostB), world rank 6 (host hostA);"),
            std::string::npos)
      << m;
  EXPECT_EQ(m.find("world rank 5 (host"), m.find("world rank 5 (host hostA) waited")) << "lists itself as a peer: " << m;
  c.release();
  t.join();
}

TEST(CommWatchdog, SpansHosts) {
  BlockingComm c;  // members: world ranks 4 (hostB), 5 and 6 (hostA)
  CommWatchdog mixed(1.0, 5, world_ranks(), [](const std::string&) {});
  EXPECT_TRUE(mixed.spans_hosts(c));
  CommWatchdog one_host(1.0, 5, std::vector<RankInfo>(7, RankInfo{"hostA", 0}), [](const std::string&) {});
  EXPECT_FALSE(one_host.spans_hosts(c));
}

TEST(CommWatchdog, ThreadFiresOnceForARealWait) {
  BlockingComm c;
  std::atomic<int> fired{0};
  std::string message;
  std::mutex mu;
  CommWatchdog wd(0.2, 5, world_ranks(), [&](const std::string& m) {
    std::lock_guard<std::mutex> l(mu);
    message = m;
    ++fired;
  });
  wd.watch(&c, "world");
  wd.arm(true);
  std::thread t([&] {
    int x = 0;
    c.recv(&x, sizeof(x), 2, 1);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fired == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  c.release();
  t.join();
  EXPECT_EQ(fired.load(), 1);
  std::lock_guard<std::mutex> l(mu);
  EXPECT_NE(message.find("for world rank 6"), std::string::npos) << message;
}

TEST(LocalProcessState, RunningStoppedExitedAndOtherHost) {
  const std::string me = "this-host";
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (;;) pause();
  }
  RankInfo r{me, child};
  EXPECT_EQ(local_process_state(r, me), "");
  kill(child, SIGSTOP);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(st));
  EXPECT_EQ(local_process_state(r, me), "stopped");
  EXPECT_EQ(local_process_state(r, "other-host"), "") << "another host's pid means nothing here";
  EXPECT_EQ(describe_rank(0, {r}, me), "world rank 0 (host this-host, process " + std::to_string(child) + " stopped)");
  kill(child, SIGKILL);
  // Not reaped yet: a zombie, which is gone as far as a peer is concerned.
  for (int i = 0; i < 200 && local_process_state(r, me) != "exited"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(local_process_state(r, me), "exited");
  ASSERT_EQ(waitpid(child, &st, 0), child);
  EXPECT_EQ(local_process_state(r, me), "exited");
  EXPECT_EQ(local_process_state(RankInfo{me, getpid()}, me), "");
}
