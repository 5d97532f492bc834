//===- spaces/Format.h - fmt formatters for Spaces statistics ------*- C++ -*-===//
//
// Needs fmt (Debian libfmt-dev; link fmt::fmt). Provides:
//   fmt::format("{}", Region.stats())       one line: live blocks/bytes, footprint, ceiling
//   fmt::format("{}", spaces::LiveReport(R)) a live-allocation report built on the walk:
//                                           count and bytes by block size, and the largest
//                                           blocks
//   fmt::format("{}", spaces::processStats()) the process-wide spaces_stats
// Building a LiveReport walks the region (no thread may allocate in it meanwhile); it allocates
// its own tables with the default heap, never in the region it reports on.
//
//===----------------------------------------------------------------------===//
#ifndef SPACES_FORMAT_H
#define SPACES_FORMAT_H

#include "spaces/Region.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <map>
#include <vector>

namespace spaces {

/// Process-wide statistics (spaces_stats), as a value.
struct ProcessStats : public ::spaces_stats {
  ProcessStats() {
    std::memset(static_cast<struct ::spaces_stats *>(this), 0, sizeof(struct ::spaces_stats));
    size = sizeof(struct ::spaces_stats);
  }
};
inline ProcessStats processStats() {
  ProcessStats S;
  ::spaces_stats(static_cast<struct ::spaces_stats *>(&S));
  return S;
}

/// What is live in a region: per usable block size, the count and bytes; and the largest blocks.
class LiveReport {
public:
  struct SizeRow {
    size_t BlockSize, Count, Bytes;
  };
  struct Block {
    const void *Address;
    size_t Size;
  };

  explicit LiveReport(Region &R, size_t Largest = 5) : Name(R.name()), Stats(R.stats()) {
    std::map<size_t, SizeRow> BySize;
    Walked = R.forEachLive([&](void *P, size_t Size) {
      SizeRow &Row = BySize[Size];
      Row.BlockSize = Size;
      Row.Count++;
      Row.Bytes += Size;
      TotalCount++;
      TotalBytes += Size;
      Top.push_back({P, Size});
      if (Top.size() > 4 * Largest + 64) trimTop(Largest);
    });
    trimTop(Largest);
    for (auto &KV : BySize)
      Rows.push_back(KV.second);
  }

  const char *Name;
  RegionStats Stats;
  std::vector<SizeRow> Rows;  ///< ascending block size
  std::vector<Block> Top;     ///< largest first
  size_t TotalCount = 0, TotalBytes = 0;
  bool Walked = false;  ///< false: an Untracked region, whose blocks cannot be listed

private:
  void trimTop(size_t N) {
    std::sort(Top.begin(), Top.end(), [](const Block &A, const Block &B) { return A.Size > B.Size; });
    if (Top.size() > N)
      Top.resize(N);
  }
};

} // namespace spaces

template <> struct fmt::formatter<spaces::RegionStats> {
  constexpr auto parse(format_parse_context &Ctx) { return Ctx.begin(); }
  template <typename FormatContext> auto format(const spaces::RegionStats &S, FormatContext &Ctx) const {
    return fmt::format_to(Ctx.out(),
                          "live {} blocks / {} bytes, footprint {} bytes (peak {}), ceiling {}, "
                          "ceiling hits {}, {} slabs, {} large blocks",
                          S.live_blocks, S.live_bytes, S.footprint, S.peak_footprint,
                          S.ceiling ? fmt::format("{} bytes", S.ceiling) : std::string("none"), S.ceiling_hits,
                          S.slabs, S.large_blocks);
  }
};

template <> struct fmt::formatter<spaces::ProcessStats> {
  constexpr auto parse(format_parse_context &Ctx) { return Ctx.begin(); }
  template <typename FormatContext> auto format(const spaces::ProcessStats &S, FormatContext &Ctx) const {
    return fmt::format_to(Ctx.out(),
                          "committed {} bytes (peak {}), reserved {}, {} slabs in use, {} cached, "
                          "{} large blocks, {} heaps ({} abandoned), {} threads started",
                          S.committed_bytes, S.peak_committed_bytes, S.reserved_bytes, S.slabs_in_use,
                          S.slabs_cached, S.large_blocks, S.heaps, S.heaps_abandoned, S.threads_started);
  }
};

template <> struct fmt::formatter<spaces::LiveReport> {
  constexpr auto parse(format_parse_context &Ctx) { return Ctx.begin(); }
  template <typename FormatContext> auto format(const spaces::LiveReport &R, FormatContext &Ctx) const {
    if (!R.Walked)  // (the statistics still hold: bytes carved, footprint, ceiling)
      return fmt::format_to(Ctx.out(), "region '{}' (untracked: its blocks cannot be listed): {}\n", R.Name,
                            R.Stats);
    auto Out = fmt::format_to(Ctx.out(), "region '{}': {} live blocks, {} bytes; {}\n", R.Name, R.TotalCount,
                              R.TotalBytes, R.Stats);
    Out = fmt::format_to(Out, "  {:>10} {:>10} {:>12}\n", "block size", "count", "bytes");
    for (const auto &Row : R.Rows)
      Out = fmt::format_to(Out, "  {:>10} {:>10} {:>12}\n", Row.BlockSize, Row.Count, Row.Bytes);
    if (!R.Top.empty()) {
      Out = fmt::format_to(Out, "  largest blocks:");
      for (const auto &B : R.Top)
        Out = fmt::format_to(Out, " {}@{}", B.Size, B.Address);
      Out = fmt::format_to(Out, "\n");
    }
    return Out;
  }
};

namespace spaces {
/// llvm::BumpPtrAllocator::PrintStats for a Region: its statistics and live-allocation report
/// (LiveReport, \p Largest biggest blocks) on \p Out (stderr by default). Walks the region: no
/// thread may allocate in it meanwhile. Allocates (through fmt) outside the region.
inline void printStats(Region &R, std::FILE *Out = stderr, size_t Largest = 5) {
  fmt::print(Out, "{}", LiveReport(R, Largest));
}
} // namespace spaces

#endif // SPACES_FORMAT_H
