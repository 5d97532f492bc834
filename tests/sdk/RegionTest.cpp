//===- RegionTest.cpp - spaces::Region ------------------------------------===//
//
// Region as a value (move-only ownership of one chunk), as an allocator (alignment, ceiling,
// frees from other threads, the walk, reset) and as an LLVM allocator (StringMap over a
// Region&, placement new). Plain malloc/new in this binary are glibc's, so every Spaces block
// seen here was asked for explicitly.
//
//===----------------------------------------------------------------------===//
#include "spaces/Region.h"

#include "llvm/ADT/StringMap.h"

#include <gtest/gtest.h>

#include "SdkTestSupport.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using spaces::Region;

namespace {

bool isAligned(const void *P, size_t Alignment) {
  return reinterpret_cast<uintptr_t>(P) % Alignment == 0;
}

/// The chunk's stats through the C API; -1 once the chunk is destroyed.
int rawStats(SpacesChunk C, struct spaces_chunk_stats &Out) {
  std::memset(&Out, 0, sizeof Out);
  Out.size = sizeof Out;
  return spaces_chunk_stats(C, &Out);
}

std::map<void *, size_t> liveSet(Region &R) {
  std::map<void *, size_t> Seen;
  R.forEachLive([&](void *P, size_t Size) {
    EXPECT_TRUE(Seen.emplace(P, Size).second) << "block " << P << " visited twice";
  });
  return Seen;
}

} // namespace

//===----------------------------------------------------------------------===//
// Ownership
//===----------------------------------------------------------------------===//

static_assert(!std::is_copy_constructible<Region>::value, "Region is move-only");
static_assert(!std::is_copy_assignable<Region>::value, "Region is move-only");
static_assert(std::is_nothrow_move_constructible<Region>::value, "moving a Region cannot fail");
static_assert(std::is_nothrow_move_assignable<Region>::value, "moving a Region cannot fail");

TEST(Region, DefaultsToAnExclusiveRegionNamedRegion) {
  Region R;
  EXPECT_STREQ(R.name(), "region");
  EXPECT_NE(R.handle(), nullptr);
  EXPECT_EQ(R.stats().flags, unsigned(SPACES_CHUNK_EXCLUSIVE));
  Region Named("parser");
  EXPECT_STREQ(Named.name(), "parser");
  EXPECT_EQ(Named.stats().flags, unsigned(SPACES_CHUNK_EXCLUSIVE));
  Region S(Region::Concurrent, "cache");
  EXPECT_STREQ(S.name(), "cache");
  EXPECT_EQ(S.stats().flags, 0u);
  EXPECT_NE(S.handle(), R.handle());
}

TEST(Region, MoveConstructionTransfersTheChunk) {
  auto A = std::make_unique<Region>(Region::Exclusive, "moved");
  SpacesChunk H = A->handle();
  void *P = A->Allocate(100);
  Region B(std::move(*A));
  EXPECT_EQ(A->handle(), nullptr) << "the moved-from handle must be null";
  EXPECT_EQ(B.handle(), H);
  EXPECT_STREQ(B.name(), "moved");
  A.reset(); // destroying the moved-from region must not touch the chunk
  struct spaces_chunk_stats St;
  ASSERT_EQ(rawStats(H, St), 0) << "the chunk must survive its moved-from handle";
  EXPECT_EQ(St.live_blocks, 1u);
  EXPECT_TRUE(B.owns(P));
  EXPECT_EQ(spaces_chunk_of(P), H);
  void *Q = B.Allocate(200);
  EXPECT_TRUE(B.owns(Q));
  EXPECT_EQ(B.stats().live_blocks, 2u);
}

TEST(Region, MoveAssignmentDestroysTheTargetsChunk) {
  Region A("a");
  Region B("b");
  SpacesChunk HA = A.handle();
  SpacesChunk HB = B.handle();
  void *PA = A.Allocate(64);
  void *PB = B.Allocate(64);
  B = std::move(A);
  EXPECT_EQ(A.handle(), nullptr);
  EXPECT_EQ(B.handle(), HA);
  EXPECT_STREQ(B.name(), "a");
  struct spaces_chunk_stats St;
  EXPECT_EQ(rawStats(HB, St), -1) << "B's old chunk must have been destroyed";
  EXPECT_EQ(spaces_chunk_of(PB), nullptr) << "its blocks went with it";
  EXPECT_EQ(spaces_chunk_of(PA), HA);
  EXPECT_TRUE(B.owns(PA));
  // Self-move leaves the region intact.
  Region &Alias = B;
  B = std::move(Alias);
  EXPECT_EQ(B.handle(), HA);
  EXPECT_EQ(B.stats().live_blocks, 1u);
}

TEST(Region, MovedFromRegionIsHarmless) {
  Region A;
  Region B(std::move(A));
  // Allocating from it is a programming error: an assert in debug builds (the death test below),
  // a clean failure in release builds; everything else on a null handle is a no-op.
#ifdef NDEBUG
  EXPECT_EQ(A.tryAllocate(16), nullptr);
  EXPECT_BAD_ALLOC(A.Allocate(16));
#endif
  EXPECT_FALSE(A.setCeiling(1 << 20));
  EXPECT_EQ(A.ceiling(), 0u);
  EXPECT_EQ(A.stats().live_blocks, 0u);
  A.reset();
  int Visits = 0;
  A.forEachLive([&](void *, size_t) { Visits++; });
  EXPECT_EQ(Visits, 0);
  // A moved-from region can be given a new chunk.
  A = Region("again");
  EXPECT_NE(A.handle(), nullptr);
  EXPECT_TRUE(A.owns(A.Allocate(8)));
}

#ifndef NDEBUG
TEST(RegionDeathTest, AllocatingFromAMovedFromRegionAsserts) {
  Region A;
  Region B(std::move(A));
  EXPECT_DEATH(A.tryAllocate(16), "moved-from");
}
#endif

// Allocate, create<T> and new (R) T on an Exclusive region are carved inline from the region's
// allocation window (spaces.h): the blocks are ordinary blocks (walked with their sizes, freed,
// counted), the window moves with the region, and a moved-from region never uses it.
TEST(Region, InlineAllocationsAreOrdinaryBlocks) {
  Region A;
  spaces_window *W = A.window();
  ASSERT_NE(W, nullptr);
  std::map<void *, size_t> Model;
  for (size_t I = 0; I < 50000; I++) { // (many pages: refills through the library)
    size_t N = I % 200 + 1;
    void *P = A.Allocate(N, 8);
    Model[P] = (N + 15) & ~size_t(15);
  }
  struct Node {
    uint64_t A, B;
    Node(uint64_t X) : A(X), B(~X) {}
  };
  Node *Last = nullptr;
  for (int I = 0; I < 1000; I++)
    Model[Last = A.create<Node>(uint64_t(I))] = 16;
  EXPECT_EQ(Last->B, ~uint64_t(999));
  EXPECT_EQ(A.stats().live_blocks, Model.size());
  Region B(std::move(A));
  EXPECT_EQ(B.window(), W) << "the window moves with the chunk";
  void *More = B.Allocate(48);
  Model[More] = 48;
  std::map<void *, size_t> Seen;
  B.forEachLive([&](void *P, size_t N) { Seen[P] = N; });
  EXPECT_EQ(Seen, Model);
#ifdef NDEBUG
  EXPECT_EQ(A.tryAllocate(16), nullptr) << "a moved-from region does not allocate in the window it gave away";
#endif
  B.Deallocate(More);
  EXPECT_EQ(B.stats().live_blocks, Model.size() - 1);
}

// Region::Untracked: the same inline path without the marks. Blocks are usable and distinct,
// Deallocate is a no-op, forEachLive refuses, reset and the ceiling work, an LLVM container runs.
TEST(Region, UntrackedRegionsAreBumpAllocatorsWithCeilings) {
  Region A(Region::Untracked, "untracked");
  EXPECT_EQ(A.stats().flags, unsigned(SPACES_CHUNK_EXCLUSIVE | SPACES_CHUNK_UNTRACKED));
  struct Node {
    uint64_t A, B;
    Node(uint64_t X) : A(X), B(~X) {}
  };
  std::vector<Node *> Nodes;
  for (int I = 0; I < 100000; I++)
    Nodes.push_back(A.create<Node>(uint64_t(I)));
  for (int I = 0; I < 100000; I++)
    ASSERT_EQ(Nodes[I]->B, ~uint64_t(I));
  auto St = A.stats();
  EXPECT_EQ(St.live_blocks, 0u) << "its bump blocks are not counted";
  EXPECT_GE(St.live_bytes, 100000u * 16);
  size_t Footprint = St.footprint;
  for (Node *N : Nodes)
    A.Deallocate(N, sizeof(Node));
  EXPECT_EQ(A.stats().footprint, Footprint) << "Deallocate gives nothing back";
  EXPECT_FALSE(A.forEachLive([](void *, size_t) {})) << "an untracked region cannot be walked";
  {
    llvm::StringMap<int, Region &> Map(A);
    for (int I = 0; I < 5000; I++)
      Map.try_emplace("key-" + std::to_string(I), I);
    for (int I = 0; I < 5000; I += 2)
      Map.erase("key-" + std::to_string(I));
    EXPECT_EQ(Map.lookup("key-4999"), 4999);
  }
  A.reset();
  EXPECT_EQ(A.stats().live_bytes, 0u);
  A.setCeiling(A.stats().footprint + 2 * SPACES_PAGE_SIZE);
  size_t N = 0;
  while (N < 100000 && A.tryAllocate(64) != nullptr)
    N++;
  EXPECT_GT(N, 0u);
  EXPECT_LT(N, 100000u) << "the ceiling stops it";
}

// A moved-from Region has a null handle, and spaces_chunk_of() is also null for every pointer
// that is not in a chunk, so owns() answers "yes" for them. (Bug: Region::owns should return
// false when Chunk is null.)
TEST(Region, MovedFromRegionOwnsNothing) {
  Region A;
  Region B(std::move(A));
  void *Heap = spaces_malloc(32);
  int Stack = 0;
  EXPECT_FALSE(A.owns(Heap)) << "a moved-from region owns no block of the default heap";
  EXPECT_FALSE(A.owns(&Stack)) << "a moved-from region owns no stack address";
  EXPECT_FALSE(A.owns(nullptr));
  EXPECT_FALSE(B.owns(Heap));
  spaces_free(Heap);
}

//===----------------------------------------------------------------------===//
// Allocation
//===----------------------------------------------------------------------===//

TEST(Region, AllocateHonoursEveryAlignmentFrom1To4096) {
  Region R;
  std::string Bad;
  for (size_t Align = 1; Align <= 4096; Align *= 2)
    for (size_t Size : {size_t(16), size_t(24), size_t(100), size_t(1000), size_t(4096), size_t(5000),
                        size_t(8192), size_t(20000), size_t(300000)}) {
      // (sizes below the alignment are AllocateAlignsBlocksSmallerThanTheAlignment's)
      for (int I = 0; I < 4; I++) {
        void *P = R.Allocate(Size, Align);
        ASSERT_NE(P, nullptr);
        EXPECT_TRUE(R.owns(P));
        EXPECT_GE(spaces_usable_size(P), Size);
        std::memset(P, 0xA5, Size);
        if (!isAligned(P, Align))
          Bad += " size " + std::to_string(Size) + " align " + std::to_string(Align) + ";";
      }
    }
  EXPECT_TRUE(Bad.empty()) << "misaligned:" << Bad;
}

// Allocate(Size, 16) with Size <= 8 goes to spaces_chunk_alloc (Alignment <= 16), which serves
// it from the 8-byte class: every other block is only 8-aligned. The default alignment is
// alignof(max_align_t) == 16, so plain Allocate(8) is affected too.
TEST(Region, AllocateAlignsBlocksSmallerThanTheAlignment) {
  Region R;
  std::string Bad;
  for (size_t Align = 1; Align <= 4096; Align *= 2)
    for (size_t Size = 0; Size < Align && Size <= 64; Size = Size ? Size * 2 : 1)
      for (int I = 0; I < 4; I++) {
        void *P = R.Allocate(Size, Align);
        ASSERT_NE(P, nullptr);
        if (!isAligned(P, Align))
          Bad += " size " + std::to_string(Size) + " align " + std::to_string(Align) + ";";
      }
  EXPECT_TRUE(Bad.empty()) << "misaligned:" << Bad;
}

// An alignment that is not a power of two: a programming error, asserted in debug builds, a clean
// failure (EINVAL, std::bad_alloc) in release builds.
#ifdef NDEBUG
TEST(Region, RejectsAnAlignmentThatIsNotAPowerOfTwo) {
  Region R;
  errno = 0;
  EXPECT_EQ(R.tryAllocate(64, 48), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_BAD_ALLOC(R.Allocate(64, 48));
}
#else
TEST(RegionDeathTest, AnAlignmentThatIsNotAPowerOfTwoAsserts) {
  Region R;
  EXPECT_DEATH(R.tryAllocate(64, 48), "power of two");
}
#endif

TEST(Region, DeallocateFromAnotherThread) {
  Region R; // exclusive: one thread allocates, any thread frees
  std::vector<void *> Blocks;
  std::mt19937 Rng(7);
  for (int I = 0; I < 5000; I++) {
    size_t Size = I % 100 == 0 ? 20000 + Rng() % 200000 : 1 + Rng() % 2000;
    Blocks.push_back(R.Allocate(Size));
  }
  ASSERT_EQ(R.stats().live_blocks, Blocks.size());
  std::thread([&] {
    for (void *P : Blocks)
      R.Deallocate(P, 0, 0);
  }).join();
  spaces::RegionStats St = R.stats();
  EXPECT_EQ(St.live_blocks, 0u);
  EXPECT_EQ(St.live_bytes, 0u);
  EXPECT_EQ(St.large_blocks, 0u);
  EXPECT_TRUE(liveSet(R).empty());
  // The allocating thread goes on using the region (and its freed slots).
  std::set<void *> Again;
  for (int I = 0; I < 5000; I++)
    Again.insert(R.Allocate(1 + Rng() % 2000));
  EXPECT_EQ(Again.size(), 5000u);
  EXPECT_EQ(R.stats().live_blocks, 5000u);
}

TEST(Region, SharedRegionAllocatesFromManyThreads) {
  Region R(Region::Concurrent, "shared");
  constexpr int Threads = 4, PerThread = 10000;
  std::vector<std::vector<void *>> Got(Threads);
  std::vector<std::thread> Ts;
  for (int T = 0; T < Threads; T++)
    Ts.emplace_back([&, T] {
      for (int I = 0; I < PerThread; I++) {
        void *P = R.Allocate(8 + (I * 7 + T) % 500);
        std::memset(P, T, 8);
        Got[T].push_back(P);
      }
    });
  for (auto &Th : Ts)
    Th.join();
  std::set<void *> All;
  for (auto &V : Got)
    for (void *P : V) {
      EXPECT_TRUE(R.owns(P));
      All.insert(P);
    }
  EXPECT_EQ(All.size(), size_t(Threads * PerThread)) << "two threads were given the same block";
  EXPECT_EQ(R.stats().live_blocks, size_t(Threads * PerThread));
}

namespace {
struct Point {
  int X, Y;
  std::string Label;
  Point(int X, int Y, std::string L) : X(X), Y(Y), Label(std::move(L)) {}
};
struct alignas(64) Line {
  double A[3];
};
#if SPACES_TEST_EXCEPTIONS
struct Throws {
  explicit Throws(int) { throw std::runtime_error("constructor"); }
  char Pad[48];
};
#endif
} // namespace

TEST(Region, CreateConstructsInTheRegion) {
  Region R;
  Point *P = R.create<Point>(3, 4, "origin-ish label long enough to leave the SSO buffer");
  EXPECT_EQ(P->X, 3);
  EXPECT_EQ(P->Y, 4);
  EXPECT_EQ(P->Label, "origin-ish label long enough to leave the SSO buffer");
  EXPECT_TRUE(R.owns(P));
  EXPECT_TRUE(isAligned(P, alignof(Point)));
  for (int I = 0; I < 100; I++) {
    Line *L = R.create<Line>();
    EXPECT_TRUE(isAligned(L, 64));
    EXPECT_TRUE(R.owns(L));
  }
  P->~Point(); // create() does not register destructors
#if SPACES_TEST_EXCEPTIONS
  EXPECT_THROW(R.create<Throws>(1), std::runtime_error);
#endif
}

// create<T>() constructs with placement new on an already allocated block, so when T's
// constructor throws, nothing frees the block: it stays live (counted, walked) until reset or
// destruction. `new (R) T` and TypedPool<T>::create both hand the memory back.
#if SPACES_TEST_EXCEPTIONS
TEST(Region, CreateReturnsTheBlockWhenTheConstructorThrows) {
  Region R;
  EXPECT_THROW(R.create<Throws>(1), std::runtime_error);
  EXPECT_EQ(R.stats().live_blocks, 0u) << "the block of the object that was never built leaked";
}
#endif

TEST(Region, ResetEmptiesTheRegionAndKeepsItUsable) {
  Region R;
  for (int I = 0; I < 100000; I++)
    R.Allocate(48);
  for (int I = 0; I < 10; I++)
    R.Allocate(100000);
  spaces::RegionStats Full = R.stats();
  EXPECT_EQ(Full.live_blocks, 100010u);
  EXPECT_EQ(Full.large_blocks, 10u);
  EXPECT_GT(Full.footprint, size_t(5) << 20);
  SpacesChunk H = R.handle();
  R.reset();
  spaces::RegionStats St = R.stats();
  EXPECT_EQ(R.handle(), H);
  EXPECT_EQ(St.live_blocks, 0u);
  EXPECT_EQ(St.live_bytes, 0u);
  EXPECT_EQ(St.large_blocks, 0u);
  EXPECT_LE(St.footprint, Full.slabs * 65536) << "the slabs used stay (chunk_reset_keep), large blocks go";
  EXPECT_EQ(St.slabs * 65536, St.footprint) << "only kept (empty) slabs are left";
  EXPECT_EQ(St.peak_footprint, Full.peak_footprint) << "the peak is history, reset keeps it";
  EXPECT_TRUE(liveSet(R).empty());
  void *P = R.Allocate(48);
  EXPECT_TRUE(R.owns(P));
  EXPECT_EQ(R.stats().live_blocks, 1u);
  R.Reset(); // the LLVM spelling
  EXPECT_EQ(R.stats().live_blocks, 0u);
}

//===----------------------------------------------------------------------===//
// Ceiling
//===----------------------------------------------------------------------===//

TEST(Region, CeilingMakesTryAllocateReturnNullAndAllocateThrow) {
  Region R;
  const size_t Ceiling = 256 * 1024;
  ASSERT_TRUE(R.setCeiling(Ceiling));
  EXPECT_EQ(R.ceiling(), Ceiling);
  size_t Got = 0;
  errno = 0;
  while (R.tryAllocate(1000) != nullptr && Got < 1000000)
    Got++;
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_GT(Got, 200u) << "a 256 KiB ceiling holds more than 200 blocks of 1000 bytes";
  spaces::RegionStats St = R.stats();
  EXPECT_LE(St.footprint, Ceiling);
  EXPECT_LE(St.peak_footprint, Ceiling);
  EXPECT_EQ(St.ceiling, Ceiling);
  EXPECT_EQ(St.ceiling_hits, 1u);
  EXPECT_EQ(St.live_blocks, Got);
  EXPECT_BAD_ALLOC(R.Allocate(1000));
  EXPECT_BAD_ALLOC(R.Allocate(100000));
  EXPECT_EQ(R.stats().ceiling_hits, 3u);
  EXPECT_EQ(R.stats().live_blocks, Got) << "a refused allocation changes nothing";
  ASSERT_TRUE(R.setCeiling(0));
  EXPECT_EQ(R.ceiling(), 0u);
  EXPECT_NE(R.tryAllocate(100000), nullptr) << "without a ceiling the region grows again";
}

TEST(Region, CeilingBelowTheFootprintOnlyBlocksGrowth) {
  Region R;
  void *Small = R.Allocate(48); // one slab of 48-byte blocks with room to spare
  void *Big = R.Allocate(100000);
  size_t Before = R.stats().footprint;
  ASSERT_GT(Before, size_t(64 * 1024));
  ASSERT_TRUE(R.setCeiling(64 * 1024));
  EXPECT_NE(R.tryAllocate(48), nullptr) << "room in an existing slab is not growth";
  EXPECT_EQ(R.tryAllocate(100000), nullptr);
  EXPECT_NE(R.tryAllocate(3000), nullptr) << "room in the current bump page takes a block that fits";
  EXPECT_EQ(R.tryAllocate(65000), nullptr) << "more than the room: a large block needs growth";
  EXPECT_TRUE(R.owns(Small));
  EXPECT_TRUE(R.owns(Big));
  EXPECT_EQ(R.stats().footprint, Before);
  R.Deallocate(Big);
  EXPECT_LT(R.stats().footprint, Before) << "a large block's footprint is given back at once";
}

TEST(Region, PressureHandlerRunsWithoutTheLockAndGetsOneRetry) {
  Region R(Region::Concurrent, "pressured");
  ASSERT_TRUE(R.setCeiling(512 * 1024));
  struct Ctx {
    Region *R;
    std::vector<void *> Large;
    int Calls = 0;
    size_t Request = 0;
    size_t LiveSeen = 0;
  } C{&R, {}, 0, 0, 0};
  while (void *P = R.tryAllocate(60000))
    C.Large.push_back(P);
  ASSERT_FALSE(C.Large.empty());
  ASSERT_EQ(R.stats().ceiling_hits, 1u) << "the refusal that ended the loop";
  R.setPressureHandler(
      [](SpacesChunk, size_t Request, void *Arg) -> int {
        auto *X = static_cast<Ctx *>(Arg);
        X->Calls++;
        X->Request = Request;
        X->LiveSeen = X->R->stats().live_blocks; // takes the shared region's lock: must be free
        X->R->Deallocate(X->Large.back());
        X->Large.pop_back();
        return 1;
      },
      &C);
  void *P = R.tryAllocate(60000);
  EXPECT_NE(P, nullptr) << "the handler freed a large block; the retry must succeed";
  EXPECT_EQ(C.Calls, 1);
  EXPECT_EQ(C.Request, 60000u);
  EXPECT_EQ(C.LiveSeen, C.Large.size() + 1);
  EXPECT_EQ(R.stats().ceiling_hits, 1u) << "an allocation that succeeded on retry is no hit";

  // A handler that frees nothing but asks for a retry gets exactly one.
  R.setPressureHandler([](SpacesChunk, size_t, void *Arg) -> int { return ++*static_cast<int *>(Arg), 1; },
                       &C.Calls);
  C.Calls = 0;
  EXPECT_EQ(R.tryAllocate(60000), nullptr);
  EXPECT_EQ(C.Calls, 1);
  EXPECT_EQ(R.stats().ceiling_hits, 2u) << "a failed retry counts one hit";
  R.setPressureHandler(nullptr, nullptr);
  EXPECT_BAD_ALLOC(R.Allocate(60000));
  EXPECT_EQ(C.Calls, 1) << "a removed handler is not called";
  EXPECT_EQ(R.stats().ceiling_hits, 3u);
}

// A pressure handler that frees every block of the region must make room for the retry. It
// does not when the emptied slabs are each the current slab of their size class: a current slab
// carries a phantom count and is never released, so the region holds four empty slabs (its
// whole footprint), has no live block, and still refuses a fifth size class. (Sizes above the
// bump slabs' 1 KiB, so that each has a size-class slab of its own.)
TEST(Region, PressureHandlerThatFreesEverythingMakesRoom) {
  Region R;
  std::vector<void *> Blocks;
  for (size_t Size : {size_t(1100), size_t(1600), size_t(2500), size_t(4000)})
    Blocks.push_back(R.Allocate(Size)); // one slab per size class
  ASSERT_EQ(R.stats().slabs, 4u);
  ASSERT_TRUE(R.setCeiling(R.stats().footprint));
  R.setPressureHandler(
      [](SpacesChunk, size_t, void *Arg) -> int {
        auto *V = static_cast<std::vector<void *> *>(Arg);
        for (void *P : *V)
          spaces_free(P);
        V->clear();
        return 1;
      },
      &Blocks);
  void *P = R.tryAllocate(6000);
  EXPECT_EQ(R.stats().live_blocks, P ? 1u : 0u);
  EXPECT_NE(P, nullptr) << "the region has no live block left, yet refuses a 6000-byte block (footprint "
                        << R.stats().footprint << ", ceiling " << R.ceiling() << ")";
  R.setPressureHandler(nullptr, nullptr);
}

// Small blocks of an exclusive region live in bump slabs; a slab whose every block was freed
// (from any thread) is taken back and reused, so a region that frees as it goes stays under its
// ceiling without a pressure handler.
TEST(Region, BumpSlabsFreedEverywhereAreReused) {
  Region R;
  std::vector<void *> B;
  for (int I = 0; I < 200; I++)
    B.push_back(R.Allocate(1000));
  auto S = R.stats();
  EXPECT_GE(S.slabs, 4u);
  EXPECT_EQ(S.live_bytes, 200u * 1008);
  ASSERT_TRUE(R.setCeiling(S.footprint));
  std::thread T([&] {
    for (size_t I = 0; I < B.size(); I += 2)
      spaces_free(B[I]);
  });
  T.join();
  for (size_t I = 1; I < B.size(); I += 2)
    spaces_free(B[I]);
  EXPECT_EQ(R.stats().live_blocks, 0u);
  EXPECT_EQ(R.stats().live_bytes, 0u);
  for (int I = 0; I < 200; I++)
    ASSERT_NE(R.tryAllocate(1000), nullptr) << "allocation " << I << " refused at the ceiling";
  EXPECT_EQ(R.stats().live_blocks, 200u);
  EXPECT_LE(R.stats().footprint, S.footprint);
  EXPECT_EQ(R.stats().ceiling_hits, 0u);
}

//===----------------------------------------------------------------------===//
// The walk
//===----------------------------------------------------------------------===//

TEST(Region, ForEachLiveVisitsExactlyTheLiveBlocks) {
  Region R;
  std::mt19937 Rng(11);
  std::map<void *, size_t> Model;
  std::vector<void *> Order;
  for (int I = 0; I < 20000; I++) {
    size_t Size = I % 97 == 0 ? 9000 + Rng() % 300000 : 1 + Rng() % 3000;
    void *P = R.Allocate(Size);
    ASSERT_TRUE(Model.emplace(P, Size).second);
    Order.push_back(P);
  }
  std::vector<void *> Remote;
  for (size_t I = 0; I < Order.size(); I += 3) {
    if (I % 2)
      R.Deallocate(Order[I]);
    else
      Remote.push_back(Order[I]);
    Model.erase(Order[I]);
  }
  std::thread([&] {
    for (void *P : Remote)
      R.Deallocate(P);
  }).join();
  std::map<void *, size_t> Seen = liveSet(R);
  ASSERT_EQ(Seen.size(), Model.size());
  for (auto &KV : Model) {
    auto It = Seen.find(KV.first);
    ASSERT_NE(It, Seen.end()) << "live block " << KV.first << " not visited";
    EXPECT_GE(It->second, KV.second);
    EXPECT_EQ(It->second, spaces_usable_size(KV.first)) << "the walk reports the usable size";
  }
  EXPECT_EQ(R.stats().live_blocks, Model.size());

  // The callback may free the block it is given.
  size_t Freed = 0;
  R.forEachLive([&](void *P, size_t) {
    R.Deallocate(P);
    Freed++;
  });
  EXPECT_EQ(Freed, Model.size());
  EXPECT_EQ(R.stats().live_blocks, 0u);
  EXPECT_TRUE(liveSet(R).empty());
}

TEST(Region, ForEachLiveReportsTheSlotOfAnOverAlignedSmallBlock) {
  // A small block aligned beyond what its size class gives is carved out of a larger slot; the
  // walk reports that slot (start and size), which contains the block.
  Region R;
  char *P = static_cast<char *>(R.Allocate(100, 4096));
  ASSERT_TRUE(isAligned(P, 4096));
  std::map<void *, size_t> Seen = liveSet(R);
  ASSERT_EQ(Seen.size(), 1u);
  char *Slot = static_cast<char *>(Seen.begin()->first);
  size_t SlotSize = Seen.begin()->second;
  EXPECT_LE(Slot, P);
  EXPECT_LE(P + 100, Slot + SlotSize);
}

// The walk of a shared region holds the region's lock for its whole length, so stats() from
// the callback (spaces_chunk_stats takes the same lock) spins forever. Run in a child process
// with an alarm so that a deadlock fails the test instead of hanging it. spaces.h says every
// function may be called from any thread and only forbids allocating during the walk.
TEST(Region, StatsFromTheWalkCallbackOfASharedRegion) {
  pid_t Pid = fork();
  ASSERT_GE(Pid, 0);
  if (Pid == 0) {
    alarm(2);
    Region R(Region::Concurrent, "walked");
    R.Allocate(64);
    size_t Live = 0;
    R.forEachLive([&](void *, size_t) { Live = R.stats().live_blocks; });
    _exit(Live == 1 ? 0 : 1);
  }
  int Status = 0;
  ASSERT_EQ(waitpid(Pid, &Status, 0), Pid);
  EXPECT_TRUE(WIFEXITED(Status) && WEXITSTATUS(Status) == 0)
      << (WIFSIGNALED(Status) && WTERMSIG(Status) == SIGALRM ? "deadlocked: stats() inside forEachLive() never returned"
                                                              : "the child failed");
}

//===----------------------------------------------------------------------===//
// LLVM
//===----------------------------------------------------------------------===//

TEST(Region, StringMapOverARegion) {
  Region R("strings");
  {
    llvm::StringMap<int, Region &> Map(R);
    for (int I = 0; I < 10000; I++) {
      auto Ins = Map.try_emplace("key-" + std::to_string(I), I);
      ASSERT_TRUE(Ins.second);
    }
    ASSERT_EQ(Map.size(), 10000u);
    for (int I = 0; I < 10000; I++) {
      auto It = Map.find("key-" + std::to_string(I));
      ASSERT_NE(It, Map.end());
      EXPECT_EQ(It->second, I);
      EXPECT_EQ(It->first(), "key-" + std::to_string(I));
    }
    EXPECT_EQ(Map.count("key-10000"), 0u);
    EXPECT_TRUE(R.owns(&*Map.begin()));
    size_t Owned = 0;
    for (auto &Entry : Map)
      Owned += spaces_chunk_of(&Entry) == R.handle();
    EXPECT_EQ(Owned, 10000u) << "every entry lives in the region";
    EXPECT_EQ(R.stats().live_blocks, 10000u) << "the bucket table is not the region's";
    for (int I = 0; I < 10000; I += 2)
      Map.erase("key-" + std::to_string(I));
    EXPECT_EQ(R.stats().live_blocks, 5000u) << "erase deallocates the entry";
    EXPECT_EQ(Map.lookup("key-1"), 1);
    EXPECT_EQ(Map.lookup("key-2"), 0);
  }
  EXPECT_EQ(R.stats().live_blocks, 0u) << "~StringMap deallocates every entry";
}

TEST(Region, PlacementNewInARegion) {
  Region R;
  Point *P = new (R) Point(1, 2, "p");
  EXPECT_TRUE(R.owns(P));
  EXPECT_EQ(P->X, 1);
  EXPECT_EQ(P->Label, "p");
  EXPECT_EQ(R.stats().live_blocks, 1u);
  P->~Point();
  R.Deallocate(P);
  EXPECT_EQ(R.stats().live_blocks, 0u);
#if SPACES_TEST_EXCEPTIONS
  // A throwing constructor hands the block back (operator delete(void *, Region &)).
  EXPECT_THROW(new (R) Throws(1), std::runtime_error);
  EXPECT_EQ(R.stats().live_blocks, 0u);
#endif
  Line *L = new (R) Line();
  EXPECT_TRUE(isAligned(L, alignof(Line)));
}

namespace {
struct alignas(512) Page512 {
  char Bytes[512];
};
} // namespace

// `new (R) T` for an over-aligned T: C++17 first looks for operator new(size_t, align_val_t,
// Region &); Region.h declares none, so the call silently falls back to operator new(size_t,
// Region &), which asks for alignof(max_align_t). Size classes happen to keep alignments up to
// 128 (a slab header's colour is a multiple of 128), not beyond. (Bug: Region.h needs the align_val_t overload of new and delete.)
TEST(Region, PlacementNewHonoursOverAlignedTypes) {
  Region R;
  bool AllAligned = true;
  for (int I = 0; I < 8; I++)
    AllAligned &= isAligned(new (R) Page512(), alignof(Page512));
  EXPECT_TRUE(AllAligned) << "new (Region) of an alignas(512) type returned a misaligned block";
  // create<T>() passes alignof(T) and is right.
  for (int I = 0; I < 8; I++)
    EXPECT_TRUE(isAligned(R.create<Page512>(), alignof(Page512)));
}

// LLVM's AllocatorBase interface: typed Allocate<T>(Num) / Deallocate(T *, Num).
TEST(Region, TypedAllocateAndDeallocate) {
  Region R;
  struct alignas(32) Wide {
    char Bytes[96];
  };
  Wide *W = R.Allocate<Wide>(10);
  EXPECT_TRUE(isAligned(W, 32));
  EXPECT_TRUE(R.owns(W));
  EXPECT_GE(spaces_usable_size(W), 10 * sizeof(Wide));
  uint64_t *One = R.Allocate<uint64_t>();
  *One = 7;
  EXPECT_EQ(R.stats().live_blocks, 2u);
  R.Deallocate(W, 10);
  R.Deallocate(One);
  EXPECT_EQ(R.stats().live_blocks, 0u);
  EXPECT_BAD_ALLOC(R.Allocate<Wide>(size_t(-1) / 64)); // Num * sizeof(T) overflows
}

// forEachLive: a callback returning bool stops the walk with false; one returning void visits all.
TEST(Region, ForEachLiveCanStop) {
  Region R;
  for (int I = 0; I < 100; I++)
    R.Allocate(32);
  int Seen = 0;
  EXPECT_FALSE(R.forEachLive([&](void *, size_t) { return ++Seen < 10; }));
  EXPECT_EQ(Seen, 10);
  Seen = 0;
  EXPECT_TRUE(R.forEachLive([&](void *, size_t) { ++Seen; }));
  EXPECT_EQ(Seen, 100);
}

// Every flag has a bit of its own: a flag passed to the wrong function is EINVAL, never another
// behaviour (in 0.1, SPACES_ZERO == SPACES_CHUNK_EXCLUSIVE == 1).
TEST(Region, FlagsOfOneFunctionAreRefusedByAnother) {
  static_assert((SPACES_ZERO & SPACES_CHUNK_EXCLUSIVE) == 0, "distinct flag bits");
  static_assert(((SPACES_SHARED_GROUP | SPACES_SHARED_ALL) & (SPACES_ZERO | SPACES_CHUNK_EXCLUSIVE)) == 0,
                "distinct flag bits");
  static_assert((SPACES_CHUNK_UNTRACKED & (SPACES_ZERO | SPACES_CHUNK_EXCLUSIVE | SPACES_SHARED_GROUP |
                                           SPACES_SHARED_ALL)) == 0,
                "distinct flag bits");
  errno = 0;
  EXPECT_EQ(spaces_chunk_create(SPACES_ZERO), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(spaces_chunk_create(SPACES_SHARED_GROUP), nullptr);
  EXPECT_EQ(errno, EINVAL);
  Region R;
  errno = 0;
  EXPECT_EQ(spaces_chunk_alloc(R.handle(), 64, SPACES_CHUNK_EXCLUSIVE), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(spaces_chunk_aligned_alloc(R.handle(), 64, 64, SPACES_CHUNK_EXCLUSIVE), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(spaces_chunk_alloc(R.handle(), 64, SPACES_CHUNK_UNTRACKED), nullptr);
  EXPECT_EQ(errno, EINVAL);
  char *Z = static_cast<char *>(spaces_chunk_alloc(R.handle(), 64, SPACES_ZERO));
  ASSERT_NE(Z, nullptr);
  for (int I = 0; I < 64; I++)
    EXPECT_EQ(Z[I], 0);
}

// The bad-alloc handler (LLVM's install_bad_alloc_error_handler) is called instead of the
// default; one that returns gets the program aborted.
TEST(RegionDeathTest, BadAllocHandlerIsCalledAndMustNotReturn) {
  EXPECT_DEATH(
      {
        Region R;
        R.setCeiling(1 << 20);
        spaces::installBadAllocHandler([](void *, const char *Reason) { std::fprintf(stderr, "handler: %s\n", Reason); });
        R.Allocate(size_t(4) << 20);
      },
      "the bad-alloc handler returned");
}
