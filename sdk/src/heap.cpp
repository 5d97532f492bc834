// heap.cpp - per-thread heaps: the malloc slow path, refills, slabs' life cycle and threads'.
//
// A Heap belongs to at most one thread at a time (t_heap). It tracks, per size class, the slab
// it allocates from (`cur`) and a list of other slabs with room (`partial`). A slab that ran out
// is *detached*: the heap forgets it, marks it kStateFull and sets fast_owner = NULL, so
//   - a local free into it takes the slow path and re-attaches it;
//   - the first remote free into it flips it to kStateNotified and queues it on `notify`, which
//     the owner drains on its next refill.
// So every slab with free blocks is reachable from its heap, and no list is ever scanned for
// room. Medium classes (9-256 KiB, thread heaps only) work the same way on slabs of several
// granules (g_classes.granules); their emptied slabs wait in a cache of their own
// (medium_cache_kib) and are reused by any class of the same slab size. Medium *blocks* the
// thread frees wait in the heap too (mcache, medium_block_cache_kib: internal.h, MediumCache):
// heap_malloc_slow_rest takes them back first, and heap_sweep returns them to their slabs
// before it counts or releases any slab. With option medium_pages, the classes above one granule
// come from the heap's page boxes instead (pages.cpp): heap_malloc_slow_rest hands them over
// after the medium cache, heap_drain_notify passes queued boxes to box_drain, and heap_sweep and
// heap_merge give empty boxes back and move the rest.
//
// Threads come and go; heaps do not. A thread's first allocation takes the newest heap from the
// pool of abandoned heaps (or makes one); its exit (pthread key destructor) collects remote
// frees, moves emptied slabs to the heap's caches and puts the heap, with its slabs, back in the
// pool. A new thread thus starts with warm slabs, which keeps thousands of short-lived threads
// fast and their RSS flat. So that memory is never stranded in a heap nobody takes, a heap that
// waited longer than the purge delay is *stale*: a living thread that needs a fresh slab first
// merges the oldest stale heap into its own (heap_merge), and spaces_collect(1) collects them
// all. (Merging fresh heaps too, as 0.1 did, stripped the heaps the next threads were about to
// take: slabs cycled between heaps and arenas and churn RSS grew fourfold.) A pooled heap's
// slabs are *armed* (attached but kStateFull), so a free by another thread into one queues it on
// the heap's notify list, and that free drains the list itself (pool_drain): memory other
// threads free into an exited thread's slabs goes back without waiting for a thread to take the
// heap.
//
// Heap structs are never freed (they are recycled), so a remote thread may always dereference
// slab->owner. A slab's owner changes only while it is attached and kStateNormal, when no
// remote thread reads `owner` (remote frees read it only after seeing kStateFull).
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

#include <sys/mman.h>
#include <utility>

namespace spaces_core {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
// Constant-initialised (no constructor runs): free == itself marks "no block".
// bump = UINTPTR_MAX: no bump room either (the chunk fast path bump-allocates).
Slab g_empty_slab = {0, 0, nullptr, nullptr, 0, 0, 0, 0, 0, 0, 0, 0, 0, &g_empty_slab, 0, 0, 0, UINTPTR_MAX};

namespace {
template <size_t... D, size_t... C>
constexpr Heap make_empty_heap(std::index_sequence<D...>, std::index_sequence<C...>) {
  return Heap{{((void)D, &g_empty_slab)...}, {((void)C, &g_empty_slab)...}};
}
}  // namespace

Heap g_empty_heap =
    make_empty_heap(std::make_index_sequence<kDirectSlots>(), std::make_index_sequence<kNumClasses>());
#pragma GCC diagnostic pop
SPACES_TLS Heap* t_heap = &g_empty_heap;
SPACES_TLS Heap* t_home_heap = &g_empty_heap;
SPACES_TLS bool t_heap_done = false;
static SPACES_TLS unsigned t_key_rounds = 0;  // rounds of key destructors that ran heap_thread_done
static SPACES_TLS unsigned t_in_drain = 0;  // pool_drain: the drains this thread holds (nested)

namespace {

SpinLock g_heap_lock;          // guards the pool, the registry and heap-struct allocation
Heap* g_pool = nullptr;        // abandoned heaps, newest first (a new thread takes the warmest)
Heap* g_pool_tail = nullptr;   // the oldest: merged into a living heap once stale
Heap* g_all_heaps = nullptr;   // every heap ever made
size_t g_heap_count = 0;
std::atomic<size_t> g_abandoned{0};  // (heaps in the pool)
// Heaps of exited threads that never allocated: a thread whose first call frees another thread's
// small block makes a heap for its batches of remote frees (heap_thread_init(false)), never taking
// a pooled one. Such a heap holds no slab when its thread exits: it waits here, not in the pool
// (as the pool's newest, the next thread took it, empty, and left the heaps with slabs behind),
// and the next thread that needs a heap and finds the pool empty, or frees first, takes it. Before
// session 29 every free-only thread added a heap for good: 5 000 such threads, 5 001 heaps, 82 MB.
Heap* g_bare = nullptr;  // linked by pool_next
size_t g_bare_count = 0;
std::atomic<size_t> g_threads_started{0};
std::atomic<ptrdiff_t> g_slabs_in_use{0};
uint8_t* g_meta_cursor = nullptr;  // bump area for Heap structs
uint8_t* g_meta_end = nullptr;

SPACES_INLINE uintptr_t slab_state(const Slab* s) {
  return s->thread_free.load(std::memory_order_acquire) & kStateMask;
}

}  // namespace

// Make `s` the slab class `cls` allocates from. Malloc does not count the current slab's
// blocks in `used` (internal.h, Slab::used), so the previous current slab's count is made exact
// here (slab_out: O(1) when its list ran empty, the usual case). The new one starts from its
// exact count plus one phantom, so its frees meet zero only after mallocs took blocks, and
// heap_slab_emptied ignores a current slab. The previous one may now be empty: callers handle it.
SPACES_HOT_TEXT void heap_set_cur(Heap* h, unsigned cls, Slab* s) {
  Slab* old = h->cur[cls];
  if (old == s) return;
  if (old != &g_empty_slab) old->used = slab_out(old);
  if (s != &g_empty_slab) s->used++;
  h->cur[cls] = s;
  if (cls >= kNumSmallClasses) return;  // (malloc's direct table covers small sizes only)
  size_t lo = cls == 0 ? 0 : class_size(cls - 1) / 8 + 1;
  size_t hi = class_size(cls) / 8;
  if (SPACES_UNLIKELY(g_prof_on)) return;  // (every small malloc takes the slow path, which counts it)
  for (size_t i = lo; i <= hi; i++) h->direct[i] = s;
}

namespace {

// Change the state bits, keeping the list. Used by the owner for Normal<->Full and
// Notified->Normal; only the owner ever leaves kStateNotified.
void slab_set_state(Slab* s, uintptr_t from, uintptr_t to) {
  uintptr_t tf = s->thread_free.load(std::memory_order_relaxed);
  while ((tf & kStateMask) == from &&
         !s->thread_free.compare_exchange_weak(tf, (tf & ~kStateMask) | to, std::memory_order_acq_rel,
                                               std::memory_order_relaxed)) {
  }
}

// Mark s kStateFull, so that the next remote free queues it on its owner's notify list. Fails
// (returns false) if remote frees are already waiting, in which case the caller should collect
// them instead. A slab already queued (kStateNotified) stays so: the notify drain will see it.
SPACES_INLINE bool slab_try_mark_full(Slab* s) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  uintptr_t tf = s->thread_free.load(std::memory_order_relaxed);
  for (;;) {
    if (tf_ptr(tf) != base) return false;
    if ((tf & kStateMask) == kStateNotified) return true;
    if (s->thread_free.compare_exchange_weak(tf, base | kStateFull, std::memory_order_acq_rel,
                                             std::memory_order_relaxed))
      return true;
  }
}

// Stop tracking a full slab. Fails (returns false) as slab_try_mark_full does.
bool slab_try_detach(Slab* s) {
  if (!slab_try_mark_full(s)) return false;
  __atomic_store_n(&s->attached, uint8_t(0), __ATOMIC_RELAXED);
  __atomic_store_n(&s->fast_owner, uintptr_t(0), __ATOMIC_RELAXED);
  return true;
}

void slab_attach(Heap* h, Slab* s) {
  __atomic_store_n(&s->attached, uint8_t(1), __ATOMIC_RELAXED);
  if (!s->has_aligned) __atomic_store_n(&s->fast_owner, h->fast_tp, __ATOMIC_RELAXED);
  h->partial[s->cls].push(s);
  slab_set_state(s, kStateFull, kStateNormal);
}

}  // namespace

// An empty slab of `granules` leaves the heaps: to its arena now, or into `batch` (given back
// when full or by the caller).
SPACES_HOT_TEXT static void give_to_arena(Slab* s, unsigned granules, RunBatch* batch) {
  s->kind = kSlabFree;
  s->owner = nullptr;
  s->chunk = nullptr;
  uintptr_t g = slab_base(s);  // (the arenas deal in granules: a header may be coloured)
  pagemap_set_head(g, false);
  g_slabs_in_use.fetch_sub(granules, std::memory_order_relaxed);
  if (batch == nullptr) {
    arena_free_slabs(reinterpret_cast<Slab*>(g), granules);
    return;
  }
  if (batch->n == RunBatch::kMax) arena_free_batch(*batch);
  batch->run[batch->n] = reinterpret_cast<Slab*>(g);
  batch->count[batch->n++] = granules;
}

// Give an empty slab back: to the heap's cache, or to its arena.
SPACES_HOT_TEXT SPACES_ONE_COPY void heap_release_slab(Heap* h, Slab* s, bool to_arena, RunBatch* batch) {
  __atomic_store_n(&s->kind, uint8_t(kSlabEmpty), __ATOMIC_RELAXED);
  __atomic_store_n(&s->fast_owner, uintptr_t(0), __ATOMIC_RELAXED);
  // (release: a reader of a bump slab that sees `attached` 0 again also sees it is no longer
  // one: chunk.cpp, bump_read)
  __atomic_store_n(&s->attached, uint8_t(0), __ATOMIC_RELEASE);
  unsigned granules = g_classes.granules[s->cls];
  if (granules > 1) {  // a medium slab (thread heaps only)
    if (!to_arena && h->medium_empty_granules + granules <= uint64_t(option(kOpt_medium_cache_kib)) / 64) {
      s->next = h->medium_empty;
      h->medium_empty = s;
      h->medium_empty_granules += granules;
      return;
    }
    pagemap_set_back(slab_base(s), granules, false);
    give_to_arena(s, granules, batch);
    return;
  }
  uint32_t limit = h->chunk ? h->cache_limit_override : uint32_t(option(kOpt_slab_cache));
  if (!to_arena && h->empty_count < limit) {
    s->next = h->empty;
    h->empty = s;
    h->empty_count++;
    return;
  }
  if (h->chunk) chunk_slab_removed(h->chunk, s);
  give_to_arena(s, 1, batch);
}

namespace {

SPACES_HOT_TEXT void heap_drain_notify(Heap* h) {
  Slab* s = h->notify.exchange(nullptr, std::memory_order_acquire);
  while (s) {
    Slab* next = s->notify_next;
    if (s->kind == kSlabPages) {  // (pages.cpp)
      box_drain(h, s);
      s = next;
      continue;
    }
    slab_set_state(s, kStateNotified, kStateNormal);
    slab_collect_remote(s);
    if (s->used == 0 && h->cur[s->cls] != s) {
      if (s->attached) h->partial[s->cls].remove(s);
      heap_release_slab(h, s, false);
    } else if (!s->attached) {
      slab_attach(h, s);
    }
    s = next;
  }
}

// Heaps with no thread (pooled, or held out of the pool by a merge or collect) keep every
// slab they track *armed*: attached (on `partial`, or `cur`) but kStateFull, so the first remote
// free into it queues it on the heap's notify list, whose drain (heap_drain_idle) collects it
// and gives it back if that emptied it. (An owner's slab in kStateNormal takes remote frees
// silently, the owner collecting them at its refills; a pooled heap has no refills, so a program
// whose threads exited while another thread freed their blocks kept every slab those frees
// emptied: 964 MB after freeing it all, session 28's adversarial pass.) A thread arms them as it
// lets its heap go, and disarms them as it takes one from the pool (heap_bind_slabs); a merge
// disarms each slab it moves. Only such heaps hold attached slabs in kStateFull; the paths that
// read a slab's state treat them as attached.

// Slab s of idle heap a (held: no other thread changes a's lists), not queued: its remote frees
// collected, then given back if that emptied it (to the heap's caches while they have room, for
// the next thread that takes the heap, else to the arenas: giving them all to the arenas held
// `thread_rounds` at two threads 7.6 -> 9.4 MiB, the next round's threads refilling from other
// memory), else armed. A slab the drain took off the notify list is set kStateNormal first, so a
// free racing with the drain is collected here or queues the slab afresh, never both (session 28's reverted drain set it Full before the collect:
// a free in between queued it again, and the slab was given back twice).
SPACES_NOINLINE void slab_settle_idle(Heap* a, Slab* s) {
  bool cur = a->cur[s->cls] == s;  // (kept: the next thread's warm slab; its `used` holds a phantom)
  do {
    slab_collect_remote(s);
    if (!cur && s->used == 0 && slab_state(s) != kStateNotified) {
      if (s->attached) a->partial[s->cls].remove(s);
      heap_release_slab(a, s, false);
      return;
    }
  } while (!slab_try_mark_full(s));  // (frees pushed since the collect: collect them too)
  if (!cur && !s->attached) {  // (a detached full slab: tracked again, so a thread that takes a finds its free blocks)
    __atomic_store_n(&s->attached, uint8_t(1), __ATOMIC_RELAXED);
    a->partial[s->cls].push(s);  // (fast_owner stays 0: an idle heap's fast_tp)
  }
}

// The notify drain of idle heap a (held), as heap_drain_notify is the owner's, of at most `most`
// slabs (pool_drain): each is popped off the list on its own (only the holder of `draining` pops,
// so the pop has no ABA; frees keep pushing meanwhile).
SPACES_NOINLINE void heap_drain_idle(Heap* a, unsigned most) {
  for (; most; most--) {
    Slab* s = a->notify.load(std::memory_order_acquire);
    do {
      if (s == nullptr) return;
    } while (!a->notify.compare_exchange_weak(s, s->notify_next, std::memory_order_acquire, std::memory_order_acquire));
    if (s->kind == kSlabPages) {
      box_drain(a, s);  // (boxes are always kStateFull: armed already)
    } else {
      slab_set_state(s, kStateNotified, kStateNormal);
      slab_settle_idle(a, s);
    }
  }
}

// Idle heap h (held; spaces_collect): every slab it tracks settled and armed.
SPACES_NOINLINE void heap_arm_idle(Heap* h) {
  for (unsigned c = 0; c < kNumClasses; c++) {
    for (Slab *s = h->partial[c].head, *next; s; s = next) {
      next = s->next;
      slab_settle_idle(h, s);
    }
    if (h->cur[c] != &g_empty_slab) slab_settle_idle(h, h->cur[c]);
  }
}

}  // namespace

// Slab s that heap h tracks gets fast-free tag tp, and is armed (arm > 0: a thread lets h go)
// or disarmed (arm < 0: a thread took h from the pool; one queued stays queued, its refill drains
// it); see heap_drain_idle above. Frees pushed since the thread's last sweep make the arm settle
// it first (not in the hot text: that takes a race with the thread's exit). (One call per slab:
// the loops inline kept a copy per case, 330 bytes more of the hot text.)
SPACES_HOT_TEXT SPACES_ONE_COPY static void slab_bind(Heap* h, Slab* s, uintptr_t tp, int arm) {
  if (!s->has_aligned) __atomic_store_n(&s->fast_owner, tp, __ATOMIC_RELAXED);
  if (arm == 0) return;
  uintptr_t from = arm > 0 ? kStateNormal : kStateFull;
  uintptr_t tf = s->thread_free.load(std::memory_order_relaxed);
  for (;;) {
    if ((tf & kStateMask) != from) return;  // (queued, or armed already)
    if (arm > 0 && tf_ptr(tf) != reinterpret_cast<uintptr_t>(s)) return slab_settle_idle(h, s);
    if (s->thread_free.compare_exchange_weak(tf, tf ^ kStateNormal ^ kStateFull, std::memory_order_acq_rel,
                                             std::memory_order_relaxed))
      return;
  }
}

// Give every slab the heap tracks the fast-free tag of thread pointer `tp` (0: none). Called
// when a thread takes the heap and when it lets it go, so a thread that later reuses a dead
// thread's TCB address can never match a slab it does not own. arm > 0: a thread heap's thread
// lets it go (into the pool): its slabs are armed; arm < 0: a thread took it from the pool.
SPACES_HOT_TEXT SPACES_ONE_COPY void heap_bind_slabs(Heap* h, uintptr_t tp, int arm) {
  __atomic_store_n(&h->tp, tp, __ATOMIC_RELAXED);
  h->fast_tp = g_prof_on && h->chunk ? 0 : tp;  // (profiling: region frees all go the slow way)
  tp = h->fast_tp;
  for (unsigned c = 0; c < kNumClasses; c++) {
    for (Slab *s = h->partial[c].head, *next; s; s = next) {
      next = s->next;  // (an arm may give s back)
      slab_bind(h, s, tp, arm);
    }
    if (h->cur[c] != &g_empty_slab) slab_bind(h, h->cur[c], tp, arm);
  }
}

namespace {

// fresh: h lies in memory just mapped (zero), whose arrays below are not written, so that their
// pages stay untouched until used (the medium cache's 10.9 KiB and the remote batches' 3 KiB:
// two to three pages of RSS per thread heap in a program that never frees medium blocks or
// frees across threads).
SPACES_HOT_TEXT void heap_init_fields(Heap* h, Chunk* c, bool fresh = false) {
  for (unsigned i = 0; i < kNumClasses; i++) {
    h->cur[i] = &g_empty_slab;
    h->partial[i].head = nullptr;
  }
  for (size_t i = 0; i < kDirectSlots; i++) h->direct[i] = &g_empty_slab;
  h->notify.store(nullptr, std::memory_order_relaxed);
  h->empty = nullptr;
  h->empty_count = 0;
  h->medium_empty = nullptr;
  h->medium_empty_granules = 0;
  h->state = c ? kHeapChunk : kHeapAbandoned;
  h->pooled = 0;
  h->draining = 0;
  h->handoff = 0;
  h->collect_pass = 0;
  h->had_slab = 0;
  h->drainer = 0;
  h->holder = 0;
  h->pool_next = nullptr;
  h->pool_prev = nullptr;
  h->abandoned_ns = 0;
  h->all_next = nullptr;
  h->slow_calls = 0;
  h->tp = 0;
  h->fast_tp = 0;
  h->chunk = c;
  h->cache_limit_override = 0;
  h->growing = 0;
  if (!fresh) memset(h->remote, 0, sizeof h->remote);
  h->remote_live = 0;
  h->remote_made = 0;
  h->remote_epoch = 0;
  h->mcache_bytes = 0;
  if (!fresh) memset(h->mcache, 0, sizeof h->mcache);
  h->box_count = 0;
  h->box_ticks = 0;
  h->box_epoch = 0;
  h->box_dirty = 0;
  h->box_slots = 0;
  if (!fresh) {
    memset(h->box_idx, 0, sizeof h->box_idx);  // (box_after_fork reads every slot)
    memset(h->run_head, 0, sizeof h->run_head);
  }
  h->run_mask[0] = h->run_mask[1] = 0;
}

Heap* heap_alloc_struct() {  // g_heap_lock held
  size_t need = (sizeof(Heap) + 63) & ~size_t(63);
  if (g_meta_cursor == nullptr || g_meta_cursor + need > g_meta_end) {
    size_t chunk = 256 * 1024;
    uint8_t* m = static_cast<uint8_t*>(os_map(chunk));
    if (m == nullptr) return nullptr;
    g_meta_cursor = m;
    g_meta_end = m + chunk;
  }
  Heap* h = reinterpret_cast<Heap*>(g_meta_cursor);
  g_meta_cursor += need;
  heap_init_fields(h, nullptr, true);  // (the meta chunk is carved once, never reused: zero)
  h->all_next = g_all_heaps;
  __atomic_store_n(&g_all_heaps, h, __ATOMIC_RELEASE);  // (read without the lock: remote_cached)
  g_heap_count++;
  arena_set_heaps(g_heap_count);  // (live threads' heaps and the pool the next threads reuse)
  return h;
}

// When the oldest pooled heap was abandoned (UINT64_MAX: none), read without the lock so that a
// refill does not take g_heap_lock just to learn that no heap is stale yet.
std::atomic<uint64_t> g_pool_tail_ns{UINT64_MAX};
uint64_t g_collect_pass = 0;  // heap_collect_abandoned's passes (g_heap_lock)
void pool_tail_changed() {  // g_heap_lock held
  g_pool_tail_ns.store(g_pool_tail ? g_pool_tail->abandoned_ns : UINT64_MAX, std::memory_order_relaxed);
}

// (seq_cst: pool_drain reads `pooled` once it holds `draining`, and the thread that took h
// reads `draining` after this store, heap_wait_drain: one of the two sees the other's write)
void pool_unlink(Heap* h) {  // g_heap_lock held
  __atomic_store_n(&h->pooled, uint8_t(0), __ATOMIC_SEQ_CST);
  (h->pool_prev ? h->pool_prev->pool_next : g_pool) = h->pool_next;
  (h->pool_next ? h->pool_next->pool_prev : g_pool_tail) = h->pool_prev;
  h->pool_next = h->pool_prev = nullptr;
  g_abandoned.fetch_sub(1, std::memory_order_relaxed);
  pool_tail_changed();
}

Heap* pool_take() {  // g_heap_lock held; the newest heap (warm caches for a new thread)
  Heap* h = g_pool;
  if (h) pool_unlink(h);
  return h;
}

// How long a heap may wait in the pool for a new thread before living threads merge it: the
// purge delay (1 s when purging is off), so a steady stream of short threads keeps reusing
// whole heaps while the heaps of a burst that ended are folded back within a purge period.
uint64_t pool_stale_ns() {
  long long ms = option(kOpt_purge_delay_ms);
  return uint64_t(ms < 0 ? 1000 : ms) * 1000000;
}

bool pool_is_stale(uint64_t abandoned_ns, uint64_t now) {  // (one pooled after `now` is not)
  return abandoned_ns <= now && now - abandoned_ns >= pool_stale_ns();
}

Heap* pool_take_stale(uint64_t now) {  // g_heap_lock held; the oldest heap, if stale
  Heap* h = g_pool_tail;
  if (h == nullptr || !pool_is_stale(h->abandoned_ns, now)) return nullptr;
  pool_unlink(h);
  return h;
}

// Heap h (no thread; its slabs armed) into the pool as its newest, abandoned `now`. The caller
// then calls pool_recheck once it let g_heap_lock go.
SPACES_HOT_TEXT SPACES_ONE_COPY void pool_put(Heap* h, uint64_t now) {  // g_heap_lock held
  h->state = kHeapAbandoned;
  h->holder = 0;
  h->growing = 0;  // (the next thread's classes grow or not on their own: heap_refill)
  h->abandoned_ns = now;
  h->pool_prev = nullptr;
  h->pool_next = g_pool;
  (g_pool ? g_pool->pool_prev : g_pool_tail) = h;
  g_pool = h;
  g_abandoned.fetch_add(1, std::memory_order_relaxed);
  pool_tail_changed();
  __atomic_store_n(&h->pooled, uint8_t(1), __ATOMIC_SEQ_CST);  // (remote_notify: free.cpp)
}

// This thread holds heap a, out of the pool, to work on it without its thread (g_heap_lock held).
void heap_hold(Heap* a) {
  a->state = kHeapIdleHeld;
  a->holder = thread_self();
}

// h was just taken out of the pool: a drain that began before may still run (pool_drain).
SPACES_NOINLINE void heap_wait_drain_slow(Heap* h) {
  for (unsigned spin = 0; __atomic_load_n(&h->draining, __ATOMIC_SEQ_CST); spin++) {
    if (spin < 64)
      os_cpu_relax();
    else
      os_yield();  // (the drainer may be preempted on this core)
  }
}
SPACES_INLINE void heap_wait_drain(Heap* h) {
  if (SPACES_UNLIKELY(__atomic_load_n(&h->draining, __ATOMIC_SEQ_CST))) heap_wait_drain_slow(h);
}

// A slab queued on heap h's notify list while h was out of the pool (or before its thread let
// it go) found it not pooled, so nobody drained it: the thread that put h back does, as
// remote_notify would have.
void pool_recheck(Heap* h) {
  if (h->notify.load(std::memory_order_seq_cst) != nullptr) pool_drain(h);
}

}  // namespace

// A remote free queued a slab on pooled heap a's notify list (free.cpp, remote_notify): no thread
// drains that list while a waits in the pool, so the freeing thread does (heap_drain_idle:
// emptied slabs to the heap's caches or the arenas, whose purge and dirty bound then apply; the
// others armed again). The heap stays in the pool, guarded by its `draining` flag: one drain at
// a time (a free that finds one running leaves its slab to it: the drain looks at the list again
// once it is done), and a thread that takes the heap from the pool meanwhile waits for the drain
// to end (heap_wait_drain) before it touches the heap. (Taking the heap out of the pool for the
// drain, session 29's first version, made a thread that started meanwhile find the pool empty
// and make a new heap: `churn` held 36 % more.) No system call is made under g_heap_lock.
// Not in the hot text: a program whose frees come here maps one more 64 KiB window of the
// library's text, once.
SPACES_NOINLINE void pool_drain(Heap* a) {
  unsigned passes = 0;
  for (;;) {
    // (seq_cst, with pool_unlink's store and heap_wait_drain's load; and with remote_notify's push:
    // a free whose exchange fails pushed before this drain lets go, so the reload below sees it)
    if (__atomic_exchange_n(&a->draining, uint8_t(1), __ATOMIC_SEQ_CST) != 0) {
      // Another thread drains. One that has drained kDrainPasses lists asks for a successor
      // (handoff 1): the first free to see it commits (2), waits for the flag and drains from
      // there, and the drainer, seeing 2 after its pass, lets go without looking at the list
      // again (its successor will). Without it one thread's free drained for every thread that
      // kept freeing into the heap: 50 ms in one free() with 4 threads freeing a dead thread's
      // million blocks (docs/benchmarks.md, session 30).
      // (A thread that drained already and finds the flag taken leaves the rest to whoever took
      // it, as before: that drain's own recheck covers what this one would have looked at.)
      // A thread inside a drain never commits: the drain it is in may be this very one (an
      // error handler or a signal handler that frees while this thread drains the heap), or
      // one that the other heap's drainer, committed here, waits for (session 30's review).
      uint8_t ask = 1;
      if (passes != 0 || t_in_drain != 0 ||
          !__atomic_compare_exchange_n(&a->handoff, &ask, uint8_t(2), false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
        return;
      for (unsigned spin = 0;; spin++) {  // (read first: the flag shares a line the drainer writes)
        if (__atomic_load_n(&a->draining, __ATOMIC_SEQ_CST) == 0 &&
            __atomic_exchange_n(&a->draining, uint8_t(1), __ATOMIC_SEQ_CST) == 0)
          break;
        if (spin < 64)
          os_cpu_relax();
        else
          os_yield();  // (the drainer may be preempted on this core)
      }
      __atomic_store_n(&a->handoff, uint8_t(0), __ATOMIC_SEQ_CST);
      passes = 0;
    }
    t_in_drain++;
    bool pooled = __atomic_load_n(&a->pooled, __ATOMIC_SEQ_CST) != 0;  // (else a thread took it)
    if (pooled) {
      // (a fork child's heap_after_fork_child reads it: stored before the drain changes anything,
      // as a signal handler on this thread would see it)
      __atomic_store_n(&a->drainer, thread_self(), __ATOMIC_RELAXED);
      __atomic_signal_fence(__ATOMIC_SEQ_CST);
      heap_drain_idle(a, kDrainSlabs);
      __atomic_signal_fence(__ATOMIC_SEQ_CST);
      __atomic_store_n(&a->drainer, uintptr_t(0), __ATOMIC_RELAXED);
    }
    if (++passes == kDrainPasses) {
      uint8_t none = 0;
      __atomic_compare_exchange_n(&a->handoff, &none, uint8_t(1), false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
    }
    bool successor = __atomic_load_n(&a->handoff, __ATOMIC_SEQ_CST) == 2;
    t_in_drain--;
    __atomic_store_n(&a->draining, uint8_t(0), __ATOMIC_SEQ_CST);
    if (successor) return;
    // (`pooled` read again, not the value above: a thread may have put the heap back while this
    // drain held the flag having found it taken, and that thread's own recheck then found the
    // flag held: session 29's review)
    if (a->notify.load(std::memory_order_seq_cst) == nullptr || __atomic_load_n(&a->pooled, __ATOMIC_SEQ_CST) == 0) {
      if (passes >= kDrainPasses) {  // (withdrawn unless a successor committed: it finds the flag free)
        uint8_t ask = 1;
        __atomic_compare_exchange_n(&a->handoff, &ask, uint8_t(0), false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
      }
      return;
    }
  }
}

namespace {

SPACES_NOINLINE SPACES_COLD_TEXT void medium_cache_damaged(Block* b) {
  report_error(SPACES_ERROR_CORRUPTED, b, "corrupted medium-block cache (write after free?)");
}

// Take the newest entry of class k's medium cache: its block, or NULL when the block no longer
// holds the word the cache wrote in it (written after its free; a double free of it would then
// not have looked free, so it may sit in the cache twice): reported and dropped, never handed
// out (it leaks in its slab).
Block* medium_cache_take(Heap* h, unsigned k) {
  MediumCache& c = h->mcache[k];
  uint32_t n = c.n - 1;
  Block* b = c.b[n];
  __atomic_store_n(&c.n, n, __ATOMIC_RELAXED);
  h->mcache_bytes -= class_size(kNumSmallClasses + k);
  if (SPACES_LIKELY(link_get(b) == c.link[n])) return b;
  medium_cache_damaged(b);
  return nullptr;
}

// Class k's blocks of h's medium cache back to their slabs, as local frees (h's thread, or h
// held exclusively): the slabs they hold can then empty.
SPACES_HOT_TEXT void medium_cache_flush_class(Heap* h, unsigned k) {
  while (h->mcache[k].n) {
    Block* b = medium_cache_take(h, k);
    if (b == nullptr) continue;
    Slab* s = slab_find(b);
    SPACES_ASSERT(s != nullptr && s->owner == h && s->kind == kSlabSmall && s->cls == kNumSmallClasses + k);
    link_set(b, slab_encode(s, s->free));  // (already free for memcheck and ASan: put)
    s->free = b;
    s->used--;
    if (!s->attached && h->cur[s->cls] != s) slab_attach(h, s);
    if (s->used == 0) heap_slab_emptied(h, s);
  }
}

// Every 4096 slow mallocs: the classes not used for kMediumCacheAge of them go back.
SPACES_HOT_TEXT void medium_cache_age(Heap* h) {
  for (unsigned k = 0; k < kNumMediumClasses; k++)
    if (h->mcache[k].n && h->slow_calls - h->mcache[k].last_use > kMediumCacheAge) medium_cache_flush_class(h, k);
}

SPACES_HOT_TEXT void medium_cache_flush(Heap* h) {
  for (unsigned k = 0; k < kNumMediumClasses; k++) medium_cache_flush_class(h, k);
  h->mcache_bytes = 0;  // (already, but in a fork child's copy of a thread stopped mid-update)
}

// Visit every tracked slab: collect remote frees, release the empty ones (but keep `cur` unless
// `all`), to the heap cache or to the arenas. Cached medium blocks go back to their slabs first.
SPACES_HOT_TEXT void heap_sweep(Heap* h, bool all, bool to_arena) {
  medium_cache_flush(h);
  heap_drain_notify(h);  // (an idle heap's too: its holder arms what stays, heap_arm_idle)
  for (unsigned c = 0; c < kNumClasses; c++) {
    Slab* s = h->partial[c].head;
    while (s) {
      Slab* next = s->next;
      slab_collect_remote(s);
      if (s->used == 0 && slab_state(s) != kStateNotified) {
        h->partial[c].remove(s);
        heap_release_slab(h, s, to_arena);
      }
      s = next;
    }
    Slab* cur = h->cur[c];
    if (cur != &g_empty_slab) {
      // (an empty slab of a class page boxes serve now is never allocated from again: it was the
      // fallback of a heap whose box index was full, or medium_pages changed)
      bool stranded = c >= kNumSmallClasses && h->chunk == nullptr && box_class(c);
      // Its count made exact, with the phantom (heap_set_cur), where it is read: below, and by
      // the collect when the free list is empty (then O(1)). Not at every thread exit's sweep
      // otherwise: walking each class's free list cost `churn` 10 %.
      if (all || stranded || !slab_has_free(cur)) cur->used = slab_out(cur) + 1;
      slab_collect_remote(cur);
      if ((all || stranded) && cur->used == 1 && slab_state(cur) != kStateNotified) {  // 1: the phantom
        heap_set_cur(h, c, &g_empty_slab);
        heap_release_slab(h, cur, to_arena);
      }
    }
  }
  box_sweep(h, all, to_arena);
  if (to_arena) {
    while (h->empty) {
      Slab* s = h->empty;
      h->empty = s->next;
      h->empty_count--;
      heap_release_slab(h, s, true);
    }
    while (h->medium_empty) {
      Slab* s = h->medium_empty;
      h->medium_empty = s->next;
      h->medium_empty_granules -= g_classes.granules[s->cls];
      heap_release_slab(h, s, true);
    }
  }
}

// Move what can move from an abandoned heap `a` (held exclusively) into `h`.
void heap_merge(Heap* h, Heap* a) {
  h->had_slab = 1;
  heap_sweep(a, true, true);
  box_merge(h, a);
  for (unsigned c = 0; c < kNumClasses; c++) {
    Slab* cur = a->cur[c];
    if (cur != &g_empty_slab) {  // becomes an ordinary tracked slab of `a`, then may move
      heap_set_cur(a, c, &g_empty_slab);  // not empty: the sweep above released empty ones
      a->partial[c].push(cur);
    }
    Slab* s = a->partial[c].head;
    while (s) {
      Slab* next = s->next;
      slab_set_state(s, kStateFull, kStateNormal);  // (disarmed; queued meanwhile: stays with `a`)
      if (slab_state(s) == kStateNormal) {
        a->partial[c].remove(s);
        __atomic_store_n(&s->owner, h, __ATOMIC_RELAXED);
        if (!s->has_aligned) __atomic_store_n(&s->fast_owner, h->fast_tp, __ATOMIC_RELAXED);
        h->partial[c].push(s);
      }
      s = next;
    }
  }
}


// Adopt the slabs of a heap that no new thread took within pool_stale_ns() before asking the
// arenas for fresh memory. (Merging the newest heaps instead would strip the heaps that the
// next short-lived threads are about to take: under thread churn every refill then moved
// slabs between heaps and arenas, and RSS grew fourfold.)
// The merge itself is not in the hot text (session 29 needed the room): a program runs it only
// once its exited threads' heaps waited a purge delay in the pool, and then maps one more 64 KiB
// window of the library's text, once.
SPACES_NOINLINE bool heap_adopt_stale(Heap* h, unsigned cls, uint64_t now) {
  if (!g_heap_lock.try_lock()) return false;
  Heap* a = pool_take_stale(now);
  if (a) heap_hold(a);
  g_heap_lock.unlock();
  if (a == nullptr) return false;
  heap_wait_drain(a);
  heap_merge(h, a);  // (what stays with `a` is armed: queued slabs, drained below)
  {
    LockGuard g(g_heap_lock);
    pool_put(a, now);
  }
  pool_recheck(a);
  return h->partial[cls].head != nullptr;
}

SPACES_HOT_TEXT bool heap_try_adopt(Heap* h, unsigned cls) {  // (every refill calls it)
  if (h->chunk || h == &g_prof_heap || g_abandoned.load(std::memory_order_relaxed) == 0) return false;
  uint64_t now = os_now_ns();
  if (!pool_is_stale(g_pool_tail_ns.load(std::memory_order_relaxed), now)) return false;
  return heap_adopt_stale(h, cls, now);
}

// Find a slab of class `cls` with a free block, make it h->cur[cls]. NULL: out of memory.
Slab* heap_refill(Heap* h, unsigned cls) {
  Slab* s = h->cur[cls];
  bool ran_out = s != &g_empty_slab;  // (the class's current slab has no block left)
  if (s != &g_empty_slab) {
    s->used = slab_out(s) + 1;  // (exact again, with the phantom: its list is empty, so O(1))
    if (slab_collect_remote(s)) return s;
    if (s->bump < slab_end(s)) {
      slab_extend(s);
      return s;
    }
    if (!slab_try_detach(s)) {  // remote frees arrived just now
      slab_collect_remote(s);
      return s;
    }
    heap_set_cur(h, cls, &g_empty_slab);  // full, so losing the phantom cannot empty it
  }
  heap_drain_notify(h);
  // Heap::growing: the class's previous refill took a fresh slab too. Cleared here, set again
  // below only if this one also ends with a fresh slab (a refill from a tracked slab means the
  // class reuses its memory).
  uint64_t bit = cls < kNumSmallClasses ? uint64_t(1) << cls : 0;
  bool was_growing = (h->growing & bit) != 0;
  h->growing &= ~bit;
  for (int round = 0; round < 2; round++) {
    while ((s = h->partial[cls].pop()) != nullptr) {
      if (!slab_has_free(s)) slab_collect_remote(s);
      if (!slab_has_free(s) && s->bump < slab_end(s)) slab_extend(s);
      if (slab_has_free(s)) {
        heap_set_cur(h, cls, s);
        return s;
      }
      if (!slab_try_detach(s)) {
        slab_collect_remote(s);
        __atomic_store_n(&s->attached, uint8_t(1), __ATOMIC_RELAXED);
        heap_set_cur(h, cls, s);
        return s;
      }
    }
    if (round == 0 && !heap_try_adopt(h, cls)) break;
  }
  // A class whose current slab ran out and whose previous refill also had to take a fresh slab
  // is growing: this slab will most likely be carved to its end, so heap_new_slab faults it in
  // with one system call. (Populating every fresh slab after the first held up to 60 KiB more
  // per lightly used class: `tight` and `larson` 1t +0.1 MiB.)
  s = heap_new_slab(h, cls, ran_out && was_growing);
  if (s == nullptr) return nullptr;
  if (ran_out) h->growing |= bit;
  __atomic_store_n(&s->attached, uint8_t(1), __ATOMIC_RELAXED);
  heap_set_cur(h, cls, s);
  slab_extend(s);
  return s;
}

}  // namespace

// A medium slab cut from dirty granules: they come with every page they had resident, and the
// slab's blocks are carved one at a time as its class needs them, so past its first block the
// run goes back to the kernel now (one madvise): a class with a block or two live then holds
// those pages and not the run's. (thread_rounds' 4-64 KiB blocks: 13.2 -> 8.2 MiB at round 400;
// docs/benchmarks.md, "Base RSS".) A small class's one-granule slab is too, when its class is not growing
// (heap_new_slab): a growing class carves it to its end, so its warm pages save faults, but a
// class that needed one more slab keeps a few blocks in it (session 23: a run of granules a large
// block left dirty, cut into small slabs, held every page, 64 KiB per slab, for as long as each
// slab lived; `medium --touch-all` at two threads 46.4 -> 39.5 MiB, docs/benchmarks.md,
// "Dirty granules for small slabs"). Small classes' slabs only: a one-granule medium slab (9-15
// KiB) keeps its pages (heap_new_slab, session 25). Not one-granule slabs in arenas advised huge pages
// (arena_thp: arena_huge_pages; medium slabs never lie there): the madvise would split a 2 MiB
// page whose point is that its blocks fault in at once.
static void slab_purge_past_first_block(uintptr_t g, unsigned cls, unsigned granules) {
  uintptr_t keep = (slab_colour(g) + kSlabHeader + class_size(cls) + kPageSize - 1) & ~(kPageSize - 1);
  uintptr_t span = uintptr_t(granules) << kSlabShift;
  if (keep < span) os_purge(reinterpret_cast<uint8_t*>(g) + keep, span - keep);
}

// A medium slab: an emptied one of the same geometry from the heap's cache, else a run of
// `granules` from the arenas, its head bit and back offsets set before any block is handed out.
static Slab* heap_new_medium_slab(Heap* h, unsigned cls, unsigned granules) {
  SPACES_ASSERT(h->chunk == nullptr);
  for (Slab** link = &h->medium_empty; *link; link = &(*link)->next) {
    Slab* s = *link;
    if (g_classes.granules[s->cls] != granules) continue;
    *link = s->next;
    h->medium_empty_granules -= granules;
    slab_init(s, h, cls);
    return s;
  }
  bool dirty;
  Slab* run = arena_alloc_slabs(granules, &dirty);  // (sparse: never a THP arena)
  if (run == nullptr) return nullptr;
  uintptr_t g = reinterpret_cast<uintptr_t>(run);
  if (dirty && h != &g_prof_heap) slab_purge_past_first_block(g, cls, granules);  // (g_prof_heap: under the profiler's lock)
  Slab* s = slab_at(g);  // (coloured like a one-granule slab's)
  SPACES_VG(VALGRIND_MAKE_MEM_UNDEFINED(s, kSlabHeader));
  g_slabs_in_use.fetch_add(granules, std::memory_order_relaxed);
  slab_init(s, h, cls);  // (before the head bit: the census reads headers it finds by that bit)
  pagemap_set_back(g, granules, true);
  pagemap_set_head(g, true, kBackSlab);
  return s;
}

// A fresh slab for class cls (also the chunk's bump slabs, which re-initialise it). hot: the
// class is growing (heap_refill), so this slab will be carved to its end: a small class's
// granule from the arenas is then faulted in with one system call (os_populate) rather than page
// by page as slab_extend carves it (a page fault costs about twice as much per page here:
// docs/benchmarks.md, "Populating a growing class's fresh slabs"). Not regions' slabs (their
// arenas may be huge pages: chunk_huge_pages) nor medium ones (a program may write their blocks
// at the ends only). A granule that comes dirty for a small class that is not growing gives back
// its pages past the first block instead (slab_purge_past_first_block). A one-granule medium
// slab (9-15 KiB: four to seven blocks of two to four pages) keeps them: its few blocks cover
// the granule, and a program whose short threads use such blocks faulted every page back each
// round (their exits empty the slabs into the arena, dirty; the next thread takes them again:
// `thread_rounds --min-size 9000 --max-size 16000` 9 506 -> 682 faults, 0.201 -> 0.060 s, peak
// RSS 4.9 -> 5.2 MiB; docs/design.md, "Dirty granules for small slabs").
SPACES_HOT_TEXT Slab* heap_new_slab(Heap* h, unsigned cls, bool hot) {
  h->had_slab = 1;
  unsigned granules = g_classes.granules[cls];
  if (granules > 1) return heap_new_medium_slab(h, cls, granules);
  Slab* s = h->empty;
  if (s && cls >= kNumSmallClasses && h->chunk == nullptr && arena_thp(s)) s = nullptr;  // (sparse, as below)
  if (s) {
    h->empty = s->next;
    h->empty_count--;
    if (h->chunk) chunk_slab_in_use(h->chunk);
  } else {
    if (h->chunk && !chunk_reserve(h->chunk, kSlabSize)) return nullptr;
    bool dirty;
    bool region = h->chunk != nullptr;  // (dense: a thread heap's small class; a medium class's slab is never in a THP arena)
    Slab* g = arena_alloc_slabs(1, &dirty, region && option(kOpt_chunk_huge_pages), !region && cls < kNumSmallClasses);
    if (g == nullptr) {
      if (h->chunk) chunk_unreserve(h->chunk, kSlabSize);
      return nullptr;
    }
    // (not g_prof_heap: its refills run under the profiler's lock, which other threads wait for)
    bool thread_heap = h->chunk == nullptr && h != &g_prof_heap;
    if (thread_heap && hot && cls < kNumSmallClasses && option(kOpt_populate))
      os_populate(g, kSlabSize);
    else if (thread_heap && dirty && !hot && !arena_thp(g) && cls < kNumSmallClasses)
      slab_purge_past_first_block(reinterpret_cast<uintptr_t>(g), cls, 1);
    s = slab_at(reinterpret_cast<uintptr_t>(g));  // (coloured: internal.h, slab_colour)
    SPACES_VG(VALGRIND_MAKE_MEM_UNDEFINED(s, kSlabHeader));  // may lie in an old block memcheck freed
    g_slabs_in_use.fetch_add(1, std::memory_order_relaxed);
    slab_init(s, h, cls);  // (before the head bit: the census reads headers it finds by that bit)
    pagemap_set_head(reinterpret_cast<uintptr_t>(g), true, kBackSlab);
    if (h->chunk) chunk_slab_added(h->chunk, s);
    return s;
  }
  slab_init(s, h, cls);
  return s;
}

SPACES_HOT_TEXT void* heap_malloc_slow(Heap* h, size_t size, bool zero) {
  if (SPACES_UNLIKELY(g_prof_on) && h->chunk == nullptr && h != &g_prof_heap) {
    // Heap profiling: every malloc of a thread heap comes here (direct[] stays empty), is counted,
    // and unless it is a sample takes the fast path's step from here (profile.cpp).
    if (prof_tick(size)) return prof_malloc_sampled(h, size, zero, __builtin_return_address(0));
    if (size <= kSmallMax) {
      Slab* s = h->cur[class_of(size)];
      if (Block* b = slab_pop(s)) {
        track_alloc(nullptr, b, size, zero);
        if (zero) memset(b, 0, s->block_size < size ? s->block_size : size);
        return b;
      }
    }
  }
  return heap_malloc_slow_rest(h, size, zero);
}

// A heap with no slab yet, about to get one, when the pool has a heap: the pooled one serves
// instead (heap_trade_bare). Every path that gives a thread heap its first slab or box asks:
// this one and heap_aligned_alloc's boxes (alloc.cpp, one TU with this file).
SPACES_INLINE Heap* heap_trade_if_bare(Heap* h) {
  if (SPACES_UNLIKELY(!h->had_slab) && h->box_count == 0 && g_abandoned.load(std::memory_order_relaxed) != 0 &&
      h->chunk == nullptr)
    return heap_trade_bare(h);
  return h;
}
// This thread has run Spaces' key destructor for the last time (heap_thread_done): an allocation
// takes no heap, since no round would give it back, but a large run of the arenas
// (heap_alloc_heapless), which any thread frees.
SPACES_INLINE bool heap_thread_past_destructors() { return t_key_rounds >= kKeyRounds; }
SPACES_NOINLINE void* heap_alloc_heapless(size_t size, size_t align, bool zero) {
  return large_alloc(size < kSmallMax + 1 ? kSmallMax + 1 : size, align, zero, nullptr);  // (as aligned ones)
}

SPACES_HOT_TEXT void* heap_malloc_slow_rest(Heap* h, size_t size, bool zero) {
  if (SPACES_UNLIKELY(h->state == kHeapStatic)) {
    // (a key destructor's malloc in glibc's last round: no heap, none would be given back)
    if (SPACES_UNLIKELY(heap_thread_past_destructors())) return heap_alloc_heapless(size, 0, zero);
    h = heap_thread_init();
    if (h == nullptr) return out_of_memory(size);
    // (the process's first allocation initialised Spaces just now: heap profiling may be on)
    if (SPACES_UNLIKELY(g_prof_on) && h->chunk == nullptr) return heap_malloc_slow(h, size, zero);
  }
  // Every slow call ages the thread's own batches of remote frees (its home heap's, also when it
  // allocates through a captured region's heap h).
  Heap* home = t_home_heap;
  if (home->remote_live || home->remote_epoch != g_remote_epoch.load(std::memory_order_relaxed))
    if (home->state == kHeapActive) remote_tick(home);
  if (SPACES_UNLIKELY(chunk_route_slow(h))) return chunk_alloc_routed(h, 0, size, zero);
  if (size > kSmallMax && (size > kMediumMax || h->chunk)) return large_alloc(size, 0, zero, h->chunk);
  h = heap_trade_if_bare(h);
  if (SPACES_UNLIKELY((++h->slow_calls & 4095) == 0)) {
    if (h->mcache_bytes) medium_cache_age(h);
    if (h->box_count) box_age(h);
  }
  unsigned cls = size <= kSmallMax ? class_of(size) : medium_class_of(size);
  // The newest medium block this thread freed, if one waits (mcache_bytes first: it shares a line
  // with the boxes' fields, where the class's MediumCache is a line of its own, a cache miss per
  // box malloc, and box blocks never wait there).
  if (cls >= kNumSmallClasses && h->mcache_bytes) {
    unsigned k = cls - kNumSmallClasses;
    while (h->mcache[k].n) {
      h->mcache[k].last_use = h->slow_calls;
      Block* b = medium_cache_take(h, k);
      if (b == nullptr) continue;
      link_set(b, 0);
      track_alloc(nullptr, b, size, zero);
      if (zero) memset(b, 0, size);
      return b;
    }
  }
  if (cls >= kNumSmallClasses && h->chunk == nullptr && box_class(cls)) {  // (pages.cpp)
    if (void* p = box_alloc(h, cls, size, zero)) return p;  // (NULL: no box; the slabs may serve)
  }
  for (;;) {
    Slab* s = h->cur[cls];
    if (!slab_has_free(s)) {
      s = heap_refill(h, cls);
      if (s == nullptr) return out_of_memory(size);
    }
    Block* b = static_cast<Block*>(s->free);
    uintptr_t off = link_get(b) ^ s->key;
    if (SPACES_UNLIKELY(off >= s->pop_limit)) {
      report_error(SPACES_ERROR_CORRUPTED, b, "corrupted free list (write after free?)");
      s->free = s;  // drop the damaged list (its blocks leak), never follow it
      continue;
    }
    s->free = reinterpret_cast<uint8_t*>(s) + off;
    link_set(b, 0);  // (not counted in `used`: s is current, internal.h Slab::used)
    track_alloc(s->chunk, b, size, zero);
    if (zero) memset(b, 0, s->block_size < size ? s->block_size : size);
    return b;
  }
}

// The fast free path found the slab empty (used == 0) after a local free.
SPACES_HOT_TEXT void heap_slab_emptied(Heap* h, Slab* s) {
  if (h->cur[s->cls] == s || !s->attached || slab_state(s) == kStateNotified) return;
  h->partial[s->cls].remove(s);
  heap_release_slab(h, s, false);
}

// Mark a block handed out at an offset inside its slot (aligned allocation): frees of this slab
// must take the slow path, which finds the slot start.
void heap_mark_aligned(Slab* s) {
  __atomic_store_n(&s->has_aligned, uint8_t(1), __ATOMIC_RELAXED);
  __atomic_store_n(&s->fast_owner, uintptr_t(0), __ATOMIC_RELAXED);
}

static unsigned g_thread_key;
static bool g_key_ready = false;

void heap_init_key() {
  g_key_ready = os_thread_key_create(&g_thread_key, heap_thread_done);
}

// from_pool: take the pool's warmest heap if there is one (a thread's first malloc); false: a new
// heap (a thread's first free of another thread's block, free.cpp: a heap for its batches only,
// which must not strand a pooled heap's slabs with a thread that may never allocate).
SPACES_HOT_TEXT Heap* heap_thread_init(bool from_pool) {
  if (!ensure_init()) return nullptr;
  Heap* h;
  {
    LockGuard g(g_heap_lock);
    h = from_pool ? pool_take() : nullptr;
    if (h == nullptr && g_bare) {
      h = g_bare;
      g_bare = h->pool_next;
      h->pool_next = nullptr;
      g_bare_count--;
    }
    if (h == nullptr) h = heap_alloc_struct();
    if (h) heap_hold(h);  // (until it is this thread's: a fork child pools or lists a held heap)
  }
  if (h == nullptr) return nullptr;
  heap_wait_drain(h);
  heap_bind_slabs(h, thread_self(), -1);  // (a pooled heap's slabs disarmed; a new one has none)
  h->state = kHeapActive;
  t_heap = h;  // before pthread_setspecific, which may itself allocate
  t_home_heap = h;
  g_threads_started.fetch_add(1, std::memory_order_relaxed);
  if (g_key_ready) os_thread_key_set(g_thread_key, h);
  return h;
}

// h has no slab of any kind (its thread never allocated): nothing to pool. (Not read from its
// lists alone: a slab it detached when full is on none of them, and it may have one after a
// merge or from an earlier thread: session 29's review.)
static bool heap_is_bare(const Heap* h) {
  return !h->had_slab && h->box_count == 0 && h->notify.load(std::memory_order_relaxed) == nullptr;
}

// Heap h, which no thread has any more, to the bare list if it never had a slab, else into the
// pool (g_heap_lock held). true: pooled (the caller then calls pool_recheck, unlocked).
SPACES_INLINE bool heap_put_away(Heap* h, uint64_t now) {
  if (!heap_is_bare(h)) {
    pool_put(h, now);
    return true;
  }
  h->state = kHeapAbandoned;
  h->pool_next = g_bare;
  g_bare = h;
  g_bare_count++;
  return false;
}

// This thread's heap h never had a slab (the thread's first call freed another thread's block,
// heap_thread_init(false), or the pool was empty when it started) and is about to get one: a
// pooled heap serves the thread instead, if there is one, and h goes to the bare list. A thread
// that first freed and then allocated kept its new heap and pooled it at its exit, so every such
// thread added a heap for good (session 30's adversarial pass: 5 000 threads that each freed the
// block the previous one left and then allocated, 5 001 heaps and 4 GB resident).
SPACES_NOINLINE Heap* heap_trade_bare(Heap* h) {
  if (!heap_is_bare(h) || t_heap != h || t_heap_done) return h;
  remote_flush_all(h);  // (its batched remote frees: this thread's next ones go to p's batches)
  Heap* p;
  {
    LockGuard g(g_heap_lock);
    p = pool_take();
    if (p == nullptr) return h;
    heap_hold(p);
  }
  heap_wait_drain(p);
  heap_bind_slabs(p, thread_self(), -1);  // (disarmed, as heap_thread_init does)
  p->state = kHeapActive;
  t_heap = p;
  t_home_heap = p;
  if (g_key_ready) os_thread_key_set(g_thread_key, p);
  heap_bind_slabs(h, 0, 0);  // (nobody's: it has no slab to bind)
  LockGuard g(g_heap_lock);
  heap_put_away(h, os_now_ns());  // (bare: to the bare list, for the next free-first thread)
  return p;
}

// pthread key destructor: the thread is exiting. Spaces' key is set again (to the empty heap)
// so that this runs in each of the first kKeyRounds rounds of key destructors: a key destructor
// that runs after it and mallocs takes a heap again, given back in the next round, and once
// this has run its last round such a malloc takes no heap (a large run, heap_malloc_slow_rest),
// since no round would give it back. (A heap taken in glibc's last round stayed bound to the
// exited thread with its slabs: session 30's adversarial pass, 5 000 threads whose key
// destructor set its own key for four rounds and allocated, 5 001 heaps and 668 MB. Not the
// fourth round itself: ThreadSanitizer's runtime tears the thread down there, and this
// destructor faulted under it.)
SPACES_HOT_TEXT void heap_thread_done(void* arg) {
  bool again = ++t_key_rounds < kKeyRounds;
  Heap* h = static_cast<Heap*>(arg);
  if (h != nullptr && h->state == kHeapActive) {
    remote_flush_all(h);  // (while t_home_heap is still h: no new entry after this)
    t_heap_done = true;   // (a later pthread-key destructor's free must not make a heap that
                          //  no destructor round would give back)
    if (t_heap == h) t_heap = &g_empty_heap;
    t_home_heap = &g_empty_heap;
    heap_sweep(h, false, false);
    heap_bind_slabs(h, 0, 1);  // (armed: frees into its slabs from now on queue them, pool_drain)
    uint64_t now = os_now_ns();
    bool pooled;
    {
      LockGuard g(g_heap_lock);
      pooled = heap_put_away(h, now);
    }
    if (pooled) pool_recheck(h);  // (slabs queued since the sweep)
  }
  if (again && g_key_ready) os_thread_key_set(g_thread_key, &g_empty_heap);  // (not NULL: one more round)
}

void heap_collect(Heap* h, bool force) {
  if (h->state != kHeapActive && h->state != kHeapChunk) return;
  heap_sweep(h, force, true);
}

// Collect every pooled heap (spaces_collect(1), malloc_trim): its empty slabs and caches back to
// the arenas, what stays armed. One heap at a time, oldest first, each put back at the newest
// end once swept, so a thread that starts meanwhile finds the pool as full as ever. (The pass
// took the whole pool: every thread that started during it made a new heap, and those stayed,
// so with malloc_trim(0) every 10 ms beside a stream of short threads the heaps grew without
// bound, 2 000 and 38 MB in 30 s, each pass longer than the last: session 30's adversarial
// pass.) A pass visits at most the heaps pooled when it began, each once (`collect_pass`: two
// passes at once must not chase each other's heaps round the pool).
void heap_collect_abandoned() {
  uint64_t pass;
  size_t left;
  {
    LockGuard g(g_heap_lock);
    pass = ++g_collect_pass;
    left = g_abandoned.load(std::memory_order_relaxed);
  }
  for (; left; left--) {
    Heap* a;
    {
      LockGuard g(g_heap_lock);
      a = g_pool_tail;
      if (a == nullptr || a->collect_pass == pass) break;  // (all swept: they went to the front)
      a->collect_pass = pass;
      pool_unlink(a);
      heap_hold(a);
    }
    heap_wait_drain(a);
    heap_sweep(a, true, true);
    heap_arm_idle(a);
    {
      LockGuard g(g_heap_lock);
      pool_put(a, os_now_ns());
    }
    pool_recheck(a);  // (slabs queued while it was held)
  }
}

SPACES_HOT_TEXT void heap_init_chunk(Heap* h, Chunk* c) { heap_init_fields(h, c); }

void heap_collect_slab(Heap* h, Slab* s) {
  if (h->cur[s->cls] == s) s->used = slab_out(s) + 1;  // (exact, with the phantom: heap_set_cur)
  slab_collect_remote(s);
  if (!s->attached && h->cur[s->cls] != s && slab_has_free(s)) slab_attach(h, s);
}

void heap_fork_lock() { g_heap_lock.lock(); }
void heap_fork_unlock() { g_heap_lock.unlock(); }

// In the child of fork() only the forking thread survives: every other active heap is
// abandoned so its slabs can be adopted (not armed: its thread may have stopped inside a change
// to its lists; remote frees into its slabs wait until a thread takes it or a merge), and so is
// a heap another thread held out of the pool for a merge, a collect or to make it its own (a
// bare one goes back to its list). A pooled heap another thread was draining leaves the pool
// and is never used in the child: its slabs leak there. One this thread holds or drains (a
// signal handler forked) is finished by the code it interrupted. The survivor's own heap is
// t_home_heap: t_heap may be a chunk's heap it captured (that stays captured;
// chunk_fork_child unbinds the others').
void heap_after_fork_child() {
  g_heap_lock.reset();
  Heap* self = t_home_heap;
  uint64_t now = os_now_ns();
  uintptr_t me = thread_self();
  for (Heap* h = g_all_heaps; h; h = h->all_next) {
    // (a heap a dead thread held out of the pool, merged, collected or being made its own, goes
    // back to the pool or the bare list; one this thread holds is put back by the code it
    // interrupted: a signal handler forked)
    bool held = h->state == kHeapIdleHeld && h->holder != me;
    if (h->draining && h->drainer != 0 && h->drainer != me) {
      // A dead thread's drain: it may have stopped inside a change to the heap's lists, whose
      // slabs could then be handed out twice. The heap leaves the pool and is never used again
      // here (its slabs leak in the child; session 29's review). (Rebuilding only its box
      // index, the first fix, left the slab lists.) Not covered: a heap this thread held while
      // it waited for that drain (a signal handler forked during the wait) is used by the code
      // it interrupted.
      h->draining = 0;
      if (h->pooled) pool_unlink(h);
      h->state = kHeapAbandoned;
      continue;
    }
    if (h->drainer != me) h->draining = 0;  // (a drain that found the heap taken: touched nothing)
    h->handoff = 0;  // (a successor that was waiting for the drain is gone)
    if ((h->state == kHeapActive && h != self) || held) {
      // (a dead thread's batched remote frees are dropped, never pushed: it may have been
      // between two stores of an entry. Their blocks, at most kRemoteEntries x 8 KiB, stay
      // counted as used in this process, pinning at most kRemoteEntries slabs.)
      memset(h->remote, 0, sizeof h->remote);
      h->remote_live = 0;
      heap_bind_slabs(h, 0);  // the child's new threads may reuse the dead threads' TCBs
      box_after_fork(h);      // (its thread may have been shifting the box index)
      heap_put_away(h, now);  // (a free-only thread's, or one a thread was taking, to the bare list)
    }
  }
  if (g_key_ready && self != &g_empty_heap) os_thread_key_set(g_thread_key, self);
}

HeapTotals heap_totals() {
  LockGuard g(g_heap_lock);
  ptrdiff_t in_use = g_slabs_in_use.load(std::memory_order_relaxed);
  return HeapTotals{g_heap_count, g_abandoned.load(std::memory_order_relaxed) + g_bare_count,
                    g_threads_started.load(std::memory_order_relaxed), size_t(in_use < 0 ? 0 : in_use)};
}

}  // namespace spaces_core
