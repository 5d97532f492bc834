//===- TypedPoolTest.cpp - spaces::TypedPool<T> ---------------------------===//
//
// Exact-size slots: create/destroy, reuse, the live set (size, forEach), teardown running ~T
// once per live object, alignment, a throwing constructor, and the memory bound
// footprint <= 1.02 * n * sizeof(T) for a 40-byte T.
//
//===----------------------------------------------------------------------===//
#include "spaces/TypedPool.h"

#include <gtest/gtest.h>

#include "SdkTestSupport.h"

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

using spaces::TypedPool;

static_assert(!std::is_copy_constructible<TypedPool<int>>::value, "a pool owns its objects");
static_assert(!std::is_copy_assignable<TypedPool<int>>::value, "a pool owns its objects");

namespace {

/// Records every construction and destruction by id.
struct Tracked {
  static std::map<int, int> &destroyed() {
    static std::map<int, int> M;
    return M;
  }
  static int &constructed() {
    static int N;
    return N;
  }
  static void clear() {
    destroyed().clear();
    constructed() = 0;
  }

  explicit Tracked(int Id, bool Throw = false) : Id(Id) {
#if SPACES_TEST_EXCEPTIONS
    if (Throw)
      throw std::runtime_error("Tracked");
#else
    (void)Throw;
#endif
    constructed()++;
    std::snprintf(Name, sizeof Name, "obj-%d", Id);
  }
  ~Tracked() { destroyed()[Id]++; }

  int Id;
  char Name[28];
};

struct Pod40 {
  uint64_t A, B, C, D, E;
};
static_assert(sizeof(Pod40) == 40, "the memory bound is stated for a 40-byte T");
static_assert(std::is_trivially_destructible<Pod40>::value, "");

template <size_t Align> struct alignas(Align) Aligned {
  unsigned char Bytes[Align < 24 ? 24 : Align];
};

} // namespace

TEST(TypedPool, CreateAndDestroyRunConstructorAndDestructor) {
  Tracked::clear();
  {
    TypedPool<Tracked> Pool;
    EXPECT_TRUE(Pool.empty());
    Tracked *A = Pool.create(1);
    Tracked *B = Pool.create(2);
    EXPECT_EQ(A->Id, 1);
    EXPECT_STREQ(B->Name, "obj-2");
    EXPECT_EQ(Pool.size(), 2u);
    EXPECT_FALSE(Pool.empty());
    EXPECT_EQ(Tracked::constructed(), 2);
    Pool.destroy(A);
    EXPECT_EQ(Pool.size(), 1u);
    EXPECT_EQ(Tracked::destroyed()[1], 1) << "destroy() runs ~T once";
    EXPECT_EQ(Tracked::destroyed().count(2), 0u);
    Pool.destroy(nullptr); // no-op
    EXPECT_EQ(Pool.size(), 1u);
  }
  EXPECT_EQ(Tracked::destroyed()[1], 1) << "a destroyed object is not destroyed again";
  EXPECT_EQ(Tracked::destroyed()[2], 1) << "teardown destroys the live object";
}

TEST(TypedPool, TeardownRunsTheDestructorOfEveryLiveObjectExactlyOnce) {
  Tracked::clear();
  const int N = 20000; // a dozen pages
  {
    TypedPool<Tracked> Pool;
    std::vector<Tracked *> Objs;
    for (int I = 0; I < N; I++)
      Objs.push_back(Pool.create(I));
    for (int I = 0; I < N; I += 7)
      Pool.destroy(Objs[I]);
    for (int I = 0; I < 100; I++) // refill some freed slots
      Objs.push_back(Pool.create(N + I));
    EXPECT_EQ(Pool.size(), size_t(N - (N + 6) / 7 + 100));
  }
  EXPECT_EQ(Tracked::constructed(), N + 100);
  ASSERT_EQ(Tracked::destroyed().size(), size_t(N + 100)) << "every object is destroyed";
  for (auto &KV : Tracked::destroyed())
    ASSERT_EQ(KV.second, 1) << "object " << KV.first << " destroyed " << KV.second << " times";
}

TEST(TypedPool, DestroyAllEmptiesThePoolAndTheDestructorDoesNotRepeatIt) {
  Tracked::clear();
  {
    TypedPool<Tracked> Pool;
    for (int I = 0; I < 5000; I++)
      Pool.create(I);
    EXPECT_GT(Pool.footprint(), 0u);
    Pool.destroyAll();
    EXPECT_EQ(Pool.size(), 0u);
    EXPECT_EQ(Tracked::destroyed().size(), 5000u);
    EXPECT_EQ(Pool.footprint(), 0u) << "pages are returned at once";
    int Visits = 0;
    Pool.forEach([&](Tracked &) { Visits++; });
    EXPECT_EQ(Visits, 0);
    // The pool is usable after destroyAll.
    Tracked *T = Pool.create(99999);
    EXPECT_EQ(T->Id, 99999);
    EXPECT_EQ(Pool.size(), 1u);
  }
  EXPECT_EQ(Tracked::destroyed().size(), 5001u);
  for (auto &KV : Tracked::destroyed())
    ASSERT_EQ(KV.second, 1) << "object " << KV.first;
}

// (destroyAll skips the walk for such types; nothing observable distinguishes it, so this checks
// that teardown still releases everything and leaves the pool usable)
TEST(TypedPool, TriviallyDestructibleTypesTearDown) {
  TypedPool<Pod40> Pool;
  for (uint64_t I = 0; I < 10000; I++)
    Pool.create(Pod40{I, I, I, I, I});
  EXPECT_EQ(Pool.size(), 10000u);
  Pool.destroyAll();
  EXPECT_EQ(Pool.size(), 0u);
  EXPECT_EQ(Pool.footprint(), 0u);
  Pod40 *P = Pool.create(Pod40{1, 2, 3, 4, 5});
  EXPECT_EQ(P->E, 5u);
}

TEST(TypedPool, ForEachVisitsExactlyTheLiveObjects) {
  TypedPool<Tracked> Pool;
  std::vector<Tracked *> Objs;
  std::set<Tracked *> Live;
  for (int I = 0; I < 10000; I++) {
    Objs.push_back(Pool.create(I));
    Live.insert(Objs.back());
  }
  for (int I = 0; I < 10000; I += 3) {
    Pool.destroy(Objs[I]);
    Live.erase(Objs[I]);
  }
  std::set<Tracked *> Seen;
  Pool.forEach([&](Tracked &T) {
    EXPECT_TRUE(Seen.insert(&T).second) << "visited twice: " << T.Id;
    EXPECT_EQ(T.Id % 3 == 0, false) << "visited a destroyed object " << T.Id;
  });
  EXPECT_EQ(Seen, Live);
  EXPECT_EQ(Pool.size(), Live.size());
}

TEST(TypedPool, DestroyedSlotsAreReused) {
  TypedPool<Pod40> Pool;
  std::vector<Pod40 *> Objs;
  for (int I = 0; I < 5000; I++)
    Objs.push_back(Pool.create());
  size_t Footprint = Pool.footprint();
  Pod40 *Victim = Objs[1234];
  Pool.destroy(Victim);
  EXPECT_EQ(Pool.create(), Victim) << "the last freed slot is the next one handed out";
  std::set<Pod40 *> Freed;
  for (int I = 0; I < 5000; I += 2) {
    Pool.destroy(Objs[I]);
    Freed.insert(Objs[I]);
  }
  for (int I = 0; I < 5000; I += 2)
    EXPECT_EQ(Freed.count(Pool.create()), 1u) << "freed slots are used before new ones";
  EXPECT_EQ(Pool.footprint(), Footprint) << "reuse takes no memory";
}

TEST(TypedPool, SlotsAreExactlySizeofT) {
  EXPECT_EQ(TypedPool<Pod40>::slotSize(), 40u);
  EXPECT_EQ(TypedPool<Tracked>::slotSize(), sizeof(Tracked));
  EXPECT_EQ(TypedPool<char>::slotSize(), sizeof(void *)) << "a slot holds at least the free link";
  EXPECT_EQ(TypedPool<Aligned<64>>::slotSize(), 64u);
  EXPECT_GT(TypedPool<Pod40>::slotsPerPage() * 40, size_t(65536) * 99 / 100)
      << "a page wastes under 1 % of its slab";

  TypedPool<Pod40> Pool;
  std::vector<Pod40 *> Objs;
  for (size_t I = 0; I < TypedPool<Pod40>::slotsPerPage() + 1; I++)
    Objs.push_back(Pool.create());
  std::set<uintptr_t> Addr;
  for (Pod40 *P : Objs)
    Addr.insert(reinterpret_cast<uintptr_t>(P));
  // Within a page, neighbouring objects are exactly 40 bytes apart.
  size_t Adjacent = 0;
  for (auto It = Addr.begin(), Next = std::next(It); Next != Addr.end(); ++It, ++Next)
    Adjacent += *Next - *It == 40;
  EXPECT_EQ(Adjacent, TypedPool<Pod40>::slotsPerPage() - 1);
}

namespace {
void checkFootprint(size_t N) {
  TypedPool<Pod40> Pool;
  for (size_t I = 0; I < N; I++)
    Pool.create(Pod40{I, 0, 0, 0, I});
  ASSERT_EQ(Pool.size(), N);
  size_t Payload = N * sizeof(Pod40);
  size_t Footprint = Pool.footprint();
  size_t Pages = (N + TypedPool<Pod40>::slotsPerPage() - 1) / TypedPool<Pod40>::slotsPerPage();
  EXPECT_EQ(Footprint, Pages * 65536) << "one 64 KiB slab per page, nothing else";
  double Overhead = 100.0 * (double(Footprint) - double(Payload)) / double(Payload);
  std::printf("[ TypedPool ] n = %zu, sizeof(T) = 40: footprint %zu bytes for %zu payload bytes, "
              "overhead %.2f %% (%zu pages of %zu slots)\n",
              N, Footprint, Payload, Overhead, Pages, TypedPool<Pod40>::slotsPerPage());
  char Value[32];
  std::snprintf(Value, sizeof Value, "%.2f", Overhead);
  ::testing::Test::RecordProperty("overhead_percent_n" + std::to_string(N), Value);
  EXPECT_LE(double(Footprint), 1.02 * double(Payload));
}
} // namespace

TEST(TypedPool, FootprintWithin2PercentOfPayloadFor100000) { checkFootprint(100000); }
TEST(TypedPool, FootprintWithin2PercentOfPayloadFor1000000) { checkFootprint(1000000); }

namespace {
template <size_t Align> void checkAlignment() {
  TypedPool<Aligned<Align>> Pool;
  size_t N = 3 * TypedPool<Aligned<Align>>::slotsPerPage() + 5;
  size_t Misaligned = 0;
  for (size_t I = 0; I < N; I++) {
    Aligned<Align> *P = Pool.create();
    Misaligned += reinterpret_cast<uintptr_t>(P) % Align != 0;
    P->Bytes[0] = 1;
  }
  EXPECT_EQ(Misaligned, 0u) << "alignof " << Align;
  EXPECT_EQ(Pool.size(), N);
}
} // namespace

TEST(TypedPool, ObjectsAreAlignedForTheirType) {
  checkAlignment<16>();
  checkAlignment<32>();
  checkAlignment<64>();
  checkAlignment<256>();
}

#if SPACES_TEST_EXCEPTIONS
TEST(TypedPool, ThrowingConstructorReturnsTheSlot) {
  Tracked::clear();
  {
    TypedPool<Tracked> Pool;
    for (int I = 0; I < 10; I++)
      Pool.create(I);
    size_t Footprint = Pool.footprint();
    EXPECT_THROW(Pool.create(100, true), std::runtime_error);
    EXPECT_EQ(Pool.size(), 10u) << "the failed object is not counted";
    int Visits = 0;
    Pool.forEach([&](Tracked &T) {
      Visits++;
      EXPECT_LT(T.Id, 10);
    });
    EXPECT_EQ(Visits, 10) << "the failed slot is not marked live";
    Tracked *Next = Pool.create(11);
    EXPECT_EQ(Next->Id, 11);
    EXPECT_EQ(Pool.size(), 11u);
    EXPECT_EQ(Pool.footprint(), Footprint);
  }
  EXPECT_EQ(Tracked::destroyed().size(), 11u);
  EXPECT_EQ(Tracked::destroyed().count(100), 0u) << "no destructor for an object never built";
}
#endif

// Movable: the objects stay where they are (pointers remain valid), the moved-from pool holds
// nothing, and move assignment destroys the target's own objects first.
TEST(TypedPool, MovesItsObjectsWithoutMovingThem) {
  Tracked::clear();
  {
    TypedPool<Tracked> A;
    std::vector<Tracked *> Objs;
    for (int I = 0; I < 3000; I++)
      Objs.push_back(A.create(I));
    TypedPool<Tracked> B(std::move(A));
    EXPECT_EQ(A.size(), 0u);
    EXPECT_EQ(A.footprint(), 0u);
    EXPECT_EQ(B.size(), 3000u);
    for (int I = 0; I < 3000; I++)
      EXPECT_EQ(Objs[I]->Id, I);
    B.destroy(Objs[0]);
    TypedPool<Tracked> C;
    C.create(5000);
    C = std::move(B);  // C's object 5000 is destroyed, B's 2999 move in
    EXPECT_EQ(Tracked::destroyed()[5000], 1);
    EXPECT_EQ(C.size(), 2999u);
    EXPECT_EQ(B.size(), 0u);
  }
  for (int I = 0; I < 3000; I++)
    EXPECT_EQ(Tracked::destroyed()[I], 1) << "object " << I;
}

static_assert(std::is_nothrow_move_constructible<TypedPool<int>>::value, "TypedPool moves");
static_assert(!std::is_copy_constructible<TypedPool<int>>::value, "TypedPool does not copy");
