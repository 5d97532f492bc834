//===- FormatTest.cpp - fmt formatters and spaces::LiveReport -------------===//
//
// The one-line region stats, the process stats, and the live report (rows by block size with
// count and bytes, largest blocks first) checked against allocations of known sizes.
//
//===----------------------------------------------------------------------===//
#include "spaces/Format.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <string>
#include <vector>

using spaces::LiveReport;
using spaces::Region;

namespace {
bool contains(const std::string &Haystack, const std::string &Needle) {
  return Haystack.find(Needle) != std::string::npos;
}
} // namespace

TEST(Format, RegionStatsLine) {
  Region R;
  R.Allocate(48);
  R.Allocate(48);
  R.Allocate(1024);
  std::string S = fmt::format("{}", R.stats());
  EXPECT_TRUE(contains(S, "live 3 blocks / 1120 bytes")) << S;
  EXPECT_TRUE(contains(S, "ceiling none")) << S;
  EXPECT_TRUE(contains(S, "ceiling hits 0")) << S;
  EXPECT_TRUE(contains(S, fmt::format("footprint {} bytes", R.stats().footprint))) << S;
  EXPECT_TRUE(contains(S, "1 slabs, 0 large blocks")) << S;  // (one bump slab holds every size)

  R.setCeiling(3 << 20);
  S = fmt::format("{}", R.stats());
  EXPECT_TRUE(contains(S, "ceiling 3145728 bytes")) << S;
  EXPECT_FALSE(contains(S, "ceiling none")) << S;
}

TEST(Format, ProcessStats) {
  Region R;
  R.Allocate(100000); // something is committed
  spaces::ProcessStats P = spaces::processStats();
  EXPECT_EQ(P.version, unsigned(SPACES_STATS_VERSION));
  EXPECT_GT(P.committed_bytes, 0u);
  std::string S = fmt::format("{}", P);
  EXPECT_TRUE(contains(S, "committed")) << S;
  EXPECT_TRUE(contains(S, fmt::format("reserved {}", P.reserved_bytes))) << S;
}

TEST(Format, LiveReportRowsAndLargestBlocks) {
  Region R("report");
  std::vector<void *> Small, Medium;
  for (int I = 0; I < 10; I++)
    Small.push_back(R.Allocate(48)); // 48 is a size class: usable size 48
  for (int I = 0; I < 3; I++)
    Medium.push_back(R.Allocate(1024));
  void *Big = R.Allocate(100000);
  size_t BigSize = spaces_usable_size(Big);
  ASSERT_GE(BigSize, 100000u);
  R.Deallocate(Small[0]); // freed blocks are not reported
  R.Deallocate(Medium[2]);

  LiveReport Rep(R, 3);
  EXPECT_STREQ(Rep.Name, "report");
  EXPECT_EQ(Rep.TotalCount, 9u + 2u + 1u);
  EXPECT_EQ(Rep.TotalBytes, 9 * 48 + 2 * 1024 + BigSize);
  ASSERT_EQ(Rep.Rows.size(), 3u);
  EXPECT_EQ(Rep.Rows[0].BlockSize, 48u);
  EXPECT_EQ(Rep.Rows[0].Count, 9u);
  EXPECT_EQ(Rep.Rows[0].Bytes, 9u * 48);
  EXPECT_EQ(Rep.Rows[1].BlockSize, 1024u);
  EXPECT_EQ(Rep.Rows[1].Count, 2u);
  EXPECT_EQ(Rep.Rows[1].Bytes, 2048u);
  EXPECT_EQ(Rep.Rows[2].BlockSize, BigSize);
  EXPECT_EQ(Rep.Rows[2].Count, 1u);
  EXPECT_EQ(Rep.Rows[2].Bytes, BigSize);
  ASSERT_EQ(Rep.Top.size(), 3u) << "the three largest were asked for";
  EXPECT_EQ(Rep.Top[0].Address, Big);
  EXPECT_EQ(Rep.Top[0].Size, BigSize);
  EXPECT_EQ(Rep.Top[1].Size, 1024u);
  EXPECT_EQ(Rep.Top[2].Size, 1024u);
  EXPECT_EQ(Rep.Stats.live_blocks, 12u);

  std::string S = fmt::format("{}", Rep);
  EXPECT_TRUE(contains(S, "region 'report': 12 live blocks")) << S;
  EXPECT_TRUE(contains(S, fmt::format("{:>10} {:>10} {:>12}\n", 48, 9, 432))) << S;
  EXPECT_TRUE(contains(S, fmt::format("{:>10} {:>10} {:>12}\n", 1024, 2, 2048))) << S;
  EXPECT_TRUE(contains(S, fmt::format("{:>10} {:>10} {:>12}\n", BigSize, 1, BigSize))) << S;
  // Rows ascend by block size.
  EXPECT_LT(S.find(fmt::format("{:>10} {:>10}", 48, 9)), S.find(fmt::format("{:>10} {:>10}", 1024, 2))) << S;
  EXPECT_TRUE(contains(S, fmt::format("largest blocks: {}@{} 1024@", BigSize, Big))) << S;
}

TEST(Format, LiveReportKeepsTheLargestAcrossManyBlocks) {
  // More blocks than the report's internal trimming threshold: the largest must survive it.
  Region R;
  for (int I = 0; I < 2000; I++)
    R.Allocate(16 + (I * 37) % 4000);
  void *A = R.Allocate(50000);
  void *B = R.Allocate(300000);
  for (int I = 0; I < 2000; I++)
    R.Allocate(16 + (I * 53) % 4000);
  LiveReport Rep(R, 2);
  ASSERT_EQ(Rep.Top.size(), 2u);
  EXPECT_EQ(Rep.Top[0].Address, B);
  EXPECT_EQ(Rep.Top[1].Address, A);
  EXPECT_EQ(Rep.TotalCount, 4002u);
  size_t RowCount = 0;
  for (auto &Row : Rep.Rows) {
    RowCount += Row.Count;
    EXPECT_EQ(Row.Bytes, Row.Count * Row.BlockSize);
  }
  EXPECT_EQ(RowCount, 4002u);
}

TEST(Format, LiveReportOfAnEmptyRegion) {
  Region R("empty");
  LiveReport Rep(R);
  EXPECT_EQ(Rep.TotalCount, 0u);
  EXPECT_TRUE(Rep.Rows.empty());
  EXPECT_TRUE(Rep.Top.empty());
  std::string S = fmt::format("{}", Rep);
  EXPECT_TRUE(contains(S, "region 'empty': 0 live blocks, 0 bytes")) << S;
  EXPECT_FALSE(contains(S, "largest")) << S;
}

TEST(Format, LiveReportOfAnUntrackedRegionSaysItCannotList) {
  Region R(Region::Untracked, "bump");
  for (int I = 0; I < 100; I++)
    R.Allocate(40, 8);
  LiveReport Rep(R);
  EXPECT_FALSE(Rep.Walked);
  EXPECT_TRUE(Rep.Rows.empty());
  std::string S = fmt::format("{}", Rep);
  EXPECT_TRUE(contains(S, "region 'bump' (untracked: its blocks cannot be listed)")) << S;
  EXPECT_TRUE(contains(S, "4800 bytes")) << S;  // (the carved bytes: 100 x 48)
}

// printStats: llvm::BumpPtrAllocator::PrintStats for a region, to any FILE.
TEST(Format, PrintStatsWritesTheReport) {
  spaces::Region R("printed");
  for (int I = 0; I < 10; I++)
    R.Allocate(100);
  std::FILE *F = std::tmpfile();
  ASSERT_NE(F, nullptr);
  spaces::printStats(R, F, 2);
  std::rewind(F);
  char Buf[4096] = {};
  size_t N = std::fread(Buf, 1, sizeof Buf - 1, F);
  std::fclose(F);
  std::string Out(Buf, N);
  EXPECT_NE(Out.find("region 'printed': 10 live blocks"), std::string::npos) << Out;
  EXPECT_NE(Out.find("largest blocks:"), std::string::npos) << Out;
}
