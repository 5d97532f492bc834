// Page boxes (pages.cpp): thread heaps' medium blocks of 16 KiB up to option medium_pages KiB,
// cut to whole pages from 1 MiB boxes shared by every class.
#include "test_internal.h"

#include <sys/mman.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace {
// Turns the boxes on (up to 256 KiB) and the medium block cache off for the test's scope (or to
// `cache` KiB), restoring both after.
struct BoxesOn {
  long long pages, cache;
  explicit BoxesOn(long long cache_kib = 0) : pages(option(kOpt_medium_pages)), cache(option(kOpt_medium_block_cache_kib)) {
    EXPECT_EQ(spaces_option_set("medium_pages", 256), 0);
    EXPECT_EQ(spaces_option_set("medium_block_cache_kib", cache_kib), 0);
  }
  ~BoxesOn() {
    spaces_collect(0);  // (the cache's blocks go back while it is still on)
    spaces_option_set("medium_pages", pages);
    spaces_option_set("medium_block_cache_kib", cache);
  }
};
// Sets option `name` (id) to value for the test's scope, restoring it however the test ends.
struct OptionScope {
  const char* name;
  long long saved;
  OptionScope(const char* n, OptionId id, long long value) : name(n), saved(option(id)) {
    EXPECT_EQ(spaces_option_set(n, value), 0) << n;
  }
  ~OptionScope() { spaces_option_set(name, saved); }
};
Slab* box_holding(void* p) {
  Slab* s = slab_find(p);
  return s != nullptr && s->kind == kSlabPages ? s : nullptr;
}
// Pages of [p, p + size) present in memory (mincore).
size_t resident_pages(void* p, size_t size) {
  std::vector<unsigned char> v(size / kPageSize);
  EXPECT_EQ(mincore(p, size, v.data()), 0);
  size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}
bool page_is_free(const PageBox* m, unsigned i) { return (m->free[i / 64] >> (i % 64)) & 1; }
unsigned page_of(void* p) {
  Slab* s = slab_find(p);
  return unsigned((reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(s)) / kPageSize);
}
}  // namespace

TEST(Pages, EveryClassFromSixteenKiBComesFromABoxOnPageBoundaries) {
  BoxesOn on;
  for (unsigned c = kNumSmallClasses; c < kNumClasses; c++) {
    size_t size = class_size(c);
    void* p = spaces_malloc(size - 100);
    ASSERT_NE(p, nullptr);
    Slab* s = slab_find(p);
    ASSERT_NE(s, nullptr);
    if (g_classes.granules[c] == 1) {  // (9-15 KiB: one-granule slabs, as before)
      EXPECT_EQ(s->kind, kSlabSmall) << "class " << c;
      spaces_free(p);
      continue;
    }
    EXPECT_EQ(s->kind, kSlabPages) << "class " << c;
    EXPECT_EQ(s->owner, t_home_heap);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kPageSize, 0u);
    EXPECT_GE(page_of(p), 1u) << "page 0 is the box's header";
    EXPECT_EQ(spaces_usable_size(p), size) << "the usable size stays the class's";
    EXPECT_EQ(box_of(s)->cls[page_of(p)], c);
    memset(p, 0x5a, size);
    spaces_free(p);
    EXPECT_EQ(box_of(s)->cls[page_of(p)], 0u);
  }
}

// Alignments above what class slots keep (128: a slab header's colour) up to a page come from a
// box, whose blocks start on pages, rather than from a large run of their own.
TEST(Pages, AlignmentsUpToAPageFromABoxAboveThat) {
  BoxesOn on;
  for (size_t align : {size_t(256), size_t(1024), size_t(4096)})
    EXPECT_EQ(aligned_block_kind(align, 50000), kSlabPages) << "align " << align;
  void* p = spaces_aligned_alloc(256, 50000);
  EXPECT_EQ(spaces_usable_size(p), class_size(medium_class_of(50000))) << "the class's usable size";
  spaces_free(p);
  EXPECT_EQ(aligned_block_kind(8192, 50000), kSlabLargeRun) << "above a page: the large path";
}

TEST(Pages, AFreedBlocksPagesServeTheNextBlockOfAnyClass) {
  BoxesOn on;
  void* keep = spaces_malloc(20000);  // (the box stays: its heap's only box is kept anyway)
  void* a = spaces_malloc(200 << 10);
  ASSERT_NE(box_holding(a), nullptr);
  Slab* s = box_holding(a);
  unsigned free_before = box_of(s)->free_pages;
  spaces_free(a);
  EXPECT_EQ(box_of(s)->free_pages, free_before + box_pages_of(medium_class_of(200 << 10)));
  // A 64 KiB and a 100 KiB block (two other classes) fit where the 200 KiB one was: first fit.
  void* b = spaces_malloc(64 << 10);
  void* c = spaces_malloc(100 << 10);
  EXPECT_EQ(b, a);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c), reinterpret_cast<uintptr_t>(a) + (64 << 10));
  spaces_free(b);
  spaces_free(c);
  spaces_free(keep);
}

TEST(Pages, BadPointersAndDoubleFreesAreReported) {
  BoxesOn on;
  HandlerScope hs;
  char* p = static_cast<char*>(spaces_malloc(40 << 10));
  void* keep = spaces_malloc(40 << 10);  // (keeps the box live after p's free)
  Slab* s = box_holding(p);
  ASSERT_NE(s, nullptr);
  spaces_free(p + 8);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE) << "a pointer inside a block";
  spaces_free(p + 3 * kPageSize);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE) << "a page-aligned pointer inside a block";
  spaces_free(reinterpret_cast<char*>(s) + kSlabHeader + 64);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE) << "the box's record";
  EXPECT_EQ(g_caught.count, 3);
  char* q = static_cast<char*>(spaces_malloc(18 << 10));  // (5 pages: 2 KiB of slack in the last)
  ASSERT_EQ(box_holding(q), s);
  spaces_free(q + (18 << 10) + 64);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE) << "past the end of a live block, in its last page";
  EXPECT_EQ(g_caught.count, 4);
  spaces_free(q);
  g_caught.count = 3;
  EXPECT_EQ(spaces_usable_size(p), 40u << 10) << "p is still live";
  spaces_free(p);
  EXPECT_EQ(g_caught.count, 3);
  spaces_free(p);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  EXPECT_EQ(g_caught.count, 4);
  EXPECT_EQ(spaces_usable_size(p), 0u);
  EXPECT_EQ(g_caught.count, 5);
  EXPECT_EQ(spaces_realloc(p, 100), nullptr);
  EXPECT_EQ(g_caught.count, 6);
  spaces_free_sized(keep, 41 << 10);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_SIZE_MISMATCH) << "larger than the block";
  spaces_free_sized(keep, 40 << 10);
  EXPECT_EQ(g_caught.count, 7);
}

TEST(Pages, ASecondFreeIsReportedFromAnyThreadAndTheBlockHandedOutOnce) {
  BoxesOn on(16384);  // (box blocks never enter the medium cache, whatever its size)
  HandlerScope hs;
  void* keep = spaces_malloc(30 << 10);
  void* p = spaces_malloc(30 << 10);
  ASSERT_NE(box_holding(p), nullptr);
  spaces_free(p);
  EXPECT_EQ(t_home_heap->mcache[medium_class_of(30 << 10) - kNumSmallClasses].n, 0u);
  spaces_free(p);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  EXPECT_EQ(g_caught.count, 1);
  std::thread([&] { spaces_free(p); }).join();
  EXPECT_EQ(g_caught.count, 2);
  void* q = spaces_malloc(30 << 10);
  EXPECT_EQ(q, p) << "first fit: the freed pages";
  void* r = spaces_malloc(30 << 10);
  EXPECT_NE(r, p) << "handed out once";
  spaces_free(r);
  spaces_free(q);
  spaces_free(keep);
}

TEST(Pages, RemoteFreesGoBackToTheOwnersBoxAndASecondOneIsReported) {
  BoxesOn on;
  HandlerScope hs;
  std::vector<void*> blocks;
  for (int i = 0; i < 12; i++) blocks.push_back(spaces_malloc(size_t(16 + 8 * i) << 10));
  Slab* s = box_holding(blocks[0]);
  ASSERT_NE(s, nullptr);
  uint32_t live = box_of(s)->live;
  std::thread([&] {
    for (void* p : blocks)
      if (box_holding(p) == s) spaces_free(p);
    spaces_free(blocks[0]);  // (already on the box's remote stack)
  }).join();
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  EXPECT_EQ(g_caught.count, 1);
  EXPECT_EQ(box_of(s)->live, live) << "remote frees count as live until the owner takes them";
  void* q = spaces_malloc(16 << 10);  // (the owner drains its notify list first)
  EXPECT_EQ(q, blocks[0]) << "the first page run is free again";
  spaces_free(q);
  for (void* p : blocks)
    if (box_holding(p) != s) spaces_free(p);
  EXPECT_EQ(g_caught.count, 1);
}

TEST(Pages, CallocZeroesReusedPagesAndReallocKeepsTheContents) {
  BoxesOn on;
  void* keep = spaces_malloc(16 << 10);
  auto* a = static_cast<unsigned char*>(spaces_malloc(96 << 10));
  memset(a, 0xff, 96 << 10);
  spaces_free(a);
  auto* z = static_cast<unsigned char*>(spaces_calloc(1, 90 << 10));
  ASSERT_EQ(z, a) << "the same pages";
  for (size_t i = 0; i < (90 << 10); i++) ASSERT_EQ(z[i], 0) << i;
  for (size_t i = 0; i < (90 << 10); i++) z[i] = (unsigned char)(i * 7);
  auto* r = static_cast<unsigned char*>(spaces_realloc(z, 200 << 10));
  ASSERT_NE(r, nullptr);
  for (size_t i = 0; i < (90 << 10); i++) ASSERT_EQ(r[i], (unsigned char)(i * 7)) << i;
  auto* r2 = static_cast<unsigned char*>(spaces_realloc(r, 20 << 10));  // (in place: its tail goes back)
  ASSERT_NE(r2, nullptr);
  for (size_t i = 0; i < (20 << 10); i++) ASSERT_EQ(r2[i], (unsigned char)(i * 7)) << i;
  spaces_free(r2);
  spaces_free(keep);
}

// realloc of a box block by its owner: it grows into the free run right after it (no copy), moves
// when a block lies there (or a lower run fits: the next test), and gives its tail pages back
// when it shrinks to less than half; the
// pages, counts and run lists stay as box_index_consistent wants them. Another thread's realloc
// moves the block.
TEST(Pages, ReallocGrowsIntoTheFreePagesAfterABlockAndShrinksInPlace) {
  BoxesOn on;
  std::thread([] {
    spaces_free(spaces_malloc(1));  // (the thread's heap)
    spaces_collect(1);
    Heap* h = t_home_heap;
    auto fill = [](void* p, size_t n, unsigned char k) { memset(p, k, n); };
    auto same = [](const void* p, size_t n, unsigned char k) {
      for (size_t i = 0; i < n; i++)
        if (static_cast<const unsigned char*>(p)[i] != k) return false;
      return true;
    };
    void* a = spaces_malloc(20000);  // 5 pages
    ASSERT_NE(box_holding(a), nullptr);
    Slab* s = box_holding(a);
    PageBox* m = box_of(s);
    unsigned i = page_of(a);
    ASSERT_TRUE(page_is_free(m, i + 5)) << "a fresh box: free pages after the block";
    unsigned free_before = m->free_pages;
    fill(a, 20000, 0x11);
    void* b = spaces_realloc(a, 100000);  // 25 pages: 20 more, from the run after it
    EXPECT_EQ(b, a) << "grown in place";
    EXPECT_TRUE(same(b, 20000, 0x11));
    EXPECT_EQ(spaces_usable_size(b), class_size(medium_class_of(100000)));
    EXPECT_EQ(m->free_pages, free_before - (box_pages_of(medium_class_of(100000)) - 5));
    EXPECT_FALSE(page_is_free(m, i + 24));
    ASSERT_TRUE(box_index_consistent(h));
    fill(b, 100000, 0x22);
    void* c = spaces_realloc(b, 40000);  // less than half: the tail goes back, in place
    EXPECT_EQ(c, a);
    EXPECT_TRUE(same(c, 40000, 0x22));
    unsigned n40 = box_pages_of(medium_class_of(40000));
    EXPECT_EQ(spaces_usable_size(c), class_size(medium_class_of(40000)));
    EXPECT_TRUE(page_is_free(m, i + n40)) << "the tail pages are free again";
    EXPECT_FALSE(page_is_free(m, i + n40 - 1));
    ASSERT_TRUE(box_index_consistent(h));
    void* d = spaces_malloc(16 << 10);  // the lowest run that fits: right after c
    ASSERT_EQ(reinterpret_cast<uintptr_t>(d), reinterpret_cast<uintptr_t>(c) + uintptr_t(n40) * kPageSize);
    void* e = spaces_realloc(c, 120000);  // no room after it: moved, contents kept
    ASSERT_NE(e, nullptr);
    EXPECT_NE(e, c);
    EXPECT_TRUE(same(e, 40000, 0x22));
    ASSERT_TRUE(box_index_consistent(h));
    fill(e, 120000, 0x33);
    void* f = nullptr;
    std::thread([&] { f = spaces_realloc(e, 160000); }).join();  // another thread's: moved
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f, e);
    EXPECT_TRUE(same(f, 120000, 0x33));
    spaces_free(f);
    spaces_free(d);
    spaces_collect(0);  // (the other thread's free of e drained)
    EXPECT_TRUE(box_index_consistent(h));
  }).join();
}

// ...but not where a run lower in the heap's boxes fits the grown size: the block moves there, as
// a malloc of that size would go there (address-ordered first fit keeps blocks packed low; growing
// in place regardless held 4-6 % more at the peak in bench/micro/realloc_loop.c with 4 and 8
// buffers).
TEST(Pages, ReallocMovesToALowerRunThatFitsRatherThanGrowInPlace) {
  BoxesOn on;
  std::thread([] {
    spaces_free(spaces_malloc(1));
    spaces_collect(1);
    Heap* h = t_home_heap;
    void* x = spaces_malloc(40000);  // 10 pages, first in a fresh box
    void* a = spaces_malloc(20000);  // 5 pages right after it, free pages after a
    ASSERT_NE(box_holding(a), nullptr);
    ASSERT_EQ(box_holding(a), box_holding(x));
    ASSERT_EQ(reinterpret_cast<uintptr_t>(a), reinterpret_cast<uintptr_t>(x) + 10 * kPageSize);
    ASSERT_TRUE(page_is_free(box_of(box_holding(a)), page_of(a) + 5));
    memset(a, 0x44, 20000);
    spaces_free(x);  // a run of 10 pages below a
    void* b = spaces_realloc(a, 30000);  // 8 pages: the lower run fits
    EXPECT_EQ(b, x) << "moved down to the lowest run that fits";
    for (size_t i = 0; i < 20000; i++) ASSERT_EQ(static_cast<unsigned char*>(b)[i], 0x44) << i;
    EXPECT_TRUE(box_index_consistent(h));
    spaces_free(b);
  }).join();
}

// The same against a model: random mallocs, frees and reallocs of box sizes by the owner, every
// block's pattern checked after each realloc and before its free, the index checked each step.
TEST(Pages, RandomReallocsKeepContentsAndTheIndex) {
  BoxesOn on;
  std::thread([] {
    spaces_free(spaces_malloc(1));
    Heap* h = t_home_heap;
    uint64_t seed = 0x2545f4914f6cdd1dull;
    auto next = [&] { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed; };
    struct B { unsigned char* p; size_t n; unsigned char k; };
    std::vector<B> live;
    auto intact = [](const B& b) {
      for (size_t i = 0; i < b.n; i += 61)
        if (b.p[i] != (unsigned char)(b.k + i)) return false;
      return b.p[b.n - 1] == (unsigned char)(b.k + b.n - 1);
    };
    auto write = [](B& b, size_t from) {
      for (size_t i = from; i < b.n; i++) b.p[i] = (unsigned char)(b.k + i);
    };
    int grown_in_place = 0, shrunk_in_place = 0, moved = 0;  // (plus reallocs that fit as they are)
    for (int step = 0; step < 4000; step++) {
      size_t size = (16 << 10) + 1 + size_t(next() % (240 << 10));
      unsigned op = unsigned(next() % 8);
      if (live.size() < 6 || (op < 3 && live.size() < 40)) {
        B b{static_cast<unsigned char*>(spaces_malloc(size)), size, (unsigned char)next()};
        ASSERT_NE(b.p, nullptr);
        write(b, 0);
        live.push_back(b);
      } else if (op < 5) {
        size_t k = size_t(next() % live.size());
        ASSERT_TRUE(intact(live[k])) << "step " << step;
        spaces_free(live[k].p);
        live[k] = live.back();
        live.pop_back();
      } else {
        B& b = live[size_t(next() % live.size())];
        size_t usable = spaces_usable_size(b.p);
        auto* q = static_cast<unsigned char*>(spaces_realloc(b.p, size));
        ASSERT_NE(q, nullptr);
        if (q != b.p) moved++;
        else if (size > usable) grown_in_place++;
        else if (size < usable / 2) shrunk_in_place++;
        size_t kept = size < b.n ? size : b.n;
        b.p = q;
        b.n = kept;
        ASSERT_TRUE(intact(b)) << "step " << step;
        b.n = size;
        write(b, kept);
      }
      ASSERT_TRUE(box_index_consistent(h)) << "step " << step;
    }
    for (B& b : live) {
      EXPECT_TRUE(intact(b));
      spaces_free(b.p);
    }
    EXPECT_TRUE(box_index_consistent(h));
    EXPECT_GT(grown_in_place, 50);
    EXPECT_GT(shrunk_in_place, 50);
    EXPECT_GT(moved, 100);
    spaces_collect(1);
  }).join();
}

TEST(Pages, EmptyBoxesGoBackAndAnExitedThreadsBoxesAreCollected) {
  BoxesOn on;
  spaces_collect(1);
  size_t base = stats_now().slabs_in_use;
  std::vector<void*> blocks;
  std::thread([&] {
    for (int i = 0; i < 30; i++) blocks.push_back(spaces_malloc(200 << 10));  // (6 boxes or more)
  }).join();
  EXPECT_GE(stats_now().slabs_in_use, base + 6 * kBoxGranules);
  for (void* p : blocks) spaces_free(p);  // (remote frees into a pooled heap's boxes)
  spaces_collect(1);
  EXPECT_LE(stats_now().slabs_in_use, base) << "every box of the exited thread's heap is back";
  // This thread: boxes beyond the last one go back as they empty.
  blocks.clear();
  for (int i = 0; i < 30; i++) blocks.push_back(spaces_malloc(200 << 10));
  for (void* p : blocks) spaces_free(p);
  EXPECT_EQ(t_home_heap->box_count, 1u);
  EXPECT_LE(stats_now().slabs_in_use, base + kBoxGranules);
  spaces_collect(1);
  EXPECT_EQ(t_home_heap->box_count, 0u);
}

TEST(Pages, CollectPurgesTheFreePagesOfTheBoxesKept) {
  BoxesOn on;
  void* keep = spaces_malloc(16 << 10);
  void* big = spaces_malloc(256 << 10);
  memset(big, 1, 256 << 10);
  Slab* s = box_holding(big);
  ASSERT_EQ(s, box_holding(keep));
  spaces_free(big);
  auto resident = [&] { return resident_pages(big, 256 << 10); };
  EXPECT_EQ(resident(), 64u) << "freed pages stay resident for the next block";
  spaces_collect(1);
  EXPECT_EQ(resident(), 0u);
  auto* z = static_cast<unsigned char*>(spaces_calloc(1, 256 << 10));
  EXPECT_EQ(static_cast<void*>(z), big);
  EXPECT_EQ(resident(), 0u) << "calloc of purged (clean) pages writes nothing";
  spaces_free(z);
  spaces_free(keep);
}

TEST(Pages, ThreadsTradingBlocksKeepEveryBlockIntact) {
  BoxesOn on;
  HandlerScope hs;
  constexpr int kThreads = 4, kRounds = 3000;
  std::vector<std::atomic<void*>> slots(64);
  for (auto& s : slots) s.store(nullptr);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++)
    ts.emplace_back([&, t] {
      uint64_t x = uint64_t(t) * 7919 + 1;
      for (int i = 0; i < kRounds; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t size = (16 << 10) + size_t(x >> 40) % (240 << 10);
        auto* p = static_cast<unsigned char*>(spaces_malloc(size));
        ASSERT_NE(p, nullptr);
        p[0] = p[size - 1] = (unsigned char)size;
        memcpy(p + 8, &size, sizeof size);
        void* old = slots[(x >> 20) % slots.size()].exchange(p);
        if (old) {
          auto* o = static_cast<unsigned char*>(old);
          size_t n;
          memcpy(&n, o + 8, sizeof n);
          ASSERT_EQ(o[0], (unsigned char)n);
          ASSERT_EQ(o[n - 1], (unsigned char)n);
          ASSERT_GE(spaces_usable_size(o), n);
          spaces_free(o);
        }
        if (i % 100 == 0) ASSERT_TRUE(box_index_consistent(t_home_heap)) << "round " << i;
      }
      ASSERT_TRUE(box_index_consistent(t_home_heap));
    });
  for (auto& t : ts) t.join();
  for (auto& s : slots) spaces_free(s.exchange(nullptr));
  EXPECT_EQ(g_caught.count, 0);
  spaces_collect(1);
}

TEST(Pages, AHeapWithAFullIndexUsesTheClassSlabsAndGivesThemBackLater) {
  BoxesOn on;
  spaces_collect(1);
  std::vector<void*> blocks;
  size_t boxed = 0, slabbed = 0;
  for (unsigned i = 0; i < 3 * kMaxBoxes + 12; i++) {  // (three 256 KiB blocks fill a box)
    void* p = spaces_malloc(256 << 10);
    ASSERT_NE(p, nullptr);
    Slab* s = slab_find(p);
    ASSERT_NE(s, nullptr);
    (s->kind == kSlabPages ? boxed : slabbed)++;
    memset(p, 7, 4096);
    blocks.push_back(p);
  }
  EXPECT_EQ(t_home_heap->box_count, kMaxBoxes);
  EXPECT_TRUE(box_index_consistent(t_home_heap));
  EXPECT_EQ(boxed, 3u * kMaxBoxes);
  EXPECT_EQ(slabbed, 12u) << "past 64 boxes the class's slabs serve it";
  for (size_t i = 0; i < blocks.size(); i += 2) spaces_free(blocks[i]);  // (every other: holes)
  EXPECT_TRUE(box_index_consistent(t_home_heap));
  for (size_t i = 1; i < blocks.size(); i += 2) spaces_free(blocks[i]);
  EXPECT_TRUE(box_index_consistent(t_home_heap));
  spaces_collect(0);  // (a thread's sweep: the class's emptied current slab goes back too)
  unsigned cls = medium_class_of(256 << 10);
  EXPECT_EQ(t_home_heap->cur[cls], &g_empty_slab) << "no stranded slab of a boxed class";
  void* q = spaces_malloc(256 << 10);
  EXPECT_EQ(slab_find(q)->kind, kSlabPages);
  spaces_free(q);
  spaces_collect(1);
}

TEST(Pages, CallocFromABoxCutFromDirtyGranulesIsZero) {
  BoxesOn on;
  std::vector<unsigned char*> blocks;
  for (int i = 0; i < 40; i++) {  // (14 boxes: most go back to the arena, dirty, when freed)
    auto* p = static_cast<unsigned char*>(spaces_malloc(256 << 10));
    memset(p, 0xa5, 256 << 10);
    blocks.push_back(p);
  }
  for (auto* p : blocks) spaces_free(p);
  blocks.clear();
  for (int i = 0; i < 40; i++) {
    auto* p = static_cast<unsigned char*>(spaces_calloc(1, 250 << 10));
    ASSERT_NE(p, nullptr);
    for (size_t k = 0; k < (250 << 10); k += 512) ASSERT_EQ(p[k], 0) << i << " " << k;
    blocks.push_back(p);
  }
  for (auto* p : blocks) spaces_free(p);
  spaces_collect(1);
}

// The heap's run lists against a model read from the boxes' page maps: every box malloc takes
// the lowest run of exactly its length if there is one, else the front of the lowest run that
// fits (first fit), or starts a new box when no run fits; after every step the lists hold
// exactly the boxes' maximal free runs (box_index_consistent).
TEST(Pages, EveryMallocTakesTheLowestExactRunElseTheLowestRunThatFits) {
  BoxesOn on;
  spaces_free(spaces_malloc(1));  // (the thread's heap exists from here)
  spaces_collect(1);
  Heap* h = t_home_heap;
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  auto next = [&] { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed; };
  // The model's choice for n pages: {bucket, address} of the best run (bucket 65: none).
  auto expect = [&](unsigned n) {  // {0 exact, 1 first fit, 65 none; the run's address}
    unsigned best = 65;
    uintptr_t at = 0, exact = 0;
    for (unsigned k = 0; k < kMaxBoxes; k++) {
      Slab* s = h->box_idx[k];
      if (s == nullptr) continue;
      const PageBox* m = box_of(s);
      for (unsigned i = 1, run = 0; i <= kBoxPages; i++) {
        bool f = i < kBoxPages && ((m->free[i / 64] >> (i % 64)) & 1);
        if (f) {
          run++;
          continue;
        }
        if (run >= n) {
          uintptr_t a = reinterpret_cast<uintptr_t>(s) + uintptr_t(i - run) * kPageSize;
          if (run == n && (exact == 0 || a < exact)) exact = a;
          if (best == 65 || a < at) best = 1, at = a;
        }
        run = 0;
      }
    }
    return exact ? std::make_pair(0u, exact) : std::make_pair(best, at);
  };
  std::vector<std::pair<void*, size_t>> live;
  int fits = 0, fresh = 0;
  size_t live_pages = 0;  // (kept to 32 boxes' worth: far from the 64-box cap, however fragmented)
  for (int step = 0; step < 6000; step++) {
    size_t size = (16 << 10) + 1 + size_t(next() % (240 << 10));
    unsigned n = box_pages_of(medium_class_of(size));
    bool grow = live.size() < 8 || (live_pages + n < 32 * (kBoxPages - 1) && next() % 16 < 9);
    if (grow) {
      auto want = expect(n);
      uint32_t boxes = h->box_count;
      void* p = spaces_malloc(size);
      ASSERT_NE(p, nullptr);
      Slab* s = box_holding(p);
      ASSERT_NE(s, nullptr) << "step " << step;
      if (want.first < 65) {
        ASSERT_EQ(reinterpret_cast<uintptr_t>(p), want.second) << "step " << step << " n " << n;
        fits++;
      } else if (h->box_count == boxes + 1) {  // (not when a pooled heap's boxes were adopted)
        ASSERT_EQ(page_of(p), 1u) << "no run fits: a new box, from its first page";
        fresh++;
      }
      live.emplace_back(p, size);
      live_pages += n;
    } else {
      size_t k = size_t(next() % live.size());
      live_pages -= box_pages_of(medium_class_of(live[k].second));
      spaces_free(live[k].first);
      live[k] = live.back();
      live.pop_back();
    }
    ASSERT_TRUE(box_index_consistent(h)) << "step " << step;
  }
  for (auto& b : live) spaces_free(b.first);
  EXPECT_TRUE(box_index_consistent(h));
  EXPECT_GT(fits, 1000);
  EXPECT_GT(fresh, 3);
  spaces_collect(1);
}

// Fork child: a dead thread may have stopped in the middle of a change to its heap's run lists
// or box index. box_after_fork rebuilds both from the boxes' page maps: here a parked thread's
// lists are scrambled as such a stop could leave them, rebuilt, and the thread then frees and
// allocates through them as usual.
TEST(Pages, AfterForkADeadThreadsRunListsAreRebuiltFromThePageMaps) {
  BoxesOn on;
  std::mutex mu;
  std::condition_variable cv;
  int phase = 0;
  Heap* theirs = nullptr;
  std::vector<void*> blocks;
  std::thread t([&] {
    for (int i = 0; i < 40; i++) blocks.push_back(spaces_malloc(size_t(16 + i % 7 * 33) << 10));
    for (size_t i = 0; i < blocks.size(); i += 3) spaces_free(blocks[i]), blocks[i] = nullptr;  // (holes)
    std::unique_lock<std::mutex> g(mu);
    theirs = t_home_heap;
    phase = 1;
    cv.notify_all();
    cv.wait(g, [&] { return phase == 2; });
    g.unlock();
    for (void* p : blocks) spaces_free(p);  // (through the rebuilt lists)
    for (int i = 0; i < 20; i++) blocks[size_t(i)] = spaces_malloc(size_t(20 + i) << 10);
    EXPECT_TRUE(box_index_consistent(t_home_heap));
    for (int i = 0; i < 20; i++) spaces_free(blocks[size_t(i)]);
  });
  {
    std::unique_lock<std::mutex> g(mu);
    cv.wait(g, [&] { return phase == 1; });
  }
  ASSERT_TRUE(box_index_consistent(theirs));
  unsigned boxes = theirs->box_count;
  ASSERT_GE(boxes, 2u);
  // As a stop in the middle of a list change or a link could leave them:
  theirs->run_head[3] = theirs->run_head[kBoxBuckets - 1];
  theirs->run_head[kBoxBuckets - 1] = 0;
  theirs->run_mask[0] = ~uint64_t(0);
  theirs->box_count = boxes + 1;
  for (unsigned k = 0; k < kMaxBoxes; k++)  // (and a box's counts, between two of its updates)
    if (Slab* s = theirs->box_idx[k]) {
      box_of(s)->free_pages = 3;
      box_of(s)->dirty_pages = 0;
      break;
    }
  EXPECT_FALSE(box_index_consistent(theirs));
  box_after_fork(theirs);
  EXPECT_TRUE(box_index_consistent(theirs));
  EXPECT_EQ(theirs->box_count, boxes);
  {
    std::lock_guard<std::mutex> g(mu);
    phase = 2;
  }
  cv.notify_all();
  t.join();
  spaces_collect(1);
}

// The free pages of a box in use go back purge_delay_ms after the first of them was freed (the
// owner's box_age, from its slow mallocs and sweeps), not only when the box empties.
TEST(Pages, FreePagesOfABoxInUseGoBackAPurgeDelayAfterTheirFree) {
  BoxesOn on;
  OptionScope delay("purge_delay_ms", kOpt_purge_delay_ms, 200);
  void* keep = spaces_malloc(16 << 10);
  void* big = spaces_malloc(256 << 10);
  ASSERT_EQ(box_holding(big), box_holding(keep));
  memset(big, 1, 256 << 10);
  auto resident = [&] { return resident_pages(big, 256 << 10); };
  // The stamp is odd (0 means none): in the coarse clock's tick of the free it is one past `now`.
  EXPECT_FALSE(box_purge_due(1000000000ull | 1, 1000000000ull, 50000000ull)) << "the tick of the free";
  EXPECT_FALSE(box_purge_due(0, 5000000000ull, 50000000ull)) << "no unpurged free";
  EXPECT_FALSE(box_purge_due(1000000001ull, 1040000000ull, 50000000ull));
  EXPECT_TRUE(box_purge_due(1000000001ull, 1050000001ull, 50000000ull));
  for (int attempt = 0; attempt < 16; attempt++) {  // (a free and an age in one clock tick, often)
    spaces_collect(1);  // (the box's other free pages purged: the free below is its first unpurged one)
    spaces_free(big);
    box_age(t_home_heap);
    ASSERT_EQ(resident(), 64u) << "freed pages stay resident for the delay (attempt " << attempt << ")";
    ASSERT_EQ(spaces_malloc(256 << 10), big);
    memset(big, 1, 256 << 10);
  }
  spaces_free(big);
  usleep(300 * 1000);
  spaces_collect(0);  // (a sweep ages the boxes, as every 4096th slow malloc does)
  EXPECT_EQ(resident(), 0u) << "a purge delay after their free";
  void* again = spaces_malloc(256 << 10);  // (the purged pages serve the next block)
  EXPECT_EQ(again, big);
  memset(again, 2, 256 << 10);
  spaces_free(again);
  ASSERT_EQ(spaces_option_set("purge_delay_ms", -1), 0);
  usleep(300 * 1000);
  box_age(t_home_heap);
  EXPECT_EQ(resident(), 64u) << "purge_delay_ms -1: never";
  spaces_free(keep);
  spaces_collect(1);
}

// Not a deadline for the whole box: at the check purge_delay_ms after a box's first dirty free,
// only the runs freed by then (by the heap's epoch, box_age) go back; a run freed after it waits
// for the next check, a delay later.
TEST(Pages, PagesFreedAfterABoxsFirstDirtyFreeWaitForTheNextCheck) {
  BoxesOn on;
  OptionScope delay("purge_delay_ms", kOpt_purge_delay_ms, 500);  // (no stall between two calls is that long)
  spaces_free(spaces_malloc(1));
  spaces_collect(1);
  void* keep = spaces_malloc(16 << 10);
  void* a = spaces_malloc(64 << 10);
  void* mid = spaces_malloc(16 << 10);
  void* b = spaces_malloc(64 << 10);
  void* tail = spaces_malloc(16 << 10);
  ASSERT_EQ(box_holding(a), box_holding(b));
  memset(a, 1, 64 << 10);
  memset(b, 1, 64 << 10);
  spaces_collect(1);  // (the box's other free pages are clean: a's free is its first dirty one)
  Heap* h = t_home_heap;
  spaces_free(a);
  box_age(h);  // (an epoch passes)
  spaces_free(b);
  EXPECT_TRUE(box_index_consistent(h));
  usleep(600 * 1000);
  box_age(h);
  EXPECT_EQ(resident_pages(a, 64 << 10), 0u) << "freed before the box's first dirty free was checked";
  EXPECT_EQ(resident_pages(b, 64 << 10), 16u) << "freed after: waits one more delay";
  usleep(600 * 1000);
  box_age(h);
  EXPECT_EQ(resident_pages(b, 64 << 10), 0u);
  EXPECT_TRUE(box_index_consistent(h));
  spaces_free(keep);
  spaces_free(mid);
  spaces_free(tail);
  spaces_collect(1);
}

// A free next to an older dirty run does not put off that run's purge: the joined run keeps
// the older stamp (a block freed next to it every delay would otherwise keep it for ever).
TEST(Pages, AFreeNextToAnOldDirtyRunKeepsItsStamp) {
  BoxesOn on;
  OptionScope delay("purge_delay_ms", kOpt_purge_delay_ms, 500);
  spaces_free(spaces_malloc(1));
  spaces_collect(1);
  void* keep = spaces_malloc(16 << 10);
  void* a = spaces_malloc(64 << 10);
  void* b = spaces_malloc(64 << 10);
  void* tail = spaces_malloc(16 << 10);
  ASSERT_EQ(box_holding(a), box_holding(b));
  ASSERT_EQ(static_cast<char*>(b), static_cast<char*>(a) + (64 << 10)) << "b right after a";
  memset(a, 1, 64 << 10);
  memset(b, 1, 64 << 10);
  spaces_collect(1);
  Heap* h = t_home_heap;
  spaces_free(a);
  box_age(h);
  spaces_free(b);  // (joins a's run, a later epoch)
  EXPECT_TRUE(box_index_consistent(h));
  usleep(600 * 1000);
  box_age(h);
  EXPECT_EQ(resident_pages(a, 64 << 10), 0u) << "a's pages go back on time";
  spaces_free(keep);
  spaces_free(tail);
  spaces_collect(1);
}

// The bound: a heap whose boxes hold more than dirty_max_kib of dirty free pages gives the
// oldest back at the next check, down to three quarters of it, whatever the purge delay says.
TEST(Pages, DirtyFreePagesAboveTheBoundGoBackAtOnceOldestFirst) {
  BoxesOn on;
  OptionScope delay("purge_delay_ms", kOpt_purge_delay_ms, 600000);
  OptionScope bound("dirty_max_kib", kOpt_dirty_max_kib, option(kOpt_dirty_max_kib));  // (set below)
  spaces_free(spaces_malloc(1));
  spaces_collect(1);
  Heap* h = t_home_heap;
  std::vector<void*> blocks;
  for (int i = 0; i < 24; i++) {  // (a live 16 KiB block between 128 KiB ones: no runs join)
    blocks.push_back(spaces_malloc(128 << 10));
    memset(blocks.back(), 1, 128 << 10);
    blocks.push_back(spaces_malloc(16 << 10));
  }
  ASSERT_EQ(spaces_option_set("dirty_max_kib", 1024), 0);
  for (size_t i = 0; i < blocks.size(); i += 2) {  // oldest first: 3 MiB of dirty free pages
    spaces_free(blocks[i]);
    box_age(h);
  }
  EXPECT_LE(h->box_dirty * kPageSize, size_t(1024) << 10) << "within the bound after every check";
  EXPECT_TRUE(box_index_consistent(h));
  EXPECT_EQ(resident_pages(blocks[0], 128 << 10), 0u) << "the oldest went first";
  EXPECT_EQ(resident_pages(blocks[blocks.size() - 2], 128 << 10), 32u) << "the newest stays";
  for (size_t i = 1; i < blocks.size(); i += 2) spaces_free(blocks[i]);
  spaces_collect(1);
}
