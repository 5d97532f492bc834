#include "test_internal.h"

#include <sys/mman.h>
#include <vector>

TEST(PageMap, OwnsNeverFaultsAndKnowsItsMemory) {
  int local = 0;
  static int global_var = 0;
  EXPECT_EQ(spaces_owns(nullptr), 0);
  EXPECT_EQ(spaces_owns(&local), 0);
  EXPECT_EQ(spaces_owns(&global_var), 0);
  EXPECT_EQ(spaces_owns(reinterpret_cast<void*>(1)), 0);
  EXPECT_EQ(spaces_owns(reinterpret_cast<void*>(~uintptr_t(0))), 0);
  EXPECT_EQ(spaces_owns(reinterpret_cast<void*>(uintptr_t(1) << 47)), 0);
  void* m = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_EQ(spaces_owns(m), 0);
  munmap(m, 1 << 20);
  void* small = spaces_malloc(16);
  void* large = spaces_malloc(10 << 20);
  EXPECT_EQ(spaces_owns(small), 1);
  EXPECT_EQ(spaces_owns(large), 1);
  EXPECT_EQ(spaces_owns(static_cast<char*>(large) + (5 << 20)), 1) << "interior of a large block";
  spaces_free(small);
  spaces_free(large);
}

TEST(PageMap, HeadBitsFollowSlabs) {
  void* p = spaces_malloc(40);
  EXPECT_TRUE(pagemap_is_head(reinterpret_cast<uintptr_t>(p) - 1));
  uintptr_t g = (reinterpret_cast<uintptr_t>(p) - 1) & ~kSlabMask;
  EXPECT_EQ(pagemap_back(pagemap_leaf(g), g), kBackSlab) << "a size-class slab's head: its header is coloured";
  EXPECT_EQ(slab_find(p), slab_of(p));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(slab_of(p)), g + slab_colour(g));
  EXPECT_FALSE(pagemap_is_head(reinterpret_cast<uintptr_t>(&p)));
  EXPECT_FALSE(pagemap_is_head(~uintptr_t(0)));
  spaces_free(p);
  void* big = spaces_malloc(300000);  // (above the medium classes: a large run)
  uintptr_t head = reinterpret_cast<uintptr_t>(head_of(big));  // (a large block's: not coloured)
  EXPECT_TRUE(pagemap_is_head(head));
  // the byte the free fast path and slab_find test says the same as the bit
  EXPECT_EQ(pagemap_back(pagemap_leaf(head), head), kBackHead);
  EXPECT_EQ(slab_find(big), reinterpret_cast<Slab*>(head));
  spaces_free(big);
  EXPECT_FALSE(pagemap_is_head(head)) << "a freed large block's head bit must clear";
  EXPECT_EQ(pagemap_back(pagemap_leaf(head), head), 0) << "and its head byte";
  HandlerScope h;
  spaces_free(big);  // (a double free: the byte is clear, so it is reported, never followed)
  EXPECT_EQ(g_caught.count, 1);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
}

// A medium slab's later granules hold how far back their head is, its head granule the head
// mark (the free fast path's byte); slab_find follows them; all go back to 0 when the slab
// returns to its arena, so a stale pointer into the run is never taken for a block.
TEST(PageMap, MediumSlabGranulesLeadBackToTheirHead) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  spaces_collect(1);
  std::vector<void*> v;
  void* past = nullptr;  // a block past its slab's first granule
  for (int i = 0; i < 16 && past == nullptr; i++) {
    void* p = spaces_malloc(90000);  // (88 KiB class: not MediumCache's 104 KiB, whose slab a test
                                     //  leaves a damaged block in when all run in one process)
    ASSERT_NE(p, nullptr);
    v.push_back(p);
    uintptr_t g = (reinterpret_cast<uintptr_t>(p) - 1) & ~kSlabMask;
    if (pagemap_back(pagemap_leaf(g), g) != kBackSlab) past = p;
  }
  ASSERT_NE(past, nullptr) << "16 blocks of 90 000 B all began in a slab's first granule";
  uintptr_t g = (reinterpret_cast<uintptr_t>(past) - 1) & ~kSlabMask;
  Slab* s = slab_find(past);
  ASSERT_NE(s, nullptr);
  uintptr_t h = slab_base(s);  // (its first granule: the header is coloured)
  ASSERT_EQ(s->kind, kSlabSmall);
  EXPECT_EQ(s, slab_at(h));
  EXPECT_EQ(pagemap_back(pagemap_leaf(g), g), (g - h) >> kSlabShift);
  EXPECT_EQ(pagemap_back(pagemap_leaf(h), h), kBackSlab);
  unsigned granules = g_classes.granules[s->cls];
  ASSERT_GT(granules, (g - h) >> kSlabShift);
  for (void* p : v) spaces_free(p);
  spaces_collect(1);  // (the emptied slab leaves the heap's caches for its arena)
  ASSERT_FALSE(pagemap_is_head(h)) << "the emptied medium slab went back to its arena";
  for (unsigned i = 0; i < granules; i++) {
    uintptr_t gi = h + (uintptr_t(i) << kSlabShift);
    EXPECT_EQ(pagemap_back(pagemap_leaf(gi), gi), 0) << "granule " << i;
  }
  EXPECT_EQ(slab_find(past), nullptr);
}
