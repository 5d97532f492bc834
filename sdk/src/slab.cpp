// slab.cpp - one slab of equal-sized blocks.
//
// A slab holds `capacity` blocks of `block_size` bytes after a 256-byte header: one 64 KiB
// granule for a small class, 1..16 contiguous granules for a medium class (slab_span). A
// one-granule slab's header starts slab_colour bytes into its granule (internal.h), so its blocks
// are those that fit from there; links and offsets count from the header either way. Blocks are handed
// out from `free` (owner thread only, no atomics); blocks never handed out yet sit past `bump`
// and are carved into `free` a batch at a time so that a fresh slab costs page faults only for
// what is used. Other threads free onto `thread_free`, a lock-free stack: they only ever push,
// and the owner takes the whole list with one compare-and-swap, so no ABA can arise (a node is
// never popped alone). The two low bits of `thread_free` carry the SlabState, the top 16 the
// number of blocks on the stack (internal.h).
//
// Who touches what: `free`, `used`, `bump`, `attached`, list links: the owner thread (or whoever
// holds an abandoned heap exclusively). `thread_free`: anyone, atomically. `key`, `block_size`,
// `cls`, `capacity`: written at initialisation, before the slab is published.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

namespace spaces_core {

SPACES_HOT_TEXT void slab_init(Slab* s, Heap* owner, unsigned cls) {
  // (ASan builds: the header unpoisoned before it is written, for a granule initialised again at
  // another colour, as the colour tests do; a region's reset poisoned its blocks, and those stay so)
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(s, kSlabHeader));
  uint32_t bs = class_size(cls);
  s->free = s;
  s->key = (os_random() | (uint64_t(1) << 63)) & ~uint64_t(0xffffffff);
  s->pop_key = s->key;
  s->used = 0;
  __atomic_store_n(&s->collect_seq, 0u, __ATOMIC_RELAXED);  // (even: the header may hold old data)
  s->block_size = bs;
  __atomic_store_n(&s->fast_owner, owner ? owner->fast_tp : 0, __ATOMIC_RELAXED);
  s->owner = owner;
  s->chunk = nullptr;
  s->kind = kSlabSmall;
  s->cls = uint8_t(cls);
  __atomic_store_n(&s->attached, uint8_t(0), __ATOMIC_RELAXED);
  s->has_aligned = 0;
  // (from the header, coloured or not, to the end of the slab's granules)
  uintptr_t first = slab_first(s);
  s->capacity = uint32_t((slab_base(s) + slab_span(s) - first) / bs);
  s->bump = first;
  s->bump_end = s->bump + uintptr_t(s->capacity) * bs;
  s->pop_limit = uint32_t(s->bump_end - bs + 1 - reinterpret_cast<uintptr_t>(s));  // (capacity >= 1)
  s->div_inv = g_classes.inv[cls];
  s->div_shift = g_classes.shift[cls];
  s->sampled = 0;
  // memcheck: no block is addressable until handed out (so overruns into the slot's slack show),
  // nor the colour's bytes before the header (an overrun past the previous granule's last block)
  SPACES_VG(VALGRIND_MAKE_MEM_NOACCESS(reinterpret_cast<void*>(s->bump), s->bump_end - s->bump));
  SPACES_VG(VALGRIND_MAKE_MEM_NOACCESS(reinterpret_cast<void*>(slab_base(s)), reinterpret_cast<uintptr_t>(s) - slab_base(s)));
  // ASan builds: the colour's bytes poisoned too (arena_alloc_slabs unpoisons every run it hands
  // out, so a granule that becomes a large block or a box later starts clean)
  SPACES_ASAN(ASAN_POISON_MEMORY_REGION(reinterpret_cast<void*>(slab_base(s)), reinterpret_cast<uintptr_t>(s) - slab_base(s)));
  s->thread_free.store(reinterpret_cast<uintptr_t>(s) | kStateNormal, std::memory_order_relaxed);
  s->next = s->prev = s->notify_next = nullptr;
  s->chunk = owner ? owner->chunk : nullptr;
}

// Carve never-used blocks in address order in front of `free`: those that end in the page where
// the first of them ends (at least one). A batch never reaches into a page it does not need: the
// links written here are the first touch of their pages, so a class with a few live blocks keeps
// one or two resident pages in its slab, not the three an 8 KiB batch touched (xthread's 25
// lightly used small classes: 159 -> 132 arena pages; docs/benchmarks.md, "Base RSS"). A
// region's slabs keep 8 KiB batches: its arenas are advised huge pages (chunk_huge_pages), so
// carving less would save no memory there and double the refills.
SPACES_HOT_TEXT void slab_extend(Slab* s) {
  uintptr_t end = slab_end(s);
  uintptr_t bs = s->block_size;
  uintptr_t start = s->bump;
  if (start >= end) return;
  uintptr_t stop = s->chunk ? start + (bs >= 8192 ? bs : 8192 / bs * bs)
                            : (start + bs + kPageSize - 1) & ~uintptr_t(kPageSize - 1);
  if (stop > end) stop = end;
  uintptr_t n = (stop - start) / bs;  // >= 1: the bump area is whole blocks, and stop >= start + bs
  SPACES_ASSERT(n >= 1);
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  uintptr_t key = s->key;
  uintptr_t last = start + (n - 1) * bs;
  for (uintptr_t p = start; p < last; p += bs) link_set(reinterpret_cast<Block*>(p), (p + bs - base) ^ key);
  link_set(reinterpret_cast<Block*>(last), slab_encode(s, s->free));
  // (bump first: a fork child whose thread stopped between the two stores then counts the batch
  // out, slab_out, and leaks it rather than undercount a slab that still has live blocks)
  s->bump = last + bs;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  s->free = reinterpret_cast<void*>(start);
}

static unsigned slab_link_remote(Slab* s, Block* head);

// Owner only. Moves every remotely freed block in front of `free`; the state bits are kept.
// Between taking the stack and linking it, the stack's blocks are on neither list, so another
// thread's double-free check (slab_contains_free) would miss them and accept a second free: the
// slab's collect_seq is odd meanwhile (a sequence lock), and the check walks again when it sees
// it odd or changed (session 30's adversarial pass: a second free of a block, made while another
// thread's free drained the exited owner's heap, was accepted in 2 of 10 runs).
SPACES_HOT_TEXT unsigned slab_collect_remote(Slab* s) {
  uintptr_t tf;
  uint32_t seq;
  if (!remote_move_begin(s, tf, seq)) return 0;
  Block* head = reinterpret_cast<Block*>(tf_ptr(tf));
  unsigned n = tf_count(tf);
  if (!slab_has_free(s) && n != 0 && n <= s->used) {
    // The stack is a list that ends where an empty free list ends (offset 0), and its pushes
    // counted its blocks: it becomes the free list as it is, none of its blocks touched (they
    // are in other cores' caches). Its links are range-checked as they are popped (slab_pop,
    // heap_malloc_slow_rest). What the walk below also caught, a cycle made by a double free
    // that raced past the checks, is found only when a popped block comes round again (its
    // word is 0 or user data by then: reported as a corrupted free list).
    s->free = head;
  } else {
    n = slab_link_remote(s, head);
  }
  remote_move_done(s, seq);
  s->used -= n;
  if (s->chunk) chunk_remote_freed(s->chunk, 0 - size_t(n), 0 - size_t(n) * s->block_size);
  return n;
}

// The walk: finds the stack's last block and links it to the free list; returns the blocks.
static unsigned slab_link_remote(Slab* s, Block* head) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  Block* b = head;
  unsigned n = 1;
  uintptr_t key = s->key;
  for (;;) {
    uintptr_t off = link_get(b) ^ key;
    if (off == 0) break;
    if (SPACES_UNLIKELY(!slab_link_in(s, off) || n > s->capacity)) {
      report_error(SPACES_ERROR_CORRUPTED, b, "corrupted remote free list");
      break;  // keep what was verified; the rest is lost (leaked), never followed
    }
    b = reinterpret_cast<Block*>(base + off);
    n++;
  }
  link_set(b, slab_encode(s, s->free));
  s->free = head;
  return n;
}

// Any thread but the owner: pushes the chain head..tail (already linked from head to tail; a
// single block is head == tail). Returns true when the slab was kStateFull: the caller must queue
// the slab on its owner's notify list (this push is the only one that sees kStateFull).
bool slab_remote_push_chain(Slab* s, Block* head, Block* tail, unsigned n) {
  uintptr_t tf = s->thread_free.load(std::memory_order_relaxed);
  for (;;) {
    uintptr_t st = tf & kStateMask;
    link_set(tail, slab_encode(s, reinterpret_cast<void*>(tf_ptr(tf))));
    uintptr_t count = (tf & ~(kTfPtrMask | kStateMask)) + (uintptr_t(n) << kTfCountShift);
    uintptr_t nw = reinterpret_cast<uintptr_t>(head) | count | (st == kStateFull ? kStateNotified : st);
    if (s->thread_free.compare_exchange_weak(tf, nw, std::memory_order_acq_rel, std::memory_order_relaxed))
      return st == kStateFull;
  }
}

// Is b on one of the slab's free lists? A bounded walk that follows only in-slab offsets, so it
// is memory-safe even when another thread is changing the lists (it may then miss b).
static bool slab_lists_hold(Slab* s, Block* b) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  uintptr_t key = s->key;
  const void* heads[2] = {s->free, reinterpret_cast<void*>(tf_ptr(s->thread_free.load(std::memory_order_acquire)))};
  for (const void* h : heads) {
    uintptr_t p = reinterpret_cast<uintptr_t>(h);
    for (uint32_t steps = 0; p != base && steps <= s->capacity; steps++) {
      if (p == reinterpret_cast<uintptr_t>(b)) return true;
      uintptr_t off = link_get(reinterpret_cast<Block*>(p)) ^ key;
      if (!slab_link_in(s, off)) break;
      p = base + off;
    }
  }
  return false;
}
bool slab_contains_free(Slab* s, Block* b) {
  // (walked again while the owner moves its remote stack: slab_collect_remote)
  return seq_walk(&s->collect_seq, [&] { return slab_lists_hold(s, b); });
}

// Blocks carved and not on the free list: what `used` is in a slab that is not current (the
// current one's malloc does not count, internal.h Slab::used). The walk follows only in-slab
// links and at most the carved count, so another thread (the census) may call it safely and
// get a hint; the owner gets the exact count. O(1) for a slab whose list is empty (a refill).
// A list that does not end within the carved count (a link out of the slab, a cycle or a block
// twice: a double free that raced past the checks) counts every block out: a damaged slab then
// leaks, never goes back with live blocks in it (slab_pop reports the damage when it gets there).
SPACES_HOT_TEXT __attribute__((no_sanitize("thread"))) uint32_t slab_out(const Slab* s) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s), key = s->key;
  uint32_t carved = slab_exact_index(s, uint32_t(__atomic_load_n(&s->bump, __ATOMIC_RELAXED) - slab_first(s)));
  if (carved > s->capacity) return s->capacity;  // (a racing reader's torn view)
  uint32_t n = 0;
  uintptr_t p = reinterpret_cast<uintptr_t>(__atomic_load_n(&s->free, __ATOMIC_RELAXED));
  for (; p != base && n < carved; n++) {
    uintptr_t off = link_get(reinterpret_cast<Block*>(p)) ^ key;
    if (off != 0 && !slab_link_in(s, off)) return carved;
    p = base + off;
  }
  return p == base ? carved - n : carved;
}

Block* slab_block_start(Slab* s, const void* p) {
  uint32_t n = slab_offset(s, p);
  if (n >= s->capacity * s->block_size) return nullptr;  // (the header, or past the last block)
  return reinterpret_cast<Block*>(slab_first(s) + uintptr_t(slab_block_index(s, n)) * s->block_size);
}

}  // namespace spaces_core
