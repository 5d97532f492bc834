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

// Purge every dirty run of `a` (lock held).
void arena_purge(Arena* a) {
  uint64_t d = a->dirty_mask;
  while (d) {
    unsigned i = __builtin_ctzll(d);
    uint64_t run = d >> i;
    unsigned n = (~run == 0) ? 64 - i : __builtin_ctzll(~run);
    os_purge(reinterpret_cast<uint8_t*>(a) + i * kSlabSize, n * kSlabSize);
    g_purges++;
    g_committed -= n * kSlabSize;
    g_slabs_cached -= n;
    d &= ~(((n == 64) ? ~uint64_t(0) : ((uint64_t(1) << n) - 1)) << i);
  }
  a->dirty_mask = 0;
  a->dirty_since = 0;
}

void arena_unmap(Arena* a) {
  if (a->on_free_list) free_list_remove(a);
  if (a->prev_all)
    a->prev_all->next_all = a->next_all;
  else
    g_all = a->next_all;
  if (a->next_all) a->next_all->prev_all = a->prev_all;
  g_committed -= __builtin_popcountll(a->dirty_mask) * kSlabSize;
  g_slabs_cached -= __builtin_popcountll(a->dirty_mask);
  g_arena_count--;
  g_reserved -= kArenaSize;
  pagemap_set_region(reinterpret_cast<uintptr_t>(a), kArenaSize, false);
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(a, kArenaSize));
  os_unmap(a, kArenaSize);
}

// Purge what is due (lock held). force: everything dirty, now.
void purge_due(uint64_t now, bool force) {
  long long delay_ms = option(kOpt_purge_delay_ms);
  if (!force && (delay_ms < 0 || now < g_next_purge)) return;
  uint64_t delay = delay_ms < 0 ? 0 : uint64_t(delay_ms) * 1000000ull;
  uint64_t next = UINT64_MAX;
  for (int i = 0; i < g_dcache_n; i++) {
    DirectCached& e = g_dcache[i];
    if (e.resident == 0) continue;
    if (force || now >= e.freed_at + delay) {
      os_purge(reinterpret_cast<void*>(e.base), e.resident);
      g_committed -= e.resident;
      g_purges++;
      e.resident = 0;
    } else if (e.freed_at + delay < next) {
      next = e.freed_at + delay;
    }
  }
  for (Arena* a = g_free, *following; a; a = following) {
    following = a->next_free;
    if (!a->dirty_mask && !(force && a->free_mask == kAllSlabs)) continue;
    if (force || now >= a->dirty_since + delay) {
      if (a->free_mask == kAllSlabs && g_empty_arenas > size_t(option(kOpt_arena_cache))) {
        g_empty_arenas--;
        arena_unmap(a);  // fully free beyond the cache: give the address space back too
      } else {
        arena_purge(a);
      }
    } else if (a->dirty_since + delay < next) {
      next = a->dirty_since + delay;
    }
  }
  g_next_purge = next;
}

Arena* arena_new(bool huge) {
  void* p = os_map_aligned(kArenaSize, kArenaSize, false);
  if (p == nullptr) return nullptr;
  if (huge || option(kOpt_arena_huge_pages)) os_hugepage_advise(p, kArenaSize);
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(p, kArenaSize));  // (stale shadow of an old mapping)
  Arena* a = static_cast<Arena*>(p);
  a->free_mask = kAllSlabs;
  a->dirty_mask = 0;
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

Slab* arena_alloc_slabs(size_t count, bool* dirty, bool huge) {
  SPACES_ASSERT(count >= 1 && count <= kMaxRunSlabs);
  for (;;) {
    {
      LockGuard g(g_arena_lock);
      purge_due(os_now_ns(), false);
      for (Arena* a = g_free; a; a = a->next_free) {
        if (a->huge != huge) continue;  // regions' huge-page arenas and the rest do not mix
        uint64_t m = a->free_mask;
        if (size_t(__builtin_popcountll(m)) < count) continue;
        uint64_t starts = m;
        for (size_t k = 1; k < count && starts; k++) starts &= m >> k;
        if (!starts) continue;
        uint64_t dirty_starts = starts & a->dirty_mask;
        unsigned i = __builtin_ctzll(dirty_starts ? dirty_starts : starts);
        uint64_t run = (count == 64 ? ~uint64_t(0) : ((uint64_t(1) << count) - 1)) << i;
        if (a->free_mask == kAllSlabs) g_empty_arenas--;
        unsigned reused = __builtin_popcountll(a->dirty_mask & run);
        *dirty = reused != 0;
        a->free_mask &= ~run;
        a->dirty_mask &= ~run;
        g_slabs_cached -= reused;
        commit_add((count - reused) * kSlabSize);
        if (a->free_mask == 0) free_list_remove(a);
        Slab* run_start = reinterpret_cast<Slab*>(reinterpret_cast<uint8_t*>(a) + i * kSlabSize);
        SPACES_VG(VALGRIND_MAKE_MEM_UNDEFINED(run_start, count * kSlabSize));
        SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(run_start, count * kSlabSize));
        return run_start;
      }
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
  LockGuard g(g_arena_lock);
  SPACES_ASSERT((a->free_mask & run) == 0);
  a->free_mask |= run;
  a->dirty_mask |= run;
  g_slabs_cached += count;
  if (!a->on_free_list) free_list_add(a);
  long long delay_ms = option(kOpt_purge_delay_ms);
  if (delay_ms == 0) {
    arena_purge(a);
  } else if (a->dirty_since == 0) {
    a->dirty_since = now;
    if (delay_ms > 0 && now + uint64_t(delay_ms) * 1000000ull < g_next_purge)
      g_next_purge = now + uint64_t(delay_ms) * 1000000ull;
  }
  if (a->free_mask == kAllSlabs) {
    g_empty_arenas++;
    // Unmapping waits for the purge delay like purging does: a region destroyed and rebuilt
    // at once (a chunk per request, a compiler pass per function) reuses its arenas warm.
    if (delay_ms == 0 && g_empty_arenas > size_t(option(kOpt_arena_cache))) {
      g_empty_arenas--;
      arena_unmap(a);
    }
  }
  purge_due(now, false);
}

void arena_collect(bool force) {
  if (force) arena_direct_cache_drop();
  LockGuard g(g_arena_lock);
  purge_due(os_now_ns(), force);
}

void* arena_map_direct(size_t size, size_t align, size_t* mapped) {
  size_t total = (size + kArenaSize - 1) & ~(kArenaSize - 1);
  if (total < size) return nullptr;
  size_t a = align > kArenaSize ? align : kArenaSize;
  long long hp = option(kOpt_huge_pages);
  void* p = os_map_aligned(total, a, hp == 2 && size >= kHugePage);
  if (p == nullptr) return nullptr;
  if (hp == 1 && size >= kHugePage) os_hugepage_advise(p, total);
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
