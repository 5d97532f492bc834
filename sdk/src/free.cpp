// free.cpp - every free path of the malloc family: which code takes each kind of block back.
//
// The kind of a block is read from the page map (the granule's head byte, then its Slab header's
// `kind`); an address outside Spaces' arenas may be a shared region's block. The dispatch is in
// one place, free_dispatch (reached from the inline fast path with the slab it found, or from
// free_slow, which looks the slab up first, after free_owned_slow has taken this thread's own
// blocks):
//
//   what p is                                  where it goes                    file
//   ------------------------------------------ -------------------------------- -------------
//   small/medium block, this thread's slab,    free_fast (inline: spaces_free,  free.cpp
//     a block start, not free                    the override's free/delete)
//   the same, past a medium slab's first       free_owned_slow: the heap's      free.cpp
//     granule (no head at p - 1), or a sized     medium cache (medium blocks,
//     free off the inline path                   while it has room), else the slab
//   NULL                                       nothing                          free.cpp
//   small/medium, a sampled block (profiling)  prof_free_hook, then as below    profile.cpp
//   small/medium, slab of this thread          free_local_slow (a medium block  free.cpp
//     (detached, aligned, or looks free)         to the medium cache)
//   small (<= 1 KiB), slab another live thread remote_put: chained in this      free.cpp
//     owns, freed by a thread heap's thread      thread's batch, one CAS per 32
//   small/medium, slab of another thread       free_remote: one CAS on the      free.cpp
//     (or of a region's heap)                    slab's stack (+ notify)
//   large block (run of granules)              large_free                       large.cpp
//   huge block (own mapping)                   large_free                       large.cpp
//   block of an exclusive region's bump slab   bump_free                        chunk.cpp
//   block of an attached shared region         shared_free                      shared.cpp
//   interior pointer, metadata, freed memory,  report_unowned_free /            free.cpp
//     not Spaces' memory                          small_block_of (reported)
//
// Sized frees (free_sized, free_aligned_sized, sized operator delete) take the same fast path,
// which does not read the size (freeing needs none; Debug builds compare it with the slot);
// off it, free_sized_slow reports a size the block cannot have, then frees as above with the
// slab it looked up (the page map is read twice: passing the fast path's slab on cost the fast
// path a register move; free_slow's third read is gone). A region's blocks are freed here too (spaces_free of any
// block from any thread): a region is only a different owner of the same slab kinds, plus bump
// slabs. Region-wide frees (reset, destroy) are in chunk.cpp and shared.cpp.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

namespace spaces_core {

#ifdef SPACES_DEBUG
constexpr bool kCheckSizesOnFastPath = true;
#else
constexpr bool kCheckSizesOnFastPath = false;
#endif

// The free fast path: a block of a size-class slab this thread owns goes back to the slab's
// free list. `size`: a size the caller vouches for (sized frees) or 0. Only Debug builds look at
// it here (a size larger than the block is a certain mistake, sent to the slow path to be
// reported): the compare cost sized frees 4 instructions, so that they ran slower than plain
// ones; every other path checks it (docs/debugging.md). false: take the slow path.
// `found` (free_fast): the slab whose granule head holds p - 1 when there is one (free_slow's
// slab_find would find the same), so the slow path need not read the page map again; NULL
// otherwise.
// Block b of slab s, which this thread owns, onto s's free list (checked by the caller).
SPACES_INLINE void slab_push_owned(Slab* s, Block* b) {
  track_free(s->chunk, b, b, s->block_size);
  link_set(b, (reinterpret_cast<uintptr_t>(s->free) - reinterpret_cast<uintptr_t>(s)) ^ s->key);
  s->free = b;
  if (SPACES_UNLIKELY(--s->used == 0)) heap_slab_emptied(s->owner, s);
}
// free_owned, its body: the block p of slab s goes back to s's free list when this thread owns s
// (fast_owner: a size-class slab of this thread's heap with no aligned or sampled block) and p is
// a block start that does not look free. n: slab_offset(s, p). false: the slow path.
SPACES_INLINE bool free_owned(Slab* s, void* p, size_t size, uint32_t n) {
  if (SPACES_LIKELY(__atomic_load_n(&s->fast_owner, __ATOMIC_RELAXED) == thread_self() &&
                    (!kCheckSizesOnFastPath || size <= s->block_size))) {
    Block* b = static_cast<Block*>(p);
    // A block start of this slab, not its header, not inside a block (two compares and a
    // multiply; the slow path says which mistake it was), and not already free.
    if (SPACES_LIKELY(!Hardening::kCheckFrees || (slab_is_block_start(s, n) && !slab_block_looks_free(s, b)))) {
      slab_push_owned(s, b);
      return true;
    }
  }
  return false;
}

// A medium block of one of this thread's slabs into its heap's medium cache (internal.h,
// MediumCache); false when the class's slots or the heap's bytes are full.
SPACES_INLINE bool medium_cache_put(Heap* h, Slab* s, Block* b) {
  MediumCache& c = h->mcache[s->cls - kNumSmallClasses];
  uint32_t bs = s->block_size, n = c.n;
  if (n == kMediumCacheSlots || h->mcache_bytes + bs > uint64_t(option(kOpt_medium_block_cache_kib)) << 10)
    return false;
  track_free(nullptr, b, b, bs);
  uintptr_t link = slab_encode(s, s);  // (looks free, as a free block does: a second free is caught)
  link_set(b, link);
  c.link[n] = link;
  c.last_use = h->slow_calls;
  __atomic_store_n(&c.b[n], b, __ATOMIC_RELAXED);  // (other threads' double-free checks read them)
  __atomic_store_n(&c.n, n + 1, __ATOMIC_RELEASE);  // (after the entry: a fork child's flush reads both)
  h->mcache_bytes += bs;
  return true;
}

// Does b wait in some heap's medium cache? (A block that looks free, freed again: rare. Racy
// with the owners, like remote_cached; a block being taken back no longer looks free.)
__attribute__((no_sanitize("thread"))) bool medium_cached(const Slab* s, const Block* b) {
  unsigned cls = s->cls;
  if (cls < kNumSmallClasses || cls >= kNumClasses) return false;
  for (Heap* h = __atomic_load_n(&g_all_heaps, __ATOMIC_ACQUIRE); h; h = h->all_next) {
    const MediumCache& c = h->mcache[cls - kNumSmallClasses];
    uint32_t n = __atomic_load_n(&c.n, __ATOMIC_RELAXED);
    for (uint32_t i = 0; i < n && i < kMediumCacheSlots; i++)
      if (__atomic_load_n(&c.b[i], __ATOMIC_RELAXED) == b) return true;
  }
  return false;
}

SPACES_INLINE bool free_fast(void* p, size_t size, Slab*& found) {
  uintptr_t q = reinterpret_cast<uintptr_t>(p) - 1;
  found = nullptr;
  PageLeaf* l = pagemap_leaf(q);
  if (SPACES_UNLIKELY(l == nullptr)) return false;
  if (SPACES_LIKELY(pagemap_is_head_fast(l, q))) {
    Slab* s = slab_at(q & ~kSlabMask);
    found = s;
    return free_owned(s, p, size, slab_offset(s, p));
  }
  return false;
}

// ---- remote frees in batches (internal.h: RemoteEntry) ----------------------------------------
// Why only thread heaps' slabs: a region's blocks must leave its counts at once (its walk must
// not visit a freed block, its ceiling is judged on them), so they keep free_remote's one CAS.
// Double frees: a batched block's link looks free (it is encoded like any free block's), so the
// rare free of a block that looks free scans the batches of every thread heap for it before the
// slab's lists (a block moves from a batch to the lists, never back while free).

std::atomic<uint32_t> g_remote_epoch{0};

SPACES_INLINE unsigned remote_index(const Slab* s) {  // (slab index in its arena ^ the arena's)
  uintptr_t a = reinterpret_cast<uintptr_t>(s);
  return unsigned((a >> kSlabShift) ^ (a >> kArenaShift)) % kRemoteEntries;
}

// (The push found the slab kStateFull.) A pooled heap's list has no thread to drain it: the
// freeing thread does (heap.cpp, pool_drain). seq_cst with pool_put's store of `pooled` and the
// reload of `notify` that follows it, and with a running drain's release of `draining` and its
// reload: either this thread sees the heap pooled (and free to drain) or that thread sees the slab.
SPACES_INLINE void remote_notify(Slab* s) {
  Heap* o = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
  Slab* head = o->notify.load(std::memory_order_relaxed);
  do {
    s->notify_next = head;
  } while (!o->notify.compare_exchange_weak(head, s, std::memory_order_seq_cst, std::memory_order_relaxed));
  if (SPACES_UNLIKELY(__atomic_load_n(&o->pooled, __ATOMIC_SEQ_CST) != 0)) pool_drain(o);
}

// Push entry e's chain onto its slab's remote stack: one CAS (retried only under contention).
SPACES_HOT_TEXT SPACES_NOINLINE static void remote_flush(Heap* h, RemoteEntry& e) {
  Slab* s = e.slab;
  Block* head = reinterpret_cast<Block*>(reinterpret_cast<uintptr_t>(s) + (link_get(&e.first) ^ e.key));
  Block* tail = e.tail;
  unsigned n = e.count;
  bool stale = e.key != s->key;  // s was re-initialised under the entry (only after a double free
                                 // went unseen): the chain is dropped (leaked), never pushed
  // (the entry is cleared before the push, so no state exists in which a pushed chain is still
  // in a batch; other threads' double-free scans read `slab` atomically)
  __atomic_store_n(&e.slab, static_cast<Slab*>(nullptr), __ATOMIC_RELAXED);
  e.count = 0;
  h->remote_live--;
  if (SPACES_UNLIKELY(stale)) return;
  if (slab_remote_push_chain(s, head, tail, n)) remote_notify(s);
}

// Append b (a block start of e's slab s, checked) to the chain: no atomic read-modify-write.
SPACES_INLINE void remote_append(Heap* h, RemoteEntry& e, Slab* s, Block* b) {
  link_set(b, slab_encode(s, s));  // (looks free, as a free block must; the end until the next)
  link_set(e.tail, slab_encode(s, b));
  e.tail = b;
  if (SPACES_UNLIKELY(++e.count == e.limit)) remote_flush(h, e);
}

SPACES_HOT_TEXT void remote_flush_all(Heap* h) {
  for (RemoteEntry& e : h->remote)
    if (e.slab) remote_flush(h, e);
  h->remote_epoch = g_remote_epoch.load(std::memory_order_relaxed);
}

SPACES_HOT_TEXT void remote_tick(Heap* h) {
  if (h->remote_epoch != g_remote_epoch.load(std::memory_order_relaxed)) {
    remote_flush_all(h);
    return;
  }
  for (RemoteEntry& e : h->remote) {
    if (e.slab == nullptr) continue;
    if (e.count == e.seen) remote_flush(h, e);  // nothing went in since the last refill
    else e.seen = e.count;
  }
}

// Is b in some thread heap's batch for slab s? (Racy by nature, memory-safe: the heaps are never
// freed, and a chain is followed only through in-slab offsets, at most kRemoteBatch steps.)
// (TSan: the chains' links are written plainly by their threads; a racing read here is benign.)
__attribute__((no_sanitize("thread"))) static bool remote_cached(Slab* s, Block* b) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  for (Heap* h = __atomic_load_n(&g_all_heaps, __ATOMIC_ACQUIRE); h; h = h->all_next) {
    for (RemoteEntry& e : h->remote) {
      if (__atomic_load_n(&e.slab, __ATOMIC_RELAXED) != s) continue;
      uintptr_t p = base + (link_get(&e.first) ^ s->key);
      // (batches hold small slabs' blocks; the header may be stale if the slab went back to its
      // arena meanwhile, so its bound is clamped to the granule)
      uintptr_t limit = s->pop_limit < kSlabSize ? s->pop_limit : kSlabSize;
      for (uint32_t steps = 0; p != base && steps <= kRemoteBatch; steps++) {
        if (p - base - kSlabHeader >= limit - kSlabHeader) break;  // (the entry moved on to another
                                                                  // slab meanwhile)
        if (p == reinterpret_cast<uintptr_t>(b)) return true;
        uintptr_t off = link_get(reinterpret_cast<Block*>(p)) ^ s->key;
        if (!slab_link_in(s, off)) break;
        p = base + off;
      }
    }
  }
  return false;
}

// Is b, a block of small slab s whose first word looks like a free link, really free: on the
// slab's lists, in a thread's remote batch or in a medium cache? (Racy when s is another
// thread's: a hint, memory-safe; the owner's own lists are exact.)
SPACES_NOINLINE bool small_block_freed(Slab* s, Block* b) {
  return (s->block_size <= kRemoteBlockMax && remote_cached(s, b)) || medium_cached(s, b) ||
         slab_contains_free(s, b);
}

// realloc's and malloc_usable_size's check of a block whose first word looks free (internal.h,
// block_is_freed): reports it as `what` when it is on a list (small slab) or on its box's remote
// stack (a block the owner freed has no class byte, so box_usable reported it already). True:
// reported.
SPACES_NOINLINE bool freed_block_reported(Slab* s, Block* b, const char* what) {
  bool freed = s->kind == kSlabPages ? box_is_pending(s, b) : small_block_freed(s, b);
  if (freed) report_error(SPACES_ERROR_DOUBLE_FREE, b, what);
  return freed;
}

// A block of small slab s, which another thread's heap owns, freed by thread heap h's thread:
// the first of a batch (free_dispatch appends the others), or one that looks free.
SPACES_HOT_TEXT static void remote_put(Heap* h, Slab* s, Block* b, void* p) {
  if (slab_block_looks_free(s, b) && small_block_freed(s, b)) {
    report_error(SPACES_ERROR_DOUBLE_FREE, b, "double free");
    return;
  }
  track_free(nullptr, p, b, s->block_size);
  RemoteEntry& e = h->remote[remote_index(s)];
  if (e.slab != s || e.key != s->key) {  // (s re-initialised under the entry: remote_flush drops it)
    if (++h->remote_made % kRemoteEntries == 0 ||
        h->remote_epoch != g_remote_epoch.load(std::memory_order_relaxed))
      remote_tick(h);  // (a thread that only frees has no refills to age its batches at)
    if (e.slab) remote_flush(h, e);
    e.tail = &e.first;
    link_set(&e.first, slab_encode(s, s));  // (empty, before `slab` names s to other threads' scans)
    e.key = s->key;
    e.seen = 0;
    uint32_t fit = kRemoteBatchBytes / s->block_size;
    e.limit = fit < kRemoteBatch ? fit : kRemoteBatch;
    h->remote_live++;
  }
  __atomic_store_n(&e.slab, s, __ATOMIC_RELAXED);
  remote_append(h, e, s, b);
}

// A small block of a slab whose owner heap is this thread's (off the fast path: the slab is
// detached, has aligned blocks, or the block looked free).
SPACES_HOT_TEXT void free_local_slow(Heap* h, Slab* s, Block* b, void* p) {
  if (slab_block_looks_free(s, b) && small_block_freed(s, b)) {
    report_error(SPACES_ERROR_DOUBLE_FREE, b, "double free");
    return;
  }
  // (a medium block into a full, detached slab: cached, the slab need not be re-attached)
  if (s->cls >= kNumSmallClasses && !s->has_aligned && s->chunk == nullptr && h == t_home_heap &&
      h->state == kHeapActive && medium_cache_put(h, s, b))
    return;
  track_free(s->chunk, p, b, s->block_size);
  link_set(b, slab_encode(s, s->free));
  s->free = b;
  s->used--;
  if (!s->attached && h->cur[s->cls] != s) slab_attach(h, s);
  if (s->used == 0) heap_slab_emptied(h, s);
}

// A small block of a slab another thread (or nobody) owns: pushed onto the slab's remote stack
// (one CAS); the first push into a slab its owner stopped tracking also queues the slab on the
// owner's notify list, which the owner drains on its next refill (heap.cpp).
SPACES_HOT_TEXT void free_remote(Slab* s, Block* b, void* p) {
  if (slab_block_looks_free(s, b) && small_block_freed(s, b)) {
    report_error(SPACES_ERROR_DOUBLE_FREE, b, "double free");
    return;
  }
  if (s->chunk) chunk_remote_freed(s->chunk, 1, s->block_size);  // before the owner can collect
  track_free(s->chunk, p, b, s->block_size);
  if (slab_remote_push(s, b)) remote_notify(s);
}

// free() of a pointer whose granule holds no live header: say which mistake it most likely is.
void report_unowned_free(void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (!pagemap_in_region(a)) {
    report_error(SPACES_ERROR_INVALID_FREE, p, "invalid free (pointer not allocated by Spaces)");
    return;
  }
  // Inside Spaces' memory: look back (up to 64 MiB) for the large block that may contain p.
  uintptr_t g = (a & ~kSlabMask);
  for (int i = 0; i < 1024 && g >= kSlabSize && pagemap_in_region(g); i++, g -= kSlabSize) {
    Slab* h = pagemap_head_at(g);
    if (h == nullptr) continue;
    uintptr_t end = h->kind == kSlabLargeRun ? h->map_base + h->run_granules * kSlabSize
                    : h->kind == kSlabDirect ? h->map_base + h->map_bytes
                                             : g + kSlabSize;
    if (a < end) {
      report_error(SPACES_ERROR_INVALID_FREE, p, "invalid free (pointer inside a live block)");
      return;
    }
    break;
  }
  report_error(SPACES_ERROR_DOUBLE_FREE, p, "double free (or free of a pointer into freed memory)");
}

// The block of size-class slab s that p designates, or NULL after reporting p as a pointer into
// the slab's header (allocator metadata) or into a block. Every path that takes a small block
// back from the program (free, realloc, usable_size, sized free) asks this. A slab that has
// handed out aligned blocks accepts any pointer into a block (an aligned pointer is one).
SPACES_NOINLINE static Block* small_block_of_rest(Slab* s, const void* p, const char* what, uint32_t n) {
  // (any thread: has_aligned only goes 0 -> 1 while the slab lives, set by its allocating side)
  if (__atomic_load_n(&s->has_aligned, __ATOMIC_RELAXED) && n < s->capacity * s->block_size)
    return slab_block_start(s, p);
  char msg[128];
  msg[0] = 0;
  strncat(msg, what, 64);
  // (the header, or the colour's bytes before it: internal.h, slab_colour)
  strcat(msg, reinterpret_cast<uintptr_t>(p) - slab_base(s) < slab_first(s) - slab_base(s)
                  ? " (pointer into a slab header: allocator metadata)"
                  : " (pointer inside a block)");
  report_error(SPACES_ERROR_INVALID_FREE, p, msg);
  return nullptr;
}
SPACES_INLINE Block* small_block_of_inline(Slab* s, const void* p, const char* what) {
  uint32_t n = slab_offset(s, p);
  if (SPACES_LIKELY(slab_is_block_start(s, n))) return static_cast<Block*>(const_cast<void*>(p));
  return small_block_of_rest(s, p, what, n);
}
SPACES_HOT_TEXT Block* small_block_of(Slab* s, const void* p, const char* what) { return small_block_of_inline(s, p, what); }

// A small block whose slab is not the one this thread's batch is filling (or that looks free, or
// is no block start): checked, then freed as its owner and size say.
SPACES_HOT_TEXT SPACES_NOINLINE static void free_small_other(void* p, Slab* s) {
  Block* b = small_block_of_inline(s, p, "invalid free");
  if (b == nullptr) return;  // (reported)
  // Racy with heap_merge moving the slab, harmlessly: only this thread can make the owner
  // one it is bound to, so the answer to "is it mine?" cannot change under us.
  Heap* h = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
  if (h && __atomic_load_n(&h->tp, __ATOMIC_RELAXED) == thread_self()) {  // this thread owns it
    free_local_slow(h, s, b, p);
    return;
  }
  // Another thread's (or an exited thread's) slab of a thread heap: batched when the block is
  // small. (A thread that frees before it ever allocated gets a new heap now, unless it routes
  // malloc to a region or is exiting: a thread that only frees pushes its batches when they
  // fill, when another slab needs the place, when 64 entries were made since the last check,
  // at spaces_collect and at exit.)
  if (s->chunk == nullptr && s->block_size <= kRemoteBlockMax) {
    Heap* me = t_home_heap;
    if (SPACES_UNLIKELY(me->state == kHeapStatic) && t_heap == me && !t_heap_done) me = heap_thread_init(false);
    if (SPACES_LIKELY(me != nullptr && me->state == kHeapActive)) {
      remote_put(me, s, b, p);
      return;
    }
  }
  free_remote(s, b, p);
}

// A block of a slab this thread owns, off the inline path (a medium block past its slab's first
// granule, or a sized free): a medium block waits in the heap's medium cache for the next malloc
// of its class; any other, or when the cache is full, goes back to its slab as free_fast's would.
// Checked in every build (the slow paths check always). false: not this thread's slab, or not a
// live block start (free_dispatch decides and reports).
SPACES_INLINE bool free_owned_slow(Slab* s, void* p) {
  Block* b = static_cast<Block*>(p);
  Heap* h = t_home_heap;
  if (__atomic_load_n(&s->fast_owner, __ATOMIC_RELAXED) != thread_self()) {
    // A medium block of a full slab of this thread's heap (detached: no fast_owner; with the
    // cache, a slab that filled stays full while its blocks cycle through the cache) goes to the
    // cache too, without the trip through free_dispatch; when the cache is full, free_local_slow
    // re-attaches the slab. (Only this thread can make a slab's owner its own heap, so the answer
    // cannot change under us.)
    if (s->kind != kSlabSmall || s->cls < kNumSmallClasses || s->has_aligned || s->chunk != nullptr ||
        __atomic_load_n(&s->owner, __ATOMIC_RELAXED) != h || h->state != kHeapActive)
      return false;
    if (!slab_is_block_start(s, slab_offset(s, p)) || slab_block_looks_free(s, b)) return false;
    return medium_cache_put(h, s, b);
  }
  if (!slab_is_block_start(s, slab_offset(s, p)) || slab_block_looks_free(s, b)) return false;
  if (s->cls >= kNumSmallClasses && s->owner == h && medium_cache_put(h, s, b)) return true;
  slab_push_owned(s, b);
  return true;
}

SPACES_HOT_TEXT void free_slow(void* p) {
  if (p == nullptr) return;
  Slab* s = slab_find(p);
  if (s == nullptr) {
    if (!shared_free(p)) report_unowned_free(p);  // (a block of an attached shared region?)
    return;
  }
  // A medium block past its slab's first granule (free_fast found no head at p - 1): this
  // thread's waits in its heap's medium cache for the next malloc of its class, or, when that is
  // full, goes back to its slab as free_fast would have taken it.
  if (SPACES_LIKELY(free_owned_slow(s, p))) return;
  free_dispatch(p, s);
}

// p's slab s is known (its granule's head): the dispatch by block kind, for free_dispatch.
SPACES_INLINE void free_by_kind(void* p, Slab* s) {
  if (SPACES_LIKELY(s->kind == kSlabSmall)) {  // (first: the remote frees' case)
    // The remote frees' fast path: a block start of the slab this thread's batch is filling,
    // that does not look free (the entry was made by free_small_other: a thread heap's slab of
    // small blocks that another thread owned; a slab cannot change hands to this thread's heap
    // but by a merge, after which a push onto its own stack is still right).
    if (SPACES_LIKELY(slab_is_block_start(s, slab_offset(s, p)))) {
      Heap* me = t_home_heap;
      Block* b = static_cast<Block*>(p);
      RemoteEntry& e = me->remote[remote_index(s)];
      if (SPACES_LIKELY(e.slab == s && e.key == s->key && !slab_block_looks_free(s, b))) {
        track_free(nullptr, p, b, s->block_size);
        remote_append(me, e, s, b);
        return;
      }
    }
    free_small_other(p, s);
    return;
  }
  switch (s->kind) {
    case kSlabLargeRun:
    case kSlabDirect:
      large_free(s, p);
      return;
    case kSlabBump:
      bump_free(s, p);
      return;
    case kSlabPages:
      box_free(s, p);
      return;
    default:
      report_error(SPACES_ERROR_DOUBLE_FREE, p, "double free (block's slab is already free)");
      return;
  }
}

SPACES_NOINLINE static void free_dispatch_profiled(void* p, Slab* s) {
  if (prof_free_hook(s, p)) return;  // (a sampled block: its record ends first)
  free_by_kind(p, s);
}

// free_fast's misses come here directly (remote frees above all: the page map is read once per
// free, not twice). Every way out is a tail call (the profiler's hook too), so the remote frees'
// path saves no register: 88.3 -> 82.4 instructions per remote free (callgrind_free.sh).
SPACES_HOT_TEXT void free_dispatch(void* p, Slab* s) {
  if (SPACES_UNLIKELY(g_prof_on)) return free_dispatch_profiled(p, s);
  free_by_kind(p, s);
}

// Shared by realloc and usable_size: the slab of a pointer that must be a live block, or NULL
// after reporting.
SPACES_HOT_TEXT Slab* checked_slab(const void* p, const char* what) {
  Slab* s = slab_find(p);
  if (s == nullptr) {
    report_error(pagemap_in_region(reinterpret_cast<uintptr_t>(p)) ? SPACES_ERROR_DOUBLE_FREE
                                                                   : SPACES_ERROR_INVALID_FREE,
                 p, what);
    return nullptr;
  }
  if (s->kind != kSlabSmall && s->kind != kSlabLargeRun && s->kind != kSlabDirect && s->kind != kSlabBump &&
      s->kind != kSlabPages) {
    report_error(SPACES_ERROR_DOUBLE_FREE, p, what);
    return nullptr;
  }
  return s;
}

// Usable bytes of small block p (0 after reporting p as no block start).
SPACES_HOT_TEXT size_t small_usable(Slab* s, const void* p, const char* what) {
  Block* b = small_block_of(s, p, what);
  return b ? s->block_size - size_t(static_cast<const uint8_t*>(p) - reinterpret_cast<uint8_t*>(b)) : 0;
}

// Sized frees off the fast path: "larger than the block" is the only certain mistake (realloc
// may keep a block in place at any size down to half its slot, so a smaller size of another
// class is legitimate); it is reported and the block is not freed.
// found: the slab free_fast found for p (NULL: look it up).
SPACES_HOT_TEXT void free_sized_slow(void* p, size_t size, bool aligned, Slab* found) {
  if (Slab* s = found ? found : p != nullptr ? slab_find(p) : nullptr) {
    size_t most = SIZE_MAX;
    if (s->kind == kSlabSmall) {
      most = s->block_size;
    } else if (s->kind == kSlabLargeRun || s->kind == kSlabDirect) {
      most = s->user_size;
    } else if (s->kind == kSlabBump) {
      most = bump_check(s, p, aligned ? "free_aligned_sized of a pointer that is not a live block"
                                       : "free_sized of a pointer that is not a live block");
      if (most == 0) return;  // (reported)
    } else if (s->kind == kSlabPages) {
      most = box_usable(s, p, aligned ? "free_aligned_sized of a pointer that is not a live block"
                                      : "free_sized of a pointer that is not a live block");
      if (most == 0) return;  // (reported)
    }
    if (size > most) {
      report_error(SPACES_ERROR_SIZE_MISMATCH, p,
                   aligned ? "free_aligned_sized with a size the block cannot have"
                           : "free_sized with a size the block cannot have");
      return;
    }
    if (free_owned_slow(s, p)) return;
    free_dispatch(p, s);
    return;
  }
  free_slow(p);
}

}  // namespace spaces_core

using namespace spaces_core;

extern "C" {

SPACES_FAST_API void spaces_free(void* p) noexcept {
  Slab* s;
  if (SPACES_LIKELY(free_fast(p, 0, s))) return;
  if (s != nullptr)
    free_dispatch(p, s);
  else
    free_slow(p);
}

SPACES_FAST_API void spaces_free_sized(void* p, size_t size) noexcept {
  Slab* s;
  if (SPACES_LIKELY(free_fast(p, size, s))) return;
  free_sized_slow(p, size, false, nullptr);
}

SPACES_API SPACES_HOT_TEXT void spaces_free_aligned_sized(void* p, size_t align, size_t size) noexcept {
  (void)align;  // (not inlined in the override: passing the slab on costs no fast path here)
  Slab* s;
  if (SPACES_LIKELY(free_fast(p, size, s))) return;
  free_sized_slow(p, size, true, s);
}

}  // extern "C"
