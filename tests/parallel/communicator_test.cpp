// Single-process parts of the parallel module: the one-rank communicator, the
// stats bookkeeping shared by every backend, and the launcher helpers. The MPI
// paths are covered by comm_main.cpp and dead_rank_main.cpp under mpirun.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/check.h"
#include "parallel/communicator.h"
#include "parallel/launcher.h"

using namespace parallama;

TEST(SingleRankCommunicator, CollectivesAreIdentity) {
  SingleRankCommunicator c;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  std::vector<float> x = {1.5f, -2.f, 3.f};
  c.all_reduce_sum(x.data(), x.size());
  EXPECT_EQ(x, (std::vector<float>{1.5f, -2.f, 3.f}));
  std::vector<float> g(3, 0.f);
  c.all_gather(x.data(), 3, g.data());
  EXPECT_EQ(g, x);
  std::vector<float> gv(3, 0.f);
  c.all_gatherv(x.data(), {3}, gv.data());
  EXPECT_EQ(gv, x);
  int32_t i = 7;
  c.all_reduce_sum(&i, 1);
  EXPECT_EQ(i, 7);
  std::vector<double> d = {1.0 + 0x1p-40, -3.25};
  c.all_reduce_sum(d.data(), d.size());
  EXPECT_EQ(d, (std::vector<double>{1.0 + 0x1p-40, -3.25}));
  EXPECT_EQ(c.stats().bytes, 3 * 4 + 3 * 4 + 3 * 4 + 4 + 2 * 8u);
  c.broadcast(&i, sizeof(i), 0);
  c.barrier();
}

TEST(SingleRankCommunicator, StatsCountCallsAndBytes) {
  SingleRankCommunicator c;
  std::vector<float> x(100);
  c.all_reduce_sum(x.data(), x.size());  // 400 bytes
  std::vector<float> g(100);
  c.all_gather(x.data(), 100, g.data());  // 400 bytes
  c.broadcast(x.data(), 10, 0);           // 10 bytes
  c.barrier();                            // 0 bytes
  EXPECT_EQ(c.stats().calls, 4u);
  EXPECT_EQ(c.stats().bytes, 810u);
  EXPECT_GE(c.stats().seconds, 0.0);
  CommStats sum;
  sum += c.stats();
  sum += c.stats();
  EXPECT_EQ(sum.calls, 8u);
  c.reset_stats();
  EXPECT_EQ(c.stats().calls, 0u);
  EXPECT_EQ(c.stats().bytes, 0u);
}

TEST(SingleRankCommunicator, BadArgumentsThrow) {
  SingleRankCommunicator c;
  char b[4];
  EXPECT_THROW(c.send(b, 4, 0, 0), Error);   // no peer
  EXPECT_THROW(c.recv(b, 4, 1, 0), Error);   // out of range
  EXPECT_THROW(c.broadcast(b, 4, 1), Error);  // root out of range
  EXPECT_THROW(c.send(b, 4, 0, -1), Error);  // negative tag
  float f = 0;
  EXPECT_THROW(c.all_gatherv(&f, {1, 1}, &f), Error);  // counts != size
}

TEST(Launcher, MpirunCommand) {
  unsetenv("PARALLAMA_MPIRUN_ARGS");
  const auto cmd = mpirun_command("/usr/bin/mpirun", 4, "/opt/pl", {"--tp", "2", "-p", "hi"});
  const std::vector<std::string> want = {
      "/usr/bin/mpirun", "-n",    "4", "--oversubscribe", "--bind-to", "none", "--mca",
      "mpi_yield_when_idle", "1", "/opt/pl", "--tp", "2", "-p", "hi"};
  EXPECT_EQ(cmd, want);
  setenv("PARALLAMA_MPIRUN_ARGS", " --hostfile  hosts ", 1);
  const auto cmd2 = mpirun_command("mpirun", 2, "x", {});
  unsetenv("PARALLAMA_MPIRUN_ARGS");
  ASSERT_EQ(cmd2.size(), 12u);
  EXPECT_EQ(cmd2[9], "--hostfile");
  EXPECT_EQ(cmd2[10], "hosts");
  EXPECT_EQ(cmd2[11], "x");
}

TEST(Launcher, PlacementArgs) {
  EXPECT_TRUE(placement_args(HostPlacement{}, 4).empty()) << "one host: mpirun's defaults";
  HostPlacement p;
  p.hosts = "h1:2,h2:2";
  const std::vector<std::string> want = {"--host", "h1:2,h2:2", "--map-by", "slot",
                                         "--mca", "oob_tcp_keepalive_time", "3",
                                         "--mca", "oob_tcp_keepalive_intvl", "1",
                                         "--mca", "oob_tcp_keepalive_probes", "3"};
  EXPECT_EQ(placement_args(p, 4), want);
  p.map_by = "node";
  p.mpi_net = "10.1.0.0/16";
  const auto args = placement_args(p, 4);
  ASSERT_EQ(args.size(), want.size() + 6);
  EXPECT_EQ(args[3], "node");
  EXPECT_EQ(std::vector<std::string>(args.end() - 6, args.end()),
            (std::vector<std::string>{"--mca", "btl_tcp_if_include", "10.1.0.0/16", "--mca", "oob_tcp_if_include",
                                      "10.1.0.0/16"}));
  p = HostPlacement{};
  p.hosts = "a,b,c:2";  // a host without a count has one slot
  EXPECT_EQ(placement_args(p, 4)[1], "a,b,c:2");
  for (const char* bad : {"a:2,b:1", "a:2,b:3", "a:0,b:4", "a:x,b:2", ":2,b:2", "a:2,,b:2", "a:2 b:2"}) {
    p.hosts = bad;
    EXPECT_THROW(placement_args(p, 4), Error) << bad;
  }
  p.hosts = "a:4";
  p.map_by = "core";
  EXPECT_THROW(placement_args(p, 4), Error);
  p.map_by = "slot";
  p.hostfile = "/etc/hostname";
  EXPECT_THROW(placement_args(p, 4), Error) << "both --hosts and --hostfile";
  p.hosts.clear();
  EXPECT_EQ(placement_args(p, 4)[1], "/etc/hostname");
  p.hostfile = "/nonexistent/hosts";
  EXPECT_THROW(placement_args(p, 4), Error);
  p.hostfile.clear();
  p.mpi_net = "eth0";
  EXPECT_THROW(placement_args(p, 4), Error);
  // The placement goes between our fixed arguments and the user's own.
  setenv("PARALLAMA_MPIRUN_ARGS", "--mine", 1);
  const auto cmd = mpirun_command("mpirun", 2, "x", {"serve"}, {"--host", "a:2"});
  unsetenv("PARALLAMA_MPIRUN_ARGS");
  EXPECT_EQ(std::vector<std::string>(cmd.begin() + 9, cmd.end()),
            (std::vector<std::string>{"--host", "a:2", "--mine", "x", "serve"}));
}

TEST(Launcher, ThreadsPerRank) {
  const int n = host_cpu_count();
  EXPECT_GE(n, 1);
  EXPECT_EQ(default_threads_per_rank(1), n);
  EXPECT_EQ(default_threads_per_rank(0), n);
  EXPECT_EQ(default_threads_per_rank(n), 1);
  EXPECT_EQ(default_threads_per_rank(4 * n), 1);  // oversubscribed: still one thread
  if (n >= 2) {
    EXPECT_EQ(default_threads_per_rank(2), n / 2);
  }
}

TEST(Launcher, FindOnPath) {
  EXPECT_NE(find_on_path("sh"), "");
  EXPECT_EQ(find_on_path("parallama-no-such-binary-xyz"), "");
  EXPECT_EQ(find_on_path("/bin/sh"), "/bin/sh");
  EXPECT_EQ(find_on_path("/nonexistent/mpirun"), "");
}

TEST(Launcher, UnderMpiFromEnvironment) {
  // This test binary is not run under mpirun.
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_RANK"))
    GTEST_SKIP() << "running under MPI";
  EXPECT_FALSE(under_mpi());
  EXPECT_EQ(local_rank_count(), 1);
  setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
  EXPECT_TRUE(under_mpi());
  EXPECT_EQ(local_rank_count(), 2);
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  EXPECT_FALSE(under_mpi());
}

TEST(Launcher, RelaunchWithoutMpirunIsAClearError) {
  setenv("PARALLAMA_MPIRUN", "/nonexistent/mpirun", 1);
  std::string msg;
  try {
    relaunch_under_mpirun(2, 0, nullptr);
  } catch (const Error& e) {
    msg = e.what();
  }
  unsetenv("PARALLAMA_MPIRUN");
  EXPECT_NE(msg.find("not found on PATH"), std::string::npos) << msg;
  EXPECT_NE(msg.find("PARALLAMA_MPIRUN"), std::string::npos) << msg;
}

TEST(Launcher, Hostname) {
  EXPECT_FALSE(this_hostname().empty());
  SingleRankCommunicator c;
  const auto hosts = gather_hostnames(c);
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0], this_hostname());
}
