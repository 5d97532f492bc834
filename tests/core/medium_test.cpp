// Medium size classes (9-256 KiB): slabs of several granules on thread heaps (heap.cpp,
// sizeclass.cpp), found from any block by the page map's back offsets (slab_find).
#include "test_internal.h"

#include <set>
#include <thread>
#include <vector>

namespace {
size_t slabs_in_use() { return stats_now().slabs_in_use; }
}  // namespace

TEST(Medium, EveryClassServesItsSizeFromAThreadHeapSlab) {
  for (unsigned c = kNumSmallClasses; c < kNumClasses; c++) {
    size_t size = class_size(c);
    std::vector<void*> blocks;
    unsigned granules = g_classes.granules[c];
    size_t per_slab = ((size_t(granules) << kSlabShift) - kSlabHeader) / size;
    for (size_t i = 0; i < per_slab + 2; i++) {  // (spills into a second slab)
      void* p = spaces_malloc(size - 100);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(spaces_usable_size(p), size) << "class " << c;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u) << "medium slots are 256-byte aligned";
      Slab* s = slab_find(p);
      ASSERT_NE(s, nullptr) << "slab_find of a block in granule "
                            << ((reinterpret_cast<uintptr_t>(p) >> kSlabShift) & 63);
      EXPECT_EQ(s->kind, kSlabSmall);
      EXPECT_EQ(s->cls, c);
      EXPECT_EQ(s->owner, t_home_heap);
      // a block never starts on a granule boundary: its granule is the one of p - 1
      EXPECT_NE(reinterpret_cast<uintptr_t>(p) & kSlabMask, 0u);
      memset(p, int(i), size);
      blocks.push_back(p);
    }
    EXPECT_EQ(std::set<void*>(blocks.begin(), blocks.end()).size(), blocks.size());
    for (size_t i = 0; i < blocks.size(); i++) {
      auto* b = static_cast<unsigned char*>(blocks[i]);
      EXPECT_EQ(b[0], (unsigned char)i);
      EXPECT_EQ(b[size - 1], (unsigned char)i);
      spaces_free(blocks[i]);
    }
  }
}

TEST(Medium, SizesMapToTheSmallestClassThatFits) {
  EXPECT_EQ(medium_class_of(kSmallMax + 1), kNumSmallClasses);
  EXPECT_EQ(medium_class_of(kMediumMax), kNumClasses - 1);
  for (size_t n = kSmallMax + 1; n <= kMediumMax; n += 97) {
    unsigned c = medium_class_of(n);
    ASSERT_GE(class_size(c), n);
    ASSERT_LT(class_size(c - 1), n);
  }
  void* big = spaces_malloc(kMediumMax + 1);
  Slab* s = slab_find(big);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->kind, kSlabLargeRun) << "above 256 KiB a block takes the large path";
  spaces_free(big);
}

TEST(Medium, InteriorAndDoubleFreesInLaterGranulesAreReported) {
  HandlerScope scope;
  const size_t size = 100000;  // class 104 KiB: slabs of 8 granules
  std::vector<void*> blocks;
  for (int i = 0; i < 6; i++) blocks.push_back(spaces_malloc(size));
  void* far = blocks[5];  // past the slab's first granule
  ASSERT_NE(slab_find(far), reinterpret_cast<Slab*>(reinterpret_cast<uintptr_t>(far) & ~kSlabMask));
  char* interior = static_cast<char*>(far) + 4096;
  spaces_free(interior);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
  EXPECT_EQ(g_caught.addr, interior);
  EXPECT_EQ(spaces_usable_size(interior), 0u);
  EXPECT_EQ(g_caught.count, 2);
  EXPECT_EQ(spaces_realloc(interior, 10), nullptr);
  EXPECT_EQ(g_caught.count, 3);
  spaces_free(far);
  EXPECT_EQ(g_caught.count, 3) << "a valid free reports nothing";
  spaces_free(far);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  EXPECT_EQ(g_caught.count, 4);
  // A wrong size to free_sized is caught for medium blocks too (off the fast path, which reads
  // no size: from another thread).
  std::thread([&] { spaces_free_sized(blocks[4], size + 50000); }).join();
  EXPECT_EQ(g_caught.code, SPACES_ERROR_SIZE_MISMATCH);
  for (int i = 0; i < 5; i++) spaces_free(blocks[i]);
  EXPECT_EQ(g_caught.count, 5);
}

TEST(Medium, RemoteFreesAreReusedByTheOwner) {
  for (int mixed = 0; mixed < 2; mixed++) {
    std::vector<void*> blocks;
    auto size_of = [&](int i) { return size_t(20000 + (mixed ? (i % 7) * 1000 : 0)); };
    for (int i = 0; i < 400; i++) blocks.push_back(spaces_malloc(size_of(i)));
    std::set<void*> first(blocks.begin(), blocks.end());
    size_t slabs = slabs_in_use();
    std::thread([&] {
      for (void* p : blocks) spaces_free(p);
    }).join();
    size_t reused = 0;
    std::vector<void*> again;
    for (int i = 0; i < 400; i++) {
      void* p = spaces_malloc(size_of(i));
      reused += first.count(p);
      again.push_back(p);
    }
    // Blocks of slabs kept in the medium cache come back at the same addresses; slabs beyond the
    // cache went back to the arenas and may come back elsewhere (or as another class). Either way
    // no new memory is taken: the remote frees reached the owner.
    EXPECT_GT(reused, 100u) << (mixed ? "mixed sizes" : "one size");
    EXPECT_LE(slabs_in_use(), slabs) << (mixed ? "mixed sizes" : "one size");
    for (void* p : again) spaces_free(p);
  }
}

TEST(Medium, EmptiedSlabsAreCachedThenGivenBack) {
  spaces_collect(1);
  size_t base = slabs_in_use();
  std::vector<void*> blocks;
  for (int i = 0; i < 200; i++) blocks.push_back(spaces_malloc(150000));  // 1 MiB slabs
  EXPECT_GE(slabs_in_use(), base + 200 * 150000 / 65536);
  for (void* p : blocks) spaces_free(p);
  spaces_collect(1);
  EXPECT_LE(slabs_in_use(), base) << "spaces_collect(1) returns emptied medium slabs";
  // calloc of a medium size is zeroed even in a reused (dirty) slot
  void* d = spaces_malloc(30000);
  memset(d, 0xAB, 30000);
  spaces_free(d);
  auto* z = static_cast<unsigned char*>(spaces_calloc(1, 30000));
  ASSERT_NE(z, nullptr);
  for (size_t i = 0; i < 30000; i++) ASSERT_EQ(z[i], 0) << i;
  spaces_free(z);
}

TEST(Medium, AlignedRequestsUpTo256BytesUseTheClasses) {
  void* p = spaces_aligned_alloc(256, 50000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u);
  EXPECT_EQ(slab_find(p)->kind, kSlabSmall);
  spaces_free(p);
  void* q = spaces_aligned_alloc(4096, 50000);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % 4096, 0u);
  EXPECT_EQ(slab_find(q)->kind, kSlabLargeRun) << "alignment above a slot's goes to the large path";
  spaces_free(q);
}

TEST(Medium, RegionsKeepTheLargePathAbove8KiB) {
  SpacesChunk c = spaces_chunk_create(0);
  ASSERT_NE(c, nullptr);
  void* p = spaces_chunk_alloc(c, 20000, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(slab_find(p)->kind, kSlabLargeRun);
  EXPECT_EQ(spaces_chunk_of(p), c);
  spaces_chunk_destroy(c);
}
