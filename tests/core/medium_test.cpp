// Medium size classes (9-256 KiB): slabs of several granules on thread heaps (heap.cpp,
// sizeclass.cpp), found from any block by the page map's back offsets (slab_find).
#include "test_internal.h"

#include <sys/mman.h>

#include <set>
#include <thread>
#include <vector>

namespace {
size_t slabs_in_use() { return stats_now().slabs_in_use; }
// Is p past its medium slab's first granule (no slab head at p - 1: the inline free path misses it)?
bool past_first_granule(void* p) {
  return slab_find(p) != slab_of(p);  // (slab_of: the coloured header of p - 1's granule)
}
// The index of the last block of `blocks` past its slab's first granule (-1: none)
int last_past_first_granule(const std::vector<void*>& blocks) {
  for (int i = int(blocks.size()) - 1; i >= 0; i--)
    if (past_first_granule(blocks[size_t(i)])) return i;
  return -1;
}
// Pages of [lo, hi) present in this process (mincore; both page-aligned).
size_t resident_pages(uintptr_t lo, uintptr_t hi) {
  std::vector<unsigned char> v((hi - lo) / 4096);
  if (mincore(reinterpret_cast<void*>(lo), hi - lo, v.data()) != 0) return SIZE_MAX;
  size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}
}  // namespace

TEST(Medium, EveryClassServesItsSizeFromAThreadHeapSlab) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  for (unsigned c = kNumSmallClasses; c < kNumClasses; c++) {
    size_t size = class_size(c);
    std::vector<void*> blocks;
    unsigned granules = g_classes.granules[c];
    size_t per_slab = ((size_t(granules) << kSlabShift) - kSlabHeader - kMaxColour) / size;
    for (size_t i = 0; i < per_slab + 2; i++) {  // (spills into a second slab)
      void* p = spaces_malloc(size - 100);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(spaces_usable_size(p), size) << "class " << c;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kSlotAlignMax, 0u) << "medium slots are 128-byte aligned";
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
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  HandlerScope scope;
  const size_t size = 100000;  // class 104 KiB: slabs of 8 granules
  std::vector<void*> blocks;
  for (int i = 0; i < 6; i++) blocks.push_back(spaces_malloc(size));
  int fi = last_past_first_granule(blocks);
  ASSERT_GE(fi, 0);
  void* far = blocks[size_t(fi)];  // past the slab's first granule
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
  void* other = blocks[fi == 0 ? 1 : 0];
  std::thread([&] { spaces_free_sized(other, size + 50000); }).join();
  EXPECT_EQ(g_caught.code, SPACES_ERROR_SIZE_MISMATCH);
  for (int i = 0; i < 6; i++)
    if (i != fi) spaces_free(blocks[size_t(i)]);
  EXPECT_EQ(g_caught.count, 5);
}

TEST(Medium, RemoteFreesAreReusedByTheOwner) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  for (int mixed = 0; mixed < 2; mixed++) {
    spaces_collect(1);  // (nothing cached: the blocks below come from slabs)
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
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
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

TEST(Medium, AlignedRequestsUpTo128BytesUseTheClasses) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  void* p = spaces_aligned_alloc(128, 50000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 128, 0u);
  EXPECT_EQ(slab_find(p)->kind, kSlabSmall);
  spaces_free(p);
  // (a slab's colour keeps slots 128-aligned only; boxes are off in this scope)
  EXPECT_EQ(aligned_block_kind(256, 50000), kSlabLargeRun) << "alignment above a slot's goes to the large path";
  EXPECT_EQ(aligned_block_kind(4096, 50000), kSlabLargeRun);
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

// ---- the heap's cache of freed medium blocks (internal.h, MediumCache) ----------------------
namespace {
const size_t kCacheSize = 100000;  // class 104 KiB: 4 blocks to an 8-granule slab
MediumCache& my_cache(size_t size) { return t_home_heap->mcache[medium_class_of(size) - kNumSmallClasses]; }
// bytes of live blocks in arenas, as the census counts them (spaces_mallinfo: uordblks)
size_t live_bytes() {
  struct spaces_mallinfo mi;
  EXPECT_EQ(spaces_mallinfo(&mi), 0);
  return mi.uordblks;
}
}  // namespace

TEST(MediumCache, AFreedBlockServesTheNextMallocOfItsClassWithoutTouchingItsSlab) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  spaces_collect(1);
  std::vector<void*> blocks;
  for (int i = 0; i < 8; i++) blocks.push_back(spaces_malloc(kCacheSize));
  int fi = last_past_first_granule(blocks);
  ASSERT_GE(fi, 1);
  void* far = blocks[size_t(fi)];  // past its slab's first granule: free_slow's path
  Slab* s = slab_find(far);
  ASSERT_NE(s, nullptr);
  uint32_t used = s->used;
  void* free_head = s->free;
  ASSERT_EQ(my_cache(kCacheSize).n, 0u);
  size_t live = live_bytes();
  spaces_free(far);
  EXPECT_EQ(my_cache(kCacheSize).n, 1u);
  EXPECT_EQ(t_home_heap->mcache_bytes, class_size(medium_class_of(kCacheSize)));
  EXPECT_EQ(s->used, used) << "a cached block stays counted in its slab";
  EXPECT_EQ(s->free, free_head) << "and is not on its free list";
  EXPECT_EQ(live_bytes(), live - class_size(medium_class_of(kCacheSize))) << "the census counts it free";
  void* again = spaces_malloc(kCacheSize - 1000);  // same class
  EXPECT_EQ(again, far);
  EXPECT_EQ(my_cache(kCacheSize).n, 0u);
  EXPECT_EQ(t_home_heap->mcache_bytes, 0u);
  blocks[size_t(fi)] = again;
  // A freed block read back through calloc is zero, whatever it held.
  int ci = -1;
  for (int i = 0; i < 8 && ci < 0; i++)
    if (i != fi && past_first_granule(blocks[size_t(i)])) ci = i;
  ASSERT_GE(ci, 0);
  memset(blocks[size_t(ci)], 0xAB, kCacheSize);
  spaces_free(blocks[size_t(ci)]);
  ASSERT_EQ(my_cache(kCacheSize).n, 1u);
  auto* z = static_cast<unsigned char*>(spaces_calloc(1, kCacheSize));
  ASSERT_EQ(z, blocks[size_t(ci)]);
  for (size_t i = 0; i < kCacheSize; i++) ASSERT_EQ(z[i], 0) << i;
  for (void* p : blocks) spaces_free(p);
  spaces_collect(1);
  EXPECT_EQ(my_cache(kCacheSize).n, 0u) << "spaces_collect gives cached blocks back to their slabs";
  EXPECT_EQ(t_home_heap->mcache_bytes, 0u);
  EXPECT_EQ(live_bytes(), live - 8 * class_size(medium_class_of(kCacheSize)));
}

TEST(MediumCache, ASecondFreeOfACachedBlockIsReportedFromAnyThread) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  spaces_collect(1);
  HandlerScope scope;
  std::vector<void*> blocks;
  for (int i = 0; i < 8; i++) blocks.push_back(spaces_malloc(kCacheSize));
  auto at_head = [](void* p) {  // a slab's first block: a head at p - 1, the inline free path
    return slab_find(p) == slab_of(p);
  };
  int fi = -1, ni = -1, si = -1;  // a first block, and two past their slab's first granule
  for (int i = 0; i < 8; i++) {
    if (at_head(blocks[i])) {
      if (fi < 0) fi = i;
    } else if (ni < 0) {
      ni = i;
    } else if (si < 0) {
      si = i;
    }
  }
  ASSERT_TRUE(fi >= 0 && ni >= 0 && si >= 0);
  void* far = blocks[ni];
  void* first = blocks[fi];
  spaces_free(far);
  ASSERT_EQ(my_cache(kCacheSize).n, 1u);
  spaces_free(far);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  EXPECT_EQ(g_caught.addr, far);
  EXPECT_EQ(g_caught.count, 1);
  std::thread([&] { spaces_free(far); }).join();
  EXPECT_EQ(g_caught.count, 2) << "another thread's second free is caught too";
  std::thread([&] { spaces_free_sized(far, kCacheSize); }).join();
  EXPECT_EQ(g_caught.count, 3);
  spaces_free_sized(far, kCacheSize);
  EXPECT_EQ(g_caught.count, 4) << "and a sized one";
  EXPECT_EQ(my_cache(kCacheSize).n, 1u) << "the block is cached once";
  // A sized free of a live block past the first granule is cached like a plain one.
  spaces_free_sized(blocks[si], kCacheSize);
  EXPECT_EQ(my_cache(kCacheSize).n, 2u);
  EXPECT_EQ(g_caught.count, 4);
  spaces_free(first);  // (the inline path to its slab, or the cache if the slab was full)
  EXPECT_EQ(g_caught.count, 4);
  spaces_free(first);
  EXPECT_EQ(g_caught.count, 5);
  // The three freed blocks come back, each once.
  std::set<void*> back;
  for (int i = 0; i < 3; i++) back.insert(spaces_malloc(kCacheSize));
  EXPECT_EQ(back, (std::set<void*>{first, far, blocks[si]}));
  for (void* p : blocks) spaces_free(p);
  EXPECT_EQ(g_caught.count, 5);
}

TEST(MediumCache, KeepsToItsBoundsAndTheOptionTurnsItOff) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  spaces_collect(1);
  long long old = option(kOpt_medium_block_cache_kib);
  ASSERT_EQ(spaces_option_set("medium_block_cache_kib", 1024), 0);
  size_t live = live_bytes();
  std::vector<void*> blocks;
  for (int i = 0; i < 64; i++) blocks.push_back(spaces_malloc(kCacheSize));
  for (void* p : blocks) spaces_free(p);
  size_t block = class_size(medium_class_of(kCacheSize));
  EXPECT_LE(t_home_heap->mcache_bytes, size_t(1024) << 10) << "the heap's byte bound";
  EXPECT_EQ(my_cache(kCacheSize).n, (size_t(1024) << 10) / block);
  EXPECT_EQ(live_bytes(), live) << "cached blocks are not live";
  spaces_collect(0);
  EXPECT_EQ(t_home_heap->mcache_bytes, 0u);
  ASSERT_EQ(spaces_option_set("medium_block_cache_kib", old), 0);
  // 9 KiB blocks: 16 per class at most, whatever the bytes allow
  blocks.clear();
  for (int i = 0; i < 64; i++) blocks.push_back(spaces_malloc(9000));
  for (void* p : blocks) spaces_free(p);
  EXPECT_EQ(my_cache(9000).n, kMediumCacheSlots);
  spaces_collect(0);
  EXPECT_EQ(t_home_heap->mcache_bytes, 0u);
  ASSERT_EQ(spaces_option_set("medium_block_cache_kib", 0), 0);
  blocks.clear();
  for (int i = 0; i < 8; i++) blocks.push_back(spaces_malloc(kCacheSize));
  ASSERT_GE(last_past_first_granule(blocks), 0) << "(a block the cache would have taken)";
  for (void* p : blocks) spaces_free(p);
  EXPECT_EQ(t_home_heap->mcache_bytes, 0u) << "medium_block_cache_kib=0: no cache";
  ASSERT_EQ(spaces_option_set("medium_block_cache_kib", old), 0);
}

TEST(MediumCache, AThreadsCachedBlocksGoBackToTheirSlabsWhenItExits) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  spaces_collect(1);
  size_t base = slabs_in_use();
  Heap* h = nullptr;
  std::thread([&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 12; i++) blocks.push_back(spaces_malloc(kCacheSize + size_t(i % 3) * 20000));
    for (void* p : blocks) spaces_free(p);
    h = t_home_heap;
    EXPECT_GT(h->mcache_bytes, 0u);
  }).join();
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->mcache_bytes, 0u);
  for (unsigned k = 0; k < kNumMediumClasses; k++) EXPECT_EQ(h->mcache[k].n, 0u) << k;
  spaces_collect(1);
  EXPECT_LE(slabs_in_use(), base) << "the exited thread's slabs emptied and went back";
}

TEST(MediumCache, RemoteFreesOfOtherBlocksStillEmptyASlabOnceTheCacheIsFlushed) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  // A slab whose blocks are half cached by the owner and half freed by another thread empties
  // when the owner flushes (spaces_collect): nothing is stranded.
  spaces_collect(1);
  size_t base = slabs_in_use();
  std::vector<void*> blocks;
  for (int i = 0; i < 16; i++) blocks.push_back(spaces_malloc(kCacheSize));
  for (int i = 0; i < 16; i += 2) spaces_free(blocks[i]);
  std::thread([&] {
    for (int i = 1; i < 16; i += 2) spaces_free(blocks[i]);
  }).join();
  spaces_collect(1);
  EXPECT_LE(slabs_in_use(), base);
}

TEST(MediumCache, AWriteAfterFreeIsCaughtBeforeTheBlockIsHandedOutAgain) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  spaces_collect(1);
  HandlerScope scope;
  std::vector<void*> blocks;
  for (int i = 0; i < 8; i++) blocks.push_back(spaces_malloc(kCacheSize));
  int fi = last_past_first_granule(blocks);
  ASSERT_GE(fi, 0);
  void* b = blocks[size_t(fi)];
  // Freed, then written: the next malloc of the class reports it and takes another block.
  spaces_free(b);
  ASSERT_EQ(my_cache(kCacheSize).n, 1u);
  memset(b, 0x5A, 64);
  void* next = spaces_malloc(kCacheSize);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_CORRUPTED);
  EXPECT_EQ(g_caught.addr, b);
  EXPECT_EQ(g_caught.count, 1);
  EXPECT_NE(next, b) << "a damaged block is dropped, never handed out";
  EXPECT_EQ(my_cache(kCacheSize).n, 0u);
  spaces_free(next);
  // Freed, written (so it no longer looks free), freed again: it is cached twice, and handed out
  // once; the second copy no longer holds the word the cache wrote, so it is dropped.
  int gi = -1;
  for (int i = 0; i < 8 && gi < 0; i++)
    if (i != fi && past_first_granule(blocks[size_t(i)])) gi = i;
  ASSERT_GE(gi, 0);
  void* c = blocks[size_t(gi)];
  spaces_collect(0);
  spaces_free(c);
  memset(c, 0x5A, 64);
  spaces_free(c);  // (not caught: it does not look free any more)
  EXPECT_EQ(my_cache(kCacheSize).n, 2u);
  void* first = spaces_malloc(kCacheSize);
  EXPECT_EQ(first, c);
  memset(first, 0x11, kCacheSize);
  void* second = spaces_malloc(kCacheSize);
  EXPECT_NE(second, c) << "never handed out twice";
  EXPECT_EQ(g_caught.code, SPACES_ERROR_CORRUPTED);
  EXPECT_EQ(g_caught.count, 2);
  spaces_free(first);
  spaces_free(second);
  for (int i = 0; i < 8; i++)
    if (i != fi && i != gi) spaces_free(blocks[size_t(i)]);
  EXPECT_EQ(g_caught.count, 2);
}

TEST(MediumCache, AClassUnusedForAWhileGoesBackToItsSlabs) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  spaces_collect(1);
  std::vector<void*> blocks;
  for (int i = 0; i < 8; i++) blocks.push_back(spaces_malloc(kCacheSize));
  for (void* p : blocks) spaces_free(p);
  ASSERT_GT(my_cache(kCacheSize).n, 0u);
  // Fewer slow mallocs than the age bound: still cached.
  for (int i = 0; i < 4096; i++) spaces_free(spaces_malloc(20000));
  EXPECT_GT(my_cache(kCacheSize).n, 0u);
  // Other work: as many slow mallocs of another class as the age bound, and a bit more.
  for (uint64_t i = 0; i < kMediumCacheAge + 2 * 4096; i++) spaces_free(spaces_malloc(20000));
  EXPECT_EQ(my_cache(kCacheSize).n, 0u) << "the unused class went back to its slabs";
  spaces_collect(1);
}

TEST(MediumCache, CollectFlushesTheThreadsCacheWhileItHasCapturedARegion) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  spaces_collect(1);
  std::vector<void*> blocks;
  for (int i = 0; i < 8; i++) blocks.push_back(spaces_malloc(kCacheSize));
  for (void* p : blocks) spaces_free(p);
  ASSERT_GT(t_home_heap->mcache_bytes, 0u);
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(spaces_thread_set_chunk(c), nullptr);
  ASSERT_EQ(t_heap->chunk, reinterpret_cast<Chunk*>(c)) << "captured";
  spaces_collect(0);
  EXPECT_EQ(spaces_thread_set_chunk(nullptr), c);
  EXPECT_EQ(t_home_heap->mcache_bytes, 0u) << "spaces_collect collects the thread's own heap";
  spaces_chunk_destroy(c);
}

// A medium slab cut from dirty granules (here: a large block's, written whole, then freed) gives
// the pages past its first block back at once (heap_new_medium_slab): a class with one live block
// holds those pages, not the run's. The blocks carved later read as fresh memory.
TEST(Medium, ASlabCutFromDirtyGranulesKeepsOnlyItsFirstBlockResident) {
  MediumSlabsScope slabs;  // (the slab path: page boxes are the default)
  spaces_collect(1);  // (pooled heaps' empty slabs and earlier tests' dirty runs back or purged)
  long long delay = option(kOpt_purge_delay_ms), bound = option(kOpt_dirty_max_kib);
  ASSERT_EQ(spaces_option_set("purge_delay_ms", -1), 0);  // the freed run stays dirty
  ASSERT_EQ(spaces_option_set("dirty_max_kib", 1 << 20), 0);
  int checked = 0;
  std::thread([&] {  // (a thread's heap whose classes hold no slab after the collect above)
    for (size_t size : {200000, 150000, 100000, 60000, 40000, 20000}) {
      const size_t big = 1 << 20;
      void* b = spaces_malloc(big);
      ASSERT_NE(b, nullptr);
      memset(b, 0x5A, big);
      uintptr_t lo = reinterpret_cast<uintptr_t>(b) & ~kSlabMask;
      uintptr_t hi = (reinterpret_cast<uintptr_t>(b) + big + kSlabMask) & ~kSlabMask;
      spaces_free(b);
      size_t resident = resident_pages(lo + kSlabSize, hi - kSlabSize);
      ASSERT_NE(resident, SIZE_MAX) << "mincore";
      ASSERT_GE(resident, (hi - lo) / 4096 - 40) << "the run stays dirty";
      auto* p = static_cast<unsigned char*>(spaces_malloc(size));
      ASSERT_NE(p, nullptr);
      Slab* s = slab_find(p);
      ASSERT_NE(s, nullptr);
      uintptr_t sa = slab_base(s), span = slab_span(s);  // (the run; its header is coloured)
      if (sa >= lo && sa + span <= hi) {  // (the arena gave this run: dirty first, runs from the bottom)
        uintptr_t keep = (slab_first(s) - sa + s->block_size + 4095) & ~uintptr_t(4095);
        ASSERT_FALSE(arena_thp(s)) << "(the purge is off in arenas advised huge pages; this process has too little in use for one)";
        EXPECT_EQ(resident_pages(sa + keep, sa + span), 0u) << "size " << size;
        std::vector<unsigned char*> more;  // the rest of the slab's blocks: zero-filled pages, usable
        for (uint32_t i = 1; i < s->capacity; i++) {
          auto* q = static_cast<unsigned char*>(spaces_malloc(size));
          ASSERT_NE(q, nullptr);
          if (slab_find(q) == s) EXPECT_EQ(q[size - 1], 0) << "a purged page reads as zero";
          memset(q, 0x33, size);
          more.push_back(q);
        }
        for (unsigned char* q : more) spaces_free(q);
        checked++;
      }
      p[0] = 1;
      spaces_free(p);
    }
  }).join();
  spaces_collect(1);
  ASSERT_EQ(spaces_option_set("purge_delay_ms", delay), 0);
  ASSERT_EQ(spaces_option_set("dirty_max_kib", bound), 0);
  EXPECT_GT(checked, 0) << "no medium slab was cut from the freed run";
}
