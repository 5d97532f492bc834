#include "test_internal.h"

#include <sys/mman.h>

#include <set>
#include <thread>

namespace {
// A slab-aligned scratch region from the OS (not from a heap) so slab functions run alone.
struct ScratchSlab {
  Slab* s;
  ScratchSlab() { s = static_cast<Slab*>(os_map_aligned(kSlabSize, kSlabSize)); }
  ~ScratchSlab() { os_unmap(s, kSlabSize); }
};
// s made a slab of 64-byte blocks, its first carved batch handed out (its free list left empty)
// and counted in `used`, as a heap's refill counts them (slab_pop does not: Slab::used).
std::vector<Block*> first_batch_of_64s(Slab* s) {
  slab_init(s, nullptr, class_of(64));
  slab_extend(s);
  std::vector<Block*> blocks;
  while (slab_has_free(s)) blocks.push_back(slab_pop(s));
  s->used = slab_out(s);
  return blocks;
}
}  // namespace

// The tests below take blocks with the core's own slab_pop (internal.h), the allocation step of
// every fast path, so a change to it is tested here too.

TEST(Slab, InitCarvesLazilyAndHandsOutEveryBlockOnce) {
  ScratchSlab m;
  Slab* s = m.s;
  unsigned cls = class_of(48);
  slab_init(s, nullptr, cls);
  EXPECT_FALSE(slab_has_free(s));
  EXPECT_EQ(s->capacity, (kSlabSize - kSlabHeader) / 48);
  std::set<Block*> seen;
  for (;;) {
    if (!slab_has_free(s)) {
      if (s->bump >= slab_end(s)) break;
      slab_extend(s);
    }
    Block* b = slab_pop(s);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(seen.insert(b).second) << "block handed out twice";
    ASSERT_EQ((reinterpret_cast<uintptr_t>(b) - reinterpret_cast<uintptr_t>(s) - kSlabHeader) % 48, 0u);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(b) % 16, 0u);
  }
  EXPECT_EQ(seen.size(), s->capacity);
  EXPECT_EQ(slab_out(s), s->capacity);
  EXPECT_EQ(s->used, 0u) << "slab_pop does not count (internal.h, Slab::used)";
}

// slab_pop hands out the head of the free list and clears its link word (a live block must not
// look free), without counting it in `used` (slab_out counts it); a link that decodes to an
// offset outside the slab is refused: NULL, the slab unchanged, so that the caller's slow path
// reports the corruption.
TEST(Slab, PopTakesTheHeadAndRefusesALinkLeavingTheSlab) {
  ScratchSlab m;
  Slab* s = m.s;
  slab_init(s, nullptr, class_of(64));
  EXPECT_EQ(slab_pop(s), nullptr) << "nothing carved yet";
  slab_extend(s);
  Block* head = static_cast<Block*>(s->free);
  uint32_t used = s->used, out = slab_out(s);
  Block* b = slab_pop(s);
  EXPECT_EQ(b, head);
  EXPECT_EQ(link_get(b), 0u);
  EXPECT_FALSE(slab_block_looks_free(s, b));
  EXPECT_EQ(s->used, used);
  EXPECT_EQ(slab_out(s), out + 1);
  ASSERT_TRUE(slab_has_free(s));
  head = static_cast<Block*>(s->free);
  uintptr_t link = link_get(head);
  link_set(head, slab_encode(s, reinterpret_cast<uint8_t*>(s) + kSlabSize));  // one past the slab
  EXPECT_EQ(slab_pop(s), nullptr);
  EXPECT_EQ(s->free, static_cast<void*>(head));
  EXPECT_EQ(s->used, used);
  link_set(head, slab_encode(s, reinterpret_cast<void*>(s->bump_end)));  // just past the last block
  EXPECT_EQ(slab_pop(s), nullptr);
  EXPECT_EQ(s->free, static_cast<void*>(head));
  link_set(head, slab_encode(s, reinterpret_cast<void*>(s->bump_end - 64 + 8)));  // inside the last
  EXPECT_EQ(slab_pop(s), nullptr) << "a block that would end past the slab's last one";
  link_set(head, link);
  EXPECT_EQ(slab_pop(s), head);
  EXPECT_EQ(slab_out(s), out + 2);
  EXPECT_EQ(s->used, used);
}

// slab_out counts the blocks carved and not on the free list; a list that does not end within
// the carved count (a cycle left by a double free that raced past the checks, a link out of the
// slab) counts them all out, so a damaged slab leaks rather than goes back with live blocks.
TEST(Slab, OutCountsCarvedBlocksOffTheListAndADamagedListAsAllOut) {
  ScratchSlab m;
  Slab* s = m.s;
  std::vector<Block*> blocks = first_batch_of_64s(s);
  ASSERT_GT(blocks.size(), 4u);
  uint32_t carved = uint32_t(blocks.size());
  EXPECT_EQ(slab_out(s), carved);
  for (int i = 0; i < 3; i++) {  // three local frees, as free_fast pushes them
    link_set(blocks[i], slab_encode(s, s->free));
    s->free = blocks[i];
  }
  EXPECT_EQ(slab_out(s), carved - 3);
  uintptr_t link = link_get(blocks[0]);
  link_set(blocks[0], slab_encode(s, blocks[2]));  // blocks[2] -> [1] -> [0] -> [2]: a cycle
  EXPECT_EQ(slab_out(s), carved);
  link_set(blocks[0], slab_encode(s, reinterpret_cast<uint8_t*>(s) + kSlabSize));  // out of the slab
  EXPECT_EQ(slab_out(s), carved);
  link_set(blocks[0], link);
  EXPECT_EQ(slab_out(s), carved - 3);
  slab_extend(s);  // the next batch: carved, all on the list
  EXPECT_EQ(slab_out(s), carved - 3);
}

TEST(Slab, KeyHasTopBitAndDiffersPerInit) {
  ScratchSlab m;
  slab_init(m.s, nullptr, 3);
  uintptr_t k1 = m.s->key;
  slab_init(m.s, nullptr, 3);
  EXPECT_NE(k1, m.s->key);
  EXPECT_TRUE(m.s->key >> 63);
}

TEST(Slab, RemotePushAndCollectMovesAllBlocks) {
  ScratchSlab m;
  Slab* s = m.s;
  std::vector<Block*> blocks = first_batch_of_64s(s);
  ASSERT_GT(blocks.size(), 10u);
  unsigned used = s->used;
  std::thread t([&] {
    for (size_t i = 0; i < blocks.size(); i += 2) EXPECT_FALSE(slab_remote_push(s, blocks[i]));
  });
  t.join();
  unsigned n = slab_collect_remote(s);
  EXPECT_EQ(n, (blocks.size() + 1) / 2);
  EXPECT_EQ(s->used, used - n);
  std::set<Block*> back;
  while (Block* b = slab_pop(s)) back.insert(b);
  EXPECT_EQ(back.size(), n);
  EXPECT_EQ(slab_collect_remote(s), 0u);
}

// The remote stack's word counts its blocks (pushes of chains add their length), so the owner
// takes it as its free list without walking it when its own list is empty, and walks it (to link
// its end) when not.
TEST(Slab, RemoteStackCountsItsBlocksAndIsTakenWholeOrLinked) {
  ScratchSlab m;
  Slab* s = m.s;
  std::vector<Block*> blocks = first_batch_of_64s(s);
  ASSERT_GT(blocks.size(), 12u);
  unsigned used = s->used;
  auto chain = [&](size_t from, size_t n) {  // blocks[from..from+n) linked first to last
    for (size_t i = from; i + 1 < from + n; i++) link_set(blocks[i], slab_encode(s, blocks[i + 1]));
    EXPECT_FALSE(slab_remote_push_chain(s, blocks[from], blocks[from + n - 1], unsigned(n)));
  };
  chain(0, 5);
  EXPECT_FALSE(slab_remote_push(s, blocks[5]));
  chain(6, 3);
  EXPECT_EQ(tf_count(s->thread_free.load()), 9u);
  EXPECT_EQ(slab_collect_remote(s), 9u) << "taken whole: the free list was empty";
  EXPECT_EQ(tf_count(s->thread_free.load()), 0u);
  EXPECT_EQ(s->used, used - 9);
  std::set<Block*> back;
  for (int i = 0; i < 4; i++) back.insert(slab_pop(s));  // the free list is not empty now
  s->used = slab_out(s);  // (counted as a refill counts a current slab's mallocs)
  chain(9, 4);
  EXPECT_EQ(slab_collect_remote(s), 4u) << "walked and linked in front of the 5 left";
  EXPECT_EQ(s->used, used - 9 + 4 - 4);
  while (Block* b = slab_pop(s)) back.insert(b);
  EXPECT_EQ(back, std::set<Block*>(blocks.begin(), blocks.begin() + 13));
  // A count that cannot be right (more blocks than are out) is not trusted: the list is walked.
  for (int i = 0; i < 2; i++) EXPECT_FALSE(slab_remote_push(s, blocks[i]));
  s->thread_free.fetch_add(uintptr_t(4000) << kTfCountShift);
  EXPECT_EQ(slab_collect_remote(s), 2u);
}

TEST(Slab, RemotePushOnFullSlabAsksForNotifyOnce) {
  ScratchSlab m;
  Slab* s = m.s;
  slab_init(s, nullptr, 0);
  slab_extend(s);
  Block* a = slab_pop(s);
  Block* b = slab_pop(s);
  s->thread_free.store(reinterpret_cast<uintptr_t>(s) | kStateFull);
  EXPECT_TRUE(slab_remote_push(s, a));
  EXPECT_EQ(s->thread_free.load() & kStateMask, kStateNotified);
  EXPECT_FALSE(slab_remote_push(s, b));
  EXPECT_EQ(slab_collect_remote(s), 2u);
  EXPECT_EQ(s->thread_free.load() & kStateMask, kStateNotified) << "collect keeps the state";
}

TEST(Slab, FreedBlocksLookFreeAndLiveOnesDoNot) {
  ScratchSlab m;
  Slab* s = m.s;
  slab_init(s, nullptr, class_of(32));
  slab_extend(s);
  Block* a = slab_pop(s);
  Block* b = slab_pop(s);
  EXPECT_FALSE(slab_block_looks_free(s, a));
  memset(a, 0, 32);
  EXPECT_FALSE(slab_block_looks_free(s, a)) << "zeroed user data must not look free";
  a->link = slab_encode(s, s->free);
  s->free = a;
  EXPECT_TRUE(slab_block_looks_free(s, a));
  EXPECT_TRUE(slab_contains_free(s, a));
  EXPECT_FALSE(slab_contains_free(s, b));
}

TEST(Slab, BlockStartOfInteriorPointers) {
  ScratchSlab m;
  Slab* s = m.s;
  slab_init(s, nullptr, class_of(96));
  uint8_t* first = reinterpret_cast<uint8_t*>(s) + kSlabHeader;
  EXPECT_EQ(slab_block_start(s, first + 96 * 3 + 17), reinterpret_cast<Block*>(first + 96 * 3));
  EXPECT_EQ(slab_block_start(s, reinterpret_cast<uint8_t*>(s) + 10), nullptr);
}

// The free paths' block-start test and block index use multiplications, never a divide: exact
// for every class and every offset a slab can hold; every pointer into the header (offsets wrap
// to near 2^32) and past the last block is refused.
TEST(Slab, BlockStartTestAndIndexAreExactForEveryClassAndOffset) {
  alignas(64) static Slab s;
  for (unsigned cls = 0; cls < kNumClasses; cls++) {
    uint32_t bs = class_size(cls);
    s.cls = uint8_t(cls);
    s.block_size = bs;
    uint32_t slab_bytes = uint32_t(g_classes.granules[cls]) << kSlabShift;
    s.capacity = uint32_t((slab_bytes - kSlabHeader) / bs);
    s.div_inv = g_classes.inv[cls];
    s.div_shift = g_classes.shift[cls];
    uint32_t span = s.capacity * bs;
    unsigned wrong = 0;
    for (uint32_t n = 0; n <= slab_bytes - kSlabHeader; n++) {
      bool start = n < span && n % bs == 0;
      if (slab_is_block_start(&s, n) != start) wrong++;
      if (start && slab_exact_index(&s, n) != n / bs) wrong++;
      // (the reciprocal index serves aligned blocks, which only small slabs hand out)
      if (cls < kNumSmallClasses && n < span && slab_block_index(&s, n) != n / bs) wrong++;
    }
    // (back to the colour's bytes and the alignment's before the first block: slab_colour)
    for (uint32_t back = 1; back <= kSlabHeader + kMaxColour + kSlabHeader; back++)
      if (slab_is_block_start(&s, 0u - back)) wrong++;
    EXPECT_EQ(wrong, 0u) << "class " << cls << " size " << bs;
  }
}

// Purged memory reads as zero: callers mark it clean and calloc then skips its memset. On locked
// pages (mlock, mlockall) the kernel refuses MADV_DONTNEED, and os_purge zeroes them instead.
TEST(Os, PurgedMemoryIsZeroEvenWhereTheKernelRefusesToDropIt) {
  const size_t size = 4 * kPageSize;
  auto* p = static_cast<unsigned char*>(os_map(size));
  ASSERT_NE(p, nullptr);
  memset(p, 0xa5, size);
  os_purge(p, size);
  for (size_t i = 0; i < size; i++) ASSERT_EQ(p[i], 0) << i;
  memset(p, 0xa5, size);
  if (mlock(p, size) != 0) {
    os_unmap(p, size);
    GTEST_SKIP() << "mlock refused (RLIMIT_MEMLOCK)";
  }
  os_purge(p, size);  // (EINVAL from the kernel: the pages are locked)
  for (size_t i = 0; i < size; i++) ASSERT_EQ(p[i], 0) << i;
  munlock(p, size);
  os_unmap(p, size);
}

// Slab colours (internal.h, slab_colour): a size-class slab's header lies 0..896 bytes into its
// first granule, by the granule's address, so that the headers of a thread's slabs do not all
// fall in the same L1 sets. For every class and colour: the header's 256 bytes come first, the
// first block keeps the alignment aligned requests rely on (the class size's power of two, up to
// 128: kSlotAlignMax), every block ends inside the slab's granules, and at most the colour's
// bytes' worth of blocks are lost against an uncoloured slab.
TEST(SlabColour, EveryClassAndColourKeepsItsAlignmentAndFitsItsGranules) {
  const size_t span_max = size_t(16) << kSlabShift;
  auto* m = static_cast<uint8_t*>(os_map_aligned(span_max, kSlabSize));
  ASSERT_NE(m, nullptr);
  uintptr_t g = reinterpret_cast<uintptr_t>(m);
  for (unsigned cls = 0; cls < kNumClasses; cls++) {
    uint32_t bs = class_size(cls);
    uintptr_t span = uintptr_t(g_classes.granules[cls]) << kSlabShift;
    uint32_t plain = uint32_t((span - kSlabHeader) / bs);
    uint32_t align = bs & (0u - bs);
    if (align > kSlotAlignMax) align = kSlotAlignMax;
    for (uintptr_t c = 0; c <= kMaxColour; c += kColourStep) {
      auto* s = reinterpret_cast<Slab*>(g + c);
      slab_init(s, nullptr, cls);
      uintptr_t first = slab_first(s);
      ASSERT_GE(first, g + c + kSlabHeader) << "class " << cls << " colour " << c;
      ASSERT_EQ(first % align, 0u) << "class " << cls << " colour " << c;
      ASSERT_EQ(first, s->bump);
      ASSERT_LE(s->bump_end, g + span);
      ASSERT_EQ(s->bump_end, first + uintptr_t(s->capacity) * bs);
      ASSERT_LT(g + span - s->bump_end, uintptr_t(bs)) << "a whole block more would fit";
      ASSERT_GE(s->capacity, 1u);
      ASSERT_GE(s->capacity + (c + kSlabHeader + bs - 1) / bs, plain) << "class " << cls << " colour " << c;
      ASSERT_EQ(s->pop_limit, s->bump_end - bs + 1 - (g + c)) << "links reach the last block's start at most";
      ASSERT_EQ(slab_offset(s, reinterpret_cast<void*>(first)), 0u);
      ASSERT_TRUE(slab_is_block_start(s, slab_offset(s, reinterpret_cast<void*>(first + bs))));
      ASSERT_FALSE(slab_is_block_start(s, slab_offset(s, s)));
      ASSERT_FALSE(slab_is_block_start(s, slab_offset(s, reinterpret_cast<void*>(g))));
    }
  }
  os_unmap(m, span_max);
}

// The heap's slabs take their granule's colour, so that a thread using many classes has its
// headers' first lines in many L1 sets (all in 1 set of 64 before colours, 8 now).
#if defined(__SANITIZE_ADDRESS__)
// The asan preset: the bytes before a coloured slab header (its colour) are poisoned, so an
// overrun past the last block of the granule before it is an ASan report (memcheck builds mark
// them no-access: tests/valgrind, vg_planted case slab_colour).
TEST(SlabColourDeathTest, AWriteIntoASlabsColourIsAnAsanReport) {
  std::vector<void*> v;
  Slab* s = nullptr;
  while (s == nullptr) {  // (a slab whose colour is not 0: 7 in 8 are)
    v.push_back(spaces_malloc(64));
    Slab* t = slab_find(v.back());
    if (reinterpret_cast<uintptr_t>(t) != slab_base(t)) s = t;
  }
  uintptr_t pad = slab_base(s);
  EXPECT_TRUE(__asan_address_is_poisoned(reinterpret_cast<void*>(pad)));
  EXPECT_TRUE(__asan_address_is_poisoned(reinterpret_cast<char*>(s) - 1));
  EXPECT_FALSE(__asan_address_is_poisoned(s)) << "the header";
  EXPECT_FALSE(__asan_address_is_poisoned(v.back())) << "a block";
  EXPECT_DEATH(*reinterpret_cast<volatile char*>(pad + 8) = 1, "use-after-poison");
  for (void* p : v) spaces_free(p);
}
#endif

TEST(SlabColour, AThreadsSlabHeadersSpreadOverTheL1Sets) {
  std::set<uintptr_t> sets, offsets;
  std::thread([&] {
    std::vector<void*> v;
    for (size_t size = 16; size <= 4096; size += size / 8) {
      void* p = spaces_malloc(size);
      ASSERT_NE(p, nullptr);
      v.push_back(p);
      Slab* s = slab_find(p);
      ASSERT_EQ(s, slab_of(p));
      uintptr_t h = reinterpret_cast<uintptr_t>(s);
      EXPECT_EQ(h - slab_base(s), slab_colour(slab_base(s)));
      sets.insert((h >> 6) & 63);
      offsets.insert(h & kSlabMask);
    }
    for (void* p : v) spaces_free(p);
  }).join();
  // (8 colours; a fresh heap's slabs are mostly consecutive granules, but may come from anywhere)
  EXPECT_GE(offsets.size(), 5u) << "headers at " << offsets.size() << " offsets in their granules";
  EXPECT_GE(sets.size(), 5u);
}
