// Misuse reaches the error handler with the right code (the default handler's abort is tested
// by tests/stress/invalid_free_death).
#include "test_internal.h"

#include <sys/mman.h>
#include <algorithm>
#include <thread>
#include <vector>


TEST(Errors, DoubleFreeOfASmallBlock) {
  HandlerScope h;
  void* p = spaces_malloc(32);
  void* keep = spaces_malloc(32);  // keeps the slab alive
  spaces_free(p);
  spaces_free(p);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  EXPECT_EQ(g_caught.addr, p);
  void* q = spaces_malloc(32);
  void* r = spaces_malloc(32);
  EXPECT_NE(q, r) << "a reported double free must not corrupt the free list";
  spaces_free(q);
  spaces_free(r);
  spaces_free(keep);
}

TEST(Errors, DoubleFreeFromAnotherThread) {
  HandlerScope h;
  void* p = spaces_malloc(48);
  void* keep = spaces_malloc(48);
  spaces_free(p);
  std::thread([&] { spaces_free(p); }).join();
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  spaces_free(keep);
}

TEST(Errors, DoubleFreeOfALargeBlock) {
  HandlerScope h;
  void* p = spaces_malloc(1 << 20);
  spaces_free(p);
  spaces_free(p);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
}

TEST(Errors, ForeignPointersAreInvalidFrees) {
  HandlerScope h;
  int local;
  spaces_free(&local);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
  EXPECT_EQ(g_caught.addr, &local);
  void* m = mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  g_caught = Caught();
  spaces_free(static_cast<char*>(m) + 16);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
  munmap(m, 1 << 16);
  g_caught = Caught();
  spaces_free(reinterpret_cast<void*>(~uintptr_t(0) - 100));
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
}

TEST(Errors, InteriorPointers) {
  HandlerScope h;
  char* big = static_cast<char*>(spaces_malloc(100000));
  spaces_free(big + 64);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
  spaces_free(big);
  g_caught = Caught();
  // small interior pointers are caught on the slow path (other thread)
  char* s = static_cast<char*>(spaces_malloc(128));
  std::thread([&] { spaces_free(s + 8); }).join();
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
  spaces_free(s);
}

// Pointers into the bytes before a coloured slab header (internal.h, slab_colour) are no blocks:
// free, realloc and usable_size report each, and the slab's blocks are untouched.
TEST(Errors, PointersIntoASlabsColourAreReported) {
  HandlerScope h;
  std::vector<void*> blocks;
  char* pad = nullptr;
  for (size_t size = 16; size <= 8192 && pad == nullptr; size += 16) {
    void* p = spaces_malloc(size);
    ASSERT_NE(p, nullptr);
    memset(p, 0x3c, size);
    blocks.push_back(p);
    Slab* s = slab_of(p);
    if (slab_find(p) == s && reinterpret_cast<uintptr_t>(s) - slab_base(s) >= 128)
      pad = reinterpret_cast<char*>(slab_base(s)) + 64;
  }
  ASSERT_NE(pad, nullptr) << "no slab with a colour of 128 bytes or more";
  spaces_free(pad);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
  EXPECT_EQ(g_caught.count, 1);
  EXPECT_EQ(spaces_realloc(pad, 100), nullptr);
  EXPECT_EQ(g_caught.count, 2);
  EXPECT_EQ(spaces_usable_size(pad), 0u);
  EXPECT_EQ(g_caught.count, 3);
  for (void* p : blocks) spaces_free(p);
  EXPECT_EQ(g_caught.count, 3);
}

// Frees from a thread that does not own the slab leave the inline path with the slab it found
// (free_dispatch, free.cpp): every mistake is still told apart there.
TEST(Errors, RemoteFreesOfBadPointersAreReported) {
  HandlerScope h;
  std::vector<char*> blocks;
  for (int i = 0; i < 4; i++) blocks.push_back(static_cast<char*>(spaces_malloc(64)));
  char* header = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(blocks[0]) & ~uintptr_t(0xFFFF)) + 64;
  std::thread([&] {
    spaces_free(blocks[0]);  // a remote free, fine
    EXPECT_EQ(g_caught.count, 0);
    spaces_free(blocks[0]);  // again: double free
    EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
    EXPECT_EQ(g_caught.count, 1);
    spaces_free(blocks[1] + 16);  // inside a block
    EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
    EXPECT_EQ(g_caught.count, 2);
    spaces_free(header);  // into the slab's header
    EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
    EXPECT_EQ(g_caught.count, 3);
    spaces_free(blocks[2]);
  }).join();
  EXPECT_EQ(g_caught.count, 3);
  spaces_free(blocks[1]);
  spaces_free(blocks[3]);
  EXPECT_EQ(g_caught.count, 3);
}

TEST(Errors, CorruptedFreeListIsReportedNotFollowed) {
  HandlerScope h;
  // a private class so the slab holds only our blocks
  void* a = spaces_malloc(6000);
  void* b = spaces_malloc(6000);
  spaces_free(b);
  spaces_free(a);                                   // free list: a -> b
  *static_cast<uintptr_t*>(a) = 0x4141414141414141;  // write after free
  void* x = spaces_malloc(6000);
  (void)x;
  void* y = spaces_malloc(6000);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_CORRUPTED);
  EXPECT_NE(y, nullptr);
}

#ifdef SPACES_DEBUG
constexpr int kFastPathSizeChecks = 1;  // (free.cpp: kCheckSizesOnFastPath)
#else
constexpr int kFastPathSizeChecks = 0;
#endif

TEST(Errors, FreeSizedMismatch) {
  HandlerScope h;
  void* p = spaces_malloc(100);
  std::thread([&] { spaces_free_sized(p, 5000); }).join();  // (off the fast path)
  EXPECT_EQ(g_caught.code, SPACES_ERROR_SIZE_MISMATCH);
  spaces_free_sized(p, 100);
  EXPECT_EQ(g_caught.count, 1);
}

// Sized frees share the plain free's fast path, which frees without reading the size (Debug
// builds check it there too); off it, a right (or smaller: realloc keeps blocks in place) size
// frees the block, a larger one is reported and the block stays allocated: aligned blocks, a
// thread that does not own the block, large blocks.
TEST(Errors, FreeSizedOnTheFastPathAndOff) {
  HandlerScope h;
  void* p = spaces_malloc(100);
  spaces_free_sized(p, 100);
  EXPECT_EQ(spaces_malloc(100), p) << "freed on the fast path: the next block of the class";
  spaces_free_sized(p, 40);
  EXPECT_EQ(g_caught.count, 0) << "a smaller size is legitimate";
  EXPECT_EQ(spaces_malloc(100), p);
  void* a = spaces_aligned_alloc(4096, 300);  // (an aligned slot inside a larger block: slow path)
  ASSERT_NE(a, nullptr);
  spaces_free_aligned_sized(a, 4096, 100000);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_SIZE_MISMATCH);
  EXPECT_EQ(g_caught.count, 1);
  spaces_free_aligned_sized(a, 4096, 300);
  EXPECT_EQ(g_caught.count, 1);
  std::thread([&] {
    spaces_free_sized(p, 5000);  // (a remote block: the slow path checks it)
    spaces_free_sized(p, 100);
  }).join();
  EXPECT_EQ(g_caught.count, 2);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_SIZE_MISMATCH);
  void* big = spaces_malloc(size_t(1) << 20);
  spaces_free_sized(big, (size_t(1) << 20) + 65536);
  EXPECT_EQ(g_caught.count, 3);
  spaces_free_sized(big, size_t(1) << 20);
  EXPECT_EQ(g_caught.count, 3);
  void* q = spaces_malloc(100);
  spaces_free_sized(q, 5000);  // this thread's block: the fast path, which reads no size...
  EXPECT_EQ(g_caught.count, 3 + kFastPathSizeChecks) << "...but in Debug builds";
  if (kFastPathSizeChecks) spaces_free(q);
  EXPECT_EQ(spaces_malloc(100), q) << "freed either way";
  spaces_free(q);
}

// Exclusive regions keep small blocks in bump slabs, found through start/freed bitmaps: double
// frees (same or another thread), pointers inside a block and past the bump are reported, and a
// reported mistake leaves the slab's counts alone.
TEST(Errors, BumpSlabBlocks) {
  HandlerScope h;
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  char* a = static_cast<char*>(spaces_chunk_alloc(c, 40, 0));
  char* b = static_cast<char*>(spaces_chunk_alloc(c, 100, 0));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(spaces_usable_size(a), 48u);
  EXPECT_EQ(spaces_usable_size(b), 112u);
  EXPECT_EQ(b, a + 48) << "bump slabs place blocks back to back";
  EXPECT_EQ(spaces_chunk_of(a), c);

  spaces_free(a + 16);  // inside a block
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
  EXPECT_EQ(g_caught.addr, a + 16);
  spaces_free(b + 112 + 64);  // beyond the last block handed out
  EXPECT_EQ(g_caught.code, SPACES_ERROR_INVALID_FREE);
  EXPECT_EQ(g_caught.count, 2);

  spaces_free(a);
  EXPECT_EQ(g_caught.count, 2);
  spaces_free(a);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  EXPECT_EQ(g_caught.count, 3);
  EXPECT_EQ(spaces_usable_size(a), 0u);  // reported too
  EXPECT_EQ(g_caught.count, 4);
  std::thread([&] { spaces_free(b); }).join();
  std::thread([&] { spaces_free(b); }).join();
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  EXPECT_EQ(g_caught.count, 5);

  struct spaces_chunk_stats st;
  st.size = sizeof st;
  ASSERT_EQ(spaces_chunk_stats(c, &st), 0);
  EXPECT_EQ(st.live_blocks, 0u);
  EXPECT_EQ(st.live_bytes, 0u);

  // A block of the page being filled, freed after reset (the page was retired and went back to
  // the region's cache or the arena): reported, never waited on (the reader of a page that is no
  // longer a bump page gives up), and the next allocations are unharmed.
  char* d = static_cast<char*>(spaces_chunk_alloc(c, 64, 0));
  ASSERT_NE(d, nullptr);
  spaces_chunk_reset(c);
  int before = g_caught.count;
#if !defined(__SANITIZE_ADDRESS__)  // (ASan builds report the poisoned block first)
  spaces_free(d);
  EXPECT_EQ(g_caught.count, before + 1);
  std::thread([&] { spaces_free(d); }).join();
  EXPECT_EQ(g_caught.count, before + 2);
#endif
  void* e = spaces_chunk_alloc(c, 64, 0);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(spaces_usable_size(e), 64u);
  spaces_chunk_destroy(c);
}

// realloc of a block freed already, where the realloc would otherwise keep it in place (same
// size): a small block on its slab's list or in another thread's remote batch, a medium block in
// the medium cache, a page box's block on the box's remote stack, a region's block. Each is
// reported as a double free and realloc returns NULL; no block is then handed out twice.
TEST(Errors, ReallocOfAFreedBlockIsReported) {
  HandlerScope h;
  int expected = 0;
  auto realloc_reported = [&](void* p, size_t n, const char* what) {
    EXPECT_EQ(spaces_realloc(p, n), nullptr) << what;
    EXPECT_EQ(g_caught.count, ++expected) << what;
    EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE) << what;
    // malloc_usable_size makes the same check (session 27: it returned the slot's size)
    EXPECT_EQ(spaces_usable_size(p), 0u) << what;
    EXPECT_EQ(g_caught.count, ++expected) << what;
    EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE) << what;
  };
  std::vector<void*> keep;
  for (size_t n : {size_t(48), size_t(9000)}) {
    MediumSlabsScope slabs;  // (9000: a one-granule medium slab and the medium cache)
    for (int i = 0; i < 4; i++) keep.push_back(spaces_malloc(n));
    void* p = spaces_malloc(n);
    spaces_free(p);
    realloc_reported(p, n, "freed by its own thread");
    void* q = spaces_malloc(n);
    std::thread([&] { spaces_free(q); }).join();  // (pushed to the slab's remote list at exit)
    realloc_reported(q, n, "freed by another thread");
    void* r = spaces_malloc(n);
    std::thread([&] {
      spaces_free(r);  // (in this thread's remote batch; 9000 B goes to the slab's remote stack)
      realloc_reported(r, n, "in a remote batch");
    }).join();
  }
  {  // a medium block in its heap's medium cache: freed from a full (detached) slab
    MediumSlabsScope slabs;
    std::vector<void*> v;
    for (int i = 0; i < 24; i++) v.push_back(spaces_malloc(9000));  // (7 a slab: the first ones fill)
    spaces_free(v[0]);
    ASSERT_TRUE(medium_cached(slab_find(v[0]), static_cast<Block*>(v[0]))) << "freed into the medium cache";
    realloc_reported(v[0], 9000, "in the medium cache");
    for (size_t i = 1; i < v.size(); i++) spaces_free(v[i]);
  }
  {  // an aligned block whose pointer lies inside its slot, freed
    void* a = nullptr;
    std::vector<void*> more;
    for (int i = 0; i < 64 && a == nullptr; i++) {
      void* x = spaces_aligned_alloc(256, 100);  // (past kSlotAlignMax: a slot of 384 B, p inside it)
      Slab* s = slab_find(x);
      if (s->kind == kSlabSmall && small_block_of(s, x, "test") != x) a = x;
      else more.push_back(x);
    }
    ASSERT_NE(a, nullptr) << "no aligned block inside its slot";
    spaces_free(a);
    realloc_reported(a, 100, "an aligned block, freed");
    for (void* x : more) spaces_free(x);
  }
  {  // a live block whose first word is what a free link of its slab looks like: not reported
    void* p = spaces_malloc(48);
    Slab* s = slab_find(p);
    link_set(static_cast<Block*>(p), slab_encode(s, s));
    ASSERT_TRUE(slab_block_looks_free(s, static_cast<Block*>(p)));
    EXPECT_EQ(spaces_realloc(p, 48), p) << "live: kept in place";
    EXPECT_GE(spaces_usable_size(p), 48u);
    EXPECT_EQ(g_caught.count, expected) << "not reported";
    spaces_free(p);
    EXPECT_EQ(g_caught.count, expected);
  }
  // a page box's block freed by another thread: on the box's remote stack until its owner drains it
  void* keep_box = spaces_malloc(40000);
  void* b = spaces_malloc(40000);
  std::thread([&] { spaces_free(b); }).join();
  realloc_reported(b, 40000, "a box block on the remote stack");
  std::thread([&] { realloc_reported(b, 40000, "ditto, from another thread"); }).join();
  // a region's small block
  SpacesChunk c = spaces_chunk_create(0);
  void* k = spaces_chunk_alloc(c, 64, 0);
  void* d = spaces_chunk_alloc(c, 64, 0);
  spaces_free(d);
  EXPECT_EQ(spaces_chunk_realloc(c, d, 64), nullptr);
  EXPECT_EQ(g_caught.count, ++expected);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  EXPECT_EQ(spaces_usable_size(d), 0u);
  EXPECT_EQ(g_caught.count, ++expected);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  spaces_free(k);
  spaces_chunk_destroy(c);
  // the lists are intact: nothing comes back twice
  std::vector<void*> again;
  for (int i = 0; i < 500; i++) again.push_back(spaces_malloc(48));
  for (int i = 0; i < 20; i++) again.push_back(spaces_malloc(9000));
  for (int i = 0; i < 20; i++) again.push_back(spaces_malloc(40000));
  std::sort(again.begin(), again.end());
  EXPECT_EQ(std::adjacent_find(again.begin(), again.end()), again.end()) << "a block handed out twice";
  EXPECT_EQ(g_caught.count, expected);
  for (void* x : again) spaces_free(x);
  for (void* x : keep) spaces_free(x);
  spaces_free(keep_box);
}
