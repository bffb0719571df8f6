// MPI communicator test: run under mpirun (default tp=2 pp=2, 4 ranks), or run
// directly and it relaunches itself under mpirun with tp*pp ranks.
//   comm_main [--tp N] [--pp N]
// Every expected value is computed from a closed formula of the ranks, not from
// another rank's output. Exits 0 when every rank passed, 1 otherwise.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/check.h"
#include "parallel/launcher.h"
#include "parallel/mpi_communicator.h"
#include "parallel/world_config.h"

using namespace parallama;

namespace {

int g_failures = 0;
int g_rank = 0;

#define EXPECT_TRUE_MSG(cond, msg)                                                   \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      ++g_failures;                                                                 \
      std::fprintf(stderr, "rank %d: FAILED %s:%d: %s: %s\n", g_rank, __FILE__, __LINE__, \
                   #cond, std::string(msg).c_str());                                \
    }                                                                               \
  } while (0)

// Value rank r contributes at index i (small integers: float sums are exact).
float contrib(int world_rank, size_t i) {
  return static_cast<float>((world_rank + 1) * static_cast<int>(i % 1000 + 1)) + 0.5f;
}

void test_all_reduce(const WorldConfig& cfg, Communicator& tp, size_t n) {
  std::vector<float> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = contrib(cfg.rank, i);
  tp.all_reduce_sum(buf.data(), n);
  int bad = 0;
  for (size_t i = 0; i < n; ++i) {
    float want = 0;
    for (int r : cfg.tp_group_ranks()) want += contrib(r, i);
    if (buf[i] != want && bad++ < 3)
      EXPECT_TRUE_MSG(false, "all_reduce n=" + std::to_string(n) + " i=" + std::to_string(i) +
                                 " got " + std::to_string(buf[i]) + " want " +
                                 std::to_string(want));
  }
}

void test_all_reduce_i32(const WorldConfig& cfg, Communicator& world) {
  const size_t n = 17;
  std::vector<int32_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = cfg.rank * static_cast<int32_t>(i) - 3;
  world.all_reduce_sum(buf.data(), n);
  const int W = cfg.world_size();
  for (size_t i = 0; i < n; ++i) {
    int32_t want = static_cast<int32_t>(i) * (W * (W - 1) / 2) - 3 * W;
    EXPECT_TRUE_MSG(buf[i] == want, "i32 all_reduce i=" + std::to_string(i));
  }
}

// Doubles keep what floats would drop: 1 + i * 2^-40 needs 41 mantissa bits.
// Dyadic values of small range, so every order of summation is exact.
void test_all_reduce_f64(const WorldConfig& cfg, Communicator& tp) {
  const size_t n = 257;
  auto val = [](int r, size_t i) { return (r + 1) * (1.0 + static_cast<double>(i) * 0x1p-40); };
  std::vector<double> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = val(cfg.rank, i);
  const uint64_t bytes0 = tp.stats().bytes;
  tp.all_reduce_sum(buf.data(), n);
  EXPECT_TRUE_MSG(tp.stats().bytes - bytes0 == n * sizeof(double), "f64 all_reduce byte count");
  for (size_t i = 0; i < n; ++i) {
    double want = 0;
    for (int r : cfg.tp_group_ranks()) want += val(r, i);
    EXPECT_TRUE_MSG(buf[i] == want, "f64 all_reduce i=" + std::to_string(i));
    if (buf[i] != want) break;
  }
}

void test_all_gather(const WorldConfig& cfg, Communicator& tp) {
  const size_t each = 7;
  std::vector<float> send(each), recv(each * cfg.tp, -1.f);
  for (size_t j = 0; j < each; ++j) send[j] = 100.f * cfg.rank + j;
  tp.all_gather(send.data(), each, recv.data());
  const auto group = cfg.tp_group_ranks();
  for (int r = 0; r < cfg.tp; ++r)
    for (size_t j = 0; j < each; ++j)
      EXPECT_TRUE_MSG(recv[r * each + j] == 100.f * group[r] + j,
                      "all_gather block " + std::to_string(r) + " j=" + std::to_string(j));

  // Variable counts: tp rank r contributes r + 1 elements (the uneven head split case).
  std::vector<size_t> counts(cfg.tp);
  size_t total = 0;
  for (int r = 0; r < cfg.tp; ++r) total += counts[r] = r + 1;
  std::vector<float> vsend(counts[cfg.tp_rank()]), vrecv(total, -1.f);
  for (size_t j = 0; j < vsend.size(); ++j) vsend[j] = 1000.f * cfg.rank + j;
  tp.all_gatherv(vsend.data(), counts, vrecv.data());
  size_t off = 0;
  for (int r = 0; r < cfg.tp; ++r)
    for (size_t j = 0; j < counts[r]; ++j, ++off)
      EXPECT_TRUE_MSG(vrecv[off] == 1000.f * group[r] + j,
                      "all_gatherv block " + std::to_string(r) + " j=" + std::to_string(j));
}

void test_broadcast(const WorldConfig& cfg, Communicator& world) {
  for (int root = 0; root < cfg.world_size(); ++root) {
    std::vector<uint8_t> buf(100, 0xEE);
    if (cfg.rank == root)
      for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(root * 31 + i);
    world.broadcast(buf.data(), buf.size(), root);
    for (size_t i = 0; i < buf.size(); ++i)
      EXPECT_TRUE_MSG(buf[i] == static_cast<uint8_t>(root * 31 + i),
                      "broadcast root " + std::to_string(root) + " i=" + std::to_string(i));
  }
}

// Forward: stage 0 makes x[i] = tp_rank*10 + i; each later stage receives, checks,
// adds its stage number, forwards. Backward: the last stage sends a "token id"
// (42 + tp_rank) straight to stage 0 of the same tp rank, like a sampled token.
void test_pipeline(const WorldConfig& cfg, Communicator& pipe) {
  if (cfg.pp == 1) return;
  const size_t n = 4096;
  std::vector<float> x(n);
  auto expected_after = [&](int stage, size_t i) {  // value leaving `stage`
    float v = cfg.tp_rank() * 10.f + i;
    for (int s = 1; s <= stage; ++s) v += s;
    return v;
  };
  if (cfg.is_first_stage()) {
    for (size_t i = 0; i < n; ++i) x[i] = expected_after(0, i);
  } else {
    pipe.recv(x.data(), n * sizeof(float), cfg.prev_stage_rank(), /*tag=*/1);
    for (size_t i = 0; i < n; ++i)
      EXPECT_TRUE_MSG(x[i] == expected_after(cfg.pp_rank() - 1, i),
                      "pipeline recv i=" + std::to_string(i));
    for (size_t i = 0; i < n; ++i) x[i] += cfg.pp_rank();
  }
  if (!cfg.is_last_stage()) pipe.send(x.data(), n * sizeof(float), cfg.next_stage_rank(), 1);

  const int first = WorldConfig::world_rank_of(cfg.tp, 0, cfg.tp_rank());
  const int last = WorldConfig::world_rank_of(cfg.tp, cfg.pp - 1, cfg.tp_rank());
  if (cfg.is_last_stage()) {
    int32_t tok = 42 + cfg.tp_rank();
    pipe.send(&tok, sizeof(tok), first, 2);
  } else if (cfg.is_first_stage()) {
    int32_t tok = -1;
    pipe.recv(&tok, sizeof(tok), last, 2);
    EXPECT_TRUE_MSG(tok == 42 + cfg.tp_rank(), "token " + std::to_string(tok));
  }
}

// A short message must be reported as an Error naming the peer, not accepted.
void test_recv_size_mismatch(const WorldConfig& cfg, Communicator& pipe) {
  if (cfg.pp == 1) return;
  if (cfg.is_first_stage()) {
    double small = 1.0;
    pipe.send(&small, sizeof(small), cfg.next_stage_rank(), 3);
  } else if (cfg.pp_rank() == 1) {
    double big[2];
    std::string what;
    try {
      pipe.recv(big, sizeof(big), cfg.prev_stage_rank(), 3);
    } catch (const Error& e) {
      what = e.what();
    }
    EXPECT_TRUE_MSG(what.find("world rank " + std::to_string(cfg.prev_stage_rank())) !=
                            std::string::npos && what.find("expected 16 bytes, got 8") !=
                            std::string::npos,
                    "size mismatch error was: '" + what + "'");
  }
  // Argument checks happen before MPI is touched.
  bool threw = false;
  try {
    pipe.send(&cfg, 1, cfg.world_size(), 0);
  } catch (const Error&) {
    threw = true;
  }
  EXPECT_TRUE_MSG(threw, "send to an out-of-range peer did not throw");
}

void test_stats(Communicator& tp, int tp_size) {
  tp.reset_stats();
  std::vector<float> buf(256, 1.f);
  tp.all_reduce_sum(buf.data(), buf.size());
  tp.barrier();
  const CommStats& s = tp.stats();
  EXPECT_TRUE_MSG(s.calls == 2, "calls " + std::to_string(s.calls));
  EXPECT_TRUE_MSG(s.bytes == 256 * sizeof(float), "bytes " + std::to_string(s.bytes));
  EXPECT_TRUE_MSG(s.seconds > 0 && s.seconds < 10, "seconds " + std::to_string(s.seconds));
  EXPECT_TRUE_MSG(buf[5] == static_cast<float>(tp_size), "all_reduce of ones");
}

int parse_flag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int tp = parse_flag(argc, argv, "--tp", 2), pp = parse_flag(argc, argv, "--pp", 2);
  try {
    if (!under_mpi()) relaunch_under_mpirun(tp * pp, argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "comm_main: %s\n", e.what());
    return 1;
  }
  MpiContext mpi(&argc, &argv);
  g_rank = mpi.world_rank();
  try {
    const WorldConfig cfg =
        WorldConfig::create(tp, pp, mpi.world_rank(), mpi.world_size(), 9, 3, 30);
    ParallelComms comms = make_parallel_comms(mpi, cfg);
    const auto hosts = gather_hostnames(*comms.world);
    if (cfg.rank == 0) std::printf("%s", cfg.to_table(hosts, 9, 3).c_str());
    EXPECT_TRUE_MSG(hosts[cfg.rank] == this_hostname(), "own host name");
    EXPECT_TRUE_MSG(comms.tp->rank() == cfg.tp_rank() && comms.tp->size() == tp, "tp comm");
    EXPECT_TRUE_MSG(comms.world->size() == tp * pp, "world size");
    for (int r = 0; r < tp; ++r)
      EXPECT_TRUE_MSG(comms.tp->world_rank_of(r) == cfg.tp_group_ranks()[r], "tp member");

    test_all_reduce(cfg, *comms.tp, 1000);
    test_all_reduce(cfg, *comms.tp, 1 << 20);  // large: not the eager path
    test_all_reduce_i32(cfg, *comms.world);
    test_all_reduce_f64(cfg, *comms.tp);
    test_all_gather(cfg, *comms.tp);
    test_broadcast(cfg, *comms.world);
    test_pipeline(cfg, *comms.pipe);
    test_recv_size_mismatch(cfg, *comms.pipe);
    test_stats(*comms.tp, tp);

    // Agree on the verdict so every rank exits with the same code.
    int32_t failures = g_failures;
    comms.world->all_reduce_sum(&failures, 1);
    if (cfg.rank == 0)
      std::printf("comm_main tp=%d pp=%d: %s (%d failures)\n", tp, pp,
                  failures ? "FAILED" : "OK", failures);
    return failures ? 1 : 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "rank %d: %s\n", mpi.world_rank(), e.what());
    MpiContext::abort(1);
  }
}
