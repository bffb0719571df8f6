// WeightArena and Linear::place: placed matrices (plain copies for float types,
// x16-repacked for quantized ones, row-parallel slices) give the same outputs as
// the matrices read from the mapping, and the arena refuses to overflow.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/check.h"
#include "core/thread_pool.h"
#include "gguf/gguf_file.h"
#include "model/linear.h"
#include "model/synthetic_model.h"
#include "model/weight_arena.h"
#include "ops/repack.h"
#include "small_model.h"
#include "test_util.h"

using namespace parallama;

namespace {

std::unique_ptr<GgufFile> synth(GgmlType weights, const std::string& name) {
  return test::small_model(weights, name);
}

std::vector<float> input(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(n);
  for (float& v : x) v = nd(rng);
  return x;
}

}  // namespace

TEST(WeightArena, SlicesAreAlignedDisjointAndBounded) {
  WeightArena a(1000);
  EXPECT_GE(a.capacity(), 1000u);
  EXPECT_EQ(a.capacity() % (2u << 20), 0u);  // whole huge pages
  uint8_t* p = a.take(3);
  uint8_t* q = a.take(100);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (2u << 20), 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % 64, 0u);
  EXPECT_GE(q - p, 3);
  EXPECT_EQ(a.used(), WeightArena::footprint(3) + WeightArena::footprint(100));
  for (int i = 0; i < 100; ++i) q[i] = static_cast<uint8_t>(i);  // writable
  EXPECT_LE(a.huge_page_bytes(), a.capacity());
  EXPECT_THROW(a.take(a.capacity()), Error);
  WeightArena b = std::move(a);  // moves keep the slices valid
  EXPECT_EQ(q[99], 99);
  EXPECT_EQ(b.used(), WeightArena::footprint(3) + WeightArena::footprint(100));
}

TEST(WeightArena, PlacedLayersComputeWhatTheMappedOnesDo) {
  ThreadPool pool(2);
  // F16 is copied as is; Q4_0 and Q8_0 are repacked into x16 rows where this
  // CPU has x16 kernels for them (can_repack), else copied as is too.
  for (GgmlType type : {GgmlType::F16, GgmlType::Q4_0, GgmlType::Q8_0}) {
    const auto f = synth(type, std::string("arena_") + type_name(type) + ".gguf");
    const RowReduction red = row_reduction_for(*f);
    for (int64_t n_tok : {1, 5}) {
      SCOPED_TRACE(std::string(type_name(type)) + " n_tok " + std::to_string(n_tok));
      const auto x = input(n_tok * 128, 3), xd = input(n_tok * 160, 4);
      Linear mapped = Linear::load(*f, "blk.0.ffn_up", 128, 256, false);
      Linear placed = Linear::load(*f, "blk.0.ffn_up", 128, 256, false);
      // A row-parallel slice [64, 224) of ffn_down (a private copy before placement).
      RowParallelLinear rmapped = RowParallelLinear::load(*f, "blk.0.ffn_down", 256, 128, 64, 224, red);
      RowParallelLinear rplaced = RowParallelLinear::load(*f, "blk.0.ffn_down", 256, 128, 64, 224, red);
      WeightArena arena(WeightArena::footprint(placed.arena_bytes()) +
                        WeightArena::footprint(rplaced.arena_bytes()));
      placed.place(arena);
      rplaced.place(arena);
      EXPECT_EQ(placed.weight().packed_rows > 0, type != GgmlType::F16 && can_repack(type));
      const uint8_t* lo = arena.take(0);
      EXPECT_TRUE(placed.weight().data < lo);  // it lives in the arena now

      std::vector<float> y0(n_tok * 256), y1(n_tok * 256), r0(n_tok * 128), r1(n_tok * 128);
      mapped.forward(x.data(), n_tok, y0.data(), pool);
      placed.forward(x.data(), n_tok, y1.data(), pool);
      rmapped.forward(xd.data(), n_tok, r0.data(), pool, nullptr);
      rplaced.forward(xd.data(), n_tok, r1.data(), pool, nullptr);
      // Largest difference relative to the largest output.
      auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
        double d = 0, m = 0;
        for (size_t i = 0; i < a.size(); ++i) {
          d = std::max(d, double(std::abs(a[i] - b[i])));
          m = std::max(m, double(std::abs(a[i])));
        }
        return d / m;
      };
      // Float copies compute the same bits; the repacked kernels add the same
      // terms in another order, equal to float precision.
      const double tol = type == GgmlType::F16 ? 0.0 : 1e-6;
      EXPECT_LE(rel(y0, y1), tol);
      EXPECT_LE(rel(r0, r1), tol);
      EXPECT_GT(std::abs(y0[0]) + std::abs(y0[1]), 0.0f);
    }
  }
}
