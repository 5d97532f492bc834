// chunk.cpp - regions ("chunks"): heaps of their own with a ceiling, a walk and one-call destroy.
//
// A Chunk embeds a Heap (state kHeapChunk) and allocates through the same slab machinery as the
// thread heaps, so its blocks are found by free() through the slab header like any other, and
// freed from any thread by the lock-free remote push. What a chunk adds:
//   - `slabs`: every slab it holds (tracked, detached or cached), for walk, reset and destroy;
//     `large`: every live large block. Destroy and reset touch these lists, never the blocks.
//   - `footprint`: bytes of slabs and large mappings held, reserved by compare-and-swap *before*
//     memory is taken, so the ceiling is never overshot, however many threads allocate.
//   - live counts computed from the slabs' `used` counters minus `pending` (blocks freed by
//     other threads and not yet collected), so allocation pays no counter.
//   - bump slabs (EXCLUSIVE chunks, blocks up to kBumpMax from spaces_chunk_alloc): one slab
//     at a time takes blocks of every size (rounded to 16 bytes) back to back; a bitmap of block
//     starts (set by the owner) gives each block's size, a bitmap of freed blocks (set by any
//     thread, atomic OR) its state. The one
//     allocating thread touches one header and one stream of memory, as a bump allocator does
//     (size-class slabs put a 64 KiB-aligned header per class in the same cache set, which
//     cost this path 2x against llvm::BumpPtrAllocator). A freed block's bytes are reused
//     when its whole slab is free: `thread_free` counts the live (blocks << 32 | bytes) that
//     frees subtract atomically from any thread and the owner adds once, when it retires the
//     slab ("seals" it); whoever brings a sealed slab to zero queues it on `bump_empty` for the
//     owner to take back. Walk, stats, usable_size and free read the bitmaps.
// Who touches what: the allocating side (the one thread of an EXCLUSIVE chunk, or whoever holds
// `lock` for a shared one) owns the heap, `slabs`, `ceiling_blocked`; `large` is guarded by
// `large_lock` because large blocks are unlinked by whichever thread frees them; the counters
// are atomics.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

#include <emmintrin.h>  // SSE2 (every x86-64): packing a slab's start marks
#include <immintrin.h>  // AVX2, where the CPU has it (os_cpu_has_avx2): the same, twice as wide

// The start marks' sequence lock (bump_read, bump_seal): relaxed accesses ordered by fences;
// ThreadSanitizer does not model fences, so its builds use acquire loads and release stores.
#if defined(__SANITIZE_THREAD__)
#define SPACES_MARK_LOAD __ATOMIC_ACQUIRE
#define SPACES_SEQ_FENCE(order) ((void)0)
#else
#define SPACES_MARK_LOAD __ATOMIC_RELAXED
#define SPACES_SEQ_FENCE(order) __atomic_thread_fence(order)
#endif

namespace spaces_core {

constexpr uint64_t kExclusiveKey = kChunkMagic | (uint64_t(SPACES_CHUNK_EXCLUSIVE) << 32);
// An internal flag (never reported): the region was made while heap profiling is on, which its
// region_key therefore never matches - each allocation reaches chunk_alloc, which counts it.
constexpr unsigned kChunkProfiled = 1u << 31;

// spaces_chunk_reset keeps (option chunk_reset_keep) as many slabs as the busiest of the region's
// last kResetRounds rounds used, so rounds of alternating sizes keep what the larger ones need.
constexpr unsigned kResetRounds = 4;

struct Chunk {
  // -- the region prefix (internal.h: RegionPrefix), then what spaces_chunk_alloc's fast path
  //    reads, on one line --
  uint32_t magic;                  // kChunkMagic while the chunk lives
  unsigned flags;
  spaces_window win;               // the room left in `bump` (spaces.h): its `cur` is the slab's
                                   // top while the slab is current; empty when there is none
  Slab* bump;                      // current bump slab (EXCLUSIVE), g_no_bump when none
  Heap heap;                       // the region's heap (its size-class slabs); heap.chunk == this
  bool heap_clean;                 // `heap` holds no slab and its tables are initialised: create
                                   // and destroy skip re-initialising 1 100 table entries
  std::atomic<Slab*> bump_empty;   // sealed bump slabs whose every block was freed (via next)
  SpinLock lock;
  SpinLock large_lock;
  std::atomic<size_t> footprint;
  std::atomic<size_t> peak;
  std::atomic<size_t> ceiling;
  std::atomic<size_t> ceiling_hits;
  std::atomic<size_t> pending_blocks;
  std::atomic<size_t> pending_bytes;
  IList<Slab, &Slab::chunk_next, &Slab::chunk_prev> slabs;  // every slab of the chunk
  size_t nslabs;
  Slab* large;
  size_t nlarge;
  size_t large_bytes;
  spaces_pressure_fn pressure;
  void* pressure_arg;
  bool ceiling_blocked;
  uintptr_t walker_tp;  // thread walking the chunk (a shared chunk's: it holds `lock`)
  uintptr_t large_walker_tp;  // the same thread while it walks the large list (it holds large_lock)
  Chunk* free_next;
  Chunk* all_next;      // every Chunk struct ever made (never freed), for fork
  uint8_t fork_held;    // locks the forking thread took in chunk_fork_try_lock (1: lock, 2: large)
  const char* name;     // spaces_chunk_set_name (kept by pointer), NULL for none
  size_t prof_samples;  // heap profiling: live records of this region's blocks (profile.cpp)
  uint32_t round_slabs[kResetRounds];  // slabs used by each of the last rounds (reset), a ring
  uint32_t round_pos;
  size_t round_peak;    // most slabs in use at once since the last reset (chunk_slab_in_use)
  // Start marks of the current bump slab, a byte per 16-byte granule (the window's `marks`
  // points here): the allocating path stores a byte, where a bit would be a read-modify-write
  // that chains each allocation to the previous one (1.3-1.5x the time of a bump allocator).
  // Sealing the slab packs them into its start bitmap and clears them (chunk.cpp: bump slabs).
  alignas(64) uint8_t marks[kSlabSize >> 4];
};
static_assert(__builtin_offsetof(Chunk, magic) == __builtin_offsetof(RegionPrefix, magic) &&
                  __builtin_offsetof(Chunk, flags) == __builtin_offsetof(RegionPrefix, flags),
              "a Chunk starts with the region prefix (internal.h)");

// The region operations of a Chunk (region.cpp checks their signatures and dispatches to them).
struct ChunkRegion {
  using Record = Chunk;
  static void* alloc(Chunk* c, size_t align, size_t size, bool zero);
  static void* realloc(Chunk* c, void* p, size_t size);
  static void reset(Chunk* c);
  static void destroy(Chunk* c);
  static int set_ceiling(Chunk* c, size_t bytes);
  static size_t ceiling(Chunk* c);
  static int stats(Chunk* c, struct spaces_chunk_stats* out);
  static int walk(Chunk* c, spaces_walk_fn fn, void* arg);
  static void set_pressure(Chunk* c, spaces_pressure_fn fn, void* arg);
};

// ---- bump slabs ------------------------------------------------------------------------------
// Layout: the header, a bitmap of block starts and a bitmap of freed blocks (one bit per 16-byte
// granule of the slab, 512 bytes each), then the blocks, 16-aligned, back to back: a block's size
// is the distance to the next start (or to the top). Any thread sets freed bits (atomic OR).
// The current slab is filled through the chunk's window (spaces.h: spaces_window_alloc, which
// the SDK inlines): its top is the window's `cur`, and its starts are bytes in the chunk's
// `marks` (stored by the owner before it publishes the new top). Sealing the slab (the owner
// retires it) copies the top to its `bump`, packs the marks into its start bitmap, sets
// `attached`, then clears the marks for the next slab. Readers on other threads (free,
// usable_size, stats) take a view of the starts (bump_read): the marks while `attached` is 0,
// re-checked after reading them as a sequence lock would, else the bitmap.
constexpr size_t kBumpMax = 1024;                       // larger blocks: size-class slabs
constexpr uintptr_t kBumpStarts = kSlabHeader;          // 64 words
constexpr uintptr_t kBumpFreed = kBumpStarts + 512;     // 64 words
constexpr uintptr_t kBumpFirst = kBumpFreed + 512;      // first block
// (so that a window's top in the next granule's bump slab is never within kSlabSize of this one's
// header, whatever the two colours: bump_read and chunk_window_carved rely on it)
static_assert(kBumpFirst > kMaxColour, "a bump slab's first block lies past any colour");
Slab g_no_bump;  // bump == bump_end == 0: the fast path's bounds test always fails
spaces_window g_no_window = {0, 0, 0};  // never has room: spaces_chunk_window's answer when the
                                        // inline path must not be used
constexpr uintptr_t kBumpFirstG = kBumpFirst >> 4;  // granule of the first block
constexpr uintptr_t kBumpMarksFrom = kBumpFirstG & ~uintptr_t(63);  // (whole bitmap words)

// An UNTRACKED chunk (spaces.h): its bump blocks are not marked, so their starts are unknown;
// free is a no-op for them, walk refuses, sealing packs nothing.
SPACES_INLINE bool chunk_untracked(const Chunk* c) { return (c->flags & SPACES_CHUNK_UNTRACKED) != 0; }

// Make s (or none: g_no_bump) the current bump slab and open its window.
SPACES_INLINE void bump_set(Chunk* c, Slab* s) {
  c->bump = s;
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  bool none = s == &g_no_bump;
  // (marks 0: no mark stored. A tracked chunk's biased pointer would be 0 only if c->marks, one
  // of our mappings, lay at base >> 4, below 2^43: Linux x86-64 places mappings from 2^45 up,
  // or down from near 2^47, so that takes some 100 TiB of address space used below them.)
  c->win.marks = none || chunk_untracked(c) ? 0 : reinterpret_cast<uintptr_t>(c->marks) - (base >> 4);
  c->win.end = none ? 0 : s->bump_end;
  __atomic_store_n(&c->win.cur, none ? 0 : s->bump, __ATOMIC_RELEASE);
}

SPACES_INLINE uintptr_t bump_need(size_t size) {
  uintptr_t n = (size + 15) & ~uintptr_t(15);
  return n ? n : 16;
}
SPACES_INLINE uint64_t* bump_bits(const Slab* s, uintptr_t which) {
  return reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(s) + which);
}

static_assert(kBumpMax == SPACES_WINDOW_MAX, "the largest block a new bump page is opened for (spaces.h)");

static void bump_init(Chunk* c, Slab* s) {
  s->kind = kSlabBump;
  s->free = s;
  s->used = 0;
  s->block_size = 0;
  __atomic_store_n(&s->fast_owner, uintptr_t(0), __ATOMIC_RELAXED);  // free() takes the slow path
  s->owner = &c->heap;
  s->chunk = c;
  s->cls = 0;
  __atomic_store_n(&s->attached, uint8_t(0), __ATOMIC_RELAXED);  // 0: current (the owner counts `used`), 1: sealed
  s->has_aligned = 0;
  s->capacity = 0;
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(base + kBumpStarts), kBumpFirst - kBumpStarts));
  SPACES_VG(VALGRIND_MAKE_MEM_UNDEFINED(reinterpret_cast<void*>(base + kBumpStarts), kBumpFirst - kBumpStarts));
  // (the start bitmap is written whole when the slab is sealed, and not read before; an untracked
  // chunk's freed bitmap is never read: its frees are no-ops, its walk refuses)
  if (!chunk_untracked(c)) memset(reinterpret_cast<void*>(base + kBumpFreed), 0, kBumpFirst - kBumpFreed);
  __atomic_store_n(&s->bump, base + kBumpFirst, __ATOMIC_RELAXED);
  s->bump_end = slab_base(s) + kSlabSize;  // (the header is coloured: internal.h, slab_colour)
  s->pop_limit = 0;  // (no free list)
  s->thread_free.store(0, std::memory_order_relaxed);
  SPACES_VG(VALGRIND_MAKE_MEM_NOACCESS(reinterpret_cast<void*>(s->bump), s->bump_end - s->bump));
  bump_set(c, s);
}

SPACES_INLINE uint64_t marks_word(const uint8_t* m) {  // 8 marks (bytes 0 or 1), one load
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(m), SPACES_MARK_LOAD);
}
SPACES_INLINE uint64_t pack8(uint64_t x) { return (x * 0x0102040810204080ull) >> 56; }  // byte i -> bit i

// The starts of bump slab s below granule `top`: the chunk's marks (current slab) or the slab's
// bitmap (sealed). Granules are indexes from the slab's base.
struct StartsView {
  const Slab* s;
  const uint8_t* marks;  // nullptr: the bitmap
  uintptr_t top;
  bool is_start(uintptr_t g) const {
    if (marks) return __atomic_load_n(&marks[g], SPACES_MARK_LOAD) != 0;
    return __atomic_load_n(&bump_bits(s, kBumpStarts)[g >> 6], __ATOMIC_RELAXED) >> (g & 63) & 1;
  }
  // The first start at or after g, or top.
  uintptr_t next_start(uintptr_t g) const {
    while (g < top) {
      uint64_t w;
      uintptr_t step;
      if (marks) {
        if (g & 7) {
          if (__atomic_load_n(&marks[g], SPACES_MARK_LOAD)) return g;
          g++;
          continue;
        }
        w = marks_word(marks + g);
        step = 8;
        if (w) return g + (uintptr_t(__builtin_ctzll(w)) >> 3) < top ? g + (uintptr_t(__builtin_ctzll(w)) >> 3) : top;
      } else {
        w = __atomic_load_n(&bump_bits(s, kBumpStarts)[g >> 6], __ATOMIC_RELAXED) >> (g & 63);
        step = 64 - (g & 63);
        if (w) return g + uintptr_t(__builtin_ctzll(w)) < top ? g + uintptr_t(__builtin_ctzll(w)) : top;
      }
      g += step;
    }
    return top;
  }
  // (blocks << 32 | bytes) carved: the starts and the top (the fast path keeps no count).
  uint64_t carved() const {
    uint64_t n = 0;
    if (top > kBumpFirstG) {
      if (marks) {
        for (uintptr_t g = kBumpMarksFrom; g < top; g += 8) {
          uint64_t w = marks_word(marks + g);  // (marks at or above top: not this view's)
          if (top - g < 8) w &= (uint64_t(1) << ((top - g) * 8)) - 1;
          n += (w * 0x0101010101010101ull) >> 56;  // (bytes 0/1: no carry)
        }
      } else {
        const uint64_t* starts = bump_bits(s, kBumpStarts);
        for (uintptr_t w = kBumpMarksFrom >> 6; w <= (top - 1) >> 6; w++)
          n += popcount64(__atomic_load_n(&starts[w], __ATOMIC_RELAXED));
      }
    }
    return (n << 32) + ((top - kBumpFirstG) << 4);
  }
};

// The view of s for its owner, or when no thread allocates in its chunk (walk, reset).
static StartsView bump_view_quiet(const Slab* s) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  if (s->attached) return StartsView{s, nullptr, (s->bump - base) >> 4};
  return StartsView{s, s->chunk->marks, (s->chunk->win.cur - base) >> 4};
}

// f(view) for s, from any thread, while its owner may seal it: a consistent view (f must not
// have effects; it may run more than once). The owner sets `attached` before it clears the marks
// (and before the window moves on), so a reader that still sees 0 after reading read s's marks.
// A slab that stops being a bump slab meanwhile (released: only a double or stale free can be
// reading it) gives the empty result, which callers report as no block.
template <typename F> static auto bump_read(const Slab* s, F f) -> decltype(f(StartsView{})) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  for (;;) {
    if (__atomic_load_n(&s->attached, __ATOMIC_ACQUIRE))
      return f(StartsView{s, nullptr, (__atomic_load_n(&s->bump, __ATOMIC_RELAXED) - base) >> 4});
    if (__atomic_load_n(&s->kind, __ATOMIC_ACQUIRE) != kSlabBump) return decltype(f(StartsView{})){};
    const Chunk* c = __atomic_load_n(&s->chunk, __ATOMIC_RELAXED);
    if (c == nullptr) return decltype(f(StartsView{})){};
    uintptr_t t = __atomic_load_n(&c->win.cur, __ATOMIC_ACQUIRE);  // (marks below it are visible)
    if (t - base - 1 >= kSlabSize) continue;  // the window has moved on: s is sealed by now
    auto r = f(StartsView{s, c->marks, (t - base) >> 4});
    SPACES_SEQ_FENCE(__ATOMIC_ACQUIRE);
    if (!__atomic_load_n(&s->attached, __ATOMIC_RELAXED)) return r;
  }
}

// Live (blocks << 32 | bytes) of a bump slab. (Read by stats, possibly while the owner seals the
// slab: `attached` is read around the counter, and a sealed slab's count is never negative.)
static uint64_t bump_live(const Slab* s) {
  for (;;) {
    uint8_t before = __atomic_load_n(&s->attached, __ATOMIC_ACQUIRE);
    uint64_t v = s->thread_free.load(std::memory_order_acquire);
    if (__atomic_load_n(&s->attached, __ATOMIC_ACQUIRE) != before) continue;
    if (!before) return v + bump_read(s, [](const StartsView& w) { return w.carved(); });
    if (int64_t(v) >= 0) return v;  // (negative: sealed, its add not yet made)
  }
}

size_t chunk_window_carved(const Chunk* c, const Slab* s) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s), top = __atomic_load_n(&c->win.cur, __ATOMIC_RELAXED);
  return top - base - 1 < kSlabSize && top - base > kBumpFirst ? top - base - kBumpFirst : 0;
}

// Clear the marks below granule top (the owner, once nothing can read them as the slab's).
// Readers may still load them (and will retry). TSan builds: release atomic stores (tsan
// replaces the fences). Others: aligned 16-byte SSE2 stores, which x86-64 performs as two
// single-copy-atomic 8-byte halves, so a reader's 8-byte or 1-byte atomic load sees 0 or the old
// mark, never a torn value (half the stores and loop of the atomic 8-byte form: about 2k fewer
// instructions per 64 KiB page, 2 per small allocation).
static void marks_clear(Chunk* c, uintptr_t top) {
  for (uintptr_t g = kBumpMarksFrom; g < top; g += 64) {  // (a bitmap word's 64 marks at a time)
#if defined(__SANITIZE_THREAD__)
    uint64_t* m = reinterpret_cast<uint64_t*>(c->marks + g);
    for (unsigned k = 0; k < 8; k++) __atomic_store_n(m + k, uint64_t(0), __ATOMIC_RELEASE);
#else
    __m128i* m = reinterpret_cast<__m128i*>(c->marks + g);
    _mm_store_si128(m, _mm_setzero_si128());
    _mm_store_si128(m + 1, _mm_setzero_si128());
    _mm_store_si128(m + 2, _mm_setzero_si128());
    _mm_store_si128(m + 3, _mm_setzero_si128());
#endif
  }
}

// The marks of granules [kBumpMarksFrom, tg) into the start bitmap; returns how many are set.
static uint64_t marks_pack(const uint8_t* marks, uint64_t* starts, uintptr_t tg) {
#if defined(__SANITIZE_THREAD__)
  uint64_t n = 0;
  for (uintptr_t g = kBumpMarksFrom; g < tg; g += 64) {
    uint64_t w = 0;
    for (unsigned k = 0; k < 8; k++) w |= pack8(marks_word(marks + g + 8 * k)) << (8 * k);
    __atomic_store_n(&starts[g >> 6], w, __ATOMIC_RELAXED);
    n += popcount64(w);
  }
  return n;
#else
  // SSE2 (every x86-64): a mark is 0 or 1; shifted to the byte's top bit, movemask packs 16 of
  // them, and psadbw sums them.
  __m128i sum = _mm_setzero_si128();
  for (uintptr_t g = kBumpMarksFrom; g < tg; g += 64) {
    const __m128i* m = reinterpret_cast<const __m128i*>(marks + g);
    __m128i x0 = _mm_load_si128(m), x1 = _mm_load_si128(m + 1), x2 = _mm_load_si128(m + 2),
            x3 = _mm_load_si128(m + 3);
    uint64_t w = uint64_t(uint32_t(_mm_movemask_epi8(_mm_slli_epi16(x0, 7)))) |
                 uint64_t(uint32_t(_mm_movemask_epi8(_mm_slli_epi16(x1, 7)))) << 16 |
                 uint64_t(uint32_t(_mm_movemask_epi8(_mm_slli_epi16(x2, 7)))) << 32 |
                 uint64_t(uint32_t(_mm_movemask_epi8(_mm_slli_epi16(x3, 7)))) << 48;
    __atomic_store_n(&starts[g >> 6], w, __ATOMIC_RELAXED);
    __m128i b = _mm_add_epi8(_mm_add_epi8(x0, x1), _mm_add_epi8(x2, x3));  // (each byte <= 4)
    sum = _mm_add_epi64(sum, _mm_sad_epu8(b, _mm_setzero_si128()));
  }
  return uint64_t(_mm_cvtsi128_si64(sum)) + uint64_t(_mm_cvtsi128_si64(_mm_unpackhi_epi64(sum, sum)));
#endif
}

#if !defined(__SANITIZE_THREAD__)
// AVX2 forms of marks_pack and marks_clear. The readers' protocol does not depend on how wide
// the clearing stores are or on their atomicity: `attached` is stored (release) before the marks
// are cleared and x86 keeps stores in order, so a reader that sees any cleared byte then sees
// `attached` after its fence and takes the bitmap instead (bump_read). Sealing a full page costs
// about 1 100 instructions instead of 2 550 (about 1.5 per small allocation: callgrind_region.sh).
__attribute__((target("avx2"))) static uint64_t marks_pack_avx2(const uint8_t* marks, uint64_t* starts, uintptr_t tg) {
  __m256i sum = _mm256_setzero_si256();
  for (uintptr_t g = kBumpMarksFrom; g < tg; g += 64) {
    const __m256i* m = reinterpret_cast<const __m256i*>(marks + g);
    __m256i x0 = _mm256_load_si256(m), x1 = _mm256_load_si256(m + 1);
    uint64_t w = uint64_t(uint32_t(_mm256_movemask_epi8(_mm256_slli_epi16(x0, 7)))) |
                 uint64_t(uint32_t(_mm256_movemask_epi8(_mm256_slli_epi16(x1, 7)))) << 32;
    __atomic_store_n(&starts[g >> 6], w, __ATOMIC_RELAXED);
    sum = _mm256_add_epi64(sum, _mm256_sad_epu8(_mm256_add_epi8(x0, x1), _mm256_setzero_si256()));
  }
  __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
  return uint64_t(_mm_cvtsi128_si64(s2)) + uint64_t(_mm_cvtsi128_si64(_mm_unpackhi_epi64(s2, s2)));
}
__attribute__((target("avx2"))) static void marks_clear_avx2(Chunk* c, uintptr_t top) {
  for (uintptr_t g = kBumpMarksFrom; g < top; g += 64) {
    __m256i* m = reinterpret_cast<__m256i*>(c->marks + g);
    _mm256_store_si256(m, _mm256_setzero_si256());
    _mm256_store_si256(m + 1, _mm256_setzero_si256());
  }
}
#endif
// 1: SSE2 only, 2: AVX2 (learned at the first seal; a race only computes it twice)
int g_marks_isa = 0;
SPACES_INLINE bool marks_avx2() {
#if defined(__SANITIZE_THREAD__)
  return false;
#else
  int isa = __atomic_load_n(&g_marks_isa, __ATOMIC_RELAXED);
  if (SPACES_UNLIKELY(isa == 0)) {
    isa = os_cpu_has_avx2() ? 2 : 1;
    __atomic_store_n(&g_marks_isa, isa, __ATOMIC_RELAXED);
  }
  return isa == 2;
#endif
}

// The owner retires its current slab; true if every block of it is already free.
static bool bump_seal(Chunk* c, Slab* s) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  uintptr_t top = c->win.cur;
  uintptr_t tg = (top - base) >> 4;
  bool untracked = chunk_untracked(c);  // (no marks to pack or clear: no starts, no block count)
  bool avx2 = !untracked && marks_avx2();
#if defined(__SANITIZE_THREAD__)
  uint64_t n = untracked ? 0 : marks_pack(c->marks, bump_bits(s, kBumpStarts), tg);
#else
  uint64_t n = untracked ? 0
               : avx2    ? marks_pack_avx2(c->marks, bump_bits(s, kBumpStarts), tg)
                         : marks_pack(c->marks, bump_bits(s, kBumpStarts), tg);
#endif
  __atomic_store_n(&s->bump, top, __ATOMIC_RELAXED);  // (published by `attached`)
  __atomic_store_n(&s->attached, uint8_t(1), __ATOMIC_RELEASE);
  SPACES_SEQ_FENCE(__ATOMIC_RELEASE);  // (readers that see a cleared mark see `attached`)
#if defined(__SANITIZE_THREAD__)
  (void)avx2;
  if (!untracked) marks_clear(c, tg);
#else
  if (avx2)
    marks_clear_avx2(c, tg);
  else if (!untracked)
    marks_clear(c, tg);
#endif
  uint64_t add = (n << 32) + (top - (base + kBumpFirst));
  return s->thread_free.fetch_add(add, std::memory_order_acq_rel) + add == 0;
}

// Emptied slabs queued by frees: all but `keep` go back to the chunk's cache or the arena.
static Slab* bump_take_empty(Chunk* c, int keep) {
  Slab* e = c->bump_empty.exchange(nullptr, std::memory_order_acquire);
  Slab* kept = nullptr;
  while (e) {
    Slab* next = e->next;
    if (keep > 0) {
      kept = e;
      keep--;
    } else {
      c->heap_clean = false;  // (the slab may stay in the heap's cache)
      heap_release_slab(&c->heap, e, false);
    }
    e = next;
  }
  return kept;
}

static void* bump_alloc(Chunk* c, size_t size, bool zero) {
  uintptr_t need = bump_need(size);
  Slab* s = c->bump;
  if (c->win.cur + need > c->win.end) {  // (refill)
    if (s != &g_no_bump && bump_seal(c, s)) {
      bump_init(c, s);  // all of it was freed meanwhile: start it over
    } else if (Slab* e = bump_take_empty(c, 1)) {
      bump_init(c, e);
    } else {
      bump_set(c, &g_no_bump);
      s = heap_new_slab(&c->heap, 0);
      if (s == nullptr) return nullptr;
      bump_init(c, s);
    }
  }
  void* p = spaces_window_alloc(&c->win, need);  // (has room now; size 0 takes 16 bytes)
  track_alloc(c, p, size, zero);
  if (zero) memset(p, 0, size);
  return p;
}

// The size of p if it is a live block of bump slab s; else 0, the error reported. (An untracked
// chunk's block: the bytes from p to the slab's top, the most it can be; only a pointer outside
// the carved part is known to be no block.)
// *untracked_out (if given): whether s is an untracked chunk's, read once (a stale free may race
// with the slab's release, after which s->chunk is NULL).
size_t bump_check(Slab* s, const void* p, const char* what, bool* untracked_out) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  uintptr_t g = (a - base) >> 4;
  size_t size = 0;
  const Chunk* c = __atomic_load_n(&s->chunk, __ATOMIC_RELAXED);
  bool untracked = c != nullptr && chunk_untracked(c);
  if (untracked_out) *untracked_out = untracked;
  if ((a & 15) == 0 && g >= kBumpFirstG)
    size = bump_read(s, [g, untracked](const StartsView& v) -> size_t {
      if (untracked) return g < v.top ? (v.top - g) << 4 : 0;
      return g < v.top && v.is_start(g) ? (v.next_start(g + 1) - g) << 4 : 0;
    });
  if (size == 0) {
    report_error(SPACES_ERROR_INVALID_FREE, p, what);
    return 0;
  }
  if (untracked) return size;
  if (__atomic_load_n(&bump_bits(s, kBumpFreed)[g >> 6], __ATOMIC_RELAXED) >> (g & 63) & 1) {
    report_error(SPACES_ERROR_DOUBLE_FREE, p, "double free");
    return 0;
  }
  return size;
}

size_t bump_usable(Slab* s, const void* p) {
  bool untracked;
  size_t size = bump_check(s, p, "usable_size of a pointer that is not a live block", &untracked);
  return untracked ? 0 : size;  // (untracked: not known)
}

// free() of a bump block, from any thread. (An untracked chunk's: checked, then nothing.)
void bump_free(Slab* s, void* p) {
  bool untracked;
  size_t size = bump_check(s, p, "invalid free (pointer inside a region block)", &untracked);
  if (size == 0 || untracked) return;
  uintptr_t g = (reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(s)) >> 4;
  uint64_t bit = uint64_t(1) << (g & 63);
  if (__atomic_fetch_or(&bump_bits(s, kBumpFreed)[g >> 6], bit, __ATOMIC_ACQ_REL) & bit) {
    report_error(SPACES_ERROR_DOUBLE_FREE, p, "double free");  // another thread freed it first
    return;
  }
  Chunk* c = s->chunk;
  track_free(c, p, p, size);
  uint64_t dec = (uint64_t(1) << 32) + size;
  if (s->thread_free.fetch_sub(dec, std::memory_order_acq_rel) == dec) {  // sealed, now empty
    Slab* head = c->bump_empty.load(std::memory_order_relaxed);
    do {
      s->next = head;
    } while (!c->bump_empty.compare_exchange_weak(head, s, std::memory_order_release, std::memory_order_relaxed));
  }
}

static int walk_bump(Slab* s, spaces_walk_fn fn, void* arg) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  StartsView v = bump_view_quiet(s);
  uintptr_t top = v.top;
  const uint64_t* freed = bump_bits(s, kBumpFreed);
  for (uintptr_t g = kBumpFirstG; g < top;) {
    uintptr_t end = v.next_start(g + 1);
    if (!(__atomic_load_n(&freed[g >> 6], __ATOMIC_RELAXED) >> (g & 63) & 1)) {
      int r = fn(reinterpret_cast<void*>(base + (g << 4)), (end - g) << 4, arg);  // fn may free it
      if (r) return r;
    }
    g = end;
  }
  return 0;
}

namespace {

SpinLock g_chunk_lock;  // the pool of Chunk structs
Chunk* g_chunk_free = nullptr;
Chunk* g_all_chunks = nullptr;  // registry (g_chunk_lock); structs are recycled, never unmapped
uint8_t* g_chunk_cursor = nullptr;
uint8_t* g_chunk_end = nullptr;
SPACES_TLS bool t_chunk_alloc = false;  // suppresses abort_on_oom for ceiling refusals

// (A struct's locks are reset here, under g_chunk_lock: fork_prepare takes every struct's locks
// under it too, so a reset can never clear a lock the forking thread holds.)
Chunk* chunk_struct_alloc() {
  LockGuard g(g_chunk_lock);
  if (g_chunk_free) {
    Chunk* c = g_chunk_free;
    g_chunk_free = c->free_next;
    c->lock.reset();
    c->large_lock.reset();
    return c;
  }
  size_t need = (sizeof(Chunk) + 63) & ~size_t(63);
  if (g_chunk_cursor == nullptr || g_chunk_cursor + need > g_chunk_end) {
    size_t bytes = 512 * 1024;
    uint8_t* m = static_cast<uint8_t*>(os_map(bytes));
    if (m == nullptr) return nullptr;
    g_chunk_cursor = m;
    g_chunk_end = m + bytes;
  }
  Chunk* c = reinterpret_cast<Chunk*>(g_chunk_cursor);
  g_chunk_cursor += need;
  c->lock.reset();
  c->large_lock.reset();
  c->all_next = g_all_chunks;
  g_all_chunks = c;
  return c;
}

void chunk_struct_free(Chunk* c) {
  c->magic = 0;
  LockGuard g(g_chunk_lock);
  c->free_next = g_chunk_free;
  g_chunk_free = c;
}

// The Chunk a handle designates, or NULL (the magic read through the region prefix alone: the
// handle may be a shared region's, which is not aligned like a Chunk).
Chunk* chunk_checked(SpacesChunk h) {
  if (h == nullptr) return nullptr;
  if (__atomic_load_n(&reinterpret_cast<RegionPrefix*>(h)->magic, __ATOMIC_ACQUIRE) != kChunkMagic) return nullptr;
  return reinterpret_cast<Chunk*>(h);
}

// The allocating side: a lock for shared chunks, nothing for exclusive ones.
struct AllocSide {
  Chunk* c;
  bool locked;
  explicit AllocSide(Chunk* x)
      : c(x),
        locked(!(x->flags & SPACES_CHUNK_EXCLUSIVE) &&
               __atomic_load_n(&x->walker_tp, __ATOMIC_RELAXED) != thread_self()) {  // walk callback
    if (locked) c->lock.lock();
  }
  void release() {
    if (locked) c->lock.unlock();
    locked = false;
  }
  ~AllocSide() { release(); }
};

// bump_ok: spaces_chunk_alloc and friends (an EXCLUSIVE chunk's small blocks go to bump slabs);
// false for malloc routed through a captured chunk, which keeps to the heap's size classes.
void* chunk_alloc_inner(Chunk* c, size_t align, size_t size, bool zero, bool bump_ok) {
  Heap* h = &c->heap;
  if (bump_ok && (c->flags & SPACES_CHUNK_EXCLUSIVE) && align <= 16 && size <= kBumpMax)
    return bump_alloc(c, size, zero);
  c->heap_clean = false;
  if (align <= 16 && size <= kSmallMax) {
    if (size < align) size = align;
    Slab* s = h->direct[(size + 7) >> 3];
    if (Block* b = slab_pop(s)) {
      track_alloc(c, b, size, zero);
      if (zero) memset(b, 0, size);
      return b;
    }
    return heap_malloc_slow(h, size, zero);
  }
  if (align <= 16) return large_alloc(size, 0, zero, c);
  void* p = heap_aligned_alloc(h, align, size);
  if (p && zero) memset(p, 0, size);
  return p;
}

// A block of chunk c (its arguments checked by region_args_ok, region.cpp): bump_ok as above.
void* chunk_alloc(Chunk* c, size_t align, size_t size, bool zero, bool bump_ok) {
  SpacesChunk handle = reinterpret_cast<SpacesChunk>(c);
  // At the ceiling: first give back what the chunk holds empty (remote frees not yet collected,
  // emptied current slabs), retry; then the pressure handler, sweep, retry once more.
  for (int attempt = 0;; attempt++) {
    AllocSide side(c);
    if (attempt > 0) {
      heap_collect(&c->heap, true);
      bump_take_empty(c, 0);  // emptied bump slabs go back too
    }
    c->ceiling_blocked = false;
    bool outer = t_chunk_alloc;
    t_chunk_alloc = true;
    void* p = chunk_alloc_inner(c, align, size, zero, bump_ok);
    t_chunk_alloc = outer;
    bool blocked = c->ceiling_blocked;
    side.release();
    if (p != nullptr) {
      if (SPACES_UNLIKELY(g_prof_on) && prof_tick(size)) prof_record(p, size, c, __builtin_return_address(0));
      return p;
    }
    if (!blocked) {
      errno = ENOMEM;
      return nullptr;
    }
    if (attempt == 0) continue;
    spaces_pressure_fn fn = __atomic_load_n(&c->pressure, __ATOMIC_ACQUIRE);
    if (attempt == 1 && fn != nullptr && fn(handle, size, __atomic_load_n(&c->pressure_arg, __ATOMIC_ACQUIRE)))
      continue;  // the handler freed memory: one retry
    c->ceiling_hits.fetch_add(1, std::memory_order_relaxed);
    errno = ENOMEM;
    return nullptr;
  }
}

// Return every slab and large block; keep up to `keep` empty slabs cached (reset) or none.
void chunk_release_all(Chunk* c, uint32_t keep) {
  Heap* h = &c->heap;
  Slab* s = c->slabs.head;
  if (!c->heap_clean) heap_init_chunk(h, c);
  h->cache_limit_override = keep;
  if (c->bump != &g_no_bump) bump_seal(c, c->bump);  // (its marks packed and cleared: a stale
                                                     // free's reader never waits for the window)
  bump_set(c, &g_no_bump);
  c->bump_empty.store(nullptr, std::memory_order_relaxed);  // (its slabs are on c->slabs too)
  RunBatch batch;  // (one arena-lock round trip per 64 slabs, not one per slab)
  while (s) {
    Slab* next = s->chunk_next;
    s->used = 0;
    // ASan builds: every block of the region is now poisoned (a later use is a report)
    SPACES_ASAN(ASAN_POISON_MEMORY_REGION(reinterpret_cast<uint8_t*>(s) + kSlabHeader,
                                          slab_base(s) + kSlabSize - reinterpret_cast<uintptr_t>(s) - kSlabHeader));
    heap_release_slab(h, s, false, &batch);  // cached up to `keep`, else to the arena (unlinks it)
    s = next;
  }
  arena_free_batch(batch);
  for (;;) {
    Slab* l;
    {
      LockGuard g(c->large_lock);
      l = c->large;
    }
    if (l == nullptr) break;
    large_free(l, reinterpret_cast<void*>(l->user_ptr));
  }
  c->pending_blocks.store(0, std::memory_order_relaxed);
  c->pending_bytes.store(0, std::memory_order_relaxed);
  c->heap_clean = h->empty == nullptr;  // (reset may keep slabs in the heap's cache)
}

// A slab's live blocks: everything carved minus what is on its free list (remote frees must
// have been collected). Calls fn(slot, size) for each; stops on non-zero.
int walk_slab(Slab* s, spaces_walk_fn fn, void* arg) {
  uint64_t freebits[(kSlabSize / 8 + 63) / 64];
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  uintptr_t first = slab_first(s);
  uintptr_t bs = s->block_size;
  uintptr_t carved = (s->bump - first) / bs;
  memset(freebits, 0, (carved + 63) / 64 * 8);
  uintptr_t p = reinterpret_cast<uintptr_t>(s->free);
  for (uint32_t steps = 0; p != base && steps <= s->capacity; steps++) {
    uintptr_t idx = (p - first) / bs;
    if (idx >= carved) break;  // (a damaged list: never a write past freebits)
    freebits[idx / 64] |= uint64_t(1) << (idx % 64);
    uintptr_t off = link_get(reinterpret_cast<Block*>(p)) ^ s->key;
    if (!slab_link_in(s, off)) break;
    p = base + off;
  }
  for (uintptr_t i = 0; i < carved; i++) {
    if (freebits[i / 64] >> (i % 64) & 1) continue;
    int r = fn(reinterpret_cast<void*>(first + i * bs), bs, arg);
    if (r) return r;
  }
  return 0;
}

}  // namespace

bool chunk_reserve(Chunk* c, size_t bytes) {
  size_t cur = c->footprint.load(std::memory_order_relaxed);
  for (;;) {
    size_t ceil = c->ceiling.load(std::memory_order_relaxed);
    if (ceil != 0 && (cur + bytes > ceil || cur + bytes < cur)) {
      c->ceiling_blocked = true;
      return false;
    }
    if (c->footprint.compare_exchange_weak(cur, cur + bytes, std::memory_order_relaxed)) break;
  }
  size_t now = cur + bytes;
  size_t pk = c->peak.load(std::memory_order_relaxed);
  while (now > pk && !c->peak.compare_exchange_weak(pk, now, std::memory_order_relaxed)) {
  }
  return true;
}

void chunk_unreserve(Chunk* c, size_t bytes) { c->footprint.fetch_sub(bytes, std::memory_order_relaxed); }

void chunk_slab_added(Chunk* c, Slab* s) {
  c->slabs.push(s);
  c->nslabs++;
  chunk_slab_in_use(c);
}

// One more of the chunk's slabs in use (taken new, or from its cache): the round's peak, which
// reset keeps (a slab emptied and cached during the round still counts for the round).
void chunk_slab_in_use(Chunk* c) {
  size_t in_use = c->nslabs - c->heap.empty_count;
  if (in_use > c->round_peak) c->round_peak = in_use;
}

void chunk_slab_removed(Chunk* c, Slab* s) {
  c->slabs.remove(s);
  c->nslabs--;
  chunk_unreserve(c, kSlabSize);
}

void chunk_large_added(Chunk* c, Slab* h) {
  LockGuard g(c->large_lock);
  h->prev = nullptr;
  h->next = c->large;
  if (c->large) c->large->prev = h;
  c->large = h;
  c->nlarge++;
  c->large_bytes += h->user_size;
}

// large_free's claim of region block h (its kind exchanged for kSlabFree) and, when that was
// its, the block off the region's list and its bytes off the footprint, in one hold of the large
// lock (fork_prepare holds it across fork: a child sees the block live and listed, or claimed and
// gone). The kind the block had.
uint8_t chunk_large_claim(Chunk* c, Slab* h) {
  bool walker = __atomic_load_n(&c->large_walker_tp, __ATOMIC_RELAXED) == thread_self();  // walk callback
  if (!walker) c->large_lock.lock();
  uint8_t kind = __atomic_exchange_n(&h->kind, uint8_t(kSlabFree), __ATOMIC_ACQ_REL);
  if (kind == kSlabLargeRun || kind == kSlabDirect) {
    if (h->prev)
      h->prev->next = h->next;
    else
      c->large = h->next;
    if (h->next) h->next->prev = h->prev;
    c->nlarge--;
    c->large_bytes -= h->user_size;
    chunk_unreserve(c, kind == kSlabLargeRun ? h->run_granules * kSlabSize : h->map_bytes);
  }
  if (!walker) c->large_lock.unlock();
  return kind;
}

void chunk_remote_freed(Chunk* c, size_t blocks, size_t bytes) {
  c->pending_blocks.fetch_add(blocks, std::memory_order_relaxed);
  c->pending_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

bool chunk_suppress_oom_report() { return t_chunk_alloc; }

// fork(): a thread inside a thread-shared chunk's allocation holds its lock; the child must not
// inherit it held (it would hang on its first allocation or stats call). Chunk locks come before
// the heap and arena locks, as on the allocation path.
// Taken all at once or not at all (false: nothing is held): a thread walking a region holds its
// lock while its callback runs, and the callback may free into another region, create one, or use
// stdio, whose lock fork_prepare holds already; waiting in a fixed order could then deadlock, so
// the forking thread lets everything go and tries again. A fork from a walk callback: the walking
// thread already holds its chunk's lock (thread-shared chunks) and, while it visits large blocks,
// the large lock; it takes neither again.
size_t chunk_list_regions(RegionInfo* out, size_t cap, size_t* footprint) {
  LockGuard g(g_chunk_lock);
  size_t n = 0;
  *footprint = 0;
  for (Chunk* c = g_all_chunks; c; c = c->all_next) {
    if (__atomic_load_n(&c->magic, __ATOMIC_ACQUIRE) != kChunkMagic) continue;  // (pooled)
    *footprint += c->footprint.load(std::memory_order_relaxed);
    if (n < cap)
      out[n] = RegionInfo{__atomic_load_n(&c->name, __ATOMIC_ACQUIRE), c->flags & ~kChunkProfiled,
                          c->footprint.load(std::memory_order_relaxed), c->peak.load(std::memory_order_relaxed),
                          c->ceiling.load(std::memory_order_relaxed), c->ceiling_hits.load(std::memory_order_relaxed)};
    n++;
  }
  return n;
}

bool chunk_fork_try_lock() {
  if (!g_chunk_lock.try_lock()) return false;
  uintptr_t self = thread_self();
  for (Chunk* c = g_all_chunks; c; c = c->all_next) {
    c->fork_held = 0;
    if (__atomic_load_n(&c->walker_tp, __ATOMIC_RELAXED) == self) {  // (a walk callback forks)
      if (__atomic_load_n(&c->large_walker_tp, __ATOMIC_RELAXED) == self) continue;  // (holds both)
      if (c->large_lock.try_lock()) {  // (the walk's slab phase: it holds `lock` only, if any)
        c->fork_held = 2;
        continue;
      }
    } else if (c->lock.try_lock()) {
      if (c->large_lock.try_lock()) {
        c->fork_held = 3;
        continue;
      }
      c->lock.unlock();
    }
    for (Chunk* d = g_all_chunks; d != c; d = d->all_next) {  // give back what this pass took
      if (d->fork_held & 2) d->large_lock.unlock();
      if (d->fork_held & 1) d->lock.unlock();
      d->fork_held = 0;
    }
    g_chunk_lock.unlock();
    return false;
  }
  return true;
}
void chunk_fork_unlock() {
  for (Chunk* c = g_all_chunks; c; c = c->all_next) {
    if (c->fork_held & 2) c->large_lock.unlock();
    if (c->fork_held & 1) c->lock.unlock();
    c->fork_held = 0;
  }
  g_chunk_lock.unlock();
}

// Only the forking thread lives on: a chunk heap another thread had captured keeps no fast-free
// tag (a new thread of the child may get the dead thread's TCB address and would otherwise free
// into it unsynchronised); the chunk itself stays usable by any thread.
void chunk_fork_child() {
  uintptr_t self = thread_self();
  for (Chunk* c = g_all_chunks; c; c = c->all_next) {
    if (c->fork_held & 1) c->lock.reset();  // (a walker's own holds stay: it releases them)
    if (c->fork_held & 2) c->large_lock.reset();
    c->fork_held = 0;
    uintptr_t tp = __atomic_load_n(&c->heap.tp, __ATOMIC_RELAXED);
    if (tp != 0 && tp != self && c->magic == kChunkMagic) heap_bind_slabs(&c->heap, 0);
  }
  g_chunk_lock.reset();
}

// Allocation through a captured chunk's heap (spaces_thread_set_chunk) that left the fast path:
// take the chunk's own path so the ceiling counts hits and calls the pressure handler.
bool chunk_route_slow(Heap* h) { return h->chunk != nullptr && !t_chunk_alloc; }
void* chunk_alloc_routed(Heap* h, size_t align, size_t size, bool zero) {
  Chunk* c = chunk_checked(reinterpret_cast<SpacesChunk>(h->chunk));  // (destroyed while captured:
  if (c == nullptr) {                                                   // a usage error, refused)
    errno = EINVAL;
    return nullptr;
  }
  if (!region_args_ok(align, size, 0)) return nullptr;
  return chunk_alloc(c, align, size, zero, false);
}

void* chunk_realloc_block(Chunk* c, void* p, size_t size) {
  return spaces_chunk_realloc(reinterpret_cast<SpacesChunk>(c), p, size);
}

// ---- the region operations of a Chunk (region.cpp: the interface, the dispatch, the API) ------

void* ChunkRegion::alloc(Chunk* c, size_t align, size_t size, bool zero) { return chunk_alloc(c, align, size, zero, true); }

#if defined(__SANITIZE_ADDRESS__)
// (ASan builds) An untracked block's bytes up to its slab's top, its size not being known: what
// follows it may be the poisoned slack of the next blocks, which must stay poisoned (copy_block
// would unpoison it); those bytes are copied as zeros.
__attribute__((noinline, no_sanitize_address)) static void copy_untracked(void* dst, const void* src, size_t n) {
  unsigned char* d = static_cast<unsigned char*>(dst);
  const unsigned char* s = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < n; i++) d[i] = __asan_address_is_poisoned(s + i) ? 0 : s[i];
}
#else
SPACES_INLINE void copy_untracked(void* dst, const void* src, size_t n) { copy_block(dst, src, n); }
#endif

// p: a live block of c (region.cpp checked), size: 1..kMaxRequest.
void* ChunkRegion::realloc(Chunk* c, void* p, size_t size) {
  Slab* s = slab_find(p);  // (a slab's block, a bump block or a large block: region.cpp checked)
  bool untracked_bump = s->kind == kSlabBump && chunk_untracked(c);
  size_t usable = untracked_bump ? bump_check(s, p, "realloc of a pointer that is not a live block")  // (to the top)
                                 : block_usable(s, p, "realloc of a pointer that is not a live block");
  if (usable == 0 || ((s->kind == kSlabSmall || s->kind == kSlabPages) && realloc_of_freed_block(s, p, usable))) {
    errno = EINVAL;  // (reported: not a block start, or freed)
    return nullptr;
  }
  bool in_place = !kMemcheckExactSizes && (s->kind == kSlabSmall || s->kind == kSlabLargeRun) &&
                  realloc_in_place(size, usable, s->kind == kSlabLargeRun);
  if (in_place) {
    SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(p, size));  // in place: the new size is the block's
    return p;
  }
  // In an untracked chunk a tracked block stays tracked (one malloc'ed through a capture, or a
  // run): only a bump block may move to the bump slabs, where its free would do nothing.
  void* n = chunk_alloc(c, 0, size, false, !chunk_untracked(c) || untracked_bump);
  if (n == nullptr) return nullptr;
  if (untracked_bump)
    copy_untracked(n, p, size < usable ? size : usable);
  else
    copy_block(n, p, size < usable ? size : usable);
  spaces_free(p);
  return n;
}

void ChunkRegion::reset(Chunk* c) {
  AllocSide side(c);
  bool captured = t_heap == &c->heap;
  prof_forget_chunk(c);
  // Keep as many slabs as the busiest of the last kResetRounds rounds used (option
  // chunk_reset_keep): a next round of that size takes none from the arenas (an arena lock, a
  // page-map write and a list link per 64 KiB), and with chunk_huge_pages=0 none is purged and
  // faulted in again. Slabs kept before and not used since do not count as used, so after a
  // spike the kept slabs shrink back within kResetRounds resets. (They count in the footprint;
  // at the ceiling they go back first: chunk_alloc's retry.)
  uint64_t used = c->nslabs - c->heap.empty_count;  // (bump slabs too: they come from heap_new_slab)
  if (c->round_peak > used) used = c->round_peak;
  c->round_peak = 0;
  c->round_slabs[c->round_pos++ % kResetRounds] = used > UINT32_MAX ? UINT32_MAX : uint32_t(used);
  uint32_t keep = uint32_t(option(kOpt_chunk_keep_slabs));
  if (option(kOpt_chunk_reset_keep))
    for (uint32_t r : c->round_slabs) keep = r > keep ? r : keep;
  chunk_release_all(c, keep);
  SPACES_VG(VALGRIND_DESTROY_MEMPOOL(c));
  SPACES_VG(VALGRIND_CREATE_MEMPOOL(c, 0, 0));
  if (captured) heap_bind_slabs(&c->heap, thread_self());
}

void ChunkRegion::destroy(Chunk* c) {
  if (t_heap == &c->heap) spaces_thread_set_chunk(nullptr);  // captured by this thread: release
  __atomic_store_n(&c->magic, 0u, __ATOMIC_RELEASE);
  prof_forget_chunk(c);
  chunk_release_all(c, 0);
  SPACES_VG(VALGRIND_DESTROY_MEMPOOL(c));  // every block of c: freed, so later uses are reported
  chunk_struct_free(c);
}

int ChunkRegion::set_ceiling(Chunk* c, size_t bytes) {
  c->ceiling.store(bytes, std::memory_order_relaxed);
  return 0;
}

size_t ChunkRegion::ceiling(Chunk* c) { return c->ceiling.load(std::memory_order_relaxed); }

int ChunkRegion::stats(Chunk* c, struct spaces_chunk_stats* out) {
  struct spaces_chunk_stats& st = *out;
  size_t blocks = 0, bytes = 0;
  {
    AllocSide side(c);
    for (Slab* s = c->slabs.head; s; s = s->chunk_next) {
      if (s->kind == kSlabBump) {
        uint64_t live = bump_live(s);
        blocks += live >> 32;
        bytes += uint32_t(live);
        continue;
      }
      if (s->kind != kSlabSmall) continue;
      size_t used = c->heap.cur[s->cls] == s ? slab_out(s) : s->used;  // (internal.h, Slab::used)
      blocks += used;
      bytes += used * s->block_size;
    }
    bool walker = __atomic_load_n(&c->large_walker_tp, __ATOMIC_RELAXED) == thread_self();
    if (!walker) c->large_lock.lock();  // the walker already holds it
    blocks += c->nlarge;
    bytes += c->large_bytes;
    st.large_blocks = c->nlarge;
    if (!walker) c->large_lock.unlock();
    st.slabs = c->nslabs;
  }
  st.version = SPACES_CHUNK_STATS_VERSION;
  st.flags = c->flags & ~kChunkProfiled;
  st.live_blocks = blocks - c->pending_blocks.load(std::memory_order_relaxed);
  st.live_bytes = bytes - c->pending_bytes.load(std::memory_order_relaxed);
  st.footprint = c->footprint.load(std::memory_order_relaxed);
  st.peak_footprint = c->peak.load(std::memory_order_relaxed);
  st.ceiling = c->ceiling.load(std::memory_order_relaxed);
  st.ceiling_hits = c->ceiling_hits.load(std::memory_order_relaxed);
  return 0;
}

int ChunkRegion::walk(Chunk* c, spaces_walk_fn fn, void* arg) {
  if (chunk_untracked(c)) {  // (its bump blocks' starts are not known)
    errno = ENOTSUP;
    return -1;
  }
  AllocSide side(c);
  __atomic_store_n(&c->walker_tp, thread_self(), __ATOMIC_RELAXED);  // fn may call stats etc.
  Heap* h = &c->heap;
  Slab* s = c->slabs.head;
  while (s) {
    Slab* next = s->chunk_next;  // fn may free the last live block of s, which releases s
    if (s->kind == kSlabSmall || s->kind == kSlabBump) {
      int r;
      if (s->kind == kSlabBump) {
        r = walk_bump(s, fn, arg);
      } else {
        heap_collect_slab(h, s);
        r = walk_slab(s, fn, arg);
      }
      if (r) {
        __atomic_store_n(&c->walker_tp, uintptr_t(0), __ATOMIC_RELAXED);
        return r;
      }
    }
    s = next;
  }
  int r = 0;
  {
    LockGuard g(c->large_lock);
    __atomic_store_n(&c->large_walker_tp, thread_self(), __ATOMIC_RELAXED);
    for (Slab* l = c->large; l && r == 0;) {
      Slab* next = l->next;
      r = fn(reinterpret_cast<void*>(l->user_ptr), l->user_size, arg);
      l = next;
    }
    __atomic_store_n(&c->large_walker_tp, uintptr_t(0), __ATOMIC_RELAXED);
  }
  __atomic_store_n(&c->walker_tp, uintptr_t(0), __ATOMIC_RELAXED);
  return r;
}

void ChunkRegion::set_pressure(Chunk* c, spaces_pressure_fn fn, void* arg) {
  __atomic_store_n(&c->pressure_arg, arg, __ATOMIC_RELEASE);
  __atomic_store_n(&c->pressure, fn, __ATOMIC_RELEASE);
}

}  // namespace spaces_core

using namespace spaces_core;

// ---- what only a Chunk has: creation, names, the window, pages, capture -------------------------

extern "C" {

SPACES_API SpacesChunk spaces_chunk_create(unsigned flags) noexcept {
  if ((flags & ~(SPACES_CHUNK_EXCLUSIVE | SPACES_CHUNK_UNTRACKED)) != 0 ||
      (flags & (SPACES_CHUNK_EXCLUSIVE | SPACES_CHUNK_UNTRACKED)) == SPACES_CHUNK_UNTRACKED) {
    errno = EINVAL;
    return nullptr;
  }
  if (!ensure_init()) {
    errno = ENOMEM;
    return nullptr;
  }
  Chunk* c = chunk_struct_alloc();
  if (c == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  if (!c->heap_clean) heap_init_chunk(&c->heap, c);  // (a pooled record left clean by destroy)
  c->heap_clean = true;
  c->heap.cache_limit_override = uint32_t(option(kOpt_chunk_keep_slabs));
  c->flags = flags | (g_prof_on ? kChunkProfiled : 0);
  c->prof_samples = 0;
  memset(c->round_slabs, 0, sizeof c->round_slabs);
  c->round_pos = 0;
  c->round_peak = 0;
  c->footprint.store(0, std::memory_order_relaxed);
  c->peak.store(0, std::memory_order_relaxed);
  c->ceiling.store(0, std::memory_order_relaxed);
  c->ceiling_hits.store(0, std::memory_order_relaxed);
  c->pending_blocks.store(0, std::memory_order_relaxed);
  c->pending_bytes.store(0, std::memory_order_relaxed);
  c->slabs.head = nullptr;
  c->nslabs = 0;
  c->large = nullptr;
  c->nlarge = 0;
  c->large_bytes = 0;
  c->pressure = nullptr;
  c->pressure_arg = nullptr;
  c->ceiling_blocked = false;
  c->walker_tp = 0;
  c->large_walker_tp = 0;
  c->free_next = nullptr;
  bump_set(c, &g_no_bump);
  c->bump_empty.store(nullptr, std::memory_order_relaxed);
  __atomic_store_n(&c->name, static_cast<const char*>(nullptr), __ATOMIC_RELAXED);
  SPACES_VG(VALGRIND_CREATE_MEMPOOL(c, 0, 0));
  __atomic_store_n(&c->magic, kChunkMagic, __ATOMIC_RELEASE);
  return reinterpret_cast<SpacesChunk>(c);
}

SPACES_API int spaces_chunk_set_name(SpacesChunk handle, const char* name) noexcept {
  Chunk* c = chunk_checked(handle);
  if (c == nullptr) {
    errno = EINVAL;
    return -1;
  }
  __atomic_store_n(&c->name, name, __ATOMIC_RELEASE);
  return 0;
}

SPACES_API const char* spaces_chunk_name(SpacesChunk handle) noexcept {
  Chunk* c = chunk_checked(handle);
  return c ? __atomic_load_n(&c->name, __ATOMIC_ACQUIRE) : nullptr;
}

SPACES_API struct spaces_window* spaces_chunk_window(SpacesChunk handle) noexcept {
#if defined(SPACES_VALGRIND) || defined(__SANITIZE_ADDRESS__)
  (void)handle;
  return &g_no_window;  // every block must go through track_alloc
#else
  Chunk* c = chunk_checked(handle);
  // (heap profiling: every region allocation must reach chunk_alloc, which counts it)
  return c != nullptr && (c->flags & SPACES_CHUNK_EXCLUSIVE) && !g_prof_on ? &c->win : &g_no_window;
#endif
}

// One slab's worth as a large block: a 256-aligned request of the slab minus its header lands at
// offset kSlabHeader of a one-slab run (large.cpp: user_ptr_in), with exactly that usable size.
SPACES_API void* spaces_chunk_alloc_page(SpacesChunk handle, unsigned flags) noexcept {
  static_assert(SPACES_PAGE_SIZE == kSlabSize && SPACES_PAGE_USABLE == kSlabSize - kSlabHeader,
                "the public page contract is the slab geometry");
  Chunk* c = chunk_checked(handle);  // (shared-memory regions: their granules differ)
  if (c == nullptr || !region_args_ok(kSlabHeader, kSlabSize - kSlabHeader, flags)) {
    if (c == nullptr) errno = EINVAL;
    return nullptr;
  }
  return chunk_alloc(c, kSlabHeader, kSlabSize - kSlabHeader, (flags & SPACES_ZERO) != 0, true);
}

SPACES_API SpacesChunk spaces_thread_set_chunk(SpacesChunk handle) noexcept {
  Heap* cur = t_heap;
  if (cur->state == kHeapStatic) cur = heap_thread_init();
  if (cur == nullptr) return nullptr;
  SpacesChunk prev = reinterpret_cast<SpacesChunk>(cur->chunk);
  Chunk* c = chunk_checked(handle);
  if (handle != nullptr && (c == nullptr || !(c->flags & SPACES_CHUNK_EXCLUSIVE))) {
    errno = EINVAL;
    return prev;
  }
  if (cur->chunk) heap_bind_slabs(cur, 0);
  if (c) {
    c->heap_clean = false;
    heap_bind_slabs(&c->heap, thread_self());
    t_heap = &c->heap;
  } else {
    t_heap = t_home_heap;
  }
  return prev;
}

}  // extern "C"
