// arena.cpp - where slabs come from and where they go back to the OS.
//
// An arena is a 4 MiB, 4 MiB-aligned mapping cut into 64 granules of 64 KiB. Granule 0 holds the
// Arena record below (only its first page is ever touched); granules 1..63 are slabs, handed out
// alone (small size-class slabs), as contiguous runs (medium slabs of 2..16 granules, large
// blocks up to ~4 MiB).
//
// Shards. Arenas are spread over up to 16 shards (a power of two, at most the CPUs this process
// may run on), each with its own lock, free list and purge clock; a thread allocates from the
// shard it was given at its first arena operation (round robin), and a run goes back to the
// shard of its arena, whichever thread frees it. So no lock is process-wide: threads meet on a
// shard lock only when they share a shard, and only when a heap's slab caches run dry or
// overflow. A thread whose shard has no room takes dirty slabs from another shard it can lock
// without waiting before it maps a new arena, so memory freed anywhere is reused before fresh
// memory is touched (RSS stays flat under thread churn).
//
// Invariants (under the arena's shard lock, which guards every Arena field and the shard's lists):
//   - free_mask bit i <=> slab i can be handed out; dirty_mask is a subset of free_mask: free
//     slabs whose pages may still be resident. A free, clean slab costs nothing but address space.
//     purging_mask: slabs being purged outside the lock (neither free nor in use).
//   - an arena is on its shard's free list iff free_mask != 0.
// Purging (decided under a lock, done outside it: no system call is made while a lock that
// other threads wait for is held):
//   - dirty memory (free slabs in arenas + cached direct mappings' resident pages, one atomic
//     count) above `dirty_max_kib` per thread heap: the shard that is freeing purges its oldest
//     dirty arenas at once, down to three quarters of the bound;
//   - below that, a decay curve, jemalloc's: each shard keeps, for each of the last kDecaySteps
//     eighths of `purge_delay_ms`, how much its heap arenas' dirty slabs grew in it
//     (Shard::decay). Of the growth a fraction f of the delay ago, 1 - smoothstep(f) may stay
//     dirty (all of it at first, none after the delay), and all of the current eighth's; the
//     excess is purged, slab by slab, from the arenas whose dirty slabs are oldest, but never
//     from one whose first dirty slab was freed within the last eighth (a run freed and taken
//     again in a loop adds no growth, hence no allowance, and must stay warm). A burst's memory
//     stays warm for its reuse, and a program that keeps allocating a little gives the rest
//     back over the delay rather than at its end (bench/micro/decay.c);
//   - every arena's dirty slabs are purged `purge_delay_ms` after the first of them was freed,
//     whatever the curve says. All of this runs on the next operation of the shard or
//     spaces_collect (never from a background thread); fully free arenas beyond `arena_cache`
//     (per shard) are unmapped on the same delay, or when the curve purges all of one. (Regions'
//     THP arenas and the spans keep the delay alone: purging part of them splits huge pages;
//     heap arenas advised THP by arena_huge_pages are on the curve like the others.)
// Spans (below, "spans: huge blocks") are 64 MiB arenas of 1024 granules for thread heaps'
// blocks of 2-32 MiB, on the same shards and locks, with their own dirty bound.
// Blocks of their own mapping ("direct": above a run, or huge blocks) are 4 MiB-aligned, their
// size rounded up to 4 MiB of address space (the tail is never touched, so costs no RAM), so the
// arenas bitmap stays exact. Freed ones wait in a small cache (its own lock) for reuse.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

namespace spaces_core {

SPACES_HOT_TEXT void SpinLock::lock_slow() {
  for (;;) {
    for (int spins = 0; v.load(std::memory_order_relaxed) != 0; spins++) {
      if (spins < 64)
        os_cpu_relax();
      else
        os_yield();
    }
    if (!v.exchange(1, std::memory_order_acquire)) return;
  }
}

namespace {

struct Arena {
  Arena* next_free;
  Arena* prev_free;
  Arena* next_all;
  Arena* prev_all;
  uint64_t free_mask;
  uint64_t dirty_mask;
  uint64_t purging_mask; // slabs being purged outside the lock: neither free nor in use
  uint64_t dirty_since;  // ns when the first still-dirty slab was freed; 0 if none
  bool on_free_list;
  bool huge;             // advised MADV_HUGEPAGE: serves regions (option chunk_huge_pages)
  uint8_t shard;
  bool thp;              // advised MADV_HUGEPAGE, for regions (`huge`) or by arena_huge_pages
                         // (arena_thp)
};

constexpr uint64_t kAllSlabs = ~uint64_t(1);  // granule 0 is the arena record
constexpr unsigned kMaxShards = 16;

using ArenaFreeList = IList<Arena, &Arena::next_free, &Arena::prev_free>;  // arenas with free slabs
using ArenaList = IList<Arena, &Arena::next_all, &Arena::prev_all>;        // every arena

struct Span;

constexpr unsigned kDecaySteps = 8;  // epochs of the decay curve over one purge delay
struct alignas(64) Shard {
  SpinLock lock;
  ArenaFreeList free_list;
  ArenaList all;
  Span* spans;               // this shard's spans (huge blocks), newest first
  size_t arena_count;
  size_t empty_arenas;
  size_t slabs_cached;       // dirty free slabs (cached_add)
  size_t heap_dirty;         // those of thread heaps' arenas (not `huge`): written under the lock
                             // by cached_add, read by other threads without it, as a hint
                             // (dirty_elsewhere)
  uint64_t next_purge;       // 0 (static init) is "at once": a harmless first check
  // The decay curve (heap arenas only, not regions' THP arenas): decay_dirty their dirty slabs
  // now, decay_base that count when the current epoch (of purge_delay_ms / kDecaySteps) began at
  // decay_start (0: no clock running), decay[decay_newest] the growth over the last whole epoch.
  uint32_t decay[kDecaySteps];
  unsigned decay_newest;
  uint64_t decay_start;
  size_t decay_dirty, decay_base;
};
Shard g_shard[kMaxShards] = {};  // (= {}: constant-initialised, no static constructor)
SPACES_INLINE void cached_add(Shard& sh, const Arena* a, ptrdiff_t n) {  // (shard lock held)
  sh.slabs_cached = size_t(ptrdiff_t(sh.slabs_cached) + n);
  if (!a->huge) __atomic_store_n(&sh.heap_dirty, size_t(ptrdiff_t(sh.heap_dirty) + n), __ATOMIC_RELAXED);
}
unsigned g_shards = 0;        // set once by shard_count(); a power of two
std::atomic<unsigned> g_next_shard{0};
SPACES_TLS int t_shard = -1;

// Process totals: atomics, so that no lock is shared by all threads for accounting.
std::atomic<size_t> g_committed{0};   // bytes: slabs in use + dirty free slabs + direct mappings
std::atomic<size_t> g_peak_committed{0};
std::atomic<size_t> g_reserved{0};
std::atomic<size_t> g_dirty{0};       // bytes: dirty free slabs + cached mappings' resident pages
std::atomic<size_t> g_purges{0};
std::atomic<size_t> g_mmaps{0};
std::atomic<size_t> g_heaps_for_bound{1};  // thread heaps in existence (heap.cpp keeps it)

SPACES_HOT_TEXT void commit_add(ptrdiff_t bytes) {
  size_t now = g_committed.fetch_add(size_t(bytes), std::memory_order_relaxed) + size_t(bytes);
  size_t peak = g_peak_committed.load(std::memory_order_relaxed);
  while (bytes > 0 && now > peak &&
         !g_peak_committed.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
SPACES_INLINE void dirty_add(ptrdiff_t bytes) { g_dirty.fetch_add(size_t(bytes), std::memory_order_relaxed); }
SPACES_INLINE size_t dirty_limit() {
  size_t heaps = g_heaps_for_bound.load(std::memory_order_relaxed);
  return (size_t(option(kOpt_dirty_max_kib)) << 10) * (heaps ? heaps : 1);
}
// Dirty slabs of region arenas (Arena::huge, option chunk_huge_pages) do not count against the
// bound either: a region's memory is most often taken again by the next region (a compiler's
// arena per function), and purging 64 KiB pieces of an arena advised huge pages splits them, so
// what is refilled faults 4 KiB at a time (regions_bench: a 1M-block region rebuilt after
// destroy took 36.7 ms instead of 5.8). They are purged on `purge_delay_ms` like the rest.
std::atomic<size_t> g_dirty_regions{0};
SPACES_INLINE void arena_dirty_add(const Arena* a, ptrdiff_t bytes) {
  dirty_add(bytes);
  if (a->huge) g_dirty_regions.fetch_add(size_t(bytes), std::memory_order_relaxed);
}
// The most recently freed direct mapping is the one the next big allocation most likely reuses
// (a buffer freed and allocated again in a loop): when its resident bytes are within the bound,
// they do not count against it, so it is not purged just before that reuse. It is purged on the
// delay like any other, or by the bound once a newer mapping is freed. (g_dcache_lock keeps it.)
std::atomic<size_t> g_dirty_exempt{0};
// Spans' dirty granules have their own bound (span_dirty_limit): a freed huge block is most
// often followed by another, which reuses them; under the heaps' bound they would push out the
// slab caches, or be purged before that reuse.
std::atomic<size_t> g_dirty_spans{0};
std::atomic<size_t> g_span_live{0};  // bytes of span runs in use
SPACES_INLINE size_t dirty_counted() {
  size_t d = g_dirty.load(std::memory_order_relaxed);
  size_t e = g_dirty_exempt.load(std::memory_order_relaxed) + g_dirty_regions.load(std::memory_order_relaxed) +
             g_dirty_spans.load(std::memory_order_relaxed);
  return d > e ? d - e : 0;
}
SPACES_INLINE bool over_dirty_limit() { return dirty_counted() > dirty_limit(); }

SPACES_HOT_TEXT unsigned shard_count() {
  unsigned n = __atomic_load_n(&g_shards, __ATOMIC_ACQUIRE);
  if (n) return n;
  unsigned cpus = os_cpu_count();
  n = 1;
  while (n * 2 <= cpus && n * 2 <= kMaxShards) n *= 2;
  __atomic_store_n(&g_shards, n, __ATOMIC_RELEASE);  // (two racing threads compute the same)
  return n;
}
SPACES_INLINE unsigned my_shard() {
  int s = t_shard;
  if (SPACES_LIKELY(s >= 0)) return unsigned(s);
  s = int(g_next_shard.fetch_add(1, std::memory_order_relaxed) & (shard_count() - 1));
  t_shard = s;
  return unsigned(s);
}

// Freed direct mappings kept for reuse, so a program that allocates and frees big buffers in a
// loop pays neither mmap/munmap nor page faults each time. Dirty entries are purged on the same
// delay as slabs (or at once above the dirty bound); the least recently freed entry is unmapped
// when the cache is full. All under g_dcache_lock; g_dcache_next_purge says when the next
// entry's delay runs out (checked after every arena operation).
struct DirectCached {
  uintptr_t base;
  size_t mapped;
  size_t resident;  // bytes from base possibly resident (0 once purged)
  size_t charged;   // of those, counted in g_committed and g_dirty (a huge lead's gap is not)
  size_t lead;      // DirectReuse::lead (a purge keeps it: page tables stay)
  uint64_t freed_at;
  uint64_t seq;     // order of freeing ("oldest first"; freed_at is a coarse clock)
};
constexpr int kDirectCacheSlots = 16;
constexpr size_t kDirectCacheBytes = size_t(512) << 20;
SpinLock g_dcache_lock;
std::atomic<uint64_t> g_dcache_next_purge{UINT64_MAX};  // when a cached mapping's delay runs out
DirectCached g_dcache[kDirectCacheSlots];
int g_dcache_n = 0;
size_t g_dcache_bytes = 0;   // (includes entries out for purging)
uintptr_t g_dcache_newest = 0;  // base of the entry whose bytes are g_dirty_exempt (0: none)
uint64_t g_dcache_seq = 0;

SPACES_HOT_TEXT void dcache_remove(int i) {
  if (g_dcache[i].base == g_dcache_newest) {
    g_dcache_newest = 0;
    g_dirty_exempt.store(0, std::memory_order_relaxed);
  }
  g_dcache_bytes -= g_dcache[i].mapped;
  g_dcache[i] = g_dcache[--g_dcache_n];
}

SPACES_INLINE Arena* arena_of(const void* p) {
  return reinterpret_cast<Arena*>(reinterpret_cast<uintptr_t>(p) & ~(kArenaSize - 1));
}
SPACES_INLINE uint64_t run_mask(size_t count, unsigned i) {
  return (count == 64 ? ~uint64_t(0) : ((uint64_t(1) << count) - 1)) << i;
}

void free_list_add(Shard& sh, Arena* a) {
  a->on_free_list = true;
  sh.free_list.push(a);
}

void free_list_remove(Shard& sh, Arena* a) {
  a->on_free_list = false;
  sh.free_list.remove(a);
}

// ---- spans: huge blocks ---------------------------------------------------------------------
// A span is a 64 MiB, 64 MiB-aligned mapping advised transparent huge pages, cut into 1024
// granules of 64 KiB like an arena; granule 0 holds the Span record. A huge block (2-32 MiB from
// a thread heap, option huge_spans) is a run of granules of any length, its header in the first
// as a large run's (Slab::cls = kLargeInSpan), taken best-fit from the spans of the thread's
// shard. Freed runs coalesce in the bitmap, so a freed 16 MiB block serves a 4 and an 8 MiB one
// from its resident pages: no system call, no page fault. What a mapping per block could not do
// (mimalloc's arenas and jemalloc's extents work the same way). Free granules that may be
// resident (dirty) are bounded by span_dirty_limit and purged on the delay like free slabs, in
// whole 2 MiB pages where they can be (a partial purge splits a huge page). Spans stay mapped
// (their address space) once made; purged, they cost no memory.
constexpr size_t kSpanSize = size_t(64) << 20;
constexpr unsigned kSpanGranules = unsigned(kSpanSize >> kSlabShift);  // 1024
constexpr unsigned kSpanWords = kSpanGranules / 64;
constexpr unsigned kHugeGranules = unsigned(kHugePage >> kSlabShift);  // 32
static_assert(kSpanMaxRun < kSpanGranules, "the largest span block fits in a span");

struct Span {
  Span* next;                     // the shard's spans
  uint64_t used[kSpanWords];      // granules in use; granule 0 (this record) and purging ones too
  uint64_t dirty[kSpanWords];     // free granules whose pages may be resident (old data)
  uint64_t purging[kSpanWords];   // being purged outside the lock (also set in used)
  uint64_t dirty_since;           // ns when the oldest still-dirty granule was freed; 0 if none
  uint64_t empty_since;           // ns since nothing is in use in it; 0 while something is
  uint32_t dirty_granules;
  uint8_t shard;
};

SPACES_INLINE Span* span_of(uintptr_t p) { return reinterpret_cast<Span*>(p & ~(kSpanSize - 1)); }
SPACES_INLINE uintptr_t span_addr(const Span* sp, unsigned g) {
  return reinterpret_cast<uintptr_t>(sp) + (uintptr_t(g) << kSlabShift);
}

// Granule sets (and page boxes' page sets, pages.cpp): bits [i, i + n) set or cleared, counted;
// the next index >= i whose bit is v (`end` if none before it; end: a multiple of 64).
SPACES_HOT_TEXT void bits_set(uint64_t* b, unsigned i, unsigned n, bool on) {
  while (n) {
    unsigned k = i & 63, m = 64 - k < n ? 64 - k : n;
    uint64_t mask = run_mask(m, k);
    if (on)
      b[i >> 6] |= mask;
    else
      b[i >> 6] &= ~mask;
    i += m;
    n -= m;
  }
}
SPACES_HOT_TEXT unsigned bits_count(const uint64_t* b, unsigned i, unsigned n) {
  unsigned c = 0;
  while (n) {
    unsigned k = i & 63, m = 64 - k < n ? 64 - k : n;
    c += unsigned(popcount64(b[i >> 6] & run_mask(m, k)));
    i += m;
    n -= m;
  }
  return c;
}
SPACES_HOT_TEXT unsigned bits_next(const uint64_t* b, unsigned i, bool v, unsigned end = kSpanGranules) {
  while (i < end) {
    uint64_t w = v ? b[i >> 6] : ~b[i >> 6];
    w &= ~uint64_t(0) << (i & 63);
    if (w) return (i & ~63u) + unsigned(__builtin_ctzll(w));
    i = (i & ~63u) + 64;
  }
  return end;
}

SPACES_INLINE void span_dirty_add(ptrdiff_t bytes) {
  dirty_add(bytes);
  g_dirty_spans.fetch_add(size_t(bytes), std::memory_order_relaxed);
}
// The spans' bound: free span memory is kept resident while the spans' footprint (live + dirty)
// stays within 1.5x the most bytes live in spans during the last two purge delays (or up to
// dirty_max_kib per heap, if more). A program cycling huge blocks then keeps, for a purge delay,
// what its next blocks will reuse plus room for the holes first fit leaves; one whose huge
// blocks shrink gives the rest back a delay later. Measured (session 12, bench huge --iters 1500
// and a private 4-thread mix of 2-32 MiB blocks with cross-thread frees and reallocs): a bound of
// the bytes live now purged what the next blocks reused, since each free lowers it by the block
// just freed (1 723-2 550 faults against 299 with no bound, and no less RSS); footprint <= 1.0x
// the peak: 0.10-0.13 s / 81 MiB and 5.6 s / 1.49-1.55 GB; 1.5x: 0.04 s / 77 MiB and 3.3-3.6 s
// / 1.79-1.88 GB (mimalloc 3.4.3: 0.04-0.07 s / 100 MiB, 3.9-4.7 s / 1.95-2.15 GB; a mapping per
// block: 0.37-0.64 s / 79 MiB, 6.6-7.0 s / 1.43-1.45 GB); 2x: as 1.5x.
std::atomic<size_t> g_span_peak{0}, g_span_peak_prev{0};
std::atomic<uint64_t> g_span_window{0};  // when the current peak's window began (ns)
SPACES_HOT_TEXT void span_note_live(size_t live, uint64_t now) {
  uint64_t w = g_span_window.load(std::memory_order_relaxed);
  uint64_t delay = option(kOpt_purge_delay_ms) < 0 ? UINT64_MAX : uint64_t(option(kOpt_purge_delay_ms)) * 1000000ull;
  if (delay != UINT64_MAX && now - w >= delay && g_span_window.compare_exchange_strong(w, now, std::memory_order_relaxed)) {
    g_span_peak_prev.store(g_span_peak.load(std::memory_order_relaxed), std::memory_order_relaxed);
    g_span_peak.store(live, std::memory_order_relaxed);
  }
  size_t p = g_span_peak.load(std::memory_order_relaxed);
  while (live > p && !g_span_peak.compare_exchange_weak(p, live, std::memory_order_relaxed)) {
  }
}
SPACES_INLINE size_t span_dirty_limit() {
  size_t a = g_span_peak.load(std::memory_order_relaxed), b = g_span_peak_prev.load(std::memory_order_relaxed);
  size_t peak = a > b ? a : b, live = g_span_live.load(std::memory_order_relaxed), l = dirty_limit();
  size_t room = peak + peak / 2;
  room = room > live ? room - live : 0;
  return room > l ? room : l;
}
SPACES_INLINE bool spans_over_limit() { return g_dirty_spans.load(std::memory_order_relaxed) > span_dirty_limit(); }

// ---- purging: decided under a lock, done outside it -------------------------------------------
constexpr int kBatch = 16;
struct PurgeBatch {
  Shard* shard = nullptr;
  int n = 0, nu = 0, nd = 0;
  Arena* arena[kBatch];
  uint64_t mask[kBatch];
  Arena* unmap[kBatch];
  DirectCached direct[kBatch];
  int ns = 0, nsu = 0;
  Span* span[kBatch];      // span granules [sfirst, sfirst + scount) to purge
  uint16_t sfirst[kBatch], scount[kBatch];
  Span* span_unmap[kBatch];
  bool full() const { return n == kBatch || nu == kBatch || nd == kBatch || ns == kBatch || nsu == kBatch; }
};

// A heap arena's dirty slabs go down by n (purged or unmapped): so does the decay curve's count,
// and its base, so that what is freed next counts as new growth (shard lock held).
SPACES_INLINE void decay_purged(Shard& sh, const Arena* a, size_t n) {
  if (a->huge) return;
  sh.decay_dirty -= n;
  sh.decay_base -= n < sh.decay_base ? n : sh.decay_base;
}

// Take a's dirty slabs (those in `only`) out of the free set for purging (shard lock held).
SPACES_HOT_TEXT void plan_arena_purge(Shard& sh, PurgeBatch& b, Arena* a, uint64_t only = ~uint64_t(0)) {
  uint64_t d = a->dirty_mask & only;
  if (d == 0) return;
  if (a->free_mask == kAllSlabs) sh.empty_arenas--;
  a->free_mask &= ~d;
  a->purging_mask |= d;
  a->dirty_mask &= ~d;
  if (a->dirty_mask == 0) a->dirty_since = 0;
  unsigned n = popcount64(d);
  cached_add(sh, a, -ptrdiff_t(n));
  decay_purged(sh, a, n);
  arena_dirty_add(a, -ptrdiff_t(n * kSlabSize));
  if (a->free_mask == 0) free_list_remove(sh, a);
  b.arena[b.n] = a;
  b.mask[b.n++] = d;
}

// Unlink a fully free arena from its shard; purge_run unmaps it (shard lock held).
SPACES_HOT_TEXT void plan_arena_unmap(Shard& sh, PurgeBatch& b, Arena* a) {
  if (a->on_free_list) free_list_remove(sh, a);
  sh.all.remove(a);
  unsigned n = popcount64(a->dirty_mask);
  commit_add(-ptrdiff_t(n * kSlabSize));
  arena_dirty_add(a, -ptrdiff_t(n * kSlabSize));
  cached_add(sh, a, -ptrdiff_t(n));
  decay_purged(sh, a, n);
  sh.arena_count--;
  sh.empty_arenas--;
  g_reserved.fetch_sub(kArenaSize, std::memory_order_relaxed);
  b.unmap[b.nu++] = a;
}

// Take granules [g, g + n) of sp, all free and dirty, out of the free set for purging (its
// shard's lock held).
void plan_span_purge(PurgeBatch& b, Span* sp, unsigned g, unsigned n) {
  bits_set(sp->dirty, g, n, false);
  bits_set(sp->used, g, n, true);
  bits_set(sp->purging, g, n, true);
  sp->dirty_granules -= n;
  if (sp->dirty_granules == 0) sp->dirty_since = 0;
  span_dirty_add(-ptrdiff_t(n * kSlabSize));
  b.span[b.ns] = sp;
  b.sfirst[b.ns] = uint16_t(g);
  b.scount[b.ns++] = uint16_t(n);
}

// Plan purges of sp's dirty runs (its shard's lock held): whole_pages: only the whole 2 MiB
// pages inside each run (a purge of part of one splits it), and not granules [keep, keep_end)
// (a run just freed, most likely reused next); stop once the spans are within three quarters of
// their bound (over_only) or the batch is full.
SPACES_HOT_TEXT void plan_span_runs(PurgeBatch& b, Span* sp, bool whole_pages, bool over_only, unsigned keep, unsigned keep_end) {
  for (unsigned i = bits_next(sp->dirty, 0, true); i < kSpanGranules && !b.full();) {
    unsigned end = bits_next(sp->dirty, i, false);
    unsigned from = i, to = end;
    if (whole_pages) {
      from = (i + kHugeGranules - 1) & ~(kHugeGranules - 1);
      to = end & ~(kHugeGranules - 1);
    }
    if (keep < keep_end && from < keep_end && to > keep) from = to;  // (overlaps the kept run)
    if (over_only && g_dirty_spans.load(std::memory_order_relaxed) <= span_dirty_limit() / 4 * 3) return;
    if (from < to) plan_span_purge(b, sp, from, to - from);
    i = bits_next(sp->dirty, end, true);
  }
}

SPACES_INLINE uint64_t delay_ns() {
  long long ms = option(kOpt_purge_delay_ms);
  return ms < 0 ? UINT64_MAX : uint64_t(ms) * 1000000ull;
}

// ---- the decay curve (head of this file), shard lock held ----
// The epoch length, 0 when there is no curve (purge_delay_ms -1: never; 0: at once).
SPACES_INLINE uint64_t decay_epoch(uint64_t delay) {
  return delay == UINT64_MAX || delay < kDecaySteps ? 0 : delay / kDecaySteps;
}
// Close the epochs that ended by `now`: the first records the growth since decay_base, the
// others none; after a whole delay of them the clock stops until slabs are freed again.
SPACES_HOT_TEXT void decay_advance(Shard& sh, uint64_t now, uint64_t epoch) {
  if (sh.decay_start == 0 || now < sh.decay_start + epoch) return;
  uint64_t steps = (now - sh.decay_start) / epoch;
  size_t grew = sh.decay_dirty > sh.decay_base ? sh.decay_dirty - sh.decay_base : 0;
  for (uint64_t k = 0; k < steps && k < kDecaySteps; k++) {
    sh.decay_newest = (sh.decay_newest + 1) % kDecaySteps;
    sh.decay[sh.decay_newest] = k == 0 && steps < kDecaySteps ? uint32_t(grew) : 0;  // (older: weight 0)
  }
  sh.decay_base = sh.decay_dirty;
  sh.decay_start += steps * epoch;
  bool idle = sh.decay_dirty == 0;
  for (uint32_t d : sh.decay) idle = idle && d == 0;
  if (idle) sh.decay_start = 0;
}
// Slabs of a heap arena were freed now (and counted): start the clock if it stopped.
SPACES_HOT_TEXT void decay_freed(Shard& sh, uint64_t now) {
  uint64_t epoch = decay_epoch(delay_ns());
  if (epoch == 0) return;
  if (sh.decay_start == 0) {
    sh.decay_start = now;
    sh.decay_base = 0;  // (everything dirty now is this epoch's growth)
  }
  if (sh.decay_start + epoch < sh.next_purge) sh.next_purge = sh.decay_start + epoch;
}
// The dirty slabs that may stay now: the current epoch's growth, and the growth k + 1 epochs
// ago weighted by 1 - smoothstep((k + 1) / kDecaySteps), in 1024ths (smoothstep(x) = 3x^2 - 2x^3).
SPACES_HOT_TEXT size_t decay_allowance(const Shard& sh) {
  static constexpr uint16_t kWeight[kDecaySteps] = {980, 864, 700, 512, 324, 160, 44, 0};
  size_t sum = 0;
  for (unsigned k = 0; k < kDecaySteps; k++)
    sum += size_t(sh.decay[(sh.decay_newest + kDecaySteps - k) % kDecaySteps]) * kWeight[k];
  return sum / 1024 + (sh.decay_dirty > sh.decay_base ? sh.decay_dirty - sh.decay_base : 0);
}

// Decide what shard sh purges now (its lock held). force: everything dirty.
SPACES_HOT_TEXT void purge_plan(Shard& sh, PurgeBatch& b, uint64_t now, bool force) {
  b.shard = &sh;
  // Not while this thread holds the heap profiler's lock (a sampled block's slab taken or given
  // back for g_prof_heap, prof_collect): every thread that samples or frees a sample waits on
  // it, so no madvise under it; the purges stay due and the next arena operation makes them.
  if (SPACES_UNLIKELY(prof_locked())) return;
  bool over = over_dirty_limit();
  if (!force && !over && now < sh.next_purge) return;
  uint64_t delay = delay_ns();
  // (`since` may be later than `now`, sampled before the lock: not due)
  auto due = [&](uint64_t since) { return force || (delay != UINT64_MAX && since <= now && now - since >= delay); };
  uint64_t next = UINT64_MAX;
  for (Arena* a = sh.free_list.head, *following; a && !b.full(); a = following) {
    following = a->next_free;
    if (!a->dirty_mask && !(force && a->free_mask == kAllSlabs)) continue;
    if (due(a->dirty_since)) {
      if (a->free_mask == kAllSlabs && sh.empty_arenas > size_t(option(kOpt_arena_cache)))
        plan_arena_unmap(sh, b, a);  // fully free beyond the cache: give the address space back too
      else
        plan_arena_purge(sh, b, a);
    } else if (delay != UINT64_MAX && a->dirty_since + delay < next) {
      next = a->dirty_since + delay;
    }
  }
  for (Span** link = &sh.spans; *link && !b.full();) {
    Span* sp = *link;
    bool empty = sp->used[0] == 1;  // (granule 0 only: nothing in use, nothing being purged)
    for (unsigned w = 1; w < kSpanWords && empty; w++) empty = sp->used[w] == 0;
    if (empty && (force || (sp->empty_since && due(sp->empty_since)))) {
      *link = sp->next;  // a span left empty for a purge delay goes back whole
      size_t d = size_t(sp->dirty_granules) * kSlabSize;
      span_dirty_add(-ptrdiff_t(d));
      commit_add(-ptrdiff_t(d));
      g_reserved.fetch_sub(kSpanSize, std::memory_order_relaxed);
      b.span_unmap[b.nsu++] = sp;
      continue;
    }
    link = &sp->next;
    if (sp->empty_since && delay != UINT64_MAX && sp->empty_since + delay < next) next = sp->empty_since + delay;
    if (sp->dirty_granules == 0) continue;
    if (due(sp->dirty_since))
      plan_span_runs(b, sp, false, false, 0, 0);  // (idle: every dirty granule, split or not)
    else if (delay != UINT64_MAX && sp->dirty_since + delay < next)
      next = sp->dirty_since + delay;
  }
  // Above the curve: the excess, from this shard's oldest dirty heap arenas. An arena whose
  // first dirty slab was freed less than an epoch ago is left alone: a run freed and taken again
  // in a loop (no growth, so no allowance) stays warm.
  if (uint64_t epoch = decay_epoch(delay); epoch != 0 && sh.decay_start != 0 && !force) {
    decay_advance(sh, now, epoch);
    size_t allowed = decay_allowance(sh);
    while (sh.decay_dirty > allowed && !b.full()) {
      Arena* oldest = nullptr;
      for (Arena* a = sh.free_list.head; a; a = a->next_free)
        if (a->dirty_mask && !a->huge && a->dirty_since + epoch <= now &&
            (oldest == nullptr || a->dirty_since < oldest->dirty_since))
          oldest = a;
      if (oldest == nullptr) break;
      size_t excess = sh.decay_dirty - allowed;
      uint64_t take = oldest->dirty_mask;
      for (size_t n = popcount64(take); n > excess; n--) take &= take - 1;  // (the top `excess` slabs)
      if (take == oldest->dirty_mask && oldest->free_mask == kAllSlabs &&
          sh.empty_arenas > size_t(option(kOpt_arena_cache)))
        plan_arena_unmap(sh, b, oldest);
      else
        plan_arena_purge(sh, b, oldest, take);
    }
    if (sh.decay_start != 0 && sh.decay_start + epoch < next) next = sh.decay_start + epoch;
  }
  if (force && sh.decay_dirty == 0) {  // (spaces_collect(1): what was purged leaves no allowance)
    for (uint32_t& d : sh.decay) d = 0;
    sh.decay_base = 0;
    sh.decay_start = 0;
  }
  // Above the bound: this shard's oldest dirty arenas now, down to three quarters of it.
  size_t target = dirty_limit() / 4 * 3;
  while (over && !b.full() && dirty_counted() > target) {
    Arena* oldest = nullptr;
    for (Arena* a = sh.free_list.head; a; a = a->next_free)
      if (a->dirty_mask && !a->huge && (oldest == nullptr || a->dirty_since < oldest->dirty_since)) oldest = a;
    if (oldest == nullptr) break;
    if (oldest->free_mask == kAllSlabs && sh.empty_arenas > size_t(option(kOpt_arena_cache)))
      plan_arena_unmap(sh, b, oldest);
    else
      plan_arena_purge(sh, b, oldest);
  }
  sh.next_purge = b.full() ? now : next;  // a full batch leaves the rest for the next operation
}

// The direct cache's share (g_dcache_lock held): due entries, and the oldest above the bound.
SPACES_HOT_TEXT void dcache_plan(PurgeBatch& b, uint64_t now, bool force) {
  uint64_t delay = delay_ns();
  auto take = [&](int i) {
    b.direct[b.nd++] = g_dcache[i];
    dirty_add(-ptrdiff_t(g_dcache[i].charged));
    dcache_remove(i);  // (back, clean, after the purge; its bytes stay counted meanwhile)
    g_dcache_bytes += b.direct[b.nd - 1].mapped;
  };
  for (int i = 0; i < g_dcache_n && b.nd < kBatch;) {
    DirectCached& e = g_dcache[i];
    if (e.resident != 0 && (force || (delay != UINT64_MAX && e.freed_at <= now && now - e.freed_at >= delay))) {
      take(i);  // (moves the last entry to i)
      continue;
    }
    i++;
  }
  size_t target = dirty_limit() / 4 * 3;
  while (b.nd < kBatch && over_dirty_limit() && dirty_counted() > target) {
    int o = -1;
    for (int i = 0; i < g_dcache_n; i++)
      if (g_dcache[i].resident && g_dcache[i].base != g_dcache_newest &&
          (o < 0 || g_dcache[i].seq < g_dcache[o].seq))
        o = i;
    if (o < 0) break;
    take(o);
  }
  uint64_t next = UINT64_MAX;  // the next entry whose delay runs out
  for (int i = 0; i < g_dcache_n; i++)
    if (g_dcache[i].resident && delay != UINT64_MAX && g_dcache[i].freed_at + delay < next)
      next = g_dcache[i].freed_at + delay;
  g_dcache_next_purge.store(b.nd == kBatch ? now : next, std::memory_order_relaxed);
}

// Carry out a batch (no lock held): the system calls, then the memory goes back, clean.
SPACES_HOT_TEXT void purge_run(PurgeBatch& b) {
  if (b.n == 0 && b.nu == 0 && b.nd == 0 && b.ns == 0 && b.nsu == 0) return;
  for (int k = 0; k < b.nsu; k++) {
    pagemap_set_region(reinterpret_cast<uintptr_t>(b.span_unmap[k]), kSpanSize, false);
    SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(b.span_unmap[k], kSpanSize));
    os_unmap(b.span_unmap[k], kSpanSize);
  }
  for (int k = 0; k < b.ns; k++) {
    os_purge(reinterpret_cast<void*>(span_addr(b.span[k], b.sfirst[k])), size_t(b.scount[k]) * kSlabSize);
    g_purges.fetch_add(1, std::memory_order_relaxed);
  }
  for (int k = 0; k < b.ns; k++) {  // (a batch's spans may be of several shards)
    Span* sp = b.span[k];
    LockGuard g(g_shard[sp->shard].lock);
    bits_set(sp->purging, b.sfirst[k], b.scount[k], false);
    bits_set(sp->used, b.sfirst[k], b.scount[k], false);
    commit_add(-ptrdiff_t(size_t(b.scount[k]) * kSlabSize));
  }
  for (int k = 0; k < b.n; k++) {
    uint64_t d = b.mask[k];
    while (d) {
      unsigned i = __builtin_ctzll(d);
      uint64_t run = d >> i;
      unsigned n = (~run == 0) ? 64 - i : __builtin_ctzll(~run);
      os_purge(reinterpret_cast<uint8_t*>(b.arena[k]) + i * kSlabSize, n * kSlabSize);
      d &= ~run_mask(n, i);
    }
    g_purges.fetch_add(1, std::memory_order_relaxed);
  }
  for (int k = 0; k < b.nd; k++) {
    os_purge(reinterpret_cast<void*>(b.direct[k].base), b.direct[k].resident);
    g_purges.fetch_add(1, std::memory_order_relaxed);
  }
  for (int k = 0; k < b.nu; k++) {
    Arena* a = b.unmap[k];
    pagemap_set_region(reinterpret_cast<uintptr_t>(a), kArenaSize, false);
    SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(a, kArenaSize));
    os_unmap(a, kArenaSize);
  }
  if (b.n) {
    Shard& sh = *b.shard;
    LockGuard g(sh.lock);
    for (int k = 0; k < b.n; k++) {
      Arena* a = b.arena[k];
      uint64_t d = b.mask[k];
      commit_add(-ptrdiff_t(popcount64(d) * kSlabSize));
      a->purging_mask &= ~d;
      if (a->free_mask == 0) free_list_add(sh, a);
      a->free_mask |= d;
      if (a->free_mask == kAllSlabs) sh.empty_arenas++;
    }
  }
  int evict = 0;
  DirectCached evicted[kBatch];
  if (b.nd) {
    LockGuard g(g_dcache_lock);
    for (int k = 0; k < b.nd; k++) {
      DirectCached e = b.direct[k];
      commit_add(-ptrdiff_t(e.charged));
      g_dcache_bytes -= e.mapped;
      e.resident = e.charged = 0;
      if (g_dcache_n < kDirectCacheSlots) {
        g_dcache[g_dcache_n++] = e;
        g_dcache_bytes += e.mapped;
      } else {
        g_reserved.fetch_sub(e.mapped, std::memory_order_relaxed);
        evicted[evict++] = e;
      }
    }
  }
  for (int k = 0; k < evict; k++) arena_unmap_direct(evicted[k].base, evicted[k].mapped);
}

// Plan and run the direct cache's due purges (no lock held on entry).
SPACES_HOT_TEXT void dcache_purge(uint64_t now, bool force) {
  PurgeBatch b;
  {
    LockGuard g(g_dcache_lock);
    if (g_dcache_n == 0) return;
    dcache_plan(b, now, force);
  }
  purge_run(b);
}

// After an operation of shard `home`: purge the mapping cache when its delay ran out, and while
// dirty memory is still over the bound, the oldest dirty memory of the shards that are not busy
// (the bound is process-wide; the shard that freed may hold little of it).
SPACES_HOT_TEXT void purge_elsewhere(unsigned home, uint64_t now) {
  if (SPACES_UNLIKELY(prof_locked())) return;  // (as purge_plan)
  if (now >= g_dcache_next_purge.load(std::memory_order_relaxed) || over_dirty_limit()) dcache_purge(now, false);
  for (unsigned k = 1; k < shard_count() && over_dirty_limit(); k++) {
    Shard& other = g_shard[(home + k) & (shard_count() - 1)];
    if (!other.lock.try_lock()) continue;
    PurgeBatch b;
    purge_plan(other, b, now, false);
    other.lock.unlock();
    purge_run(b);
  }
}

}  // namespace

SPACES_HOT_TEXT bool arena_thp_due() {
  long long ahp = option(kOpt_arena_huge_pages);
  if (ahp != 2) return ahp == 1;
  size_t committed = g_committed.load(std::memory_order_relaxed), dirty = g_dirty.load(std::memory_order_relaxed);
  return committed - (dirty < committed ? dirty : committed) >= size_t(option(kOpt_arena_huge_after_mib)) << 20;
}

namespace {
Arena* arena_new(bool huge, unsigned shard, bool dense) {
  void* p = os_map_aligned(kArenaSize, kArenaSize);
  if (p == nullptr) return nullptr;
  // Thread heaps' arenas: THP never, always, or once the process has a large heap (2: a small
  // program keeps 4 KiB pages and its RSS, a program with arena_huge_after_mib in use takes
  // 2 MiB pages and far fewer first-touch faults; docs/options.md). In use: committed less
  // dirty, so that memory a program freed and Spaces keeps for reuse does not count (before
  // session 23 it did: `thread_rounds` at two threads passed 16 MiB with 3 MiB live).
  // (thp: advised, and the kernel may act on it; without THP the purges that a huge page would
  // make pointless still run.) Only for a dense run (a thread heap's small-class slab): see
  // arena_alloc_slabs.
  bool thp = (huge || (dense && arena_thp_due())) && os_hugepage_advise(p, kArenaSize) && os_thp_usable();
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(p, kArenaSize));  // (stale shadow of an old mapping)
  Arena* a = static_cast<Arena*>(p);
  a->free_mask = kAllSlabs;
  a->dirty_mask = 0;
  a->purging_mask = 0;
  a->dirty_since = 0;
  a->on_free_list = false;
  a->huge = huge;
  a->shard = uint8_t(shard);
  a->thp = thp;
  if (!pagemap_set_region(reinterpret_cast<uintptr_t>(a), kArenaSize, true)) {
    os_unmap(p, kArenaSize);
    return nullptr;
  }
  return a;
}

// The first start of a run of `count` free slabs in `a`, preferring one that reuses dirty slabs
// (warm memory, no page faults); dirty_only: only such a run. -1 if none (shard lock held).
int find_run(const Arena* a, size_t count, bool dirty_only) {
  uint64_t m = a->free_mask;
  if (size_t(popcount64(m)) < count || (dirty_only && a->dirty_mask == 0)) return -1;
  uint64_t starts = m;
  for (size_t k = 1; k < count && starts; k++) starts &= m >> k;
  uint64_t dirty_starts = starts & a->dirty_mask;
  if (dirty_only) starts = dirty_starts;
  if (!starts) return -1;
  // Single slabs from the top of the arena, runs from the bottom: small slabs coming and going
  // then do not cut up the free stretches that medium slabs and large blocks need. Regions'
  // own arenas (`huge`: option chunk_huge_pages, on by default; with it off regions share the
  // thread heaps' arenas and policy) give single slabs from the bottom: an exclusive region's
  // bump pages then ascend, and a node arena writes memory in one direction (10-15 % faster at a
  // million blocks, bench/regions; test Chunk.BumpPagesOfAFreshRegionAscend).
  uint64_t pick = dirty_starts ? dirty_starts : starts;
  return count == 1 && !a->huge ? 63 - __builtin_clzll(pick) : __builtin_ctzll(pick);
}

// The free granules `run` (a mask) of arena a stop being free (shard lock held): the counts of
// dirty, cached and committed memory follow. Returns how many of them were dirty.
SPACES_NOINLINE SPACES_HOT_TEXT unsigned take_granules(Shard& sh, Arena* a, uint64_t run) {
  if (a->free_mask == kAllSlabs) sh.empty_arenas--;
  unsigned reused = popcount64(a->dirty_mask & run);
  a->free_mask &= ~run;
  a->dirty_mask &= ~run;
  cached_add(sh, a, -ptrdiff_t(reused));
  if (!a->huge) sh.decay_dirty -= reused;
  arena_dirty_add(a, -ptrdiff_t(reused * kSlabSize));
  if (a->dirty_mask == 0) a->dirty_since = 0;
  commit_add(ptrdiff_t((size_t(popcount64(run)) - reused) * kSlabSize));
  if (a->free_mask == 0) free_list_remove(sh, a);
  return reused;
}

// Take a run from shard sh (its lock held): dirty_only as find_run; from a thread heaps' arena
// advised huge pages only if dense (arena_alloc_slabs). NULL if none fits.
SPACES_HOT_TEXT Slab* take_run(Shard& sh, size_t count, bool huge, bool dirty_only, bool* dirty, bool dense) {
  Arena* a;
  int i = -1;
  for (a = sh.free_list.head; a; a = a->next_free)  // (huge: regions' arenas, all advised)
    if (a->huge == huge && (huge || dense || !a->thp) && (i = find_run(a, count, dirty_only)) >= 0) break;
  if (i < 0) return nullptr;
  *dirty = take_granules(sh, a, run_mask(count, unsigned(i))) != 0;
  return reinterpret_cast<Slab*>(reinterpret_cast<uint8_t*>(a) + i * kSlabSize);
}

// Has a shard other than `home` dirty free slabs of thread heaps' arenas, `count` of them at
// least? (A hint read without their locks: the run may not be contiguous.)
SPACES_INLINE bool dirty_elsewhere(unsigned home, size_t count) {
  for (unsigned k = 1; k < shard_count(); k++)
    if (__atomic_load_n(&g_shard[(home + k) & (shard_count() - 1)].heap_dirty, __ATOMIC_RELAXED) >= count) return true;
  return false;
}

// The allocation loop arenas and spans share: a run from the thread's home shard (which first
// plans its due purges), else from a shard whose lock is free right now (take_other: dirty
// memory only, for arenas), else take_home_late's from the home shard again (arenas: clean
// memory, when take_home left it for the others' dirty memory), else new memory mapped outside
// every lock (grow adds it to the home shard: a racing thread's is simply added too) and again;
// NULL when nothing can be mapped.
// (SPACES_INLINE: GCC 12 drops a section attribute from a template's instances, os.h)
template <typename TakeHome, typename TakeOther, typename TakeHomeLate, typename Grow>
SPACES_INLINE Slab* take_from_shards(size_t count, TakeHome take_home, TakeOther take_other,
                                     TakeHomeLate take_home_late, Grow grow) {
  (void)count;  // (only the memcheck and ASan builds' annotations read it)
  unsigned home = my_shard();
  Shard& sh = g_shard[home];
  for (;;) {
    PurgeBatch batch;
    Slab* run = nullptr;
    uint64_t now = os_now_ns();
    {
      LockGuard g(sh.lock);
      purge_plan(sh, batch, now, false);
      run = take_home(sh, home);
    }
    purge_run(batch);
    purge_elsewhere(home, now);
    for (unsigned k = 1; run == nullptr && k < shard_count(); k++) {
      Shard& other = g_shard[(home + k) & (shard_count() - 1)];
      if (!other.lock.try_lock()) continue;
      run = take_other(other);
      other.lock.unlock();
    }
    if (run == nullptr) run = take_home_late(sh);
    if (run) {
      SPACES_VG(VALGRIND_MAKE_MEM_UNDEFINED(run, count * kSlabSize));
      SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(run, count * kSlabSize));
      return run;
    }
    if (!grow(sh, home)) return nullptr;
  }
}

}  // namespace

SPACES_HOT_TEXT Slab* arena_alloc_slabs(size_t count, bool* dirty, bool huge, bool dense) {
  SPACES_ASSERT(count >= 1 && count <= kMaxRunSlabs);
  // Resident memory before memory the slab's first writes will fault in: the home shard's dirty
  // slabs, then another shard's, then the home shard's clean ones (thread heaps' arenas; regions'
  // THP arenas keep to their home shard first, as before). (Threads take home shards in
  // turn, so a program that runs one short-lived thread after another alternated between shards,
  // each keeping its own dirty slabs while the next thread faulted in clean ones: `thread_rounds`
  // held 5 arenas at one thread.)
  bool late = false;
  return take_from_shards(
      count,
      [&](Shard& sh, unsigned home) {
        Slab* run = take_run(sh, count, huge, true, dirty, dense);
        if (run != nullptr || (late = !huge && dirty_elsewhere(home, count))) return run;
        return take_run(sh, count, huge, false, dirty, dense);
      },
      [&](Shard& other) { return take_run(other, count, huge, true, dirty, dense); },
      [&](Shard& sh) -> Slab* {
        if (!late) return nullptr;
        LockGuard g(sh.lock);
        return take_run(sh, count, huge, false, dirty, dense);
      },
      [&](Shard& sh, unsigned home) {
        Arena* a = arena_new(huge, home, dense);
        if (a == nullptr) return false;
        g_reserved.fetch_add(kArenaSize, std::memory_order_relaxed);
        g_mmaps.fetch_add(1, std::memory_order_relaxed);
        LockGuard g(sh.lock);
        sh.all.push(a);
        sh.arena_count++;
        sh.empty_arenas++;
        free_list_add(sh, a);
        return true;
      });
}

namespace {
// Give back a run of `count` slabs at s (its shard's lock held); plans purges into `batch`.
SPACES_HOT_TEXT void free_run_locked(Shard& sh, Slab* s, size_t count, uint64_t now, PurgeBatch& batch) {
  Arena* a = arena_of(s);
  unsigned i = unsigned((reinterpret_cast<uintptr_t>(s) - reinterpret_cast<uintptr_t>(a)) >> kSlabShift);
  uint64_t run = run_mask(count, i);
  SPACES_ASSERT((a->free_mask & run) == 0 && (a->purging_mask & run) == 0);
  if (a->free_mask == 0) free_list_add(sh, a);
  a->free_mask |= run;
  a->dirty_mask |= run;
  cached_add(sh, a, ptrdiff_t(count));
  if (!a->huge) {  // (the epochs that ended close first: this free is the current one's growth)
    if (uint64_t epoch = decay_epoch(delay_ns())) decay_advance(sh, now, epoch);
    sh.decay_dirty += count;
  }
  arena_dirty_add(a, ptrdiff_t(count * kSlabSize));
  if (a->free_mask == kAllSlabs) sh.empty_arenas++;
  long long delay_ms = option(kOpt_purge_delay_ms);
  if (delay_ms == 0) {
    // Unmapping waits for the purge delay like purging does (a region destroyed and rebuilt at
    // once reuses its arenas warm); with no delay it happens now.
    if (batch.full() || prof_locked()) {  // (left dirty: the next operation (outside it) purges it)
      sh.next_purge = now;
      return;
    }
    if (a->free_mask == kAllSlabs && sh.empty_arenas > size_t(option(kOpt_arena_cache)))
      plan_arena_unmap(sh, batch, a);
    else
      plan_arena_purge(sh, batch, a);
  } else {
    if (a->dirty_since == 0) {
      a->dirty_since = now;
      if (delay_ms > 0 && now + uint64_t(delay_ms) * 1000000ull < sh.next_purge)
        sh.next_purge = now + uint64_t(delay_ms) * 1000000ull;
    }
    if (!a->huge) decay_freed(sh, now);
  }
}
}  // namespace

SPACES_HOT_TEXT void arena_free_slabs(Slab* s, size_t count) {
  uint64_t now = os_now_ns();
  unsigned home = arena_of(s)->shard;
  Shard& sh = g_shard[home];
  PurgeBatch batch;
  {
    LockGuard g(sh.lock);
    batch.shard = &sh;
    free_run_locked(sh, s, count, now, batch);
    purge_plan(sh, batch, now, false);
  }
  purge_run(batch);
  purge_elsewhere(home, now);
}

// A region's destroy or reset: every run of one shard in one lock round trip.
SPACES_HOT_TEXT void arena_free_batch(RunBatch& runs) {
  uint64_t now = os_now_ns();
  size_t done = 0;
  while (done < runs.n) {
    Shard& sh = g_shard[arena_of(runs.run[done])->shard];
    PurgeBatch batch;
    {
      LockGuard g(sh.lock);
      batch.shard = &sh;
      for (size_t k = done; k < runs.n; k++) {
        if (runs.run[k] == nullptr || &g_shard[arena_of(runs.run[k])->shard] != &sh) continue;
        free_run_locked(sh, runs.run[k], runs.count[k], now, batch);
        runs.run[k] = nullptr;
      }
      purge_plan(sh, batch, now, false);
    }
    purge_run(batch);
    while (done < runs.n && runs.run[done] == nullptr) done++;
  }
  runs.n = 0;
}

// ---- spans (huge blocks) ----------------------------------------------------------------
namespace {
Span* span_new(unsigned shard) {
  void* p = os_map_aligned(kSpanSize, kSpanSize);
  if (p == nullptr) return nullptr;
  os_hugepage_advise(p, kSpanSize);
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(p, kSpanSize));  // (stale shadow of an old mapping)
  Span* sp = static_cast<Span*>(p);
  sp->next = nullptr;
  for (unsigned w = 0; w < kSpanWords; w++) sp->used[w] = sp->dirty[w] = sp->purging[w] = 0;
  sp->used[0] = 1;  // granule 0: this record
  sp->dirty_since = 0;
  sp->empty_since = 0;
  sp->dirty_granules = 0;
  sp->shard = uint8_t(shard);
  if (!pagemap_set_region(reinterpret_cast<uintptr_t>(p), kSpanSize, true)) {
    os_unmap(p, kSpanSize);
    return nullptr;
  }
  g_reserved.fetch_add(kSpanSize, std::memory_order_relaxed);
  g_mmaps.fetch_add(1, std::memory_order_relaxed);
  return sp;
}

// Take a free run of `count` granules from sh's spans (its lock held): of the free stretches
// that hold it, the one where it covers the most dirty granules (resident pages: no fault), the
// lowest address among equals (spans oldest first), at whichever end of the stretch covers more.
// First fit by address keeps the blocks packed at the bottom of the oldest spans, so the rest
// stays clean: best fit by length spread them over twice the memory (bench huge: 134 MB against
// 87.5 MB at the same 300 faults, with no dirty bound). NULL if none fits.
SPACES_HOT_TEXT Slab* span_take(Shard& sh, unsigned count, SpanDirty* dirty) {
  Span* best = nullptr;
  unsigned best_at = 0, best_dirty = 0;
  for (Span* sp = sh.spans; sp && !(best && best_dirty == count); sp = sp->next) {
    for (unsigned i = bits_next(sp->used, 1, false); i < kSpanGranules;) {
      unsigned end = bits_next(sp->used, i, true);
      if (end - i >= count) {
        unsigned at = i, d = bits_count(sp->dirty, i, count);
        if (end - i > count) {
          unsigned d_end = bits_count(sp->dirty, end - count, count);
          if (d_end > d) at = end - count, d = d_end;
        }
        if (best == nullptr || d > best_dirty) {
          best = sp;
          best_at = at;
          best_dirty = d;
          if (d == count) break;
        }
      }
      i = bits_next(sp->used, end, false);
    }
  }
  if (best == nullptr) return nullptr;
  unsigned reused = bits_count(best->dirty, best_at, count);
  dirty->first = dirty->end = 0;
  if (reused) {  // (the granules from the first dirty one to the last: what calloc must zero)
    unsigned f = bits_next(best->dirty, best_at, true), e = f;
    for (unsigned g = f; g < best_at + count; g = bits_next(best->dirty, g + 1, true)) e = g + 1;
    dirty->first = f - best_at;
    dirty->end = e - best_at;
  }
  bits_set(best->used, best_at, count, true);
  bits_set(best->dirty, best_at, count, false);
  best->empty_since = 0;
  best->dirty_granules -= reused;
  if (best->dirty_granules == 0) best->dirty_since = 0;
  span_dirty_add(-ptrdiff_t(reused * kSlabSize));
  commit_add(ptrdiff_t((count - reused) * kSlabSize));
  span_note_live(g_span_live.fetch_add(count * kSlabSize, std::memory_order_relaxed) + count * kSlabSize, os_now_ns());
  return reinterpret_cast<Slab*>(span_addr(best, best_at));
}
}  // namespace

SPACES_HOT_TEXT Slab* arena_alloc_span_run(size_t count, SpanDirty* dirty) {
  SPACES_ASSERT(count >= 1 && count <= kSpanMaxRun);
  auto take = [&](Shard& sh) { return span_take(sh, unsigned(count), dirty); };
  auto take_home = [&](Shard& sh, unsigned) { return take(sh); };
  auto none = [](Shard&) -> Slab* { return nullptr; };
  return take_from_shards(count, take_home, take, none, [](Shard& sh, unsigned home) {
    Span* sp = span_new(home);
    if (sp == nullptr) return false;
    LockGuard g(sh.lock);
    Span** tail = &sh.spans;  // (oldest first: the first fit by address stays in the oldest)
    while (*tail) tail = &(*tail)->next;
    *tail = sp;
    return true;
  });
}

SPACES_HOT_TEXT void arena_free_span_run(Slab* s, size_t count, size_t clean_from, size_t clean_to) {
  uintptr_t a = reinterpret_cast<uintptr_t>(s);
  Span* sp = span_of(a);
  unsigned i = unsigned((a - reinterpret_cast<uintptr_t>(sp)) >> kSlabShift), n = unsigned(count);
  unsigned home = sp->shard;  // (sp may be unmapped by the time the lock is released)
  Shard& sh = g_shard[home];
  uint64_t now = os_now_ns();
  PurgeBatch batch;
  {
    LockGuard g(sh.lock);
    batch.shard = &sh;
    SPACES_ASSERT(bits_count(sp->used, i, n) == n && bits_count(sp->purging, i, n) == 0);
    SPACES_ASSERT(clean_from <= clean_to && clean_to <= n);
    bits_set(sp->used, i, n, false);
    unsigned moved = unsigned(clean_to - clean_from), kept = n - moved;
    bits_set(sp->dirty, i, unsigned(clean_from), true);
    bits_set(sp->dirty, i + unsigned(clean_to), n - unsigned(clean_to), true);
    sp->dirty_granules += kept;
    span_dirty_add(ptrdiff_t(kept * kSlabSize));
    commit_add(-ptrdiff_t(moved * kSlabSize));
    span_note_live(g_span_live.fetch_sub(n * kSlabSize, std::memory_order_relaxed) - n * kSlabSize, now);
    // No block left (granules another thread is purging may still be marked used: the span is
    // empty all the same, and purge_plan unmaps it once they are back and its delay is out).
    bool no_blocks = true, empty = sp->used[0] == 1;  // (empty: granule 0 only, nothing purging)
    for (unsigned w = 0; w < kSpanWords; w++) {
      no_blocks = no_blocks && (sp->used[w] & ~sp->purging[w]) == (w == 0 ? 1u : 0u);
      empty = empty && (w == 0 || sp->used[w] == 0);
    }
    long long delay_ms = option(kOpt_purge_delay_ms);
    if (no_blocks) {
      sp->empty_since = now;
      if (delay_ms >= 0 && now + uint64_t(delay_ms) * 1000000ull < sh.next_purge)
        sh.next_purge = now + uint64_t(delay_ms) * 1000000ull;
    }
    if (delay_ms == 0) {
      if (!empty) plan_span_runs(batch, sp, false, false, 0, 0);  // (empty: purge_plan unmaps it)
      if (batch.full()) sh.next_purge = now;  // (the rest: the next operation)
    } else if (kept) {
      if (sp->dirty_since == 0) {
        sp->dirty_since = now;
        if (delay_ms > 0 && now + uint64_t(delay_ms) * 1000000ull < sh.next_purge)
          sh.next_purge = now + uint64_t(delay_ms) * 1000000ull;
      }
      // Over the spans' bound: whole huge pages of other runs first, then this run's, then
      // what is left, splitting pages, down to three quarters of it.
      for (int pass = 0; pass < 3 && spans_over_limit(); pass++)
        for (Span* o = sh.spans; o && !batch.full(); o = o->next)
          plan_span_runs(batch, o, pass < 2, true, pass == 0 && o == sp ? i : 0, pass == 0 && o == sp ? i + n : 0);
    }
    purge_plan(sh, batch, now, false);
  }
  purge_run(batch);
  // Still over the spans' bound (it is process-wide): whole huge pages of the shards that are
  // not busy right now (a thread that freed much and went quiet holds them there).
  for (unsigned k = 1; k < shard_count() && spans_over_limit(); k++) {
    Shard& other = g_shard[(home + k) & (shard_count() - 1)];
    if (!other.lock.try_lock()) continue;
    PurgeBatch b;
    for (int pass = 0; pass < 2 && spans_over_limit(); pass++)
      for (Span* o = other.spans; o && !b.full(); o = o->next) plan_span_runs(b, o, pass == 0, true, 0, 0);
    other.lock.unlock();
    purge_run(b);
  }
}

SPACES_HOT_TEXT bool arena_grow_run(Slab* s, size_t count, size_t want) {
  Arena* a = arena_of(s);
  unsigned end = unsigned((reinterpret_cast<uintptr_t>(s) - reinterpret_cast<uintptr_t>(a)) >> kSlabShift) + unsigned(count);
  if (want <= count || end + (want - count) > kSlabsPerArena) return false;
  uint64_t more = run_mask(want - count, end);
  {
    LockGuard g(g_shard[a->shard].lock);
    if ((a->free_mask & more) != more) return false;
    take_granules(g_shard[a->shard], a, more);
  }
  // (no memcheck annotation: memcheck builds move every block, kMemcheckExactSizes)
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<uint8_t*>(s) + count * kSlabSize, (want - count) * kSlabSize));
  return true;
}

SPACES_HOT_TEXT bool arena_grow_span_run(Slab* s, size_t count, size_t want) {
  if (want <= count || want > kSpanMaxRun) return false;
  uintptr_t a = reinterpret_cast<uintptr_t>(s);
  Span* sp = span_of(a);
  unsigned end = unsigned((a - reinterpret_cast<uintptr_t>(sp)) >> kSlabShift) + unsigned(count);
  unsigned more = unsigned(want - count);
  if (end + more > kSpanGranules) return false;
  LockGuard g(g_shard[sp->shard].lock);
  if (bits_count(sp->used, end, more) != 0) return false;
  unsigned reused = bits_count(sp->dirty, end, more);
  bits_set(sp->used, end, more, true);
  bits_set(sp->dirty, end, more, false);
  sp->dirty_granules -= reused;
  if (sp->dirty_granules == 0) sp->dirty_since = 0;
  span_dirty_add(-ptrdiff_t(reused * kSlabSize));
  commit_add(ptrdiff_t((more - reused) * kSlabSize));
  span_note_live(g_span_live.fetch_add(more * kSlabSize, std::memory_order_relaxed) + more * kSlabSize, os_now_ns());
  SPACES_VG(VALGRIND_MAKE_MEM_UNDEFINED(reinterpret_cast<void*>(span_addr(sp, end)), more * kSlabSize));
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(span_addr(sp, end)), more * kSlabSize));
  return true;
}

void arena_set_heaps(size_t n) { g_heaps_for_bound.store(n, std::memory_order_relaxed); }

SPACES_HOT_TEXT void arena_collect(bool force) {
  if (force) {
    arena_direct_cache_drop();
    // Everything back now: the spans' bound starts again from what is live.
    size_t live = g_span_live.load(std::memory_order_relaxed);
    g_span_peak.store(live, std::memory_order_relaxed);
    g_span_peak_prev.store(live, std::memory_order_relaxed);
    g_span_window.store(os_now_ns(), std::memory_order_relaxed);
  }
  uint64_t now = os_now_ns();
  for (unsigned k = 0; k < shard_count(); k++) {
    for (int round = 0; round < 1024; round++) {  // (bounded: a batch holds 16 arenas)
      PurgeBatch batch;
      {
        LockGuard g(g_shard[k].lock);
        purge_plan(g_shard[k], batch, now, force);
      }
      purge_run(batch);
      if (!batch.full()) break;
    }
  }
  dcache_purge(now, force);
}

SPACES_HOT_TEXT void* arena_map_direct(size_t size, size_t align, size_t* mapped) {
  size_t total = (size + kArenaSize - 1) & ~(kArenaSize - 1);
  if (total < size) return nullptr;
  size_t a = align > kArenaSize ? align : kArenaSize;
  // (accounted: os.h. Never a huge TLB mapping, whatever huge_pages says: purges, the mapping
  // cache and growth by mremap would all have to work in whole huge pages, and they do not;
  // docs/options.md, huge_pages 2.)
  void* p = os_map_aligned(total, a, true);
  if (p == nullptr) return nullptr;
  // (transparent huge pages, huge_pages 1: large_alloc advises from the block's first 2 MiB
  // boundary, so the header's page stays a small one)
  if (!pagemap_set_region(reinterpret_cast<uintptr_t>(p), total, true)) {
    os_unmap(p, total);
    return nullptr;
  }
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(p, total));
  *mapped = total;
  g_mmaps.fetch_add(1, std::memory_order_relaxed);
  return p;
}

SPACES_HOT_TEXT void arena_unmap_direct(uintptr_t base, size_t mapped) {
  pagemap_set_region(base, mapped, false);
  // ASan: leave no poisoned shadow behind for whoever maps this address next
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(base), mapped));
  os_unmap(reinterpret_cast<void*>(base), mapped);
}

// The smallest cached mapping of at least `need` bytes, or NULL (large_alloc purges an old tail
// of more than an eighth of the new block, so a big mapping reused small keeps little). The region bits
// stay set while cached. *resident: bytes from its start that may hold old data (the rest is zero).
SPACES_HOT_TEXT void* arena_direct_from_cache(size_t need, DirectReuse* out) {
  DirectCached e;
  {
    LockGuard g(g_dcache_lock);
    int best = -1;
    for (int i = 0; i < g_dcache_n; i++) {
      const DirectCached& c = g_dcache[i];
      if (c.mapped >= need && (best < 0 || c.mapped < g_dcache[best].mapped)) best = i;
    }
    if (best < 0) return nullptr;
    e = g_dcache[best];
    dirty_add(-ptrdiff_t(e.charged));  // (before the exemption goes: never over the bound by it)
    dcache_remove(best);
  }
  g_reserved.fetch_sub(e.mapped, std::memory_order_relaxed);  // the caller accounts it as new
  commit_add(-ptrdiff_t(e.charged));
  *out = DirectReuse{e.mapped, e.resident, e.charged, e.lead};
  return reinterpret_cast<void*>(e.base);
}

// Keep a freed direct mapping (already un-accounted by the caller) for reuse; false: unmap it.
SPACES_HOT_TEXT bool arena_direct_to_cache(uintptr_t base, const DirectReuse& r) {
  size_t mapped = r.mapped, charged = r.charged;
  if (mapped > kDirectCacheBytes / 4 || option(kOpt_purge_delay_ms) == 0) return false;
  uint64_t now = os_now_ns();
  uintptr_t evict_base = 0;
  size_t evict_size = 0;
  {
    LockGuard g(g_dcache_lock);
    if (g_dcache_n == kDirectCacheSlots || g_dcache_bytes + mapped > kDirectCacheBytes) {
      if (g_dcache_n == 0) return false;
      int oldest = 0;
      for (int i = 1; i < g_dcache_n; i++)
        if (g_dcache[i].seq < g_dcache[oldest].seq) oldest = i;
      if (g_dcache_bytes - g_dcache[oldest].mapped + mapped > kDirectCacheBytes) return false;  // no room
      evict_base = g_dcache[oldest].base;
      evict_size = g_dcache[oldest].mapped;
      g_reserved.fetch_sub(evict_size, std::memory_order_relaxed);
      commit_add(-ptrdiff_t(g_dcache[oldest].charged));
      dirty_add(-ptrdiff_t(g_dcache[oldest].charged));
      dcache_remove(oldest);
    }
    // (the totals first: once the entry is in the cache another thread may take it and subtract)
    g_reserved.fetch_add(mapped, std::memory_order_relaxed);
    commit_add(ptrdiff_t(charged));
    if (charged <= dirty_limit()) {  // (a bigger one is purged by the bound like any other)
      g_dcache_newest = base;
      g_dirty_exempt.store(charged, std::memory_order_relaxed);  // (before its bytes count)
    } else if (g_dcache_newest) {
      g_dcache_newest = 0;
      g_dirty_exempt.store(0, std::memory_order_relaxed);
    }
    dirty_add(ptrdiff_t(charged));
    g_dcache[g_dcache_n++] = DirectCached{base, mapped, r.resident, charged, r.lead, now, ++g_dcache_seq};
    g_dcache_bytes += mapped;
    uint64_t due = delay_ns() == UINT64_MAX ? UINT64_MAX : now + delay_ns();
    if (due < g_dcache_next_purge.load(std::memory_order_relaxed))
      g_dcache_next_purge.store(due, std::memory_order_relaxed);
  }
  if (evict_size) arena_unmap_direct(evict_base, evict_size);
  if (over_dirty_limit() || now >= g_dcache_next_purge.load(std::memory_order_relaxed))
    dcache_purge(now, false);  // (the freeing thread purges what it overfilled, or what is due)
  return true;
}

// spaces_collect(1): unmap every cached direct mapping.
void arena_direct_cache_drop() {
  for (;;) {
    DirectCached e;
    {
      LockGuard g(g_dcache_lock);
      if (g_dcache_n == 0) return;
      e = g_dcache[0];
      dcache_remove(0);
    }
    g_reserved.fetch_sub(e.mapped, std::memory_order_relaxed);
    commit_add(-ptrdiff_t(e.charged));
    dirty_add(-ptrdiff_t(e.charged));
    arena_unmap_direct(e.base, e.mapped);
  }
}

// Direct mappings: reserved = address space, committed = the bytes that may be resident.
SPACES_HOT_TEXT void arena_direct_account(ptrdiff_t reserved_delta, ptrdiff_t committed_delta) {
  g_reserved.fetch_add(size_t(reserved_delta), std::memory_order_relaxed);
  commit_add(committed_delta);
}

size_t arena_for_each_head(void (*fn)(const Slab*, void*), void* arg) {
  size_t in_use = 0;
  for (unsigned k = 0; k < shard_count(); k++) {
    LockGuard g(g_shard[k].lock);
    for (Arena* a = g_shard[k].all.head; a; a = a->next_all) {
      uint64_t m = kAllSlabs & ~a->free_mask & ~a->purging_mask;
      in_use += size_t(popcount64(m));
      for (; m; m &= m - 1) {
        uintptr_t s = reinterpret_cast<uintptr_t>(a) + (uintptr_t(__builtin_ctzll(m)) << kSlabShift);
        if (const Slab* h = pagemap_head_at(s)) fn(h, arg);
      }
    }

  }
  return in_use;
}

SPACES_HOT_TEXT bool arena_thp(const void* p) {
  SPACES_ASSERT(pagemap_in_region(reinterpret_cast<uintptr_t>(p)));  // (Spaces memory, of an arena: the callers pass slabs from arena_alloc_slabs)
  return arena_of(p)->thp;
}
unsigned arena_home_shard() { return my_shard(); }
unsigned arena_of_shard_for_test(const Slab* s) { return arena_of(s)->shard; }
unsigned arena_shard_count() { return shard_count(); }

ArenaTotals arena_totals() {
  ArenaTotals t{};
  for (unsigned k = 0; k < shard_count(); k++) {
    LockGuard g(g_shard[k].lock);
    t.arenas += g_shard[k].arena_count;
    t.slabs_cached += g_shard[k].slabs_cached;
  }
  t.reserved = g_reserved.load(std::memory_order_relaxed);
  t.committed = g_committed.load(std::memory_order_relaxed);
  t.peak_committed = g_peak_committed.load(std::memory_order_relaxed);
  t.purges = g_purges.load(std::memory_order_relaxed);
  t.mmaps = g_mmaps.load(std::memory_order_relaxed);
  return t;
}

// fork: every shard lock and the cache lock, in a fixed order; the child resets them.
void arena_fork_lock() {
  for (unsigned k = 0; k < kMaxShards; k++) g_shard[k].lock.lock();
  g_dcache_lock.lock();
}
void arena_fork_unlock() {
  g_dcache_lock.unlock();
  for (unsigned k = kMaxShards; k-- > 0;) g_shard[k].lock.unlock();
}
// In the child, a purge another thread had planned but not finished never will be: its slabs go
// back to the free set as dirty. (An arena it had unlinked to unmap, or a cached mapping it had
// taken out, stays mapped and unused in the child: address space only.)
void arena_after_fork_child() {
  for (unsigned k = 0; k < kMaxShards; k++) {
    Shard& sh = g_shard[k];
    sh.lock.reset();
    for (Arena* a = sh.all.head; a; a = a->next_all) {
      uint64_t d = a->purging_mask;
      if (d == 0) continue;
      unsigned n = popcount64(d);
      a->purging_mask = 0;
      if (a->free_mask == 0) free_list_add(sh, a);
      a->free_mask |= d;
      a->dirty_mask |= d;
      if (a->dirty_since == 0) a->dirty_since = os_now_ns();
      sh.next_purge = 0;  // (their delay is checked on the shard's next operation)
      cached_add(sh, a, ptrdiff_t(n));
      if (!a->huge) sh.decay_dirty += n;  // (the deadline purges them; the curve counts them from
                                          // the next free on)
      arena_dirty_add(a, ptrdiff_t(n * kSlabSize));
      if (a->free_mask == kAllSlabs) sh.empty_arenas++;
    }
    for (Span* sp = sh.spans; sp; sp = sp->next) {
      for (unsigned w = 0; w < kSpanWords; w++) {
        uint64_t d = sp->purging[w];
        if (d == 0) continue;
        unsigned n = unsigned(popcount64(d));
        sp->purging[w] = 0;
        sp->used[w] &= ~d;
        sp->dirty[w] |= d;
        sp->dirty_granules += n;
        span_dirty_add(ptrdiff_t(n * kSlabSize));
        if (sp->dirty_since == 0) sp->dirty_since = os_now_ns();
        sh.next_purge = 0;  // (their delay is checked on the shard's next operation)
      }
    }
  }
  g_dcache_lock.reset();
}

}  // namespace spaces_core
