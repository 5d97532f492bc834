// pages.cpp - page boxes: a thread heap's medium blocks of 16-256 KiB, cut to whole pages from
// 1 MiB boxes that every class shares (option medium_pages, default 256 KiB: every class above
// one granule; 0 gives them per-class slabs again).
//
// Why: with a slab per class, each of the 32 medium classes above one granule keeps resident
// the most blocks it ever had live at once, and a program whose medium blocks change sizes (a
// buffer grown by realloc, a round of work whose big blocks come in random sizes) ends up
// holding the sum of those maxima. In a box a freed block's pages serve the next block of any
// class, with no page fault, so a heap holds about the most medium bytes it ever had live at once
// (docs/design.md, "Page boxes"; the figures are in docs/benchmarks.md: where programs write
// their blocks, 2-4x less RSS than per-class slabs).
//
// Layout (internal.h, PageBox): 16 granules; page 0 holds the Slab header (kind kSlabPages) and
// the record: a bit per page for free pages and for clean ones (zero: fresh or purged), the free
// page count, a byte per page (the class of the live block that starts there), and the free
// runs' boundary tags and list links. A block of class c takes box_pages_of(c) pages from a page
// boundary; its usable size stays the class's size, as a slab slot's. The page map marks the box
// like a 16-granule medium slab (head byte, back offsets), so free() finds its header the way it
// finds a slab's; fast_owner is 0, so free's inline path always leaves for free_by_kind, which
// calls box_free.
//
// Finding room: the heap keeps its boxes in an index (Heap::box_idx, at most kMaxBoxes; a box's
// slot is its Slab::cls) and every maximal run of free pages of its boxes on one of 65 lists by
// length (1..64 pages, and longer), each in address order, with a bit mask of the lists that are
// not empty. A malloc of n pages takes the lowest run of exactly n pages if there is one (no
// fragment is left), else the front of the lowest run that fits: the lowest of the heads of the
// lists of n pages and more (address-ordered first fit, as session 17's search of the boxes'
// bitmaps, with the same placement and peak RSS). A free joins its pages with the free runs on
// either side through their tags and walks the joined run's list to its place. The lists also
// carry what the purge needs (an epoch stamp per run, box_age). Measured (docs/benchmarks.md,
// session 18): best fit (the shortest list's first run) was 7-13 % faster on `medium` while its
// functions were inlined, but held 10 % more RSS with 384 live blocks (65.8 against 60.0 MiB), and
// once out of line to fit the hot text window no faster at all; this policy is within 3 % of
// session 17's time and equal in RSS. A heap whose index is full takes the class's slab path.
//
// Who touches what:
//   - the owner thread (or whoever holds an abandoned heap exclusively): the bitmaps, the counts,
//     the class bytes, the heap's index. No atomic read-modify-write on its malloc or free; the
//     class bytes are written with relaxed atomic stores because other threads read a block's
//     byte when they free it (after the malloc that wrote it, through the program's own
//     hand-over) and the census reads them all.
//   - other threads: the remote stack (thread_free, slab.cpp's push). A box is always kStateFull
//     while nobody has queued it, so the first remote free after each drain puts it on the
//     owner's notify list; the owner drains it (box_drain) in its next box_alloc or heap_sweep.
//     Remotely freed blocks stay `live` until then, so a box with one waiting is never released.
//   - the owner changes only in box_merge, through kStateNormal (no push reads `owner` then), as
//     heap_merge moves slabs.
// Box blocks never enter the medium block cache (it would hold their pages away from the other
// classes). Double frees: a block's class byte is 0 once its pages are back, so a second free is
// reported at once (as an interior pointer when it falls inside a live block); a block on the
// remote stack carries a link word that looks free (the box's key), and a free of such a block
// looks for it on the stack first.
// Empty boxes: the heap keeps up to medium_cache_kib of them (at least one); others go back to
// their arena (dirty, purged there by the decay curve). A box cut from dirty granules is not
// purged. Free pages inside a box go back to the kernel one to two purge_delay_ms after their
// free, or at once above a bound (box_age), or at spaces_collect(1) (and malloc_trim).
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

namespace spaces_core {

namespace {

SPACES_INLINE uint8_t box_cls(const PageBox* m, unsigned i) { return __atomic_load_n(&m->cls[i], __ATOMIC_RELAXED); }
SPACES_INLINE void box_set_cls(PageBox* m, unsigned i, unsigned c) {
  __atomic_store_n(&m->cls[i], uint8_t(c), __ATOMIC_RELAXED);
}
// Page bitmaps, specialised: a block is at most 64 pages (kMediumMax), so its run of bits
// [i, i + n) lies in word i / 64 and perhaps the next; BoxRun holds its masks in both. (The
// granule sets' general bits_* walked word by word: a malloc(100000)+free pair cost 690
// instructions, 64 of them counting clean bits.)
static_assert(kMediumMax / kPageSize <= 64, "a block's pages lie in at most two words");
struct BoxRun {
  unsigned w;       // the first word
  uint64_t lo, hi;  // the run's bits in words w and w + 1 (hi 0: all in word w)
};
SPACES_INLINE BoxRun box_run(unsigned i, unsigned n) {
  unsigned k = i & 63;
  uint64_t full = ~uint64_t(0) >> (64 - n);  // (1 <= n <= 64)
  return {i >> 6, full << k, k ? full >> (64 - k) : 0};
}
SPACES_INLINE void box_bits_on(uint64_t* b, BoxRun r) {
  b[r.w] |= r.lo;
  if (r.hi) b[r.w + 1] |= r.hi;
}
SPACES_INLINE void box_bits_off(uint64_t* b, BoxRun r) {
  b[r.w] &= ~r.lo;
  if (r.hi) b[r.w + 1] &= ~r.hi;
}
// The first page of the run that is not set in b (kBoxPages: all set).
SPACES_INLINE unsigned box_first_unset(const uint64_t* b, BoxRun r) {
  if (uint64_t z = r.lo & ~b[r.w]) return r.w * 64 + unsigned(__builtin_ctzll(z));
  if (r.hi)  // (word w + 1 exists only then)
    if (uint64_t z = r.hi & ~b[r.w + 1]) return r.w * 64 + 64 + unsigned(__builtin_ctzll(z));
  return kBoxPages;
}
// The first page >= i whose bit is v (kBoxPages if none).
SPACES_INLINE unsigned box_next(const uint64_t* b, unsigned i, bool v) {
  if (i >= kBoxPages) return kBoxPages;
  unsigned k = i >> 6;
  uint64_t x = (v ? b[k] : ~b[k]) & (~uint64_t(0) << (i & 63));
  while (x == 0) {
    if (++k == kBoxWords) return kBoxPages;
    x = v ? b[k] : ~b[k];
  }
  return k * 64 + unsigned(__builtin_ctzll(x));
}

// ---- the heap's free-run lists ---------------------------------------------------------------
// Every maximal run of free pages in a heap's boxes is on one of the heap's lists, by length:
// 1..64 pages one list each (a block is at most 64 pages), longer runs on the last. A run's
// first and last pages carry its length (run_len: boundary tags), so a free finds the runs it
// joins in O(1); its first page carries its links (BoxRefs: box slot, page) and its epoch stamp.
// Every list is in address order, so its first run is its lowest: box_fit takes an exact
// length's first run, else the lowest of the heads of the longer lists (with the newest box
// first, new blocks went to the box made last while older ones emptied, and boxes cycled
// through the arena: at one thread `medium` took 250 000 page faults instead of 3 500).

SPACES_INLINE unsigned run_bucket(unsigned len) { return len > 64 ? 64 : len - 1; }
SPACES_INLINE BoxRef box_ref(unsigned slot, unsigned page) { return BoxRef(slot << 8 | page); }
SPACES_INLINE PageBox* ref_box(const Heap* h, BoxRef r) { return box_of(h->box_idx[r >> 8]); }
SPACES_INLINE bool page_free(const PageBox* m, unsigned i) { return (m->free[i >> 6] >> (i & 63)) & 1; }
SPACES_INLINE bool page_clean(const PageBox* m, unsigned i) { return (m->clean[i >> 6] >> (i & 63)) & 1; }

// Link the run [a, a + len) of box `slot` (m) as free, with its tags, after `prev` (0: first).
SPACES_INLINE void run_link(Heap* h, unsigned slot, PageBox* m, unsigned a, unsigned len, unsigned bucket,
                            BoxRef prev) {
  m->run_len[a] = m->run_len[a + len - 1] = uint8_t(len);
  BoxRef r = box_ref(slot, a), next = prev ? ref_box(h, prev)->run_next[prev & 255] : h->run_head[bucket];
  m->run_prev[a] = prev;
  m->run_next[a] = next;
  if (prev) ref_box(h, prev)->run_next[prev & 255] = r;
  else h->run_head[bucket] = r;
  if (next) ref_box(h, next)->run_prev[next & 255] = r;
  h->run_mask[bucket >> 6] |= uint64_t(1) << (bucket & 63);
}

// Put the run [a, a + len) of box `slot` on its list, in address order (box slots are not in
// address order, so the boxes' addresses are compared).
SPACES_NOINLINE SPACES_HOT_TEXT void run_put(Heap* h, unsigned slot, PageBox* m, unsigned a, unsigned len) {
  unsigned bucket = run_bucket(len);
  BoxRef prev = 0;
  uintptr_t at = reinterpret_cast<uintptr_t>(m) + a;
  for (BoxRef r = h->run_head[bucket]; r; r = ref_box(h, r)->run_next[r & 255]) {
    if (reinterpret_cast<uintptr_t>(ref_box(h, r)) + (r & 255) > at) break;
    prev = r;
  }
  run_link(h, slot, m, a, len, bucket, prev);
}

// Take the run that starts at page a of box m off its list.
SPACES_INLINE void run_unlink(Heap* h, PageBox* m, unsigned a) {
  unsigned bucket = run_bucket(m->run_len[a]);
  BoxRef next = m->run_next[a], prev = m->run_prev[a];
  if (prev) ref_box(h, prev)->run_next[prev & 255] = next;
  else h->run_head[bucket] = next;
  if (next) ref_box(h, next)->run_prev[next & 255] = prev;
  if (h->run_head[bucket] == 0) h->run_mask[bucket >> 6] &= ~(uint64_t(1) << (bucket & 63));
}

// The address of the run r of h.
SPACES_INLINE uintptr_t ref_addr(const Heap* h, BoxRef r) {
  return reinterpret_cast<uintptr_t>(h->box_idx[r >> 8]) + (r & 255) * kPageSize;
}
// The lowest of the runs of n pages or more (0: none): each list's first run is its lowest.
SPACES_NOINLINE SPACES_HOT_TEXT BoxRef box_first_fit(const Heap* h, unsigned n) {
  uint64_t fit = h->run_mask[0] & (~uint64_t(0) << (n - 1));
  BoxRef best = h->run_mask[1] ? h->run_head[kBoxBuckets - 1] : 0;
  uintptr_t at = best ? ref_addr(h, best) : UINTPTR_MAX;
  for (; fit; fit &= fit - 1) {
    BoxRef r = h->run_head[__builtin_ctzll(fit)];
    uintptr_t a = ref_addr(h, r);
    if (a < at) at = a, best = r;
  }
  return best;
}
// Where a block of n pages goes: the lowest run of exactly n pages (no fragment left), else the
// lowest run that fits (address-ordered first fit). 0: none.
SPACES_INLINE BoxRef box_fit(const Heap* h, unsigned n) {
  if ((h->run_mask[0] >> (n - 1)) & 1) return h->run_head[n - 1];
  return box_first_fit(h, n);
}

// The first n pages of the run at page a of box `slot` (m) are taken: the run leaves its list,
// and the rest of it, if any, goes on its own (in place when it stays on the long list: the
// address order holds).
SPACES_INLINE void run_take_front(Heap* h, unsigned slot, PageBox* m, unsigned a, unsigned n) {
  unsigned len = m->run_len[a], rest = len - n, b = a + n;
  if (rest) m->run_epoch[b] = m->run_epoch[a];  // (the rest keeps its stamp)
  if (rest > 64) {
    BoxRef next = m->run_next[a], prev = m->run_prev[a], r = box_ref(slot, b);
    m->run_prev[b] = prev;
    m->run_next[b] = next;
    if (prev) ref_box(h, prev)->run_next[prev & 255] = r;
    else h->run_head[kBoxBuckets - 1] = r;
    if (next) ref_box(h, next)->run_prev[next & 255] = r;
    m->run_len[b] = m->run_len[a + len - 1] = uint8_t(rest);
    return;
  }
  run_unlink(h, m, a);
  if (rest) run_put(h, slot, m, b, rest);
}

// Every free run of box s onto h's lists (in: the box just joined h) or off them (out).
// (Page by page: box_next's word loops inlined twice pushed the hot text past its window.)
// (Its runs are stamped with h's current epoch, as if freed now, box_age.)
SPACES_NOINLINE SPACES_HOT_TEXT void box_runs_in(Heap* h, Slab* s) {
  PageBox* m = box_of(s);
  for (unsigned i = 1; i < kBoxPages;) {
    unsigned j = i;
    while (j < kBoxPages && page_free(m, j)) j++;
    if (j > i) {
      m->run_epoch[i] = h->box_epoch;
      run_put(h, s->cls, m, i, j - i);
    }
    i = j + 1;
  }
  m->dirty_epoch = h->box_epoch;
  h->box_dirty += m->dirty_pages;
}
SPACES_NOINLINE SPACES_HOT_TEXT void box_runs_out(Heap* h, Slab* s) {
  PageBox* m = box_of(s);
  for (unsigned i = 1; i < kBoxPages;) {
    if (!page_free(m, i)) {
      i++;
      continue;
    }
    unsigned len = m->run_len[i];
    run_unlink(h, m, i);
    i += len;
  }
  h->box_dirty -= m->dirty_pages;
}

// Owner: pages [i, i + n) of box s back to its free pages, joined with the free runs on either
// side (their counts, tags and lists follow).
SPACES_NOINLINE SPACES_HOT_TEXT void box_pages_back(Heap* h, Slab* s, unsigned i, unsigned n) {
  PageBox* m = box_of(s);
  unsigned a = i, e = i + n;
  // The joined run keeps the older stamp of a dirty neighbour (read from its page next to the
  // block: a run is most often all clean or all dirty), so a free next to an old dirty run does
  // not put off that run's purge for ever; the block's own pages may then go back a delay early.
  uint32_t stamp = h->box_epoch;
  if (page_free(m, i - 1)) {  // (page 0's bit is never set)
    a = i - m->run_len[i - 1];
    if (!page_clean(m, i - 1) && int32_t(m->run_epoch[a] - stamp) < 0) stamp = m->run_epoch[a];
    run_unlink(h, m, a);
  }
  if (e < kBoxPages && page_free(m, e)) {
    unsigned len = m->run_len[e];
    if (!page_clean(m, e) && int32_t(m->run_epoch[e] - stamp) < 0) stamp = m->run_epoch[e];
    run_unlink(h, m, e);
    e += len;
  }
  box_bits_on(m->free, box_run(i, n));
  if (SPACES_UNLIKELY(m->dirty_since == 0)) {  // (box_age)
    m->dirty_since = os_now_ns() | 1;
    m->dirty_epoch = h->box_epoch;
  }
  m->free_pages = uint16_t(m->free_pages + n);
  m->dirty_pages = uint16_t(m->dirty_pages + n);  // (a block's pages are never clean)
  h->box_dirty += n;
  m->run_epoch[a] = stamp;
  run_put(h, s->cls, m, a, e - a);
}

SPACES_INLINE uintptr_t box_state(const Slab* s) { return s->thread_free.load(std::memory_order_acquire) & kStateMask; }
SPACES_INLINE bool box_stack_empty(const Slab* s) {
  return tf_ptr(s->thread_free.load(std::memory_order_acquire)) == reinterpret_cast<uintptr_t>(s);
}

// Enter box s into a free slot of h's index (its Slab::cls), its free runs onto h's lists.
// false: the index is full.
SPACES_HOT_TEXT bool box_link(Heap* h, Slab* s) {
  if (h->box_count == kMaxBoxes) return false;
  unsigned k = unsigned(__builtin_ctzll(~h->box_slots));
  h->box_idx[k] = s;
  s->cls = uint8_t(k);
  h->box_slots |= uint64_t(1) << k;
  h->box_count++;
  box_runs_in(h, s);
  return true;
}
// Box s leaves h's index, its free runs h's lists.
SPACES_HOT_TEXT void box_unlink(Heap* h, Slab* s) {
  box_runs_out(h, s);
  h->box_slots &= ~(uint64_t(1) << s->cls);
  h->box_idx[s->cls] = nullptr;
  h->box_count--;
}

SPACES_NOINLINE SPACES_HOT_TEXT Slab* box_new(Heap* h) {
  bool dirty;
  Slab* s = arena_alloc_slabs(kBoxGranules, &dirty);  // (sparse: never a THP arena)
  if (s == nullptr) return nullptr;
  // A box cut from dirty granules keeps their resident pages (not purged, as a medium slab's past
  // its first block are): any class reuses them, where a slab's later slots might never be carved.
  // Purging here cost `medium` 58 000 page faults and 2x its time for 20 % less RSS.
  SPACES_VG(VALGRIND_MAKE_MEM_UNDEFINED(s, kPageSize));  // (may lie in an old block memcheck freed)
  g_slabs_in_use.fetch_add(kBoxGranules, std::memory_order_relaxed);
  slab_header_reset(s, kSlabPages, h);  // (capacity 0: the block-start test refuses every pointer)
  s->key = (os_random() | (uint64_t(1) << 63)) & ~uint64_t(0xffffffff);
  s->pop_key = s->key;
  s->used = 0;
  s->div_inv = 0;
  s->div_shift = 0;
  s->chunk_next = s->chunk_prev = nullptr;
  __atomic_store_n(&s->collect_seq, 0u, __ATOMIC_RELAXED);  // (even: the header may hold old data)
  s->thread_free.store(reinterpret_cast<uintptr_t>(s) | kStateFull, std::memory_order_relaxed);
  s->next = s->prev = s->notify_next = nullptr;
  s->map_base = reinterpret_cast<uintptr_t>(s);
  s->run_granules = kBoxGranules;
  PageBox* m = box_of(s);
  memset(m, 0, sizeof *m);
  bits_set(m->free, 1, kBoxPages - 1, true);
  if (!dirty) bits_set(m->clean, 1, kBoxPages - 1, true);
  m->dirty_since = dirty ? os_now_ns() | 1 : 0;
  m->free_pages = kBoxPages - 1;
  m->dirty_pages = dirty ? kBoxPages - 1 : 0;
  // (before the head bit: the census reads headers it finds by that bit)
  pagemap_set_back(reinterpret_cast<uintptr_t>(s), kBoxGranules, true);
  pagemap_set_head(reinterpret_cast<uintptr_t>(s), true);
  box_link(h, s);  // (box_alloc made room)
  return s;
}

// Owner: box s leaves the heap for its arena (empty, nothing on its stack, not queued).
SPACES_HOT_TEXT void box_release(Heap* h, Slab* s) {
  box_unlink(h, s);
  pagemap_set_back(reinterpret_cast<uintptr_t>(s), kBoxGranules, false);
  give_to_arena(s, kBoxGranules, nullptr);
}

// Owner: an empty box goes back to its arena unless `keep` and the heap keeps fewer empty boxes
// than option medium_cache_kib allows (at least one): a heap whose medium blocks come and go must
// not take a box from its arena and give it back on every few mallocs (two shard-lock round
// trips, a purge of the whole box and its pages' faults each time).
SPACES_HOT_TEXT bool box_maybe_release(Heap* h, Slab* s, bool keep) {
  if (box_of(s)->live != 0) return false;
  if (box_state(s) == kStateNotified || !box_stack_empty(s)) return false;  // (its drain is coming)
  if (keep) {
    long long budget = option(kOpt_medium_cache_kib) / 1024;
    long long empty = 0;
    for (uint64_t left = h->box_slots; left && empty < budget; left &= left - 1) {
      Slab* o = h->box_idx[__builtin_ctzll(left)];
      empty += o != s && box_of(o)->live == 0;
    }
    if (empty < (budget < 1 ? 1 : budget)) return false;
  }
  box_release(h, s);
  return true;
}

// Owner: the block at page i (class c, checked) back to the box's free pages. true: box empty.
SPACES_INLINE bool box_put(Heap* h, Slab* s, unsigned i, unsigned c) {
  PageBox* m = box_of(s);
  box_set_cls(m, i, 0);
  box_pages_back(h, s, i, box_pages_of(c));
  return --m->live == 0;
}

// Say what p, a pointer into box s that is no live block start, most likely is.
SPACES_NOINLINE SPACES_COLD_TEXT void box_report(Slab* s, const void* p, const char* what, bool is_free) {
  uintptr_t off = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(s);
  char msg[128];
  msg[0] = 0;
  strncat(msg, what, 64);
  if (off < kPageSize) {
    strcat(msg, " (pointer into a page box's header: allocator metadata)");
    report_error(SPACES_ERROR_INVALID_FREE, const_cast<void*>(p), msg);
    return;
  }
  const PageBox* m = box_of(s);
  unsigned i = unsigned(off / kPageSize);
  bool aligned = off % kPageSize == 0;
  for (unsigned j = aligned ? i - 1 : i, steps = 0; j >= 1 && steps < 64; j--, steps++) {
    unsigned c = box_cls(m, j);
    if (c == 0) continue;
    if (c < kNumClasses && (j + box_pages_of(c)) * kPageSize > off) {  // (its pages: the slack too)
      strcat(msg, j * kPageSize + class_size(c) > off ? " (pointer inside a block)" : " (pointer past the end of a block)");
      report_error(SPACES_ERROR_INVALID_FREE, const_cast<void*>(p), msg);
      return;
    }
    break;
  }
  report_error(SPACES_ERROR_DOUBLE_FREE, const_cast<void*>(p),
               is_free ? "double free (or free of a pointer into freed memory)" : what);
}

// The class of the live block that starts at p (0 after reporting p as none).
SPACES_INLINE unsigned box_block_class(Slab* s, const void* p, const char* what, bool is_free) {
  uintptr_t off = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(s);
  unsigned c = off % kPageSize == 0 && off >= kPageSize ? box_cls(box_of(s), unsigned(off / kPageSize)) : 0;
  if (SPACES_LIKELY(c >= kNumSmallClasses && c < kNumClasses)) return c;
  box_report(s, p, what, is_free);
  return 0;
}

// Owner h: take the box's remote stack (the blocks go back to its free pages). true: box empty.
// (collect_seq odd meanwhile, as slab_collect_remote's: box_is_pending walks again)
SPACES_HOT_TEXT bool box_take_remote(Heap* h, Slab* s) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s), tf;
  uint32_t seq;
  if (!remote_move_begin(s, tf, seq)) return false;
  PageBox* m = box_of(s);
  uintptr_t b = tf_ptr(tf), key = s->key;
  bool empty = false;
  for (unsigned k = 0, n = tf_count(tf); k < n && b != base; k++) {  // (n bounds a cycle)
    uintptr_t off = b - base;
    uintptr_t next = link_get(reinterpret_cast<Block*>(b)) ^ key;
    unsigned c = off % kPageSize == 0 && off >= kPageSize ? box_cls(m, unsigned(off / kPageSize)) : 0;
    if (SPACES_UNLIKELY(c == 0 || c >= kNumClasses)) {  // (a double free raced past the checks)
      report_error(SPACES_ERROR_CORRUPTED, reinterpret_cast<void*>(b), "corrupted remote free list");
      break;  // the rest leaks, never followed
    }
    empty = box_put(h, s, unsigned(off / kPageSize), c);
    if (next >= kBoxGranules * kSlabSize || (next != 0 && next < kPageSize)) {
      if (next != 0) report_error(SPACES_ERROR_CORRUPTED, reinterpret_cast<void*>(b), "corrupted remote free list");
      break;
    }
    b = base + next;
  }
  remote_move_done(s, seq);
  return empty;
}

// Owner, after pages went back to box s: give it back if it emptied (box_maybe_release).
SPACES_INLINE void box_after_put(Heap* h, Slab* s, bool keep) {
  if (box_of(s)->live == 0) box_maybe_release(h, s, keep);
}

}  // namespace

namespace {
// No run of n pages: a stale pooled heap's boxes before a fresh box (heap_try_adopt merges it
// into h, its boxes too). 0: none (a heap with kMaxBoxes boxes and no room: the class's slabs
// serve it, heap.cpp).
SPACES_NOINLINE SPACES_HOT_TEXT BoxRef box_grow(Heap* h, unsigned cls, unsigned n) {
  heap_try_adopt(h, cls);
  if (BoxRef r = box_fit(h, n)) return r;
  if (h->box_count == kMaxBoxes || box_new(h) == nullptr) return 0;
  return box_fit(h, n);
}
}  // namespace

namespace {
// Owner h: pages [i, i + n) of box `slot` (m), the front of a free run, stop being free (their
// run, bits and counts follow). true: every one of them was clean (zero). (Out of line: box_alloc
// and box_realloc share it, and the hot text has no room for two copies.)
SPACES_NOINLINE SPACES_HOT_TEXT bool box_take(Heap* h, unsigned slot, PageBox* m, unsigned i, unsigned n) {
  run_take_front(h, slot, m, i, n);
  BoxRun br = box_run(i, n);
  box_bits_off(m->free, br);
  m->free_pages = uint16_t(m->free_pages - n);
  uint64_t c0 = m->clean[br.w] & br.lo, c1 = br.hi ? m->clean[br.w + 1] & br.hi : 0;
  bool clean = c0 == br.lo && c1 == br.hi;
  unsigned dirty = clean ? 0 : (c0 | c1) == 0 ? n : n - unsigned(popcount64(c0) + popcount64(c1));
  m->dirty_pages = uint16_t(m->dirty_pages - dirty);
  h->box_dirty -= dirty;
  if (m->dirty_pages == 0) m->dirty_since = 0;  // (all reused: the next dirty free starts the wait)
  box_bits_off(m->clean, br);
  return clean;
}
}  // namespace

SPACES_HOT_TEXT void* box_alloc(Heap* h, unsigned cls, size_t size, bool zero) {
  SPACES_ASSERT(h->chunk == nullptr && g_classes.granules[cls] > 1);
  if (h->notify.load(std::memory_order_relaxed) != nullptr) heap_drain_notify(h);
  if (SPACES_UNLIKELY((++h->box_ticks & 63) == 0)) box_age(h);  // (a clock read per 64)
  unsigned n = box_pages_of(cls);
  BoxRef r = box_fit(h, n);
  if (SPACES_UNLIKELY(r == 0) && (r = box_grow(h, cls, n)) == 0) return nullptr;
  Slab* s = h->box_idx[r >> 8];
  PageBox* m = box_of(s);
  unsigned i = r & 255;
  bool clean = box_take(h, unsigned(r >> 8), m, i, n);
  m->live++;
  box_set_cls(m, i, cls);
  Block* b = reinterpret_cast<Block*>(reinterpret_cast<uintptr_t>(s) + uintptr_t(i) * kPageSize);
  if (!clean) link_set(b, 0);  // (a live block's word must not look free; a clean page's is 0)
  track_alloc(nullptr, b, size, zero);
  if (zero && !clean) memset(b, 0, size);
  return b;
}

SPACES_HOT_TEXT void box_free(Slab* s, void* p) {
  unsigned c = box_block_class(s, p, "invalid free", true);
  if (c == 0) return;  // (reported)
  Block* b = static_cast<Block*>(p);
  if (slab_block_looks_free(s, b) && box_is_pending(s, b)) {
    report_error(SPACES_ERROR_DOUBLE_FREE, b, "double free");
    return;
  }
  // Only this thread can make the owner a heap it is bound to, so "is it mine?" cannot change
  // under us (box_merge runs on the merging heap's thread).
  Heap* h = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
  if (SPACES_UNLIKELY(h == nullptr)) {  // (the box went back to its arena since the checks above:
    report_error(SPACES_ERROR_DOUBLE_FREE, b, "double free");  // a racing second free)
    return;
  }
  if (__atomic_load_n(&h->tp, __ATOMIC_RELAXED) == thread_self() && h->state == kHeapActive) {
    // (Not into the medium cache: a cached block holds its pages away from the other classes,
    // which is what boxes are for; with a cache of even 2 blocks per class `thread_rounds` held
    // 9.0 MiB instead of 5.9 at one thread, and a box's free and malloc are cheap without it.)
    track_free(nullptr, p, b, class_size(c));
    box_put(h, s, unsigned((reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(s)) / kPageSize), c);
    box_after_put(h, s, true);
    return;
  }
  track_free(nullptr, p, b, class_size(c));
  if (slab_remote_push(s, b)) remote_notify(s);
}

// realloc of a live box block p (class c, checked by the caller) to `size`, in place where it
// can be: the owner thread grows the block into the free run right after it, unless box_fit
// would put a block of the new size lower in its boxes (where a malloc would put it: the lowest
// run of exactly that length, else the lowest that fits; this keeps first fit's blocks packed
// low), and gives back its tail pages when it shrinks to less than half. p when done, NULL when
// the caller must move it (another thread's block, no room, a size a box does not serve). The
// caller has checked that p is not on the box's remote stack already (realloc_of_freed_block). (A buffer
// grown by half at a time was moved and copied every time.)
SPACES_NOINLINE SPACES_HOT_TEXT void* box_realloc(Slab* s, void* p, unsigned c, size_t size) {
  if (kMemcheckExactSizes || size <= kSmallMax || size > kMediumMax) return nullptr;  // (memcheck: every block moves)
  unsigned c2 = medium_class_of(size);
  Heap* h = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
  if (!box_class(c2) || h == nullptr || __atomic_load_n(&h->tp, __ATOMIC_RELAXED) != thread_self() ||
      h->state != kHeapActive)
    return nullptr;
  PageBox* m = box_of(s);
  unsigned i = unsigned((reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(s)) / kPageSize);
  unsigned n = box_pages_of(c), n2 = box_pages_of(c2), j = i + n;
  if (n2 < n) {  // shrink: the tail pages go back, joined with the free run after them
    box_pages_back(h, s, i + n2, n - n2);
  } else if (n2 > n) {
    if (j >= kBoxPages || !page_free(m, j) || m->run_len[j] < n2 - n) return nullptr;
    BoxRef lower = box_fit(h, n2);
    if (lower != 0 && ref_addr(h, lower) < reinterpret_cast<uintptr_t>(p)) return nullptr;
    box_take(h, s->cls, m, j, n2 - n);
  }
  box_set_cls(m, i, c2);
  return p;
}

SPACES_HOT_TEXT size_t box_usable(Slab* s, const void* p, const char* what) {
  unsigned c = box_block_class(s, p, what, false);
  return c ? class_size(c) : 0;
}

SPACES_HOT_TEXT void box_drain(Heap* h, Slab* s) {
  slab_set_state(s, kStateNotified, kStateFull);  // (before the take: a push after it notifies again)
  box_take_remote(h, s);
  box_after_put(h, s, true);  // (also when a sweep took the stack while the box was queued)
}

namespace {
// Owner h: the run of free pages [i, i + len) of box s back to the kernel, unless it is clean.
void box_purge_run(Heap* h, Slab* s, unsigned i, unsigned len) {
  PageBox* m = box_of(s);
  unsigned clean = bits_count(m->clean, i, len);
  if (clean == len) return;
  os_purge(reinterpret_cast<uint8_t*>(s) + uintptr_t(i) * kPageSize, uintptr_t(len) * kPageSize);
  bits_set(m->clean, i, len, true);
  m->dirty_pages = uint16_t(m->dirty_pages - (len - clean));
  h->box_dirty -= len - clean;
  if (m->dirty_pages == 0) m->dirty_since = 0;  // (the next dirty free starts the wait)
}

// Owner h: the dirty free runs of box s stamped with an epoch at or before `upto` (all of them
// when `all`) back to the kernel. true: dirty runs are left.
bool box_purge_runs(Heap* h, Slab* s, uint32_t upto, bool all) {
  PageBox* m = box_of(s);
  bool left = false;
  for (unsigned i = 1; i < kBoxPages && m->dirty_pages != 0;) {
    if (!page_free(m, i)) {
      i++;
      continue;
    }
    unsigned len = m->run_len[i];
    if (all || int32_t(m->run_epoch[i] - upto) <= 0) box_purge_run(h, s, i, len);
    else left = left || bits_count(m->clean, i, len) != len;
    i += len;
  }
  return left;
}

// Owner h, whose boxes hold more than `bound` pages of dirty free pages: unless that is less than
// twice the pages their blocks take (the free pages of a working set whose blocks come and go:
// `medium` at two threads faulted 88 000 pages instead of 10 000 with the bound alone), the
// oldest (by epoch) go back, down to three quarters of the larger of the two.
SPACES_NOINLINE void box_trim(Heap* h, uint64_t bound, uint32_t epoch) {
  uint64_t used = 0;
  for (uint64_t left = h->box_slots; left; left &= left - 1)
    used += kBoxPages - 1 - box_of(h->box_idx[__builtin_ctzll(left)])->free_pages;
  uint64_t limit = bound > 2 * used ? bound : 2 * used;
  if (h->box_dirty <= limit) return;
  for (uint32_t age = 1u << 20;; age /= 2) {
    for (uint64_t left = h->box_slots; left && h->box_dirty > limit * 3 / 4; left &= left - 1)
      box_purge_runs(h, h->box_idx[__builtin_ctzll(left)], epoch - age, age == 0);
    if (h->box_dirty <= limit * 3 / 4 || age == 0) break;
  }
}

// Owner h: all free pages of box s back to the kernel (spaces_collect(1), malloc_trim).
void box_purge_free(Heap* h, Slab* s) {
  box_purge_runs(h, s, 0, true);
  box_of(s)->dirty_since = 0;
}
}  // namespace

// Free pages inside a box that is in use are not the arenas' (their decay curve and dirty bound
// see whole granules): without this they stayed resident until the box emptied, however long a
// program kept one block in it. The owner checks a box purge_delay_ms after the first free of
// a dirty page since its last check (dirty_since, dirty_epoch): the runs freed by then (stamped
// with that epoch of the heap or an older one: box_age counts the epochs) go back to the
// kernel; runs freed since wait for the next check, a delay later. So a page goes back between
// one and two delays after its free (sooner when it joins an older dirty run), and pages freed just before a check are not purged and
// faulted back at once (the deadline purge of session 17 purged every free page of the box).
// Checks run from every 64th box malloc, every 4096th slow malloc (heap.cpp) and the sweeps.
// And a bound, as the arenas': when a heap's boxes hold more than dirty_max_kib of dirty free
// pages and more than twice the pages of their blocks, the oldest go back at once, down to three
// quarters of the larger (box_trim). Neither runs with purge_delay_ms -1. (Boxes never lie in
// arenas advised huge pages since session 24: box_new asks for a sparse run, arena_alloc_slabs.
// Until session 23 arena_huge_pages switched these purges off for the whole process.)
bool box_purge_due(uint64_t since, uint64_t now, uint64_t delay) {
  // (since is odd, so it may be one past a `now` read in the same tick of the coarse clock: an
  // unsigned now - since then wrapped, and every box was purged right after its first free)
  return since != 0 && now > since && now - since >= delay;
}

SPACES_HOT_TEXT void box_age(Heap* h) {
  long long ms = option(kOpt_purge_delay_ms);
  if (ms < 0 || h == &g_prof_heap) return;  // (g_prof_heap: under the profiler's lock, no system call)
  uint64_t now = os_now_ns(), delay = uint64_t(ms) * 1000000ull;
  uint32_t epoch = h->box_epoch++;  // (frees from here on are stamped with the next epoch)
  for (uint64_t left = h->box_slots; left; left &= left - 1) {
    Slab* s = h->box_idx[__builtin_ctzll(left)];
    PageBox* m = box_of(s);
    if (m->dirty_pages == 0 || !box_purge_due(m->dirty_since, now, delay)) continue;
    bool more = box_purge_runs(h, s, m->dirty_epoch, false);
    m->dirty_since = more ? now | 1 : 0;  // (the runs left were freed after the first one)
    m->dirty_epoch = epoch;
  }
  uint64_t bound = uint64_t(option(kOpt_dirty_max_kib)) * 1024 / kPageSize;
  if (h->box_dirty > bound) box_trim(h, bound, epoch);
}

SPACES_HOT_TEXT void box_sweep(Heap* h, bool all, bool to_arena) {
  for (uint64_t left = h->box_slots; left; left &= left - 1) {
    Slab* s = h->box_idx[__builtin_ctzll(left)];
    if (s == nullptr) continue;  // (an error handler run by a corrupted stack freed boxes)
    box_take_remote(h, s);
    box_after_put(h, s, !to_arena);
  }
  if (!(all && to_arena)) {
    box_age(h);
    return;
  }
  // spaces_collect(1), malloc_trim: the free pages of the boxes kept go back to the kernel too
  // (not g_prof_heap's: its sweep runs under the profiler's lock).
  if (h == &g_prof_heap) return;
  for (uint64_t left = h->box_slots; left; left &= left - 1) box_purge_free(h, h->box_idx[__builtin_ctzll(left)]);
}

void box_merge(Heap* h, Heap* a) {
  for (uint64_t left = a->box_slots; left && h->box_count < kMaxBoxes; left &= left - 1) {
    Slab* s = a->box_idx[__builtin_ctzll(left)];
    slab_set_state(s, kStateFull, kStateNormal);  // (queued meanwhile: stays with `a`)
    if (box_state(s) != kStateNormal) continue;
    box_unlink(a, s);
    __atomic_store_n(&s->owner, h, __ATOMIC_RELAXED);
    box_link(h, s);
    slab_set_state(s, kStateNormal, kStateFull);
    box_take_remote(h, s);  // (pushed while it was Normal)
    box_after_put(h, s, true);
  }
}

// Fork child, a dead thread's heap h: its thread may have stopped inside box_link, box_unlink
// or a change to the run lists. The index is rebuilt from the slots that name a box of h, and
// the lists from the boxes' free-page maps. (A box being linked or unlinked at that moment may be
// left out: its megabyte stays unused, never freed twice.)
void box_after_fork(Heap* h) {
  Slab* found[kMaxBoxes];
  unsigned w = 0;
  for (unsigned k = 0; k < kMaxBoxes; k++) {
    Slab* s = h->box_idx[k];
    h->box_idx[k] = nullptr;
    if (s == nullptr || s->kind != kSlabPages || s->owner != h || s->cls != k) continue;
    PageBox* m = box_of(s);  // (counts from the maps: the thread may have stopped between them)
    unsigned free_pages = 0, dirty = 0;
    for (unsigned j = 0; j < kBoxWords; j++) {
      m->clean[j] &= m->free[j];
      free_pages += popcount64(m->free[j]);
      dirty += popcount64(m->free[j] & ~m->clean[j]);
    }
    m->free_pages = uint16_t(free_pages);
    m->dirty_pages = uint16_t(dirty);
    found[w++] = s;
  }
  h->box_count = 0;
  h->box_slots = 0;
  h->box_dirty = 0;
  h->run_mask[0] = h->run_mask[1] = 0;
  memset(h->run_head, 0, sizeof h->run_head);
  for (unsigned k = 0; k < w; k++) box_link(h, found[k]);
}

// Tests: each box of h knows its slot and its dirty free pages (h their sum), and h's run lists
// hold exactly the free runs of its boxes (maximal, tagged at both ends, each on the list of its
// length, linked both ways, each list in address order). h is the caller's own heap, or one nobody else uses.
bool box_index_consistent(const Heap* h) {
  unsigned count = 0, runs = 0, dirty = 0;
  for (unsigned k = 0; k < kMaxBoxes; k++) {
    const Slab* s = h->box_idx[k];
    bool in = (h->box_slots >> k) & 1;
    if (in != (s != nullptr)) return false;
    if (!in) continue;
    count++;
    if (s->kind != kSlabPages || s->cls != k || s->owner != h) return false;
    const PageBox* m = box_of(s);
    unsigned free_pages = 0, box_dirty = 0;
    for (unsigned i = box_next(m->free, 1, true); i < kBoxPages; i = box_next(m->free, i, true)) {
      unsigned j = box_next(m->free, i, false);
      if (m->run_len[i] != j - i || m->run_len[j - 1] != j - i) return false;
      free_pages += j - i;
      box_dirty += j - i - bits_count(m->clean, i, j - i);
      runs++;
      i = j;
    }
    if (free_pages != m->free_pages || page_free(m, 0) || box_dirty != m->dirty_pages) return false;
    dirty += box_dirty;
  }
  if (count != h->box_count || dirty != h->box_dirty) return false;
  for (unsigned bucket = 0; bucket < kBoxBuckets; bucket++) {
    BoxRef prev = 0;
    uintptr_t last = 0;
    bool listed = (h->run_mask[bucket >> 6] >> (bucket & 63)) & 1;
    if (listed != (h->run_head[bucket] != 0)) return false;
    for (BoxRef r = h->run_head[bucket]; r; prev = r, r = ref_box(h, r)->run_next[r & 255]) {
      if (runs-- == 0 || (r >> 8) >= kMaxBoxes || !((h->box_slots >> (r >> 8)) & 1)) return false;  // (also ends a cycle)
      const PageBox* m = ref_box(h, r);
      unsigned a = r & 255, len = m->run_len[a];
      if (a == 0 || !page_free(m, a) || page_free(m, a - 1) || len == 0 || a + len > kBoxPages) return false;
      if (run_bucket(len) != bucket || m->run_prev[a] != prev) return false;
      uintptr_t at = reinterpret_cast<uintptr_t>(m) + a;
      if (at < last) return false;
      last = at;
    }
  }
  return runs == 0;
}

// Is b, a block of box s that looks free, on the box's remote stack? (A bounded walk of in-box
// offsets: memory-safe while the stack changes.)
__attribute__((no_sanitize("thread"))) static bool box_stack_holds(Slab* s, Block* b) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s), key = s->key;
  uintptr_t p = tf_ptr(s->thread_free.load(std::memory_order_acquire));
  for (unsigned steps = 0; p != base && steps < kBoxPages; steps++) {
    if (p == reinterpret_cast<uintptr_t>(b)) return true;
    uintptr_t off = link_get(reinterpret_cast<Block*>(p)) ^ key;
    if (off >= kBoxGranules * kSlabSize || (off != 0 && off < kPageSize)) break;
    p = base + off;
  }
  return false;
}
SPACES_NOINLINE bool box_is_pending(Slab* s, Block* b) {
  // (walked again while the owner takes the stack, box_take_remote, and a block it has put back
  // meanwhile has class byte 0: freed too, where the caller read the byte before the wait)
  uintptr_t off = reinterpret_cast<uintptr_t>(b) - reinterpret_cast<uintptr_t>(s);
  unsigned page = unsigned(off / kPageSize);
  return seq_walk(&s->collect_seq, [&] { return box_cls(box_of(s), page) == 0 || box_stack_holds(s, b); });
}

}  // namespace spaces_core
