#include "test_internal.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <map>
#include <set>
#include <thread>
#include <vector>

TEST(Heap, FirstAllocationGivesTheThreadAHeap) {
  std::thread([] {
    EXPECT_EQ(t_heap, &g_empty_heap);
    void* p = spaces_malloc(24);
    ASSERT_NE(p, nullptr);
    EXPECT_NE(t_heap, &g_empty_heap);
    EXPECT_EQ(slab_of(p)->owner, t_heap);
    spaces_free(p);
  }).join();
}

// A new thread heap is carved from freshly mapped (zero) memory and its arrays that start out
// zero are not written: the medium cache's pages stay out of RSS until a medium block is cached.
TEST(Heap, ANewHeapsMediumCachePagesAreNotTouched) {
  spaces_free(spaces_malloc(16));
  size_t before = heap_totals().heaps;
  size_t pages = 0, resident = 0;
  std::thread([&] {
    spaces_free(spaces_malloc(16));
    Heap* made = t_home_heap;
    uintptr_t lo = (reinterpret_cast<uintptr_t>(&made->mcache[0]) + kPageSize - 1) & ~uintptr_t(kPageSize - 1);
    uintptr_t hi = reinterpret_cast<uintptr_t>(&made->mcache[kNumMediumClasses]) & ~uintptr_t(kPageSize - 1);
    if (lo >= hi) return;
    std::vector<unsigned char> v((hi - lo) / kPageSize);
    if (mincore(reinterpret_cast<void*>(lo), hi - lo, v.data()) != 0) return;
    pages = v.size();
    for (unsigned char c : v) resident += c & 1;
  }).join();
  if (heap_totals().heaps != before + 1) GTEST_SKIP() << "the thread reused a pooled heap";
  ASSERT_GE(pages, 1u) << "the cache spans whole pages";
  EXPECT_EQ(resident, 0u) << "of " << pages << " pages of the new heap's medium cache";
}

TEST(Heap, SameThreadFreeIsReusedFirst) {
  void* a = spaces_malloc(100);
  spaces_free(a);
  void* b = spaces_malloc(100);
  EXPECT_EQ(a, b);
  spaces_free(b);
}

TEST(Heap, FullSlabsComeBackThroughRemoteFrees) {
  // Fill several slabs of one class, free everything from another thread, and check the owner
  // reuses those blocks instead of taking new slabs.
  std::vector<void*> blocks;
  for (int i = 0; i < 20000; i++) blocks.push_back(spaces_malloc(200));
  std::set<void*> first(blocks.begin(), blocks.end());
  std::thread([&] {
    for (void* p : blocks) spaces_free(p);
  }).join();
  size_t reused = 0;
  std::vector<void*> again;
  for (int i = 0; i < 20000; i++) {
    void* p = spaces_malloc(200);
    reused += first.count(p);
    again.push_back(p);
  }
  EXPECT_GT(reused, 19000u) << "remotely freed blocks must be reused by the owner";
  for (void* p : again) spaces_free(p);
}

TEST(Heap, ExitedThreadHeapIsReusedByTheNextThread) {
  Heap* first = nullptr;
  std::thread([&] {
    spaces_free(spaces_malloc(16));
    first = t_heap;
  }).join();
  Heap* second = nullptr;
  std::thread([&] {
    spaces_free(spaces_malloc(16));
    second = t_heap;
  }).join();
  EXPECT_EQ(first, second);
}

// An exited thread's heap goes to the pool of abandoned heaps, slabs and live blocks with it (a
// thread takes a pooled heap before a new one is made). Its blocks, freed by another thread, go
// back to their slabs as remote frees, and spaces_collect(1) hands the emptied slabs to the arenas
// while the heap itself stays pooled (heaps are recycled, never freed).
TEST(Heap, BlocksOfExitedThreadsCanBeFreedAnywhere) {
  spaces_collect(1);  // (the pooled heaps keep only slabs with live blocks)
  struct spaces_stats base = stats_now();
  std::vector<void*> blocks;
  std::thread([&] {
    for (int i = 0; i < 5000; i++) {
      void* p = spaces_malloc(size_t(i % 300) + 1);
      ASSERT_NE(p, nullptr);
      memset(p, 0x5a, size_t(i % 300) + 1);
      blocks.push_back(p);
    }
  }).join();
  ASSERT_EQ(blocks.size(), 5000u);
  struct spaces_stats exited = stats_now();
  EXPECT_EQ(exited.threads_started, base.threads_started + 1);
  EXPECT_EQ(exited.heaps, base.heaps + (base.heaps_abandoned == 0 ? 1 : 0))
      << "a pooled heap is taken before a new one is made";
  EXPECT_EQ(exited.heaps_abandoned, base.heaps_abandoned == 0 ? 1 : base.heaps_abandoned)
      << "the exited thread's heap is back in the pool";
  EXPECT_GT(exited.slabs_in_use, base.slabs_in_use) << "the pooled heap keeps the slabs of its live blocks";
  for (void* p : blocks) spaces_free(p);
  spaces_collect(1);
  struct spaces_stats after = stats_now();
  EXPECT_LE(after.slabs_in_use, base.slabs_in_use) << "every slab the exited thread filled was emptied and released";
  // (a thread without a heap gets a new one at its first free of another thread's block, for
  // its batches of remote frees: free.cpp; never the pooled one)
  EXPECT_LE(after.heaps, exited.heaps + 1) << "collecting keeps the heap";
  EXPECT_EQ(after.heaps_abandoned, exited.heaps_abandoned) << "...in the pool, for the next thread";
}

TEST(Heap, EmptySlabsGoBackToTheArenas) {
  spaces_collect(1);
  struct spaces_stats before;
  before.size = sizeof before;
  spaces_stats(&before);
  std::vector<void*> blocks;
  for (int i = 0; i < 100000; i++) blocks.push_back(spaces_malloc(64));
  for (void* p : blocks) spaces_free(p);
  spaces_collect(1);
  struct spaces_stats after;
  after.size = sizeof after;
  spaces_stats(&after);
  EXPECT_LE(after.slabs_in_use, before.slabs_in_use + 2);
  EXPECT_LE(after.committed_bytes, before.committed_bytes + 4 * kSlabSize);
}

namespace {
size_t committedNow() { return stats_now().committed_bytes; }
void churn20MiB() {
  std::vector<void*> v;
  for (int i = 0; i < 320000; i++) v.push_back(spaces_malloc(64));
  for (void* p : v) spaces_free(p);
}
}  // namespace

TEST(Heap, FreeSlabsAreReturnedAfterThePurgeDelay) {
  long long old = spaces_option_get("purge_delay_ms");
  long long old_max = spaces_option_get("dirty_max_kib");
  ASSERT_EQ(spaces_option_set("dirty_max_kib", 1 << 20), 0);  // (the bound is the next test's)
  std::thread([] {  // a fresh heap, so its cache starts empty
    spaces_collect(1);
    size_t base = committedNow();
    ASSERT_EQ(spaces_option_set("purge_delay_ms", 300), 0);
    churn20MiB();
    size_t right_after = committedNow();
    EXPECT_GT(right_after, base + (size_t(10) << 20)) << "within the delay the slabs stay committed";
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    void* trigger = spaces_malloc(1 << 20);  // any arena operation runs the due purge
    spaces_free(trigger);
    EXPECT_LT(committedNow(), base + (size_t(3) << 20)) << "after the delay they are purged";
  }).join();
  std::thread([] {
    spaces_collect(1);
    size_t base = committedNow();
    ASSERT_EQ(spaces_option_set("purge_delay_ms", 0), 0);
    churn20MiB();
    EXPECT_LT(committedNow(), base + (size_t(3) << 20)) << "delay 0 purges at once";
  }).join();
  spaces_option_set("purge_delay_ms", old);
  spaces_option_set("dirty_max_kib", old_max);
}

// Dirty memory above dirty_max_kib per thread heap is purged at once, whatever the delay: a
// program that frees a lot in a burst does not keep it resident for the whole delay.
TEST(Heap, DirtyMemoryAboveTheBoundIsPurgedAtOnce) {
  long long old = spaces_option_get("purge_delay_ms");
  long long old_max = spaces_option_get("dirty_max_kib");
  std::thread([] {
    spaces_collect(1);
    ASSERT_EQ(spaces_option_set("purge_delay_ms", 3600000), 0);  // (never within this test)
    ASSERT_EQ(spaces_option_set("dirty_max_kib", 1024), 0);
    size_t base = committedNow();
    churn20MiB();
    spaces_collect(0);  // (gives the heap's empty slabs back to the arenas, purges nothing due)
    struct spaces_stats st = stats_now();
    size_t limit = (size_t(1) << 20) * (st.heaps ? st.heaps : 1);  // (per thread heap)
    EXPECT_LE(st.slabs_cached * 65536, limit) << "dirty slabs above the bound are purged";
    EXPECT_LT(committedNow(), base + limit + (size_t(2) << 20));
  }).join();
  spaces_option_set("purge_delay_ms", old);
  spaces_option_set("dirty_max_kib", old_max);
}

// ...except a region's (chunk_huge_pages arenas): its memory is most likely taken again by the
// next region, and purging it piecemeal would split its huge pages. It waits for the delay.
TEST(Heap, ARegionsFreedSlabsWaitForTheDelayNotTheBound) {
  long long old = spaces_option_get("purge_delay_ms");
  long long old_max = spaces_option_get("dirty_max_kib");
  long long old_huge = spaces_option_get("chunk_huge_pages");
  std::thread([] {
    spaces_collect(1);
    ASSERT_EQ(spaces_option_set("purge_delay_ms", 3600000), 0);
    ASSERT_EQ(spaces_option_set("dirty_max_kib", 1024), 0);
    ASSERT_EQ(spaces_option_set("chunk_huge_pages", 1), 0);
    size_t base = committedNow();
    SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
    ASSERT_NE(c, nullptr);
    for (int i = 0; i < 320000; i++) ASSERT_NE(spaces_chunk_alloc(c, 64, 0), nullptr);
    spaces_chunk_destroy(c);
    void* trigger = spaces_malloc(1 << 20);  // (an arena operation: would purge above the bound)
    spaces_free(trigger);
    EXPECT_GT(committedNow(), base + (size_t(15) << 20)) << "the region's slabs stay committed";
    c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);  // the next region takes them warm
    for (int i = 0; i < 320000; i++) ASSERT_NE(spaces_chunk_alloc(c, 64, 0), nullptr);
    EXPECT_LT(committedNow(), base + (size_t(30) << 20)) << "reused, not mapped again";
    spaces_chunk_destroy(c);
    spaces_collect(1);
    EXPECT_LT(committedNow(), base + (size_t(3) << 20)) << "spaces_collect(1) purges them";
  }).join();
  spaces_option_set("purge_delay_ms", old);
  spaces_option_set("dirty_max_kib", old_max);
  spaces_option_set("chunk_huge_pages", old_huge);
}

// Malloc does not count a current slab's blocks (internal.h, Slab::used): the count is made exact
// when the slab stops being current, so a full slab left behind empties (and is released) on the
// free of its last block, and the current slab's blocks are counted from its free list.
TEST(Heap, ASlabLeftBehindIsCountedExactlyAndEmptiesOnItsLastFree) {
  spaces_collect(1);  // (the heap's empty-slab cache: none)
  std::map<Slab*, std::vector<void*>> by_slab;  // slabs whose every block is ours (fresh ones)
  std::vector<Slab*> order;
  std::vector<void*> other;  // blocks of slabs other allocations of the class use too
  while (by_slab.size() < 3) {
    void* p = spaces_malloc(64);
    Slab* s = slab_find(p);
    if (by_slab.find(s) == by_slab.end()) {
      if (reinterpret_cast<uintptr_t>(p) != slab_first(s) || slab_out(s) != 1) {
        other.push_back(p);
        continue;
      }
      order.push_back(s);
    }
    by_slab[s].push_back(p);
  }
  Heap* h = t_home_heap;
  unsigned cls = class_of(64);
  Slab* cur = order.back();
  for (int i = 0; i < 9; i++) by_slab[cur].push_back(spaces_malloc(64));
  ASSERT_EQ(h->cur[cls], cur);
  for (void* p : by_slab[cur]) ASSERT_EQ(slab_find(p), cur);
  EXPECT_EQ(slab_out(cur), by_slab[cur].size()) << "the current slab's blocks, from its free list";
  for (size_t k = 0; k + 1 < order.size(); k++) {
    Slab* s = order[k];
    EXPECT_EQ(s->used, by_slab[s].size()) << "slab " << k << " stopped being current: exact";
    for (void* p : by_slab[s]) spaces_free(p);
    EXPECT_EQ(s->used, 0u);
    bool cached = false;
    for (Slab* e = h->empty; e; e = e->next) cached = cached || e == s;
    EXPECT_TRUE(cached) << "slab " << k << " released to the heap's cache on its last free";
  }
  // Local frees and mallocs on the current slab leave `used` low; a full sweep makes it exact.
  for (int i = 0; i < 3; i++) spaces_free(by_slab[cur][i]);
  for (int i = 0; i < 3; i++) by_slab[cur][i] = spaces_malloc(64);
  spaces_collect(1);
  if (h->cur[cls] == cur) EXPECT_EQ(cur->used, by_slab[cur].size() + 1) << "exact, plus the phantom";
  for (void* p : by_slab[cur]) spaces_free(p);
  for (void* p : other) spaces_free(p);
}

// The census (spaces_mallinfo) counts a current slab's blocks from its free list (malloc does not
// count them in `used`): exact for the caller's own heap, through local frees and mallocs.
TEST(Heap, TheCensusCountsACurrentSlabsBlocksExactly) {
  auto live = [] {
    struct spaces_mallinfo mi;
    EXPECT_EQ(spaces_mallinfo(&mi), 0);
    return mi.uordblks;
  };
  size_t before = live();
  std::vector<void*> v;
  for (int i = 0; i < 100; i++) v.push_back(spaces_malloc(48));
  EXPECT_EQ(live(), before + 100 * 48);
  for (int i = 0; i < 30; i++) spaces_free(v[i]);
  EXPECT_EQ(live(), before + 70 * 48);
  for (int i = 0; i < 30; i++) v[i] = spaces_malloc(48);
  EXPECT_EQ(live(), before + 100 * 48);
  for (void* p : v) spaces_free(p);
  EXPECT_EQ(live(), before);
}

// A thread exits while its current slab still has free blocks on its list (its `used` is not
// exact: malloc does not count) and live blocks out; its heap waits in the pool. A full collect
// makes the count exact (heap_sweep), so when the last blocks come back from another thread
// the next full collect gives the slab back, and not before.
TEST(Heap, AnExitedThreadsCurrentSlabGoesBackAfterItsLastRemoteFree) {
  std::vector<void*> live;
  Slab* s = nullptr;
  std::thread([&] {
    std::vector<void*> mine;
    while (mine.size() < 40) {  // a fresh slab of the class: every block of it ours
      void* p = spaces_malloc(208);
      Slab* at = slab_find(p);
      if (at != s) {
        for (void* q : mine) spaces_free(q);
        mine.clear();
        s = reinterpret_cast<uintptr_t>(p) == slab_first(at) && slab_out(at) == 1 ? at : nullptr;
        if (s == nullptr) continue;  // (blocks of slabs other allocations share are left: leak)
      }
      mine.push_back(p);
    }
    for (int i = 0; i < 10; i++) spaces_free(mine[i]);  // local frees: on the current slab's list
    live.assign(mine.begin() + 10, mine.end());
  }).join();
  ASSERT_NE(s, nullptr);
  spaces_collect(1);  // the pooled heap swept whole: its current slab counted exactly
  ASSERT_EQ(slab_find(live[0]), s) << "live blocks: the slab stays";
  EXPECT_EQ(s->used, live.size() + 1) << "exact, with the phantom";
  for (void* p : live) spaces_free(p);  // remote frees (the owner heap is pooled)
  spaces_collect(1);
  EXPECT_EQ(slab_find(live[0]), nullptr) << "empty: given back to the arenas";
}

namespace {
// Freed granules stay dirty (no delay, no bound) for the scope; restored after.
struct KeepDirty {
  long long delay = option(kOpt_purge_delay_ms), bound = option(kOpt_dirty_max_kib);
  KeepDirty() {
    EXPECT_EQ(spaces_option_set("purge_delay_ms", -1), 0);
    EXPECT_EQ(spaces_option_set("dirty_max_kib", 1 << 20), 0);
  }
  ~KeepDirty() {
    spaces_option_set("purge_delay_ms", delay);
    spaces_option_set("dirty_max_kib", bound);
  }
};
// On the calling thread's heap (made here), with nothing dirty or cached from earlier tests: a
// large block of 6 granules written to their ends, then freed: [lo, hi) are now dirty granules
// in the arena, resident.
void leave_dirty_granules(uintptr_t& lo, uintptr_t& hi) {
  spaces_free(spaces_malloc(16));
  spaces_collect(1);
  const size_t big = 6 * kSlabSize - 512;
  auto* b = static_cast<unsigned char*>(spaces_malloc(big));
  ASSERT_NE(b, nullptr);
  memset(b, 0x5a, big);
  lo = reinterpret_cast<uintptr_t>(b) & ~(kSlabSize - 1);
  hi = reinterpret_cast<uintptr_t>(b) + big;
  spaces_free(b);
}
unsigned granule_resident(uintptr_t g) {  // pages of granule g present (mincore)
  unsigned char v[kSlabSize / kPageSize];
  EXPECT_EQ(mincore(reinterpret_cast<void*>(g), kSlabSize, v), 0);
  unsigned n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}
}  // namespace

// A class that needs one more slab (not a growing one) and gets a granule that a freed large
// block left dirty keeps the pages of its first block only: the rest go back to the kernel at once
// (slab_purge_past_first_block) instead of staying resident for as long as the slab lives.
TEST(Heap, AFreshSlabCutFromADirtyGranuleKeepsItsFirstBlocksPagesOnly) {
  KeepDirty keep;
  std::thread([] {
    uintptr_t lo = 0, hi = 0;
    leave_dirty_granules(lo, hi);
    std::vector<void*> live;
    Slab* fresh = nullptr;
    while (fresh == nullptr && live.size() < 1000) {  // the class's first slab of its own
      void* p = spaces_malloc(1000);
      ASSERT_NE(p, nullptr);
      live.push_back(p);
      Slab* s = slab_find(p);
      if (reinterpret_cast<uintptr_t>(p) == slab_first(s) && slab_out(s) == 1) fresh = s;
    }
    ASSERT_NE(fresh, nullptr);
    uintptr_t g = slab_base(fresh);
    ASSERT_TRUE(g >= lo && g < hi) << "the slab should reuse a granule of the freed block";
    ASSERT_FALSE(arena_thp(fresh)) << "(no purge in an arena advised huge pages; this process has too little in use for one)";
    unsigned others = 0;  // the block's other granules stay resident (dirty, free)
    for (uintptr_t o = lo + kSlabSize; o + kSlabSize <= hi; o += kSlabSize)
      if (o != g) others = std::max(others, granule_resident(o));
    EXPECT_EQ(others, kSlabSize / kPageSize);
    EXPECT_LE(granule_resident(g), 2u) << "pages past the slab's first block should have gone back";
    for (void* p : live) spaces_free(p);
  }).join();
}

// ...but a one-granule medium slab (the 9-15 KiB classes: four to seven blocks of two to four
// pages each) keeps the granule's pages: its few blocks will cover them, and purging them made a
// program that runs short threads with such blocks fault every page back each round (the
// exiting thread's cached blocks empty its slabs, which go back to the arena dirty, and the next
// thread takes them again: 9 506 faults instead of 682 in the docs' measurement).
TEST(Heap, AOneGranuleMediumSlabKeepsTheDirtyPagesItIsCutFrom) {
  KeepDirty keep;
  std::thread([] {
    uintptr_t lo = 0, hi = 0;
    leave_dirty_granules(lo, hi);
    void* p = spaces_malloc(12000);
    ASSERT_NE(p, nullptr);
    Slab* s = slab_find(p);
    ASSERT_EQ(s->kind, kSlabSmall);
    ASSERT_EQ(g_classes.granules[s->cls], 1u) << "a one-granule medium slab";
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p), slab_first(s)) << "the class's first slab, fresh";
    uintptr_t g = slab_base(s);
    ASSERT_TRUE(g >= lo && g < hi) << "the slab should reuse a granule of the freed block";
    EXPECT_EQ(granule_resident(g), kSlabSize / kPageSize) << "the granule's pages should have stayed resident";
    spaces_free(p);
  }).join();
}

// A small class that keeps needing fresh slabs (its current slab ran out, and so did the last
// one, with no slab of the heap left with room) gets its next slabs faulted in with one system
// call (os_populate): all 16 pages of such a slab are resident when its first block is handed
// out, where carving alone would have touched one. Classes that reuse their slabs do not.
TEST(Heap, AGrowingClassesFreshSlabsAreFaultedInAtOnce) {
  {  // (kernels before 5.14 have no MADV_POPULATE_WRITE: Spaces then leaves pages to fault in;
     //  an emulator may answer 0 and do nothing, hence the mincore)
    void* m = mmap(nullptr, kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    unsigned char v = 0;
    bool ok = madvise(m, kPageSize, 23 /* MADV_POPULATE_WRITE */) == 0 && mincore(m, kPageSize, &v) == 0 && (v & 1);
    munmap(m, kPageSize);
    if (!ok) GTEST_SKIP() << "the kernel has no MADV_POPULATE_WRITE";
  }
  {  // (with THP `always`, an arena's first write maps a whole 2 MiB page: granules come resident)
    std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string mode((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
    if (mode.find("[always]") != std::string::npos) GTEST_SKIP() << "transparent huge pages are `always`";
  }
  for (int populate = 1; populate >= 0; populate--) {
    SCOPED_TRACE(populate ? "populate = 1" : "populate = 0");
    ASSERT_EQ(spaces_option_set("populate", populate), 0);
    std::vector<unsigned> resident;  // per fresh slab, in the order taken: pages resident at its first block
    std::thread([&] {
      spaces_free(spaces_malloc(16));  // (the thread's heap: a pooled one starts with `growing` 0)
      EXPECT_EQ(t_home_heap->growing & (uint64_t(1) << class_of(7000)), 0u);
      spaces_collect(1);  // (purged: no granule the thread takes comes resident from earlier tests)
      std::vector<void*> live;
      Slab* last = nullptr;
      while (resident.size() < 6 && live.size() < 20000) {
        void* p = spaces_malloc(7000);
        ASSERT_NE(p, nullptr);
        live.push_back(p);
        Slab* s = slab_find(p);
        if (s == last || reinterpret_cast<uintptr_t>(p) != slab_first(s) || slab_out(s) != 1) continue;  // (not a fresh slab)
        last = s;
        unsigned char v[kSlabSize / kPageSize];
        ASSERT_EQ(mincore(reinterpret_cast<void*>(slab_base(s)), kSlabSize, v), 0);
        unsigned n = 0;
        for (unsigned char c : v) n += c & 1;
        resident.push_back(n);
      }
      for (void* p : live) spaces_free(p);
    }).join();
    spaces_option_set("populate", 1);
    ASSERT_EQ(resident.size(), 6u);
    // The first fresh slabs are carved page by page; from the third on the class is growing.
    for (size_t i = 2; i < resident.size(); i++) {
      if (populate)
        EXPECT_EQ(resident[i], kSlabSize / kPageSize) << "fresh slab " << i << " of a growing class";
      else
        EXPECT_LT(resident[i], kSlabSize / kPageSize) << "fresh slab " << i << ", option populate 0";
    }
    EXPECT_LT(resident[0], kSlabSize / kPageSize) << "a class's first fresh slab is carved page by page";
  }
}
