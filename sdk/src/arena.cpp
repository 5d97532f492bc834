// arena.cpp - where slabs come from and where they go back to the OS.
//
// An arena is a 4 MiB, 4 MiB-aligned mapping cut into 64 granules of 64 KiB. Granule 0 holds the
// Arena record below (only its first page is ever touched); granules 1..63 are slabs, handed out
// alone (size-class slabs) or as contiguous runs (large blocks up to ~4 MiB).
//
// Invariants (all under g_arena_lock, which guards every Arena field and the globals below):
//   - free_mask bit i <=> slab i is not in use; dirty_mask is a subset of free_mask: free slabs
//     whose pages may still be resident. A free, clean slab costs nothing but address space.
//   - an arena is on the g_free list iff free_mask != 0.
//   - dirty slabs are purged (MADV_DONTNEED) once `purge_delay_ms` has passed since the arena
//     first became dirty; purging happens on the next arena operation or spaces_collect, never
//     from a background thread.
//   - fully free arenas beyond `arena_cache` are unmapped, on the same delay as purging.
// Blocks larger than a run get a direct mapping: 4 MiB-aligned, its size rounded up to 4 MiB of
// address space (the tail is never touched, so costs no RAM), so the arenas bitmap stays exact.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

namespace spaces_core {

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
};

constexpr uint64_t kAllSlabs = ~uint64_t(1);  // granule 0 is the arena record

Arena* g_free = nullptr;
Arena* g_all = nullptr;
size_t g_arena_count = 0;
size_t g_empty_arenas = 0;
size_t g_committed = 0;        // bytes: slabs in use + dirty free slabs + direct mappings
size_t g_peak_committed = 0;
size_t g_reserved = 0;
size_t g_slabs_cached = 0;     // dirty free slabs
size_t g_purges = 0;
size_t g_mmaps = 0;
uint64_t g_next_purge = UINT64_MAX;

// Freed direct mappings (blocks above ~4 MiB) kept for reuse, so a program that allocates and
// frees big buffers in a loop pays neither mmap/munmap nor page faults each time. Dirty entries
// are purged on the same delay as slabs; the least recently freed entry is unmapped when the
// cache is full. All under g_arena_lock.
struct DirectCached {
  uintptr_t base;
  size_t mapped;
  size_t resident;  // bytes possibly resident (0 once purged)
  uint64_t freed_at;
};
constexpr int kDirectCacheSlots = 16;
constexpr size_t kDirectCacheBytes = size_t(512) << 20;
DirectCached g_dcache[kDirectCacheSlots];
int g_dcache_n = 0;
size_t g_dcache_bytes = 0;

void dcache_remove(int i) {
  g_dcache_bytes -= g_dcache[i].mapped;
  g_dcache[i] = g_dcache[--g_dcache_n];
}

SPACES_INLINE Arena* arena_of(const void* p) {
  return reinterpret_cast<Arena*>(reinterpret_cast<uintptr_t>(p) & ~(kArenaSize - 1));
}

void free_list_add(Arena* a) {
  a->on_free_list = true;
  a->prev_free = nullptr;
  a->next_free = g_free;
  if (g_free) g_free->prev_free = a;
  g_free = a;
}

void free_list_remove(Arena* a) {
  a->on_free_list = false;
  if (a->prev_free)
    a->prev_free->next_free = a->next_free;
  else
    g_free = a->next_free;
  if (a->next_free) a->next_free->prev_free = a->prev_free;
}

void commit_add(size_t bytes) {
  g_committed += bytes;
  if (g_committed > g_peak_committed) g_peak_committed = g_committed;
}

// ---- purging: decided under the lock, done outside it ------------------------------------
// No system call is made while g_arena_lock is held (every thread that needs a slab waits on it).
// purge_plan() (lock held) takes the slabs it will purge out of the free set (purging_mask), the
// arenas it will unmap out of every list, and the cached direct mappings it will purge out of
// the cache, and writes them into a PurgeBatch; purge_run() (lock released) makes the madvise
// and munmap calls, then gives the purged slabs and mappings back, clean. So nothing can hand
// out memory that is being purged, and a purge of one arena never stalls a thread that needs
// another.
//
// What is due (the decay rule, docs/options.md):
//   - dirty memory above `dirty_max_kib` (free slabs in arenas + cached direct mappings not yet
//     purged): the oldest dirty arenas are purged at once, down to three quarters of it, so a
//     program's dirty memory stays bounded however fast it frees;
//   - below that, an arena's dirty slabs are purged `purge_delay_ms` after the first of them was
//     freed, and a cached direct mapping's pages that long after it was freed: bursts reuse warm
//     memory, an idle program (that calls into Spaces or spaces_collect) shrinks;
//   - fully free arenas beyond `arena_cache` are unmapped on the same delay.
constexpr int kBatch = 16;
struct PurgeBatch {
  int n = 0, nu = 0, nd = 0;
  Arena* arena[kBatch];
  uint64_t mask[kBatch];
  Arena* unmap[kBatch];
  DirectCached direct[kBatch];
  bool full() const { return n == kBatch || nu == kBatch || nd == kBatch; }
};

SPACES_INLINE size_t dirty_bytes() {
  size_t d = g_slabs_cached * kSlabSize;
  for (int i = 0; i < g_dcache_n; i++) d += g_dcache[i].resident;
  return d;
}
std::atomic<size_t> g_dirty_heaps{1};  // thread heaps in existence (heap.cpp keeps it)
SPACES_INLINE size_t dirty_limit() {
  size_t heaps = g_dirty_heaps.load(std::memory_order_relaxed);
  return (size_t(option(kOpt_dirty_max_kib)) << 10) * (heaps ? heaps : 1);
}

// Take a's dirty slabs out of the free set for purging (lock held).
void plan_arena_purge(PurgeBatch& b, Arena* a) {
  uint64_t d = a->dirty_mask;
  if (d == 0) return;
  if (a->free_mask == kAllSlabs) g_empty_arenas--;
  a->free_mask &= ~d;
  a->purging_mask |= d;
  a->dirty_mask = 0;
  a->dirty_since = 0;
  g_slabs_cached -= __builtin_popcountll(d);
  if (a->free_mask == 0) free_list_remove(a);
  b.arena[b.n] = a;
  b.mask[b.n++] = d;
}

// Unlink a fully free arena from every list; purge_run unmaps it (lock held).
void plan_arena_unmap(PurgeBatch& b, Arena* a) {
  if (a->on_free_list) free_list_remove(a);
  if (a->prev_all)
    a->prev_all->next_all = a->next_all;
  else
    g_all = a->next_all;
  if (a->next_all) a->next_all->prev_all = a->prev_all;
  g_committed -= __builtin_popcountll(a->dirty_mask) * kSlabSize;
  g_slabs_cached -= __builtin_popcountll(a->dirty_mask);
  g_arena_count--;
  g_empty_arenas--;
  g_reserved -= kArenaSize;
  b.unmap[b.nu++] = a;
}

void plan_direct_purge(PurgeBatch& b, int i) {
  b.direct[b.nd++] = g_dcache[i];
  dcache_remove(i);  // (back, clean, after the purge; its reservation stays counted meanwhile)
  g_dcache_bytes += b.direct[b.nd - 1].mapped;
}

// Decide what to purge now (lock held). force: everything dirty.
void purge_plan(PurgeBatch& b, uint64_t now, bool force) {
  long long delay_ms = option(kOpt_purge_delay_ms);
  bool over = dirty_bytes() > dirty_limit();
  if (!force && !over && (delay_ms < 0 || now < g_next_purge)) return;
  uint64_t delay = delay_ms < 0 ? UINT64_MAX : uint64_t(delay_ms) * 1000000ull;
  auto due = [&](uint64_t since) { return force || (delay != UINT64_MAX && now - since >= delay); };
  uint64_t next = UINT64_MAX;
  for (int i = 0; i < g_dcache_n && !b.full();) {
    DirectCached& e = g_dcache[i];
    if (e.resident != 0 && due(e.freed_at)) {
      plan_direct_purge(b, i);  // (moves the last entry to i)
      continue;
    }
    if (e.resident != 0 && delay != UINT64_MAX && e.freed_at + delay < next) next = e.freed_at + delay;
    i++;
  }
  for (Arena* a = g_free, *following; a && !b.full(); a = following) {
    following = a->next_free;
    if (!a->dirty_mask && !(force && a->free_mask == kAllSlabs)) continue;
    if (due(a->dirty_since)) {
      if (a->free_mask == kAllSlabs && g_empty_arenas > size_t(option(kOpt_arena_cache)))
        plan_arena_unmap(b, a);  // fully free beyond the cache: give the address space back too
      else
        plan_arena_purge(b, a);
    } else if (delay != UINT64_MAX && a->dirty_since + delay < next) {
      next = a->dirty_since + delay;
    }
  }
  // Above the bound: the oldest dirty arenas now, down to three quarters of it.
  size_t target = dirty_limit() / 4 * 3;
  while (!b.full() && dirty_bytes() > target) {
    Arena* oldest = nullptr;
    for (Arena* a = g_free; a; a = a->next_free)
      if (a->dirty_mask && (oldest == nullptr || a->dirty_since < oldest->dirty_since)) oldest = a;
    if (oldest == nullptr) {  // only cached direct mappings left: the oldest of them
      int o = -1;
      for (int i = 0; i < g_dcache_n; i++)
        if (g_dcache[i].resident && (o < 0 || g_dcache[i].freed_at < g_dcache[o].freed_at)) o = i;
      if (o < 0) break;
      plan_direct_purge(b, o);
      continue;
    }
    plan_arena_purge(b, oldest);
  }
  g_next_purge = b.full() ? now : next;  // a full batch leaves the rest for the next operation
}

// Carry out a batch (lock NOT held): the system calls, then the memory goes back, clean.
void purge_run(PurgeBatch& b) {
  if (b.n == 0 && b.nu == 0 && b.nd == 0) return;
  for (int k = 0; k < b.n; k++) {
    uint64_t d = b.mask[k];
    while (d) {
      unsigned i = __builtin_ctzll(d);
      uint64_t run = d >> i;
      unsigned n = (~run == 0) ? 64 - i : __builtin_ctzll(~run);
      os_purge(reinterpret_cast<uint8_t*>(b.arena[k]) + i * kSlabSize, n * kSlabSize);
      d &= ~(((n == 64) ? ~uint64_t(0) : ((uint64_t(1) << n) - 1)) << i);
    }
  }
  for (int k = 0; k < b.nd; k++) os_purge(reinterpret_cast<void*>(b.direct[k].base), b.direct[k].resident);
  for (int k = 0; k < b.nu; k++) {
    Arena* a = b.unmap[k];
    pagemap_set_region(reinterpret_cast<uintptr_t>(a), kArenaSize, false);
    SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(a, kArenaSize));
    os_unmap(a, kArenaSize);
  }
  int evict = 0;
  DirectCached evicted[kBatch];
  {
    LockGuard g(g_arena_lock);
    for (int k = 0; k < b.n; k++) {
      Arena* a = b.arena[k];
      uint64_t d = b.mask[k];
      unsigned n = __builtin_popcountll(d);
      g_purges++;
      g_committed -= n * kSlabSize;
      a->purging_mask &= ~d;
      if (a->free_mask == 0) free_list_add(a);
      a->free_mask |= d;
      if (a->free_mask == kAllSlabs) g_empty_arenas++;
    }
    for (int k = 0; k < b.nd; k++) {
      DirectCached e = b.direct[k];
      g_purges++;
      g_committed -= e.resident;
      g_dcache_bytes -= e.mapped;
      e.resident = 0;
      if (g_dcache_n < kDirectCacheSlots) {
        g_dcache[g_dcache_n++] = e;
        g_dcache_bytes += e.mapped;
      } else {
        g_reserved -= e.mapped;
        evicted[evict++] = e;
      }
    }
  }
  for (int k = 0; k < evict; k++) arena_unmap_direct(evicted[k].base, evicted[k].mapped);
}

Arena* arena_new(bool huge) {
  void* p = os_map_aligned(kArenaSize, kArenaSize, false);
  if (p == nullptr) return nullptr;
  if (huge || option(kOpt_arena_huge_pages)) os_hugepage_advise(p, kArenaSize);
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(p, kArenaSize));  // (stale shadow of an old mapping)
  Arena* a = static_cast<Arena*>(p);
  a->free_mask = kAllSlabs;
  a->dirty_mask = 0;
  a->purging_mask = 0;
  a->dirty_since = 0;
  a->on_free_list = false;
  a->huge = huge;
  if (!pagemap_set_region(reinterpret_cast<uintptr_t>(a), kArenaSize, true)) {
    os_unmap(p, kArenaSize);
    return nullptr;
  }
  return a;
}

}  // namespace

SpinLock g_arena_lock;

namespace {
// The first start of a run of `count` free slabs in `a` (preferring one that reuses dirty slabs:
// warm memory, no page faults), or -1 (lock held).
int find_run(const Arena* a, size_t count, bool dirty_only) {
  uint64_t m = a->free_mask;
  if (size_t(__builtin_popcountll(m)) < count || (dirty_only && a->dirty_mask == 0)) return -1;
  uint64_t starts = m;
  for (size_t k = 1; k < count && starts; k++) starts &= m >> k;
  uint64_t dirty_starts = starts & a->dirty_mask;
  if (dirty_only) starts = dirty_starts;
  if (!starts) return -1;
  return __builtin_ctzll(dirty_starts ? dirty_starts : starts);
}
}  // namespace

Slab* arena_alloc_slabs(size_t count, bool* dirty, bool huge) {
  SPACES_ASSERT(count >= 1 && count <= kMaxRunSlabs);
  for (;;) {
    PurgeBatch batch;
    Slab* run_start = nullptr;
    {
      LockGuard g(g_arena_lock);
      purge_plan(batch, os_now_ns(), false);
      // Two passes: an arena with dirty slabs first (so memory freed anywhere is reused before
      // a clean arena is touched: RSS stays flat under churn), then any arena with room.
      Arena* a = nullptr;
      int i = -1;
      for (int pass = 0; pass < 2 && i < 0; pass++)
        for (a = g_free; a; a = a->next_free)
          if (a->huge == huge && (i = find_run(a, count, pass == 0)) >= 0) break;  // (huge: regions' arenas)
      if (i >= 0) {
        uint64_t run = (count == 64 ? ~uint64_t(0) : ((uint64_t(1) << count) - 1)) << i;
        if (a->free_mask == kAllSlabs) g_empty_arenas--;
        unsigned reused = __builtin_popcountll(a->dirty_mask & run);
        *dirty = reused != 0;
        a->free_mask &= ~run;
        a->dirty_mask &= ~run;
        g_slabs_cached -= reused;
        if (a->dirty_mask == 0) a->dirty_since = 0;
        commit_add((count - reused) * kSlabSize);
        if (a->free_mask == 0) free_list_remove(a);
        run_start = reinterpret_cast<Slab*>(reinterpret_cast<uint8_t*>(a) + i * kSlabSize);
      }
    }
    purge_run(batch);
    if (run_start) {
      SPACES_VG(VALGRIND_MAKE_MEM_UNDEFINED(run_start, count * kSlabSize));
      SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(run_start, count * kSlabSize));
      return run_start;
    }
    // No room: map a new arena outside the lock, then retry (another thread may win the race;
    // the new arena is then simply added to the pool).
    Arena* a = arena_new(huge);
    if (a == nullptr) return nullptr;
    LockGuard g(g_arena_lock);
    a->prev_all = nullptr;
    a->next_all = g_all;
    if (g_all) g_all->prev_all = a;
    g_all = a;
    g_arena_count++;
    g_empty_arenas++;
    g_reserved += kArenaSize;
    g_mmaps++;
    free_list_add(a);
  }
}

void arena_free_slabs(Slab* s, size_t count) {
  Arena* a = arena_of(s);
  unsigned i = unsigned((reinterpret_cast<uintptr_t>(s) - reinterpret_cast<uintptr_t>(a)) >> kSlabShift);
  uint64_t run = (count == 64 ? ~uint64_t(0) : ((uint64_t(1) << count) - 1)) << i;
  uint64_t now = os_now_ns();
  PurgeBatch batch;
  {
    LockGuard g(g_arena_lock);
    SPACES_ASSERT((a->free_mask & run) == 0 && (a->purging_mask & run) == 0);
    if (a->free_mask == 0) free_list_add(a);
    a->free_mask |= run;
    a->dirty_mask |= run;
    g_slabs_cached += count;
    if (a->free_mask == kAllSlabs) g_empty_arenas++;
    long long delay_ms = option(kOpt_purge_delay_ms);
    if (delay_ms == 0) {
      // Unmapping waits for the purge delay like purging does (a region destroyed and rebuilt at
      // once reuses its arenas warm); with no delay it happens now.
      if (a->free_mask == kAllSlabs && g_empty_arenas > size_t(option(kOpt_arena_cache)))
        plan_arena_unmap(batch, a);
      else
        plan_arena_purge(batch, a);
    } else if (a->dirty_since == 0) {
      a->dirty_since = now;
      if (delay_ms > 0 && now + uint64_t(delay_ms) * 1000000ull < g_next_purge)
        g_next_purge = now + uint64_t(delay_ms) * 1000000ull;
    }
    purge_plan(batch, now, false);
  }
  purge_run(batch);
}

void arena_set_heaps(size_t n) { g_dirty_heaps.store(n, std::memory_order_relaxed); }

void arena_collect(bool force) {
  if (force) arena_direct_cache_drop();
  for (int round = 0; round < 1024; round++) {  // (bounded: a batch holds 16 arenas)
    PurgeBatch batch;
    {
      LockGuard g(g_arena_lock);
      purge_plan(batch, os_now_ns(), force);
    }
    purge_run(batch);
    if (!batch.full()) return;
  }
}

void* arena_map_direct(size_t size, size_t align, size_t* mapped) {
  size_t total = (size + kArenaSize - 1) & ~(kArenaSize - 1);
  if (total < size) return nullptr;
  size_t a = align > kArenaSize ? align : kArenaSize;
  long long hp = option(kOpt_huge_pages);
  void* p = os_map_aligned(total, a, hp == 2 && size >= kHugePage);
  if (p == nullptr) return nullptr;
  // (transparent huge pages, huge_pages 1: large_alloc advises from the block's first 2 MiB
  // boundary, so the header's page stays a small one)
  if (!pagemap_set_region(reinterpret_cast<uintptr_t>(p), total, true)) {
    os_unmap(p, total);
    return nullptr;
  }
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(p, total));
  *mapped = total;
  LockGuard g(g_arena_lock);
  g_mmaps++;
  return p;
}

void arena_unmap_direct(uintptr_t base, size_t mapped) {
  pagemap_set_region(base, mapped, false);
  // ASan: leave no poisoned shadow behind for whoever maps this address next
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(base), mapped));
  os_unmap(reinterpret_cast<void*>(base), mapped);
}

// A cached mapping of at least `need` bytes (and at most twice that), or NULL. The region bits
// stay set while cached. *dirty: it may hold old data (else it is zero).
void* arena_direct_from_cache(size_t need, size_t* mapped, size_t* resident) {
  LockGuard g(g_arena_lock);
  int best = -1;
  for (int i = 0; i < g_dcache_n; i++) {
    const DirectCached& e = g_dcache[i];
    if (e.mapped >= need && e.mapped <= 2 * need && (best < 0 || e.mapped < g_dcache[best].mapped)) best = i;
  }
  if (best < 0) return nullptr;
  DirectCached e = g_dcache[best];
  dcache_remove(best);
  g_reserved -= e.mapped;   // the caller accounts the block as a new mapping
  g_committed -= e.resident;
  *mapped = e.mapped;
  *resident = e.resident;  // bytes from the start that may hold old data (the rest is zero)
  return reinterpret_cast<void*>(e.base);
}

// Keep a freed direct mapping (already un-accounted by the caller) for reuse; false: unmap it.
bool arena_direct_to_cache(uintptr_t base, size_t mapped, size_t resident) {
  if (mapped > kDirectCacheBytes / 4 || option(kOpt_purge_delay_ms) == 0) return false;
  uint64_t now = os_now_ns();
  uintptr_t evict_base = 0;
  size_t evict_size = 0;
  {
    LockGuard g(g_arena_lock);
    if (g_dcache_n == kDirectCacheSlots || g_dcache_bytes + mapped > kDirectCacheBytes) {
      int oldest = 0;
      for (int i = 1; i < g_dcache_n; i++)
        if (g_dcache[i].freed_at < g_dcache[oldest].freed_at) oldest = i;
      if (g_dcache_n == 0) return false;
      evict_base = g_dcache[oldest].base;
      evict_size = g_dcache[oldest].mapped;
      g_reserved -= evict_size;
      g_committed -= g_dcache[oldest].resident;
      dcache_remove(oldest);
      if (g_dcache_bytes + mapped > kDirectCacheBytes) {
        // still no room: give this one back instead
        g_dcache[g_dcache_n++] = DirectCached{evict_base, evict_size, 0, now};
        g_dcache_bytes += evict_size;
        g_reserved += evict_size;
        return false;
      }
    }
    g_dcache[g_dcache_n++] = DirectCached{base, mapped, resident, now};
    g_dcache_bytes += mapped;
    g_reserved += mapped;
    commit_add(resident);
    long long delay_ms = option(kOpt_purge_delay_ms);
    if (delay_ms > 0 && now + uint64_t(delay_ms) * 1000000ull < g_next_purge)
      g_next_purge = now + uint64_t(delay_ms) * 1000000ull;
  }
  if (evict_size) arena_unmap_direct(evict_base, evict_size);
  return true;
}

// spaces_collect(1): unmap every cached direct mapping.
void arena_direct_cache_drop() {
  for (;;) {
    DirectCached e;
    {
      LockGuard g(g_arena_lock);
      if (g_dcache_n == 0) return;
      e = g_dcache[0];
      g_reserved -= e.mapped;
      g_committed -= e.resident;
      dcache_remove(0);
    }
    arena_unmap_direct(e.base, e.mapped);
  }
}

// Direct mappings: reserved = address space, committed = the page-rounded bytes in use.
void arena_direct_account(ptrdiff_t reserved_delta, ptrdiff_t committed_delta) {
  LockGuard g(g_arena_lock);
  g_reserved += reserved_delta;
  g_committed += committed_delta;
  if (g_committed > g_peak_committed) g_peak_committed = g_committed;
}

ArenaTotals arena_totals() {
  LockGuard g(g_arena_lock);
  return ArenaTotals{g_arena_count, g_reserved, g_committed, g_peak_committed,
                     g_slabs_cached,  g_purges,   g_mmaps};
}

void arena_after_fork_child() { g_arena_lock.reset(); }

}  // namespace spaces_core
