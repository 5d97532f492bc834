//===- ScopedRegionTest.cpp - spaces::ScopedRegion ------------------------===//
//
// A ScopedRegion dies with its scope; with CaptureHeap it routes the thread's spaces_malloc
// family to its chunk meanwhile. In this binary plain malloc/new are glibc's (the non-overriding
// library), so capture is observed through spaces_malloc; tests/sdk/scoped_capture_new.cpp
// checks plain new/malloc in an override build.
//
//===----------------------------------------------------------------------===//
#include "spaces/ScopedRegion.h"

#include "spaces/Allocator.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

using spaces::ScopedRegion;

static_assert(!std::is_copy_constructible<ScopedRegion>::value, "ScopedRegion is bound to its scope");
static_assert(!std::is_copy_assignable<ScopedRegion>::value, "ScopedRegion is bound to its scope");
static_assert(!std::is_move_constructible<ScopedRegion>::value, "ScopedRegion is bound to its scope");
static_assert(!std::is_move_assignable<ScopedRegion>::value, "ScopedRegion is bound to its scope");
static_assert(!std::is_convertible<ScopedRegion *, spaces::Region *>::value,
              "a ScopedRegion is not a Region to the outside (region() gives access)");

namespace {
/// -1 once the chunk is destroyed (as long as no chunk was created since: handles are reused).
int rawStats(SpacesChunk C) {
  struct spaces_chunk_stats St;
  std::memset(&St, 0, sizeof St);
  St.size = sizeof St;
  return spaces_chunk_stats(C, &St);
}
} // namespace

TEST(ScopedRegion, DestroyedAtScopeExit) {
  SpacesChunk H;
  void *Small, *Big;
  {
    ScopedRegion S;
    H = S.handle();
    EXPECT_STREQ(S.name(), "scoped-region");
    EXPECT_FALSE(S.capturesHeap());
    Small = S.Allocate(100);
    Big = S.Allocate(300000);
    EXPECT_EQ(spaces_chunk_of(Small), H);
    EXPECT_EQ(spaces_chunk_of(Big), H);
    EXPECT_TRUE(S.owns(Small));
    EXPECT_EQ(rawStats(H), 0);
    EXPECT_EQ(S.stats().live_blocks, 2u);
  }
  // No chunk may be created between the scope's end and these checks: a destroyed chunk's
  // handle is recycled by the next spaces_chunk_create.
  EXPECT_EQ(rawStats(H), -1) << "the chunk must be destroyed at scope exit";
  EXPECT_EQ(spaces_chunk_of(Small), nullptr);
  EXPECT_EQ(spaces_chunk_of(Big), nullptr);
}

TEST(ScopedRegion, OffersTheRegionInterface) {
  ScopedRegion S(ScopedRegion::NoCapture, "pass");
  EXPECT_STREQ(S.name(), "pass");
  spaces::Region &R = S.region();
  EXPECT_EQ(R.handle(), S.handle());
  int *I = S.create<int>(42);
  EXPECT_EQ(*I, 42);
  EXPECT_TRUE(R.owns(I));
  std::vector<int, spaces::Allocator<int>> V{spaces::Allocator<int>(S.region())};
  V.assign(1000, 7);
  EXPECT_EQ(spaces_chunk_of(V.data()), S.handle());
  EXPECT_TRUE(S.setCeiling(1 << 20));
  EXPECT_EQ(S.stats().ceiling, size_t(1) << 20);
  EXPECT_EQ(S.tryAllocate(size_t(2) << 20), nullptr);
  int Live = 0;
  S.forEachLive([&](void *, size_t) { Live++; });
  EXPECT_EQ(Live, 2);
  V = std::vector<int, spaces::Allocator<int>>(spaces::Allocator<int>(S.region()));
  S.Deallocate(I);
  EXPECT_EQ(S.stats().live_blocks, 0u);
  S.Allocate(10);
  S.reset();
  EXPECT_EQ(S.stats().live_blocks, 0u);
}

TEST(ScopedRegion, NoCaptureDoesNotRoute) {
  ScopedRegion S; // NoCapture is the default
  void *P = spaces_malloc(100);
  EXPECT_EQ(spaces_chunk_of(P), nullptr);
  EXPECT_EQ(S.stats().live_blocks, 0u);
  spaces_free(P);
}

TEST(ScopedRegion, CaptureHeapRoutesSpacesMallocAndRestores) {
  void *Before = spaces_malloc(64); // a block of the thread's own heap, freed inside the scope
  SpacesChunk H;
  {
    ScopedRegion S(ScopedRegion::CaptureHeap, "captured");
    H = S.handle();
    EXPECT_TRUE(S.capturesHeap());
    void *Small = spaces_malloc(100);
    void *Zero = spaces_calloc(10, 10);
    void *Large = spaces_malloc(50000);
    void *Aligned = spaces_aligned_alloc(256, 300);
    void *Grown = spaces_realloc(spaces_malloc(10), 5000);
    for (void *P : {Small, Zero, Large, Aligned, Grown}) {
      ASSERT_NE(P, nullptr);
      EXPECT_EQ(spaces_chunk_of(P), H);
    }
    EXPECT_EQ(S.stats().live_blocks, 5u);
    spaces_free(Before); // the thread's own block still frees normally
    spaces_free(Small);
    EXPECT_EQ(S.stats().live_blocks, 4u);
    // Another thread is not captured.
    std::thread([&] {
      void *P = spaces_malloc(100);
      EXPECT_EQ(spaces_chunk_of(P), nullptr);
      spaces_free(P);
    }).join();
    // Blocks still live at the end (Zero, Large, Aligned, Grown) die with the scope.
  }
  EXPECT_EQ(rawStats(H), -1);
  void *After = spaces_malloc(100);
  EXPECT_EQ(spaces_chunk_of(After), nullptr) << "routing must be restored at scope exit";
  void *AfterLarge = spaces_malloc(50000);
  EXPECT_EQ(spaces_chunk_of(AfterLarge), nullptr);
  spaces_free(After);
  spaces_free(AfterLarge);
}

TEST(ScopedRegion, NestedCapturingScopesRestoreInOrder) {
  SpacesChunk Outer, Inner;
  {
    ScopedRegion A(ScopedRegion::CaptureHeap, "outer");
    Outer = A.handle();
    void *P1 = spaces_malloc(32);
    EXPECT_EQ(spaces_chunk_of(P1), Outer);
    {
      ScopedRegion B(ScopedRegion::CaptureHeap, "inner");
      Inner = B.handle();
      void *P2 = spaces_malloc(32);
      EXPECT_EQ(spaces_chunk_of(P2), Inner);
      {
        ScopedRegion C; // not capturing: routing stays with the inner scope
        void *P3 = spaces_malloc(32);
        EXPECT_EQ(spaces_chunk_of(P3), Inner);
        EXPECT_EQ(C.stats().live_blocks, 0u);
      }
      void *P4 = spaces_malloc(32);
      EXPECT_EQ(spaces_chunk_of(P4), Inner);
    }
    void *P5 = spaces_malloc(32);
    EXPECT_EQ(spaces_chunk_of(P5), Outer) << "the outer scope's routing must come back";
    EXPECT_EQ(A.stats().live_blocks, 2u);
    spaces_free(P1);
    spaces_free(P5);
    EXPECT_EQ(A.stats().live_blocks, 0u);
  }
  void *P6 = spaces_malloc(32);
  EXPECT_EQ(spaces_chunk_of(P6), nullptr);
  spaces_free(P6);
  // The same thread can capture again afterwards.
  {
    ScopedRegion D(ScopedRegion::CaptureHeap);
    void *P7 = spaces_malloc(32);
    EXPECT_EQ(spaces_chunk_of(P7), D.handle());
  }
  void *P8 = spaces_malloc(32);
  EXPECT_EQ(spaces_chunk_of(P8), nullptr);
  spaces_free(P8);
}

TEST(ScopedRegion, ResetInsideACapturingScopeKeepsCapturing) {
  ScopedRegion S(ScopedRegion::CaptureHeap);
  size_t InRegion = 0;
  for (int I = 0; I < 1000; I++)
    InRegion += spaces_chunk_of(spaces_malloc(200)) == S.handle(); // left for reset() to free
  EXPECT_EQ(InRegion, 1000u);
  EXPECT_EQ(S.stats().live_blocks, 1000u);
  S.reset();
  EXPECT_EQ(S.stats().live_blocks, 0u);
  void *P = spaces_malloc(200);
  EXPECT_EQ(spaces_chunk_of(P), S.handle());
  spaces_free(P);
  EXPECT_EQ(S.stats().live_blocks, 0u);
}

// Under capture, a spaces_malloc that leaves the fast path takes the region's own allocation
// path (chunk_route_slow -> chunk_alloc), so a refusal at the ceiling is handled exactly as
// spaces_chunk_alloc's: one ceiling hit, and the pressure handler gets its one chance
// (docs/regions.md, "The ceiling under capture"). It once bypassed both.
TEST(ScopedRegion, CapturedMallocAtTheCeilingCountsAHitAndCallsThePressureHandler) {
  int Calls = 0;
  size_t Hits = 0, Got = 0;
  bool Refused = false;
  size_t Footprint = 0;
  {
    ScopedRegion S(ScopedRegion::CaptureHeap, "capped");
    ASSERT_TRUE(S.setCeiling(256 * 1024));
    S.region().setPressureHandler(
        [](SpacesChunk, size_t, void *Arg) -> int {
          ++*static_cast<int *>(Arg);
          return 0;
        },
        &Calls);
    for (; Got < 100000; Got++)
      if (spaces_malloc(1000) == nullptr) {
        Refused = true;
        break;
      }
    Hits = S.stats().ceiling_hits;
    Footprint = S.stats().footprint;
    S.region().setPressureHandler(nullptr, nullptr);
  }
  EXPECT_TRUE(Refused) << "the ceiling holds under capture";
  EXPECT_LE(Footprint, size_t(256) * 1024);
  EXPECT_EQ(Hits, 1u) << "a captured malloc refused at the ceiling is not counted";
  EXPECT_EQ(Calls, 1) << "the pressure handler is not called for a captured malloc";
}

// region() hands out a Region& for allocators and containers, but the region is pinned to the
// scope: moving it out is a programming error, caught at run time.
TEST(ScopedRegionDeathTest, MovingItsRegionOutIsAProgrammingError) {
  EXPECT_DEATH(
      {
        spaces::ScopedRegion S;
        spaces::Region Escaped(std::move(S.region()));
        (void)Escaped;
      },
      "cannot be moved out of its scope");
}

TEST(ScopedRegion, ForwardsCeilingAndPressureHandler) {
  spaces::ScopedRegion S;
  EXPECT_TRUE(S.setCeiling(1 << 20));
  EXPECT_EQ(S.ceiling(), size_t(1) << 20);
  static int Calls;
  Calls = 0;
  S.setPressureHandler([](SpacesChunk, size_t, void *) { return Calls++, 0; }, nullptr);
  EXPECT_EQ(S.tryAllocate(size_t(4) << 20), nullptr);
  EXPECT_EQ(Calls, 1);
}
