// HugeRegion: alignment, rounding, zero fill, moves, and a clear error when the
// memory cannot be mapped.
#include "core/huge_region.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>

#include "core/check.h"

namespace parallama {
namespace {

TEST(HugeRegion, AlignedRoundedAndZeroed) {
  for (bool prefault : {false, true}) {
    HugeRegion r(3 * HugeRegion::kHugePage + 5, "a test", prefault);
    ASSERT_NE(r.data(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data()) % HugeRegion::kHugePage, 0u);
    EXPECT_EQ(r.size(), 4 * HugeRegion::kHugePage);
    size_t nonzero = 0;
    for (size_t i = 0; i < r.size(); i += 4093) nonzero += r.data()[i] != 0;
    EXPECT_EQ(nonzero, 0u);
    r.data()[r.size() - 1] = 7;  // the whole rounded size is writable
    EXPECT_LE(r.huge_page_bytes(), r.size());
  }
}

TEST(HugeRegion, MovesTransferOwnership) {
  HugeRegion a(100, "a test");
  uint8_t* p = a.data();
  p[10] = 42;
  HugeRegion b = std::move(a);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.data()[10], 42);
  HugeRegion c(1, "a test");
  c = std::move(b);  // releases c's old mapping, takes b's
  EXPECT_EQ(c.data(), p);
  c = std::move(c);  // self-move keeps it
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.data()[10], 42);
}

TEST(HugeRegion, UnmappableSizeThrowsNamingTheUse) {
  try {
    HugeRegion r(size_t(1) << 60, "the test buffer");
    FAIL() << "mapping 1 EiB succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the test buffer"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace parallama
