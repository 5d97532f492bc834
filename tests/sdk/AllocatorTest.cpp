//===- AllocatorTest.cpp - spaces::Allocator<T> and spaces::MemoryResource ===//
//
// Standard containers over a Region, through the STL allocator and through std::pmr: contents,
// ownership of every allocation (the region's live count returns to zero when the container
// goes), allocator equality and propagation, and the ceiling surfacing as std::bad_alloc.
//
//===----------------------------------------------------------------------===//
#include "spaces/Allocator.h"

#include <gtest/gtest.h>

#include "SdkTestSupport.h"

#include <map>
#include <memory_resource>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

using spaces::Allocator;
using spaces::MemoryResource;
using spaces::Region;

namespace {
const char *const LongText = "a string long enough to leave the small-string buffer behind";
std::pmr::string keyOf(int I) {
  std::pmr::string K(LongText); // (the default resource: only the map's copies are compared)
  K += std::to_string(I);
  return K;
}
template <typename T> using RVector = std::vector<T, Allocator<T>>;
using RString = std::basic_string<char, std::char_traits<char>, Allocator<char>>;
template <typename K, typename V>
using RMap = std::map<K, V, std::less<K>, Allocator<std::pair<const K, V>>>;
template <typename K, typename V>
using RUnorderedMap = std::unordered_map<K, V, std::hash<K>, std::equal_to<K>, Allocator<std::pair<const K, V>>>;

} // namespace

//===----------------------------------------------------------------------===//
// Allocator<T>
//===----------------------------------------------------------------------===//

static_assert(std::is_same<std::allocator_traits<Allocator<int>>::rebind_alloc<double>, Allocator<double>>::value,
              "Allocator rebinds");
static_assert(std::allocator_traits<Allocator<int>>::propagate_on_container_move_assignment::value, "");
static_assert(std::allocator_traits<Allocator<int>>::propagate_on_container_swap::value, "");
static_assert(!std::allocator_traits<Allocator<int>>::is_always_equal::value, "two regions, two allocators");

TEST(Allocator, EqualityFollowsTheRegion) {
  Region R1, R2;
  Allocator<int> A(R1), B(R1), C(R2);
  Allocator<double> D(R1);
  EXPECT_TRUE(A == B);
  EXPECT_FALSE(A != B);
  EXPECT_TRUE(A != C);
  EXPECT_FALSE(A == C);
  EXPECT_TRUE(A == D) << "rebound copies compare equal";
  Allocator<long> E(A);
  EXPECT_EQ(&E.region(), &R1);
  EXPECT_TRUE(E == A);
}

TEST(Allocator, AllocateAndDeallocate) {
  Region R;
  Allocator<double> A(R);
  double *P = A.allocate(100);
  EXPECT_TRUE(R.owns(P));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(P) % alignof(double), 0u);
  EXPECT_EQ(R.stats().live_blocks, 1u);
  A.deallocate(P, 100);
  EXPECT_EQ(R.stats().live_blocks, 0u);
  EXPECT_BAD_ALLOC(A.allocate(std::numeric_limits<size_t>::max() / 4)); // overflow
  EXPECT_BAD_ALLOC(A.allocate(size_t(1) << 60));                        // impossible size
}

TEST(Allocator, VectorLivesInTheRegion) {
  Region R;
  {
    RVector<int> V{Allocator<int>(R)};
    for (int I = 0; I < 100000; I++)
      V.push_back(I);
    for (int I = 0; I < 100000; I++)
      ASSERT_EQ(V[I], I);
    EXPECT_EQ(spaces_chunk_of(V.data()), R.handle());
    EXPECT_EQ(R.stats().live_blocks, 1u) << "every outgrown buffer was given back";
    RVector<int> Copy(V);
    EXPECT_EQ(Copy.get_allocator(), V.get_allocator()) << "a copy stays in the region";
    EXPECT_EQ(spaces_chunk_of(Copy.data()), R.handle());
  }
  EXPECT_EQ(R.stats().live_blocks, 0u);
}

TEST(Allocator, MapLivesInTheRegion) {
  Region R;
  {
    RMap<int, int> M{Allocator<std::pair<const int, int>>(R)};
    for (int I = 0; I < 10000; I++)
      M.emplace(I, I * I);
    for (int I = 0; I < 10000; I++)
      ASSERT_EQ(M.at(I), I * I);
    size_t Owned = 0;
    for (auto &KV : M)
      Owned += spaces_chunk_of(&KV) == R.handle();
    EXPECT_EQ(Owned, 10000u);
    EXPECT_EQ(R.stats().live_blocks, 10000u) << "one node per element, all in the region";
    for (int I = 0; I < 10000; I += 2)
      M.erase(I);
    EXPECT_EQ(R.stats().live_blocks, 5000u);
  }
  EXPECT_EQ(R.stats().live_blocks, 0u);
}

TEST(Allocator, UnorderedMapLivesInTheRegion) {
  Region R;
  {
    RUnorderedMap<int, int> M{16, std::hash<int>(), std::equal_to<int>(),
                              Allocator<std::pair<const int, int>>(R)};
    for (int I = 0; I < 10000; I++)
      M[I] = -I;
    for (int I = 0; I < 10000; I++)
      ASSERT_EQ(M.at(I), -I);
    size_t Owned = 0;
    for (auto &KV : M)
      Owned += spaces_chunk_of(&KV) == R.handle();
    EXPECT_EQ(Owned, 10000u);
    EXPECT_EQ(R.stats().live_blocks, 10001u) << "10000 nodes and the bucket array";
  }
  EXPECT_EQ(R.stats().live_blocks, 0u);
}

TEST(Allocator, BasicStringLivesInTheRegion) {
  Region R;
  {
    RString S(LongText, Allocator<char>(R));
    EXPECT_EQ(S, LongText);
    EXPECT_EQ(spaces_chunk_of(S.data()), R.handle());
    for (int I = 0; I < 1000; I++)
      S += "0123456789";
    EXPECT_EQ(S.size(), std::string(LongText).size() + 10000);
    EXPECT_EQ(S.compare(S.size() - 10, 10, "0123456789"), 0); // (substr needs a default allocator)
    EXPECT_EQ(S.get_allocator().region().handle(), R.handle());
    EXPECT_EQ(spaces_chunk_of(S.data()), R.handle());
    RString Short("tiny", Allocator<char>(R));
    EXPECT_EQ(spaces_chunk_of(Short.data()), nullptr) << "small strings live inside the object";
    EXPECT_EQ(R.stats().live_blocks, 1u);
  }
  EXPECT_EQ(R.stats().live_blocks, 0u);
}

TEST(Allocator, MoveAssignmentAndSwapCarryTheAllocator) {
  Region R1, R2;
  RVector<int> A(1000, 1, Allocator<int>(R1));
  RVector<int> B(2000, 2, Allocator<int>(R2));
  const int *BData = B.data();
  A = std::move(B); // propagate_on_container_move_assignment: no copy, A now uses R2
  EXPECT_EQ(A.data(), BData);
  EXPECT_EQ(&A.get_allocator().region(), &R2);
  EXPECT_EQ(spaces_chunk_of(A.data()), R2.handle());
  EXPECT_EQ(R1.stats().live_blocks, 0u) << "A's old buffer was freed into R1";
  RVector<int> C(10, 3, Allocator<int>(R1));
  A.swap(C); // propagate_on_container_swap
  EXPECT_EQ(&A.get_allocator().region(), &R1);
  EXPECT_EQ(&C.get_allocator().region(), &R2);
  EXPECT_EQ(A.size(), 10u);
  EXPECT_EQ(spaces_chunk_of(C.data()), R2.handle());
}

// The ceiling counts slabs, and a growing vector visits one size class per doubling (one 64 KiB
// slab each) before its buffer becomes a large block: 4 MiB leaves room for a 2 MiB buffer.
// Appends until the allocator gives up. Out of line: without exceptions the failure longjmps back
// to the test (SdkTestSupport.h), and the container must then be read from memory, not from
// registers the test function kept across the setjmp.
template <typename VectorT> [[gnu::noinline]] void pushUntilFull(VectorT &V, volatile size_t &Pushed) {
  for (; Pushed < (size_t(1) << 30); Pushed = Pushed + 1)
    V.push_back(typename VectorT::value_type(Pushed));
}

TEST(Allocator, CeilingThroughAContainerThrowsBadAlloc) {
  Region R;
  ASSERT_TRUE(R.setCeiling(4 << 20));
  RVector<char> V{Allocator<char>(R)};
  volatile size_t Pushed = 0;
  EXPECT_BAD_ALLOC(pushUntilFull(V, Pushed));
  EXPECT_EQ(V.size(), size_t(Pushed)) << "push_back's strong guarantee: the vector is intact";
  EXPECT_GE(V.size(), size_t(1) << 20);
  for (size_t I = 0; I < V.size(); I++)
    ASSERT_EQ(V[I], char(I));
  spaces::RegionStats St = R.stats();
  EXPECT_LE(St.footprint, size_t(4) << 20);
  EXPECT_GE(St.ceiling_hits, 1u);
  EXPECT_EQ(St.live_blocks, 1u);
}

//===----------------------------------------------------------------------===//
// MemoryResource
//===----------------------------------------------------------------------===//

TEST(MemoryResource, IsEqualFollowsTheRegion) {
  Region R1, R2;
  MemoryResource A(R1), B(R1), C(R2);
  EXPECT_TRUE(A.is_equal(A));
  EXPECT_TRUE(A.is_equal(B)) << "two resources over one region can free each other's blocks";
  EXPECT_TRUE(A == B);
  EXPECT_FALSE(A.is_equal(C));
  EXPECT_FALSE(A.is_equal(*std::pmr::new_delete_resource()));
  EXPECT_FALSE(std::pmr::new_delete_resource()->is_equal(A));
  EXPECT_EQ(&A.region(), &R1);
  EXPECT_TRUE(std::pmr::polymorphic_allocator<int>(&A) == std::pmr::polymorphic_allocator<int>(&B));
  EXPECT_FALSE(std::pmr::polymorphic_allocator<int>(&A) == std::pmr::polymorphic_allocator<int>(&C));
}

TEST(MemoryResource, AllocateHonoursAlignmentAndFreesIndividually) {
  Region R;
  MemoryResource M(R);
  for (size_t Align : {size_t(16), size_t(64), size_t(256), size_t(4096)}) {
    void *P = M.allocate(1000, Align);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(P) % Align, 0u);
    EXPECT_TRUE(R.owns(P));
    M.deallocate(P, 1000, Align);
  }
  EXPECT_EQ(R.stats().live_blocks, 0u) << "deallocate frees at once (not monotonic)";
}

TEST(MemoryResource, PmrVectorLivesInTheRegion) {
  Region R;
  MemoryResource M(R);
  {
    std::pmr::vector<int> V(&M);
    for (int I = 0; I < 100000; I++)
      V.push_back(I);
    for (int I = 0; I < 100000; I++)
      ASSERT_EQ(V[I], I);
    EXPECT_EQ(spaces_chunk_of(V.data()), R.handle());
    EXPECT_EQ(R.stats().live_blocks, 1u);
  }
  EXPECT_EQ(R.stats().live_blocks, 0u);
}

TEST(MemoryResource, PmrStringLivesInTheRegion) {
  Region R;
  MemoryResource M(R);
  {
    std::pmr::string S(LongText, &M);
    EXPECT_EQ(S, LongText);
    EXPECT_EQ(spaces_chunk_of(S.data()), R.handle());
    S.append(5000, 'z');
    EXPECT_EQ(S.back(), 'z');
    EXPECT_EQ(spaces_chunk_of(S.data()), R.handle());
    EXPECT_EQ(R.stats().live_blocks, 1u);
  }
  EXPECT_EQ(R.stats().live_blocks, 0u);
}

TEST(MemoryResource, PmrUnorderedMapAndItsKeysLiveInTheRegion) {
  Region R;
  MemoryResource M(R);
  {
    std::pmr::unordered_map<std::pmr::string, int> Map(&M);
    for (int I = 0; I < 5000; I++)
      Map.emplace(keyOf(I), I);
    for (int I = 0; I < 5000; I++) {
      auto It = Map.find(keyOf(I));
      ASSERT_NE(It, Map.end());
      EXPECT_EQ(It->second, I);
    }
    size_t NodesOwned = 0, KeysOwned = 0;
    for (auto &KV : Map) {
      NodesOwned += spaces_chunk_of(&KV) == R.handle();
      KeysOwned += spaces_chunk_of(KV.first.data()) == R.handle();
      EXPECT_EQ(KV.first.get_allocator().resource(), &M) << "uses-allocator construction";
    }
    EXPECT_EQ(NodesOwned, 5000u);
    EXPECT_EQ(KeysOwned, 5000u);
    EXPECT_EQ(R.stats().live_blocks, 10001u) << "nodes, key buffers and the bucket array";
  }
  EXPECT_EQ(R.stats().live_blocks, 0u);
}

TEST(MemoryResource, CeilingThroughAPmrContainerThrowsBadAlloc) {
  Region R;
  MemoryResource M(R);
  ASSERT_TRUE(R.setCeiling(4 << 20));
  std::pmr::vector<long> V(&M);
  volatile size_t Pushed = 0;
  EXPECT_BAD_ALLOC(pushUntilFull(V, Pushed));
  EXPECT_GE(V.size(), size_t(128) * 1024);
  EXPECT_EQ(V.back(), long(V.size()) - 1);
  EXPECT_LE(R.stats().footprint, size_t(4) << 20);
  EXPECT_GE(R.stats().ceiling_hits, 1u);
}
