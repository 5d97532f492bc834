// Regions (chunks) through the C API: allocation, free from anywhere, ceiling, walk, reset,
// destroy, capture.
#include "test_internal.h"

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace {
struct ChunkStats : ::spaces_chunk_stats {
  explicit ChunkStats(SpacesChunk c) {
    size = sizeof(spaces_chunk_stats);
    EXPECT_EQ(::spaces_chunk_stats(c, static_cast<struct spaces_chunk_stats*>(this)), 0);
  }
};
int collect(void* p, size_t n, void* arg) {
  (*static_cast<std::map<void*, size_t>*>(arg))[p] = n;
  return 0;
}
}  // namespace

TEST(Chunk, CreateRejectsUnknownFlags) {
  errno = 0;
  EXPECT_EQ(spaces_chunk_create(0x80), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(spaces_chunk_alloc(nullptr, 8, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  spaces_chunk_destroy(nullptr);  // no-op
}

TEST(Chunk, BlocksBelongToTheirChunkAndFreeAnywhere) {
  for (unsigned flags : {0u, unsigned(SPACES_CHUNK_EXCLUSIVE)}) {
    SpacesChunk c = spaces_chunk_create(flags);
    ASSERT_NE(c, nullptr);
    std::vector<void*> v;
    for (size_t n : {size_t(1), size_t(40), size_t(4000), size_t(9000), size_t(200000), size_t(6) << 20}) {
      void* p = spaces_chunk_alloc(c, n, SPACES_ZERO);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(spaces_chunk_of(p), c);
      EXPECT_GE(spaces_usable_size(p), n);
      for (size_t i = 0; i < n; i += 512) ASSERT_EQ(static_cast<char*>(p)[i], 0);
      v.push_back(p);
    }
    void* mine = spaces_malloc(40);
    EXPECT_EQ(spaces_chunk_of(mine), nullptr);
    spaces_free(mine);
    ChunkStats st(c);
    EXPECT_EQ(st.live_blocks, v.size());
    std::thread([&] {
      for (void* p : v) spaces_free(p);
    }).join();
    ChunkStats after(c);
    EXPECT_EQ(after.live_blocks, 0u);
    EXPECT_EQ(after.large_blocks, 0u);
    spaces_chunk_destroy(c);
  }
}

TEST(Chunk, CeilingIsNeverExceededAndPressureHandlerRetries) {
  SpacesChunk c = spaces_chunk_create(0);
  ASSERT_EQ(spaces_chunk_set_ceiling(c, 1 << 20), 0);
  EXPECT_EQ(spaces_chunk_ceiling(c), size_t(1) << 20);
  std::vector<void*> v;
  void* p;
  errno = 0;
  while ((p = spaces_chunk_alloc(c, 1000, 0)) != nullptr) v.push_back(p);
  EXPECT_EQ(errno, ENOMEM);
  ChunkStats st(c);
  EXPECT_LE(st.footprint, size_t(1) << 20);
  EXPECT_LE(st.peak_footprint, size_t(1) << 20);
  EXPECT_GE(st.ceiling_hits, 1u);
  EXPECT_GT(v.size(), 800u);
  struct Ctx {
    std::vector<void*>* v;
    int calls = 0;
  } ctx{&v};
  spaces_chunk_set_pressure_handler(
      c,
      [](SpacesChunk, size_t, void* arg) {
        auto* x = static_cast<Ctx*>(arg);
        x->calls++;
        for (int i = 0; i < 200 && !x->v->empty(); i++) {
          spaces_free(x->v->back());
          x->v->pop_back();
        }
        return 1;
      },
      &ctx);
  void* big = spaces_chunk_alloc(c, 1000, 0);
  EXPECT_NE(big, nullptr) << "the pressure handler freed room; the retry must succeed";
  EXPECT_EQ(ctx.calls, 1);
  spaces_chunk_destroy(c);
}

TEST(Chunk, CeilingHoldsUnderManyThreads) {
  SpacesChunk c = spaces_chunk_create(0);
  const size_t ceiling = size_t(8) << 20;
  spaces_chunk_set_ceiling(c, ceiling);
  std::atomic<bool> stop{false};
  std::atomic<size_t> max_seen{0};
  std::thread sampler([&] {
    while (!stop) {
      ChunkStats st(c);
      size_t m = max_seen;
      if (st.footprint > m) max_seen = st.footprint;
    }
  });
  std::vector<std::thread> ts;
  std::atomic<int> enomem{0};
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<void*> mine;
      for (int i = 0; i < 20000; i++) {
        size_t n = rng() % 8 == 0 ? rng() % 300000 : rng() % 2000 + 1;
        void* p = spaces_chunk_alloc(c, n, 0);
        if (p == nullptr) {
          EXPECT_EQ(errno, ENOMEM);
          enomem++;
          if (!mine.empty()) {
            spaces_free(mine.back());
            mine.pop_back();
          }
          continue;
        }
        memset(p, t, n < 64 ? n : 64);
        mine.push_back(p);
        if (rng() % 3 == 0) {
          size_t k = rng() % mine.size();
          spaces_free(mine[k]);
          mine[k] = mine.back();
          mine.pop_back();
        }
      }
      for (void* p : mine) spaces_free(p);
    });
  }
  for (auto& th : ts) th.join();
  stop = true;
  sampler.join();
  ChunkStats st(c);
  EXPECT_LE(st.peak_footprint, ceiling);
  EXPECT_LE(max_seen.load(), ceiling);
  EXPECT_GT(enomem.load(), 0) << "the workload must have reached the ceiling";
  EXPECT_EQ(st.live_blocks, 0u);
  spaces_chunk_destroy(c);
}

// A free list damaged by a write after free (a link into the slab header) ends the walk's
// reading of the list; it never indexes its bitmap with the damaged offset.
TEST(Chunk, WalkOfADamagedFreeListStaysInItsBitmap) {
  SpacesChunk c = spaces_chunk_create(0);
  std::vector<void*> v;
  for (int i = 0; i < 16; i++) v.push_back(spaces_chunk_alloc(c, 64, 0));
  Slab* s = slab_of(v[0]);
  ASSERT_EQ(s->kind, kSlabSmall);
  spaces_free(v[3]);
  std::map<void*, size_t> seen;
  EXPECT_EQ(spaces_chunk_walk(c, collect, &seen), 0);  // (the free is on the slab's list now)
  Block* b = static_cast<Block*>(v[3]);
  ASSERT_EQ(s->free, static_cast<void*>(b));
  uintptr_t saved = link_get(b);
  HandlerScope h;
  for (uintptr_t off : {uintptr_t(8), uintptr_t(kSlabHeader - 16)}) {
    link_set(b, off ^ s->key);  // the freed block's link now leads into the header
    seen.clear();
    EXPECT_EQ(spaces_chunk_walk(c, collect, &seen), 0);
    EXPECT_EQ(seen.count(v[0]), 1u);
    EXPECT_EQ(seen.count(v[3]), 0u);
  }
  link_set(b, saved);
  spaces_chunk_destroy(c);
}

TEST(Chunk, WalkSeesExactlyTheLiveBlocks) {
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  std::mt19937 rng(5);
  std::map<void*, size_t> model;
  std::vector<void*> order;
  for (int i = 0; i < 30000; i++) {
    size_t n = rng() % 50 == 0 ? rng() % 100000 + 1 : rng() % 700 + 1;
    void* p = spaces_chunk_alloc(c, n, 0);
    model[p] = n;
    order.push_back(p);
  }
  std::vector<void*> remote;
  for (size_t i = 0; i < order.size(); i += 3) {
    if (i % 2) {
      spaces_free(order[i]);
    } else {
      remote.push_back(order[i]);
    }
    model.erase(order[i]);
  }
  std::thread([&] {
    for (void* p : remote) spaces_free(p);
  }).join();
  std::map<void*, size_t> seen;
  EXPECT_EQ(spaces_chunk_walk(c, collect, &seen), 0);
  ASSERT_EQ(seen.size(), model.size());
  for (auto& kv : model) {
    auto it = seen.find(kv.first);
    ASSERT_NE(it, seen.end());
    EXPECT_GE(it->second, kv.second);
  }
  ChunkStats st(c);
  EXPECT_EQ(st.live_blocks, model.size());
  // freeing the visited block from the callback
  EXPECT_EQ(spaces_chunk_walk(c, [](void* p, size_t, void*) { spaces_free(p); return 0; }, nullptr), 0);
  ChunkStats empty(c);
  EXPECT_EQ(empty.live_blocks, 0u);
  std::map<void*, size_t> none;
  spaces_chunk_walk(c, collect, &none);
  EXPECT_TRUE(none.empty());
  spaces_chunk_destroy(c);
}

// Reset keeps as many slabs as the busiest of the last 4 rounds used (chunk_reset_keep=1, the
// default) and gives back every large block; after a large round, small rounds give its slabs
// back within 4 resets.
TEST(Chunk, ResetKeepsTheRoundsSlabsAndGivesBackTheRest) {
  const size_t keep = size_t(spaces_option_get("chunk_keep_slabs")) * kSlabSize;
  for (unsigned flags : {0u, unsigned(SPACES_CHUNK_EXCLUSIVE)}) {
    SCOPED_TRACE(flags);
    SpacesChunk c = spaces_chunk_create(flags);
    for (int i = 0; i < 200000; i++) ASSERT_NE(spaces_chunk_alloc(c, 48, 0), nullptr);
    ASSERT_NE(spaces_chunk_alloc(c, 5 << 20, 0), nullptr);
    ChunkStats full(c);
    EXPECT_GT(full.footprint, size_t(15) << 20);
    size_t slab_bytes = full.slabs * kSlabSize;
    spaces_chunk_reset(c);
    ChunkStats st(c);
    EXPECT_EQ(st.live_blocks, 0u);
    EXPECT_EQ(st.large_blocks, 0u);
    EXPECT_EQ(st.footprint, slab_bytes) << "the slabs stay, the 5 MiB block goes";
    EXPECT_EQ(st.slabs * kSlabSize, st.footprint);
    // the same round again takes no new slab
    for (int i = 0; i < 200000; i++) ASSERT_NE(spaces_chunk_alloc(c, 48, 0), nullptr);
    EXPECT_EQ(ChunkStats(c).footprint, slab_bytes);
    spaces_chunk_reset(c);
    // small rounds: a large one is among the last 4 for 3 more resets, then gone
    for (int round = 0; round < 4; round++) {
      void* again = spaces_chunk_alloc(c, 48, 0);
      EXPECT_EQ(spaces_chunk_of(again), c);
      spaces_chunk_reset(c);
      if (round < 3) EXPECT_EQ(ChunkStats(c).footprint, slab_bytes) << round;
    }
    EXPECT_LE(ChunkStats(c).footprint, keep);
    spaces_chunk_destroy(c);
  }
}

// What a round had in use at its peak counts, even when its blocks were freed (and its slabs
// emptied) before the reset: the next such round keeps them all in the region's cache.
TEST(Chunk, ResetKeepsTheRoundsPeakWhenItsBlocksWereFreedFirst) {
  SpacesChunk c = spaces_chunk_create(0);
  std::vector<void*> v;
  size_t peak = 0;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 100000; i++) v.push_back(spaces_chunk_alloc(c, 48, 0));
    peak = ChunkStats(c).slabs;
    for (void* p : v) spaces_free(p);
    v.clear();
    // (more allocations: the refills collect those frees, and the emptied slabs leave the
    // region or wait in its cache before the reset)
    for (int i = 0; i < 20000; i++) v.push_back(spaces_chunk_alloc(c, 48, 0));
    v.clear();
    spaces_chunk_reset(c);
    if (round > 0) EXPECT_EQ(ChunkStats(c).slabs, peak) << round;
  }
  spaces_chunk_destroy(c);
}

TEST(Chunk, ResetKeepOffGivesBackAllButChunkKeepSlabs) {
  long long old = spaces_option_get("chunk_reset_keep");
  ASSERT_EQ(spaces_option_set("chunk_reset_keep", 0), 0);
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  for (int i = 0; i < 200000; i++) ASSERT_NE(spaces_chunk_alloc(c, 48, 0), nullptr);
  EXPECT_GT(ChunkStats(c).footprint, size_t(8) << 20);
  spaces_chunk_reset(c);
  EXPECT_LE(ChunkStats(c).footprint, size_t(spaces_option_get("chunk_keep_slabs")) * kSlabSize);
  spaces_chunk_destroy(c);
  spaces_option_set("chunk_reset_keep", old);
}

// The slabs a reset kept count in the footprint, but never keep a block from fitting under the
// ceiling: at the ceiling the region gives its empty slabs back first.
TEST(Chunk, SlabsKeptByResetGiveWayAtTheCeiling) {
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  ASSERT_EQ(spaces_chunk_set_ceiling(c, size_t(12) << 20), 0);
  for (int i = 0; i < 150000; i++) ASSERT_NE(spaces_chunk_alloc(c, 48, 0), nullptr);
  spaces_chunk_reset(c);
  ASSERT_GT(ChunkStats(c).footprint, size_t(6) << 20);
  void* big = spaces_chunk_alloc(c, size_t(10) << 20, 0);
  ASSERT_NE(big, nullptr) << "the kept slabs were not given back at the ceiling";
  ChunkStats st(c);
  EXPECT_LE(st.footprint, size_t(12) << 20);
  EXPECT_EQ(st.ceiling_hits, 0u);
  spaces_chunk_destroy(c);
}

TEST(Chunk, FreeAfterDestroyIsReported) {
  SpacesChunk c = spaces_chunk_create(0);
  void* p = spaces_chunk_alloc(c, 64, 0);
  void* big = spaces_chunk_alloc(c, 100000, 0);
  spaces_chunk_destroy(c);
  static int code;
  code = 0;
  spaces_set_error_handler([](int e, void*, const char*, void*) { code = e; }, nullptr);
  spaces_free(big);
  EXPECT_NE(code, 0);
  code = 0;
  spaces_free(p);
  EXPECT_NE(code, 0);
  spaces_set_error_handler(nullptr, nullptr);
}

TEST(Chunk, CaptureRoutesMallocAndNests) {
  SpacesChunk a = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  SpacesChunk b = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  EXPECT_EQ(spaces_thread_set_chunk(a), nullptr);
  void* pa = spaces_malloc(100);
  EXPECT_EQ(spaces_chunk_of(pa), a);
  SpacesChunk prev = spaces_thread_set_chunk(b);
  EXPECT_EQ(prev, a);
  void* pb = spaces_malloc(100);
  void* pbig = spaces_malloc(50000);
  EXPECT_EQ(spaces_chunk_of(pb), b);
  EXPECT_EQ(spaces_chunk_of(pbig), b);
  spaces_free(pb);
  EXPECT_EQ(spaces_thread_set_chunk(prev), b);
  spaces_free(pa);
  EXPECT_EQ(spaces_thread_set_chunk(nullptr), a);
  void* mine = spaces_malloc(100);
  EXPECT_EQ(spaces_chunk_of(mine), nullptr);
  spaces_free(mine);
  SpacesChunk shared = spaces_chunk_create(0);
  errno = 0;
  spaces_thread_set_chunk(shared);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(spaces_chunk_of(mine = spaces_malloc(8)), nullptr);
  spaces_free(mine);
  spaces_chunk_destroy(shared);
  spaces_chunk_destroy(a);
  spaces_chunk_destroy(b);
}

TEST(Chunk, ReallocStaysInTheChunk) {
  SpacesChunk c = spaces_chunk_create(0);
  char* p = static_cast<char*>(spaces_chunk_alloc(c, 10, 0));
  memcpy(p, "0123456789", 10);
  p = static_cast<char*>(spaces_realloc(p, 5000));
  EXPECT_EQ(spaces_chunk_of(p), c);
  EXPECT_EQ(memcmp(p, "0123456789", 10), 0);
  p = static_cast<char*>(spaces_chunk_realloc(c, p, 300000));
  EXPECT_EQ(spaces_chunk_of(p), c);
  EXPECT_EQ(memcmp(p, "0123456789", 10), 0);
  spaces_free(p);
  spaces_chunk_destroy(c);
}

TEST(Chunk, AlignedAllocations) {
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  for (size_t a = 1; a <= (size_t(1) << 20); a <<= 1) {
    void* p = spaces_chunk_aligned_alloc(c, a, 100, 0);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % a, 0u);
    EXPECT_EQ(spaces_chunk_of(p), c);
  }
  errno = 0;
  EXPECT_EQ(spaces_chunk_aligned_alloc(c, 3, 8, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  spaces_chunk_destroy(c);
}

#if defined(__SANITIZE_ADDRESS__)
// The asan preset: memory of a destroyed or reset region is poisoned, so a use is an ASan report.
TEST(ChunkDeathTest, UseAfterDestroyIsAnAsanReport) {
  EXPECT_DEATH(
      {
        SpacesChunk c = spaces_chunk_create(0);
        volatile char* p = static_cast<char*>(spaces_chunk_alloc(c, 64, 0));
        p[0] = 1;
        spaces_chunk_destroy(c);
        p[1] = 2;
      },
      "use-after-poison");
}
TEST(ChunkDeathTest, UseAfterResetAndAfterFreeAreAsanReports) {
  EXPECT_DEATH(
      {
        SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
        volatile char* p = static_cast<char*>(spaces_chunk_alloc(c, 64, 0));
        spaces_chunk_reset(c);
        (void)p[0];
      },
      "use-after-poison");
  EXPECT_DEATH(
      {
        SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
        volatile char* p = static_cast<char*>(spaces_chunk_alloc(c, 64, 0));
        void* keep = spaces_chunk_alloc(c, 64, 0);
        (void)keep;
        spaces_free(const_cast<char*>(p));
        (void)p[0];
      },
      "use-after-poison");
}
#endif

// The counterpart of the death tests above, in every preset: blocks carved again from memory a
// reset freed are whole and separate, and in the asan preset, where the reset poisoned that
// memory, every live block is unpoisoned over its requested size (using it is no report).
TEST(Chunk, LiveRegionBlocksAreUsableAfterReset) {
  SpacesChunk c = spaces_chunk_create(0);
  ASSERT_NE(c, nullptr);
  std::vector<std::pair<unsigned char*, size_t>> blocks;
  for (int round = 0; round < 3; round++) {
    blocks.clear();
    for (int i = 0; i < 5000; i++) {
      size_t n = size_t(i % 300) + 1;
      unsigned char* p = static_cast<unsigned char*>(spaces_chunk_alloc(c, n, 0));
      ASSERT_NE(p, nullptr) << "round " << round << ", block " << i;
#if defined(__SANITIZE_ADDRESS__)
      ASSERT_EQ(__asan_region_is_poisoned(p, n), nullptr)
          << "round " << round << ", block " << i << " of " << n << " bytes is poisoned";
#endif
      memset(p, i & 0xff, n);
      blocks.emplace_back(p, n);
    }
    size_t damaged = 0;
    for (size_t i = 0; i < blocks.size(); i++)
      for (size_t k = 0; k < blocks[i].second; k++)
        if (size_t(blocks[i].first[k]) != (i & 0xff)) {
          damaged++;
          break;
        }
    EXPECT_EQ(damaged, 0u) << "round " << round << ": blocks overlap";
    spaces_chunk_reset(c);
  }
  spaces_chunk_destroy(c);
}

// The page contract of spaces.h (what TypedPool<T> is built on): a block that is the last
// SPACES_PAGE_USABLE bytes of a SPACES_PAGE_SIZE-aligned page, one page of footprint, an ordinary
// block otherwise; EINVAL for bad regions and flags.
TEST(Chunk, AllocPageKeepsThePageContract) {
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  for (int i = 0; i < 5; i++) {
    uintptr_t p = reinterpret_cast<uintptr_t>(spaces_chunk_alloc_page(c, i == 0 ? SPACES_ZERO : 0));
    ASSERT_NE(p, 0u);
    EXPECT_EQ(p & (SPACES_PAGE_SIZE - 1), SPACES_PAGE_SIZE - SPACES_PAGE_USABLE);
    EXPECT_EQ(spaces_usable_size(reinterpret_cast<void*>(p)), SPACES_PAGE_USABLE);
    EXPECT_EQ(spaces_chunk_of(reinterpret_cast<void*>(p)), c);
  }
  struct spaces_chunk_stats st;
  st.size = sizeof st;
  ASSERT_EQ(spaces_chunk_stats(c, &st), 0);
  EXPECT_EQ(st.footprint, 5u * SPACES_PAGE_SIZE);
  EXPECT_EQ(st.live_blocks, 5u);
  errno = 0;
  EXPECT_EQ(spaces_chunk_alloc_page(c, SPACES_CHUNK_EXCLUSIVE), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(spaces_chunk_alloc_page(nullptr, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  ASSERT_EQ(spaces_chunk_set_ceiling(c, 5 * SPACES_PAGE_SIZE), 0);
  errno = 0;
  EXPECT_EQ(spaces_chunk_alloc_page(c, 0), nullptr) << "at the ceiling";
  EXPECT_EQ(errno, ENOMEM);
  spaces_chunk_destroy(c);
}

// The allocation window (spaces.h): blocks taken inline are blocks like any other (usable size,
// walk, free, stats); chunks that are not EXCLUSIVE, NULL and destroyed chunks get a window that
// never has room; size 0 and sizes above the room are refused (the caller takes the call).
TEST(Chunk, WindowBlocksAreBlocksLikeAnyOther) {
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  struct spaces_window* w = spaces_chunk_window(c);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(spaces_window_alloc(w, 16), nullptr) << "a new chunk has no room until its first allocation";
  void* first = spaces_chunk_alloc(c, 24, 0);  // (opens the window)
  ASSERT_NE(first, nullptr);
  std::map<void*, size_t> model{{first, 32}};
  for (int i = 0; i < 20000; i++) {  // many pages: the window is refilled by the call
    size_t n = size_t(i % 300) + 1;
    void* p = spaces_window_alloc(w, n);
    if (p == nullptr) p = spaces_chunk_alloc(c, n, 0);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    model[p] = (n + 15) & ~size_t(15);
  }
  // A block over SPACES_WINDOW_MAX is carved from the room when it fits (one compare inline),
  // and is a block like the others.
  struct spaces_window before = *w;
  if (before.end - before.cur >= 2000) {
    void* big = spaces_window_alloc(w, 2000);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(big), before.cur);
    model[big] = 2000;
  }
  for (auto& kv : model) ASSERT_EQ(spaces_usable_size(kv.first), kv.second);
  EXPECT_EQ(spaces_window_alloc(w, 0), nullptr);
  EXPECT_EQ(spaces_window_alloc(w, SIZE_MAX), nullptr);
  EXPECT_EQ(spaces_window_alloc(w, SIZE_MAX - 20), nullptr);
  EXPECT_EQ(spaces_window_alloc(w, SPACES_PAGE_SIZE), nullptr) << "more than any page's room";
  EXPECT_EQ(ChunkStats(c).live_blocks, model.size());
  std::map<void*, size_t> seen;
  EXPECT_EQ(spaces_chunk_walk(c, collect, &seen), 0);
  EXPECT_EQ(seen, model);
  size_t k = 0;
  for (auto it = model.begin(); it != model.end(); k++) {  // free every other block
    if (k % 2) {
      spaces_free(it->first);
      it = model.erase(it);
    } else {
      ++it;
    }
  }
  seen.clear();
  EXPECT_EQ(spaces_chunk_walk(c, collect, &seen), 0);
  EXPECT_EQ(seen, model);
  spaces_chunk_reset(c);
  EXPECT_EQ(ChunkStats(c).live_blocks, 0u);
  EXPECT_EQ(spaces_window_alloc(w, 16), nullptr) << "reset closes the window";
  spaces_chunk_destroy(c);

  SpacesChunk conc = spaces_chunk_create(0);
  struct spaces_window* cw = spaces_chunk_window(conc);
  ASSERT_NE(spaces_chunk_alloc(conc, 32, 0), nullptr);
  EXPECT_EQ(spaces_window_alloc(cw, 32), nullptr) << "a concurrent chunk never has room";
  spaces_chunk_destroy(conc);
  EXPECT_EQ(spaces_window_alloc(spaces_chunk_window(nullptr), 16), nullptr);
}

// SPACES_CHUNK_UNTRACKED: the window's blocks are not marked. Everything the header promises
// for them, and that the chunk's other blocks (size classes, runs, pages) stay tracked.
TEST(Chunk, UntrackedChunksKeepTheirContract) {
  errno = 0;
  EXPECT_EQ(spaces_chunk_create(SPACES_CHUNK_UNTRACKED), nullptr) << "untracked needs exclusive";
  EXPECT_EQ(errno, EINVAL);
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE | SPACES_CHUNK_UNTRACKED);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ChunkStats(c).flags, unsigned(SPACES_CHUNK_EXCLUSIVE | SPACES_CHUNK_UNTRACKED));
  struct spaces_window* w = spaces_chunk_window(c);
  std::vector<std::pair<char*, size_t>> blocks;
  size_t bytes = 0;
  for (int i = 0; i < 30000; i++) {  // many pages: sealing an untracked page too
    size_t n = size_t(i % 200) + 1;
    void* p = spaces_window_alloc(w, n);
    if (p == nullptr) p = spaces_chunk_alloc(c, n, 0);
    ASSERT_NE(p, nullptr);
    std::memset(p, i & 0xff, n);
    blocks.emplace_back(static_cast<char*>(p), n);
    bytes += (n + 15) & ~size_t(15);
  }
  for (size_t i = 0; i < blocks.size(); i++)  // no block overlaps another
    ASSERT_EQ(static_cast<unsigned char>(blocks[i].first[blocks[i].second - 1]), i & 0xff);
  if (w->cur != 0) EXPECT_EQ(w->marks, 0u) << "an untracked window has no marks";
  void* big = spaces_chunk_alloc(c, 100000, 0);  // (a run: tracked as always)
  void* page = spaces_chunk_alloc_page(c, 0);
  ASSERT_NE(big, nullptr);
  ASSERT_NE(page, nullptr);
  ChunkStats st(c);
  EXPECT_GE(st.live_bytes, bytes + 100000 + SPACES_PAGE_USABLE);  // (up to each page's top)
  EXPECT_LE(st.live_bytes, bytes + spaces_usable_size(big) + SPACES_PAGE_USABLE);
  EXPECT_EQ(st.live_blocks, 2u) << "the bump blocks are not counted, the run and the page are";
  errno = 0;
  EXPECT_EQ(spaces_chunk_walk(c, collect, nullptr), -1);
  EXPECT_EQ(errno, ENOTSUP);
  // free: accepted and nothing happens (twice too); a pointer outside any carved part is reported
  static int code;
  code = 0;
  spaces_set_error_handler([](int e, void*, const char*, void*) { code = e; }, nullptr);
  size_t footprint = st.footprint;
  for (size_t i = 0; i < blocks.size(); i += 3) spaces_free(blocks[i].first);
  spaces_free(blocks[0].first);
  spaces_free_sized(blocks[1].first, blocks[1].second);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(spaces_usable_size(blocks[2].first), 0u) << "not known";
  EXPECT_EQ(code, 0);
  EXPECT_EQ(ChunkStats(c).footprint, footprint) << "nothing comes back before reset";
  spaces_free(blocks[4].first + 8);  // not 16-aligned: no block
  EXPECT_EQ(code, SPACES_ERROR_INVALID_FREE);
  code = 0;
  if (w->cur != 0 && w->end - w->cur >= 64) {
    spaces_free(reinterpret_cast<void*>(w->cur + 32));  // above the page's top
    EXPECT_EQ(code, SPACES_ERROR_INVALID_FREE);
    code = 0;
    spaces_free_sized(blocks.back().first, w->end - reinterpret_cast<uintptr_t>(blocks.back().first) + 16);
    EXPECT_EQ(code, SPACES_ERROR_SIZE_MISMATCH) << "larger than the rest of the page";
    code = 0;
  }
  spaces_set_error_handler(nullptr, nullptr);
  // realloc copies the old bytes (and may copy what follows them in the page)
  char* r = static_cast<char*>(spaces_realloc(blocks[5].first, 5000));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(spaces_chunk_of(r), c);
  for (size_t k = 0; k < blocks[5].second; k++) ASSERT_EQ(static_cast<unsigned char>(r[k]), 5u);
  char* r2 = static_cast<char*>(spaces_chunk_realloc(c, blocks[6].first, 3));
  ASSERT_NE(r2, nullptr);
  EXPECT_EQ(static_cast<unsigned char>(r2[2]), 6u);
  // a tracked block stays tracked through realloc: the run shrunk, and malloc under a capture
  void* small = spaces_chunk_realloc(c, big, 100);
  ASSERT_NE(small, nullptr);
  EXPECT_GE(spaces_usable_size(small), 100u) << "the run's realloc left the size classes' tracking";
  SpacesChunk prev = spaces_thread_set_chunk(c);
  void* m = spaces_malloc(100);
  void* m2 = spaces_realloc(m, 500);
  spaces_thread_set_chunk(prev);
  ASSERT_NE(m2, nullptr);
  EXPECT_EQ(spaces_chunk_of(m2), c);
  EXPECT_GE(spaces_usable_size(m2), 500u) << "a captured malloc block became untracked";
  size_t before = ChunkStats(c).live_blocks;
  spaces_free(m2);
  spaces_free(small);
  EXPECT_EQ(ChunkStats(c).live_blocks, before - 2) << "their frees free";
  // a ceiling is exact: allocation stops at it
  ASSERT_EQ(spaces_chunk_set_ceiling(c, ChunkStats(c).footprint + 4 * SPACES_PAGE_SIZE), 0);
  size_t n = 0;
  while (n < 100000 && spaces_chunk_alloc(c, 512, 0) != nullptr) n++;
  EXPECT_LT(n, 100000u) << "the ceiling stops it";
  EXPECT_GT(n, 0u);
  EXPECT_LE(ChunkStats(c).footprint, ChunkStats(c).ceiling);
  spaces_chunk_set_ceiling(c, 0);
  spaces_chunk_reset(c);
  st = ChunkStats(c);
  EXPECT_EQ(st.live_blocks, 0u);
  EXPECT_EQ(st.live_bytes, 0u);
  void* again = spaces_chunk_alloc(c, 48, 0);  // usable after reset
  ASSERT_NE(again, nullptr);
  spaces_chunk_destroy(c);
}

// Random allocations, frees, reallocs and resets in an untracked chunk, every live block filled
// with its own pattern and checked: no block overlaps another (freed bump blocks are not reused
// before a reset, frees of tracked blocks are), no error is reported, the statistics bound the
// live bytes. Frees come from another thread too, while the owner allocates.
TEST(Chunk, UntrackedChunksUnderRandomUse) {
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE | SPACES_CHUNK_UNTRACKED);
  ASSERT_NE(c, nullptr);
  static std::atomic<int> errors;
  errors = 0;
  spaces_set_error_handler([](int, void*, const char*, void*) { errors++; }, nullptr);
  struct B {
    unsigned char* p;
    size_t n;
    unsigned char v;
  };
  std::vector<B> live;
  std::mt19937_64 rng(7);
  auto fill = [](const B& b) { std::memset(b.p, b.v, b.n); };
  auto intact = [](const B& b) {
    for (size_t i = 0; i < b.n; i++)
      if (b.p[i] != b.v) return false;
    return true;
  };
  std::atomic<bool> stop{false};
  std::vector<void*> handoff;
  std::atomic<size_t> pending{0};  // handed over, not yet freed
  std::mutex mu;
  struct Joiner {  // (an ASSERT that returns early must not leave the thread joinable)
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joiner() {
      stop = true;
      if (t.joinable()) t.join();
    }
  };
  std::thread freer;
  Joiner joiner{stop, freer};
  freer = std::thread([&] {  // frees what the owner hands over (from the page being filled too)
    while (!stop.load()) {
      std::vector<void*> batch;
      {
        std::lock_guard<std::mutex> g(mu);
        batch.swap(handoff);
      }
      for (void* p : batch) {
        spaces_free(p);
        pending--;
      }
      std::this_thread::yield();
    }
  });
  for (int op = 0; op < 200000; op++) {
    unsigned r = unsigned(rng() % 100);
    if (r < 55 || live.empty()) {
      size_t n = rng() % 4 == 0 ? 1 + rng() % 3000 : 1 + rng() % 200;
      size_t align = rng() % 16 == 0 ? size_t(64) : 0;
      void* p = align ? spaces_chunk_aligned_alloc(c, align, n, 0) : spaces_chunk_alloc(c, n, 0);
      ASSERT_NE(p, nullptr);
      if (align) ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
      live.push_back(B{static_cast<unsigned char*>(p), n, static_cast<unsigned char>(rng())});
      fill(live.back());
    } else if (r < 80) {
      size_t i = rng() % live.size();
      ASSERT_TRUE(intact(live[i])) << "block " << static_cast<void*>(live[i].p) << " was overwritten";
      if (rng() % 2) {
        std::lock_guard<std::mutex> g(mu);
        pending++;
        handoff.push_back(live[i].p);
      } else {
        spaces_free(live[i].p);
      }
      live[i] = live.back();
      live.pop_back();
    } else if (r < 97) {
      size_t i = rng() % live.size();
      ASSERT_TRUE(intact(live[i]));
      size_t n = 1 + rng() % 2000;
      void* q = spaces_chunk_realloc(c, live[i].p, n);
      ASSERT_NE(q, nullptr);
      B nb{static_cast<unsigned char*>(q), n, live[i].v};
      for (size_t k = 0; k < std::min(n, live[i].n); k++) ASSERT_EQ(nb.p[k], nb.v) << "realloc lost a byte";
      fill(nb);
      live[i] = nb;
    } else if (r < 99) {
      size_t handed = pending.load();  // (only this thread adds to it)
      ChunkStats st(c);
      size_t least = 0;
      for (auto& b : live) least += b.n;
      ASSERT_GE(st.live_bytes, least);
      ASSERT_LE(st.live_blocks, live.size() + handed);
    } else if (op % 7 == 0) {
      for (auto& b : live) ASSERT_TRUE(intact(b));
      while (pending.load() != 0) std::this_thread::yield();  // (no free may follow the reset)
      spaces_chunk_reset(c);
      live.clear();
    }
  }
  while (pending.load() != 0) std::this_thread::yield();
  stop = true;
  freer.join();
  for (auto& b : live) ASSERT_TRUE(intact(b));
  EXPECT_EQ(errors.load(), 0);
  spaces_set_error_handler(nullptr, nullptr);
  spaces_chunk_destroy(c);
}

// An exclusive region's bump pages come in ascending addresses (the arena gives regions' single
// slabs from the bottom, thread heaps' from the top): a node arena then writes memory in one
// direction, which measured 5-15 % faster at a million blocks (bench/regions, docs/benchmarks.md).
TEST(Chunk, BumpPagesOfAFreshRegionAscend) {
  if (option(kOpt_chunk_huge_pages) == 0) GTEST_SKIP() << "chunk_huge_pages=0: regions share the heaps' arenas";
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  uintptr_t prev = 0;
  int up = 0, other = 0;
  for (int round = 0; round < 2; round++) {  // fresh, then after a reset (kept pages, then the arena's)
    prev = 0;
    for (int i = 0; i < 40000; i++) {  // about 40 pages
      void* p = spaces_chunk_alloc(c, 64, 0);
      ASSERT_NE(p, nullptr);
      uintptr_t page = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(SPACES_PAGE_SIZE - 1);
      if (page != prev && prev != 0) (page == prev + SPACES_PAGE_SIZE ? up : other)++;
      prev = page;
    }
    spaces_chunk_reset(c);
  }
  EXPECT_GE(up, 8 * other) << up << " pages followed the previous one, " << other << " did not";
  spaces_chunk_destroy(c);
}

// Sealing a bump page packs its start marks with AVX2 where the CPU has it, SSE2 otherwise: both
// give the same starts (walk, usable sizes, statistics), sealed page after sealed page.
// (ThreadSanitizer builds have only the scalar form: both passes take it there.)
TEST(Chunk, SealingGivesTheSameStartsWithSse2AndAvx2) {
  std::vector<int> isas{1};
  if (os_cpu_has_avx2()) isas.push_back(2);
  struct Restore {
    ~Restore() { g_marks_isa = 0; }  // (learned again at the next seal)
  } restore;
  for (int isa : isas) {
    g_marks_isa = isa;
    SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
    std::map<void*, size_t> model;
    size_t bytes = 0;
    for (int i = 0; i < 30000; i++) {  // 15 MB of 16-1008-byte blocks: about 235 pages sealed
      size_t n = size_t(i * 37 % 1000) + 1;
      void* p = spaces_chunk_alloc(c, n, 0);
      ASSERT_NE(p, nullptr);
      model[p] = (n + 15) & ~size_t(15);
      bytes += model[p];
    }
    struct spaces_chunk_stats st = ChunkStats(c);
    EXPECT_EQ(st.live_blocks, model.size()) << "isa " << isa;
    EXPECT_EQ(st.live_bytes, bytes) << "isa " << isa;
    std::map<void*, size_t> seen;
    EXPECT_EQ(spaces_chunk_walk(c, collect, &seen), 0);
    EXPECT_EQ(seen, model) << "isa " << isa;
    size_t k = 0;
    for (auto it = model.begin(); it != model.end(); k++) {
      if (k % 3 == 0) {
        EXPECT_EQ(spaces_usable_size(it->first), it->second);
        spaces_free(it->first);
        it = model.erase(it);
      } else {
        ++it;
      }
    }
    seen.clear();
    EXPECT_EQ(spaces_chunk_walk(c, collect, &seen), 0);
    EXPECT_EQ(seen, model) << "isa " << isa;
    spaces_chunk_destroy(c);
  }
}

// While the owner fills pages (and seals them: its start marks move into the page's bitmap and
// are cleared for the next page), other threads free its blocks and ask their sizes: every answer
// is exact, no block is lost, none is reported. (The readers' view of a page that is being sealed
// is re-read, as a sequence lock would; the tsan preset runs this too.)
TEST(Chunk, BlocksOfThePageBeingFilledAreFreedFromOtherThreads) {
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  constexpr int kBlocks = 200000;
  std::vector<std::atomic<void*>> handoff(kBlocks);
  for (auto& h : handoff) h.store(nullptr, std::memory_order_relaxed);
  std::atomic<int> wrong{0};
  std::thread owner([&] {
    for (int i = 0; i < kBlocks; i++) {
      size_t n = size_t(i % 7) * 16 + 16;
      void* p = spaces_chunk_alloc(c, n, 0);
      if (p == nullptr) {
        wrong++;
        return;
      }
      handoff[i].store(p, std::memory_order_release);
    }
  });
  std::vector<std::thread> freers;
  for (int t = 0; t < 2; t++)
    freers.emplace_back([&, t] {
      for (int i = t; i < kBlocks; i += 2) {
        void* p;
        while ((p = handoff[i].load(std::memory_order_acquire)) == nullptr) std::this_thread::yield();
        if (spaces_usable_size(p) != size_t(i % 7) * 16 + 16) wrong++;
        spaces_free(p);
      }
    });
  owner.join();
  for (auto& f : freers) f.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(ChunkStats(c).live_blocks, 0u);
  std::map<void*, size_t> seen;
  spaces_chunk_walk(c, collect, &seen);
  EXPECT_TRUE(seen.empty());
  spaces_chunk_destroy(c);
}

// spaces_mallinfo (mallinfo2 under the override) counts regions' blocks too: bump slabs (the
// one being filled and sealed ones) and size-class ones.
TEST(Chunk, MallinfoCountsRegionBlocks) {
  struct spaces_mallinfo before, live, after;
  ASSERT_EQ(spaces_mallinfo(&before), 0);
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  std::vector<void*> v;
  for (int i = 0; i < 20000; i++) v.push_back(spaces_chunk_alloc(c, 64, 0));    // bump slabs
  for (int i = 0; i < 100; i++) v.push_back(spaces_chunk_alloc(c, 4000, 0));    // size classes
  ASSERT_EQ(spaces_mallinfo(&live), 0);
  EXPECT_GE(live.uordblks, before.uordblks + 20000 * 64 + 100 * 4000);
  EXPECT_LE(live.uordblks, before.uordblks + 20000 * 64 + 100 * 4096 + (1u << 20));
  for (size_t i = 0; i < v.size(); i += 2) spaces_free(v[i]);
  ASSERT_EQ(spaces_mallinfo(&after), 0);
  EXPECT_LE(after.uordblks + 10000 * 64, live.uordblks) << "frees of region blocks are seen";
  spaces_chunk_destroy(c);
}
