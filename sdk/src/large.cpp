// large.cpp - blocks over 8 KiB.
//
// A large block (above the medium classes in thread heaps, above 8 KiB in regions) is a run of
// whole slabs inside an arena when it fits in one (up to ~4 MiB with its alignment), else a
// direct mapping (4 MiB-aligned). A thread heap's block of 2 MiB or more (option huge_pages 1)
// is a run in a 64 MiB span advised transparent huge pages up to 32 MiB (option huge_spans;
// arena.cpp: spans coalesce freed blocks, so memory freed by one size serves another), else a
// direct mapping advised transparent huge pages (large_alloc says where its data starts). A span
// run's head is a kSlabLargeRun with cls kLargeInSpan: freed to its span, grown in place by
// realloc when the granules after it are free. Either way a Slab header sits at H = (p - 1) & ~0xFFFF, the granule just before or
// containing the user pointer p, so free() finds it exactly as it finds a small block's slab:
//   align <= 64 KiB : p = run/mapping start + 256 (the header) rounded up to align; H = start.
//   align >  64 KiB : p = the first align-aligned address at least 64 KiB into the run/mapping;
//                     H = p - 64 KiB, which records where the run/mapping really starts.
// Large blocks have no owner heap (fast_owner = NULL), so every free of one comes here, from any
// thread. Runs go back to their arena (cached, purged after the delay); direct mappings go to a
// small cache (arena.cpp: 16 mappings, 512 MiB), purged after the delay, unmapped when evicted. realloc of a direct mapping grows in place inside its 4 MiB rounding, then
// with mremap (in place if the kernel can, else moved page tables, never copied bytes).
// realloc of a span block grows it in place when the granules after it are free; else, from
// span_move_mib up, its whole 2 MiB pages move to a direct mapping of their own (span_to_direct:
// mremap with MREMAP_DONTUNMAP, the span's granules left free and empty) and it lives on as a
// direct mapping (cls kDirectFromSpan), unmapped at free (never cached: cached mappings serve
// only blocks above the spans' sizes), grown by fresh pages mapped right after it (its mapping
// is several kernel mappings, which mremap cannot resize) or else copied; smaller ones are
// copied to a new run. realloc of a thread heap's run in an arena (256 KiB - 2 MiB; up to ~4 MiB
// with huge_pages 0) grows it into the free granules after it, or gives back the granules past
// its new end (run_resize), while the new size is one malloc would also give a run; else it moves.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

#include <sys/mman.h>

namespace spaces_core {

namespace {
std::atomic<size_t> g_large_blocks{0};
std::atomic<size_t> g_large_bytes{0};
std::atomic<size_t> g_direct_blocks{0};  // (the part of those two that is huge: in mappings of
                                         // their own, or in spans: bytes mapped / of the run)
std::atomic<size_t> g_direct_bytes{0};

constexpr size_t kPage = 4096;
std::atomic<bool> g_no_move_out{false};  // the kernel refused MREMAP_DONTUNMAP once: copy
SPACES_INLINE size_t page_round(size_t n) { return (n + kPage - 1) & ~(kPage - 1); }

// Where the user pointer goes in a span starting at `start` (64 KiB aligned).
SPACES_INLINE uintptr_t user_ptr_in(uintptr_t start, size_t align) {
  if (align <= kSlabSize) return start + ((kSlabHeader + align - 1) & ~(uintptr_t)(align - 1));
  return (start + kSlabSize + align - 1) & ~(uintptr_t)(align - 1);
}

// length: granules of a run (kSlabLargeRun), bytes of a mapping (kSlabDirect)
SPACES_HOT_TEXT Slab* init_header(uintptr_t p, SlabKind kind, uintptr_t base, size_t length, size_t user_size) {
  Slab* h = head_of(reinterpret_cast<void*>(p));
  SPACES_VG(VALGRIND_MAKE_MEM_UNDEFINED(h, kSlabHeader));  // may lie in an old block memcheck freed
  slab_header_reset(h, kind, nullptr);
  h->key = 0;
  h->used = 1;
  h->map_base = base;
  if (kind == kSlabLargeRun)
    h->run_granules = length;
  else
    h->map_bytes = length;
  h->user_size = user_size;
  h->user_ptr = p;
  h->map_resident = 0;
  h->map_gap = 0;
  pagemap_set_head(reinterpret_cast<uintptr_t>(h), true);
  return h;
}
}  // namespace

// The footprint a large block of `size` at `align` costs (what a chunk's ceiling counts).
SPACES_HOT_TEXT static size_t large_footprint(size_t size, size_t align, size_t* slabs_out) {
  size_t span = (align <= kSlabSize ? ((kSlabHeader + align - 1) & ~(align - 1)) : align) + size;
  size_t slabs = (span + kSlabSize - 1) >> kSlabShift;
  *slabs_out = slabs;
  if (slabs <= kMaxRunSlabs) return slabs * kSlabSize;
  size_t lead = align <= kSlabSize ? kSlabSize : align;
  return (lead + size + kArenaSize - 1) & ~(kArenaSize - 1);
}

// A run of slabs in an arena; NULL when the arenas have no room (nothing reported).
SPACES_HOT_TEXT static void* alloc_run(size_t size, size_t align, size_t slabs, bool zero, Chunk* chunk) {
  bool dirty = false;
  // (not dense: a large block never lies in a thread heaps' arena advised huge pages; with them
  // clang compiling bench/toolchain/llvm_heavy.cpp at -O2 peaked 3 % higher, and no workload
  // measured faster: docs/benchmarks.md)
  Slab* run = arena_alloc_slabs(slabs, &dirty, chunk != nullptr && option(kOpt_chunk_huge_pages));
  if (run == nullptr) return nullptr;
  uintptr_t start = reinterpret_cast<uintptr_t>(run);
  uintptr_t p = user_ptr_in(start, align);
  uintptr_t end = start + slabs * kSlabSize;
  // An aligned block's pointer sits deep in its run: its usable size stays the request rounded
  // to pages (4097 at 4096 is 8192, not the run's 61 440-byte tail), and realloc to it stays.
  size_t usable = align > 16 && page_round(size) < end - p ? page_round(size) : end - p;
  Slab* h = init_header(p, kSlabLargeRun, start, slabs, usable);
  h->chunk = chunk;
  g_large_blocks.fetch_add(1, std::memory_order_relaxed);
  g_large_bytes.fetch_add(slabs * kSlabSize, std::memory_order_relaxed);
  if (chunk) chunk_large_added(chunk, h);
  track_alloc(chunk, reinterpret_cast<void*>(p), size, zero);  // (before the memset touches it)
  if (zero && dirty) memset(reinterpret_cast<void*>(p), 0, size);
  return reinterpret_cast<void*>(p);
}

// A run in a span (huge blocks from thread heaps, option huge_spans: arena.cpp); NULL when no
// span can be mapped (nothing reported). Its header is the run's first 256 bytes, as a run's.
static void* alloc_span(size_t size, size_t align, size_t count, bool zero) {
  SpanDirty dirty;
  Slab* run = arena_alloc_span_run(count, &dirty);
  if (run == nullptr) return nullptr;
  uintptr_t start = reinterpret_cast<uintptr_t>(run);
  uintptr_t p = user_ptr_in(start, align);  // (align <= 64 KiB: after the header)
  Slab* h = init_header(p, kSlabLargeRun, start, count, start + count * kSlabSize - p);
  h->cls = kLargeInSpan;
  g_large_blocks.fetch_add(1, std::memory_order_relaxed);
  g_large_bytes.fetch_add(count * kSlabSize, std::memory_order_relaxed);
  g_direct_blocks.fetch_add(1, std::memory_order_relaxed);  // (huge blocks, as mappings are)
  g_direct_bytes.fetch_add(count * kSlabSize, std::memory_order_relaxed);
  track_alloc(nullptr, reinterpret_cast<void*>(p), size, zero);
  if (zero && dirty.first < dirty.end) {  // zero only the granules that may be old
    uintptr_t from = start + dirty.first * kSlabSize, to = start + dirty.end * kSlabSize;
    if (from < p) from = p;
    if (to > p + size) to = p + size;
    if (from < to) memset(reinterpret_cast<void*>(from), 0, to - from);
  }
  return reinterpret_cast<void*>(p);
}

// A direct mapping (a cached one if one fits); NULL when the kernel refuses (nothing reported).
// cost: what the block's footprint is (large_footprint). huge: advise transparent huge pages.
SPACES_NOINLINE static void* alloc_direct(size_t size, size_t align, size_t cost, bool zero, bool huge, Chunk* chunk) {
  size_t lead = align <= kSlabSize ? kSlabSize : align;  // room for p's offset
  DirectReuse old{0, 0, 0, 0};  // a cached mapping's past (all zero for a fresh mapping)
  void* m = align <= kArenaSize && chunk == nullptr ? arena_direct_from_cache(cost, &old) : nullptr;
  size_t mapped = old.mapped;
  bool thp = huge && option(kOpt_huge_pages) != 0;
  // A cached mapping whose last block had the huge layout keeps it when it fits: its lead holds
  // a small-page table, and data placed there would fault 4 KiB at a time (THP only).
  if (m && thp && align <= kSlabSize && old.lead == kHugePage && kHugePage + size <= mapped) align = kHugePage;
  uintptr_t p = user_ptr_in(reinterpret_cast<uintptr_t>(m), align);
  uintptr_t from = p & ~uintptr_t(kHugePage - 1);  // the 2 MiB page holding the data's start
  size_t kept_lead = from - reinterpret_cast<uintptr_t>(m);
  if (m && thp && old.lead > kept_lead &&  // else: fresh pages there (a failure may leave a hole)
      !os_remap_fresh(reinterpret_cast<void*>(from), old.lead - kept_lead, true)) {
    arena_unmap_direct(reinterpret_cast<uintptr_t>(m), mapped);
    m = nullptr;
    old = DirectReuse{0, 0, 0, 0};
  }
  if (m == nullptr) {
    m = arena_map_direct(lead + size, align, &mapped);
    if (m == nullptr) return nullptr;
    p = user_ptr_in(reinterpret_cast<uintptr_t>(m), align);
    from = p & ~uintptr_t(kHugePage - 1);
  }
  uintptr_t start = reinterpret_cast<uintptr_t>(m);
  size_t stale = old.resident;  // bytes from start that may hold an old block's data
  size_t usable = page_round(p + size) - p;
  // (a huge block's last 2 MiB page is resident whole once touched)
  size_t extent = huge ? ((p + size - start + kHugePage - 1) & ~(kHugePage - 1)) : page_round(p + size - start);
  if (extent > mapped) extent = mapped;
  // A reused mapping's old pages past the new block stay (a later calloc of this mapping zeroes
  // what is old) unless they are more than an eighth of the block: then they are dropped.
  if (stale > extent + extent / 8) {
    os_purge(reinterpret_cast<void*>(start + extent), stale - extent);
    stale = extent;
  }
  size_t resident = stale > extent ? stale : extent;
  size_t gap = 0;  // lead bytes never touched
  if (thp) {
    os_hugepage_advise(reinterpret_cast<void*>(from), start + mapped - from);
    // (the lead before it holds only the header's page: never a huge page, even with THP
    // "always", and whatever a cached mapping's previous block advised there)
    if (from > start) {
      os_hugepage_forbid(reinterpret_cast<void*>(start), from - start);
      // (unless an old block of a cached mapping left pages there)
      if (stale == 0 || old.resident - old.charged >= from - start - kPage) gap = from - start - kPage;
    }
  }
  Slab* h = init_header(p, kSlabDirect, start, mapped, usable);
  h->chunk = chunk;
  h->map_resident = resident;
  h->map_gap = gap;
  arena_direct_account(ptrdiff_t(mapped), ptrdiff_t(resident - gap));
  g_large_blocks.fetch_add(1, std::memory_order_relaxed);
  g_large_bytes.fetch_add(mapped, std::memory_order_relaxed);
  g_direct_blocks.fetch_add(1, std::memory_order_relaxed);
  g_direct_bytes.fetch_add(mapped, std::memory_order_relaxed);
  if (chunk) {
    if (mapped != cost) chunk_reserve(chunk, mapped - cost);  // (only if the kernel rounded more)
    chunk_large_added(chunk, h);
  }
  track_alloc(chunk, reinterpret_cast<void*>(p), size, zero || stale == 0);
  if (zero && stale > p - start) {  // zero only what may be old; fresh and purged pages are zero
    size_t old_bytes = stale - (p - start);
    memset(reinterpret_cast<void*>(p), 0, old_bytes < size ? old_bytes : size);
  }
  return reinterpret_cast<void*>(p);
}

SPACES_HOT_TEXT void* large_alloc(size_t size, size_t align, bool zero, Chunk* chunk) {
  if (!ensure_init()) return out_of_memory(size);
  if (size > kMaxRequest || align > kMaxAlign) return out_of_memory(size);
  if (align < 16) align = 16;
  size_t asked_align = align;
  // Huge blocks (2 MiB and more from a thread heap, option huge_pages on) are direct mappings
  // advised transparent huge pages, so they fault in 2 MiB at a time. Right after the header,
  // the data takes ceil((size + 256) / 2 MiB) huge pages: when that is one more than
  // ceil(size / 2 MiB) (a size at or just under a multiple of 2 MiB), the data starts instead on
  // the mapping's second 2 MiB boundary, the header granule just before it in a small page, so
  // N x 2 MiB takes N huge pages. Both layouts round to the same 4 MiB of address space there.
  bool huge = chunk == nullptr && size >= kHugePage && option(kOpt_huge_pages) != 0;
  // Up to 32 MiB with transparent huge pages: a run in a span, packed with other huge blocks
  // (no per-block layout: the spans' huge pages are shared by neighbours), else as below.
  if (huge && align <= kSlabSize && option(kOpt_huge_pages) != 0 && option(kOpt_huge_spans) != 0) {
    size_t span_count = (user_ptr_in(0, align) + size + kSlabSize - 1) >> kSlabShift;
    if (span_count <= kSpanMaxRun)
      if (void* p = alloc_span(size, align, span_count, zero)) return p;
  }
  if (huge && align <= kSlabSize &&
      (size + kHugePage - 1) / kHugePage < (kSlabHeader + size + kHugePage - 1) / kHugePage)
    align = kHugePage;
  size_t slabs;
  size_t cost = large_footprint(size, align, &slabs);
  if (chunk && !chunk_reserve(chunk, cost)) return out_of_memory(size);
  void* p = nullptr;
  if (slabs <= kMaxRunSlabs && !huge) {
    p = alloc_run(size, align, slabs, zero, chunk);
  } else {
    size_t direct_cost = (slabs <= kMaxRunSlabs)
                             ? (((align <= kSlabSize ? kSlabSize : align) + size + kArenaSize - 1) & ~(kArenaSize - 1))
                             : cost;
    p = alloc_direct(size, align, direct_cost, zero, huge, chunk);
    // Out of address space (RLIMIT_AS) for a mapping of its own: a run in an arena may still fit
    // (at the alignment asked for, not the huge layout's).
    size_t run_slabs;
    large_footprint(size, asked_align, &run_slabs);
    if (p == nullptr && huge && run_slabs <= kMaxRunSlabs) p = alloc_run(size, asked_align, run_slabs, zero, chunk);
  }
  if (p == nullptr) {
    if (chunk) chunk_unreserve(chunk, cost);
    return out_of_memory(size);
  }
  return p;
}

SPACES_HOT_TEXT void large_free(Slab* h, void* p) {
  if (SPACES_UNLIKELY(h->user_ptr != reinterpret_cast<uintptr_t>(p))) {
    report_error(SPACES_ERROR_INVALID_FREE, p, "invalid free (pointer inside a large block)");
    return;
  }
  // Claim the block: of two racing frees only one sees its own kind here. (A region's block is
  // claimed and leaves the region's list in one hold of its large lock, which fork_prepare takes:
  // a fork child never finds a block on the list that a thread it lacks was freeing, which its
  // reset or destroy would free again.)
  Chunk* c = h->chunk;
  uint8_t kind = c ? chunk_large_claim(c, h) : __atomic_exchange_n(&h->kind, uint8_t(kSlabFree), __ATOMIC_ACQ_REL);
  if (kind != kSlabLargeRun && kind != kSlabDirect) {
    report_error(SPACES_ERROR_DOUBLE_FREE, p, "double free");
    return;
  }
  pagemap_set_head(reinterpret_cast<uintptr_t>(h), false);
  track_free(c, p, p, h->user_size);
  g_large_blocks.fetch_sub(1, std::memory_order_relaxed);
  if (kind == kSlabLargeRun) {
    g_large_bytes.fetch_sub(h->run_granules * kSlabSize, std::memory_order_relaxed);
    if (h->cls == kLargeInSpan) {
      g_direct_blocks.fetch_sub(1, std::memory_order_relaxed);
      g_direct_bytes.fetch_sub(h->run_granules * kSlabSize, std::memory_order_relaxed);
      arena_free_span_run(reinterpret_cast<Slab*>(h->map_base), h->run_granules);
    } else
      arena_free_slabs(reinterpret_cast<Slab*>(h->map_base), h->run_granules);
  } else {
    uintptr_t base = h->map_base;
    size_t mapped = h->map_bytes;
    DirectReuse r{mapped, h->map_resident, h->map_resident - h->map_gap,
                  (h->user_ptr & ~uintptr_t(kHugePage - 1)) - base};
    g_large_bytes.fetch_sub(mapped, std::memory_order_relaxed);
    g_direct_blocks.fetch_sub(1, std::memory_order_relaxed);
    g_direct_bytes.fetch_sub(mapped, std::memory_order_relaxed);
    arena_direct_account(-ptrdiff_t(mapped), -ptrdiff_t(r.charged));
    // (not one span_to_direct made, while spans serve its size: cached mappings serve only
    // bigger blocks, so it would stay resident for nothing)
    bool cacheable = h->chunk == nullptr && h->user_ptr - base <= kArenaSize && h->cls != kDirectFromSpan;
    if (!cacheable || !arena_direct_to_cache(base, r)) arena_unmap_direct(base, mapped);
  }
}

SPACES_HOT_TEXT size_t large_usable(const Slab* h, const void* p) {
  if (SPACES_UNLIKELY(h->user_ptr != reinterpret_cast<uintptr_t>(p))) {
    report_error(SPACES_ERROR_INVALID_FREE, p, "usable_size of a pointer that is not a live block (pointer inside a large block)");
    return 0;
  }
  return h->user_size;
}

// Move the mapping [from, from + len) to `to` (reserved, len bytes or more; both 4 MiB-aligned)
// 2 MiB at a time: a mapping span_to_direct made, or one laid out for huge pages, is several
// kernel mappings, all split on 2 MiB boundaries, and mremap moves a range only within one. A
// piece the kernel will not move (at its limit of mappings) is copied into fresh pages instead,
// so the move always completes.
SPACES_NOINLINE static void move_pieces(uintptr_t from, size_t len, uintptr_t to) {
  for (size_t off = 0; off < len; off += kHugePage) {
    size_t n = len - off < kHugePage ? len - off : kHugePage;
    void* src = reinterpret_cast<void*>(from + off);
    void* dst = reinterpret_cast<void*>(to + off);
    if (os_remap_to(src, n, n, dst) != nullptr) continue;
    // (a failed MREMAP_FIXED may have unmapped the destination already: map it again)
    if (os_map_fixed(dst, n) == nullptr) {  // (no memory for even a page table: half a block moved)
      report_error(SPACES_ERROR_OUT_OF_MEMORY, src, "out of memory while moving a grown huge block");
      abort();
    }
    copy_block(dst, src, n);
    os_unmap(src, n);
  }
}

// Grow or shrink a direct mapping; NULL if it must be copied instead.
SPACES_NOINLINE static void* direct_resize(Slab* h, void* p, size_t size) {  // (not hot text: blocks above 4 MiB in mappings of their own, as alloc_direct)
  uintptr_t base = h->map_base;
  size_t mapped = h->map_bytes;
  uintptr_t up = reinterpret_cast<uintptr_t>(p);
  size_t old_commit = h->map_resident;
  size_t need = page_round(up + size - base);
  if (need <= mapped) {  // inside the mapping's rounding: just move the end
    h->user_size = page_round(up + size) - up;
    // (a huge mapping keeps whole 2 MiB pages: purging part of one would split it)
    size_t keep = size >= kHugePage && option(kOpt_huge_pages) != 0 ? (need + kHugePage - 1) & ~(kHugePage - 1) : need;
    if (keep > mapped) keep = mapped;
    if (keep < old_commit) {
      os_purge(reinterpret_cast<void*>(base + keep), old_commit - keep);
    } else {
      keep = keep > old_commit ? keep : old_commit;
    }
    h->map_resident = keep;
    arena_direct_account(0, ptrdiff_t(keep) - ptrdiff_t(old_commit));
    return p;
  }
  size_t total = (need + kArenaSize - 1) & ~(kArenaSize - 1);
  if (total < need || !pagemap_prepare(base, total)) return nullptr;
  uintptr_t nbase = base;
  // A mapping may be several kernel mappings, and mremap cannot resize or move a range across
  // them: span_to_direct's (the moved pages are one of them), and the huge layout's (alloc_direct
  // advises the header's lead and the data apart, and a reused cached mapping's fresh lead is a
  // mapping of its own). Such a mapping grows by fresh pages mapped right after it, or moves
  // 2 MiB at a time (move_pieces: every boundary is on one). (Until session 27 only
  // span_to_direct's was handled: a block whose size was a multiple of 2 MiB, so laid out for
  // huge pages, was copied on every growth: 64 -> 128 MiB took 342 ms instead of 0.07.)
  bool from_span = h->cls == kDirectFromSpan;
  bool grown = !from_span && os_remap_in_place(reinterpret_cast<void*>(base), mapped, total) != nullptr;
  if (!grown && os_map_at(reinterpret_cast<void*>(base + mapped), total - mapped) != nullptr) {
    grown = true;
    if (option(kOpt_huge_pages) != 0) os_hugepage_advise(reinterpret_cast<void*>(base + mapped), total - mapped);
  }
  if (!grown) {
    // Reserve a 4 MiB-aligned destination and let the kernel move the page tables there.
    // (accounted, os.h: moved piece by piece, the pieces fill only `mapped` bytes of it and the
    // rest is the block's growth; a single mremap replaces all of it)
    void* dst = os_map_aligned(total, kArenaSize, true);
    if (dst == nullptr) return nullptr;
    if (!pagemap_prepare(reinterpret_cast<uintptr_t>(dst), total)) {
      os_unmap(dst, total);
      return nullptr;
    }
    // (the old header goes before its pages do: a free racing the move, which the claim reports,
    // must not find a header that is unmapped under it)
    pagemap_set_head(reinterpret_cast<uintptr_t>(h), false);
    if (from_span || os_remap_to(reinterpret_cast<void*>(base), mapped, total, dst) == nullptr) {
      move_pieces(base, mapped, reinterpret_cast<uintptr_t>(dst));
      if (option(kOpt_huge_pages) != 0)
        os_hugepage_advise(static_cast<char*>(dst) + mapped, total - mapped);
    }
    nbase = reinterpret_cast<uintptr_t>(dst);
    pagemap_set_region(base, mapped, false);
  }
  pagemap_set_region(nbase, total, true);
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(nbase), total));  // stale shadow
  uintptr_t np = nbase + (up - base);
  Slab* nh = head_of(reinterpret_cast<void*>(np));
  nh->map_base = nbase;
  nh->map_bytes = total;
  nh->user_ptr = np;
  nh->user_size = page_round(np + size) - np;
  nh->map_resident = need;
  pagemap_set_head(reinterpret_cast<uintptr_t>(nh), true);
  g_large_bytes.fetch_add(total - mapped, std::memory_order_relaxed);
  g_direct_bytes.fetch_add(total - mapped, std::memory_order_relaxed);
  arena_direct_account(ptrdiff_t(total) - ptrdiff_t(mapped), ptrdiff_t(need) - ptrdiff_t(old_commit));
  return reinterpret_cast<void*>(np);
}

// Grow span block p (header h), which cannot grow in its span, into a direct mapping of its own
// (the way glibc's mremap grows a mapped chunk): its whole 2 MiB pages move there as they are
// (page tables, no copy, no split), the partial pages at its two ends are copied, and from then
// on the mapping grows by mremap. The granules whose pages moved are left free and clean in the
// span (empty, not resident); the two ends stay dirty there, as a freed run's. So no second copy
// of the block stays resident, in the span, while its pages wait to be reused or purged.
// NULL if it is better copied (no whole 2 MiB page in it) or cannot move (a kernel without
// MREMAP_DONTUNMAP, no address space).
SPACES_NOINLINE static void* span_to_direct(Slab* h, void* p, size_t size) {
  // (h is read before the move: when the run starts on a 2 MiB boundary, its page moves)
  size_t count = h->run_granules;
  uintptr_t base = h->map_base, up = reinterpret_cast<uintptr_t>(p), end = base + count * kSlabSize;
  uintptr_t a = (base + kHugePage - 1) & ~uintptr_t(kHugePage - 1), b = end & ~uintptr_t(kHugePage - 1);
  if (b <= a || g_no_move_out.load(std::memory_order_relaxed)) return nullptr;
  // The mapping keeps the run's offset in its 2 MiB page, so the whole pages land on 2 MiB
  // boundaries; the data starts `phase` into it (the bytes before are never touched).
  uintptr_t phase = base & (kHugePage - 1);
  size_t need = page_round(phase + (up - base) + size);
  size_t total = (need + kArenaSize - 1) & ~(kArenaSize - 1);
  if (total < need) return nullptr;
  void* m = os_map_aligned(total, kArenaSize, true);  // (accounted: os.h)
  if (m == nullptr) return nullptr;
  uintptr_t nbase = reinterpret_cast<uintptr_t>(m), dst = nbase + phase;  // dst: where base goes
  if (!pagemap_prepare(nbase, total)) {
    os_unmap(m, total);
    return nullptr;
  }
  if (os_move_out(reinterpret_cast<void*>(a), b - a, reinterpret_cast<void*>(dst + (a - base))) == nullptr) {
    if (errno == EINVAL) g_no_move_out.store(true, std::memory_order_relaxed);  // (never tried again)
    os_unmap(m, total);
    return nullptr;
  }
  // (the partial page at the front faults 4 KiB at a time: a huge page there would hold the
  // phase's bytes too)
  if (option(kOpt_huge_pages) != 0) {
    os_hugepage_advise(reinterpret_cast<void*>(dst + (a - base)), total - phase - (a - base));
    if (a > base) os_hugepage_forbid(m, phase + (a - base));  // (also with THP "always")
  }
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(m, total));  // stale shadow
  copy_block(reinterpret_cast<void*>(dst), reinterpret_cast<void*>(base), a - base);  // (the header too)
  copy_block(reinterpret_cast<void*>(dst + (b - base)), reinterpret_cast<void*>(b), end - b);
  pagemap_set_head(reinterpret_cast<uintptr_t>(h), false);
  pagemap_set_region(nbase, total, true);
  uintptr_t np = dst + (up - base);
  Slab* nh = head_of(reinterpret_cast<void*>(np));
  SPACES_ASSERT(reinterpret_cast<uintptr_t>(nh) == dst);
  size_t run = end - base;
  nh->kind = kSlabDirect;
  nh->cls = kDirectFromSpan;
  nh->map_base = nbase;
  nh->map_bytes = total;
  nh->user_ptr = np;
  nh->user_size = page_round(np + size) - np;
  nh->map_resident = need;
  nh->map_gap = phase;  // (never touched: not counted as committed)
  pagemap_set_head(dst, true);
  g_large_bytes.fetch_add(total - run, std::memory_order_relaxed);
  g_direct_bytes.fetch_add(total - run, std::memory_order_relaxed);
  arena_direct_account(ptrdiff_t(total), ptrdiff_t(need - phase));
  arena_free_span_run(reinterpret_cast<Slab*>(base), count, (a - base) >> kSlabShift, (b - base) >> kSlabShift);
  return reinterpret_cast<void*>(np);
}

// realloc of a thread heap's run in an arena (not a span's, not a region's; its pointer right
// after the header: alignment up to 256) in place: grown into the free granules right after it in
// its arena (or into its own tail, for an aligned block whose usable size stopped short of it), or
// shrunk by giving back the granules past its new end, while the new size is still one malloc
// would give a run (above the medium classes; below the huge blocks unless huge_pages is 0).
// true: resized; false: the caller moves it. The caller holds the block's claim (large_resize).
// (Until session 26 every such realloc that outgrew the block, or shrank it below half, moved
// and copied it: a buffer grown from 256 KiB to 2 MiB by half at a time was copied 5 times.)
SPACES_NOINLINE SPACES_HOT_TEXT bool run_resize(Slab* h, void* p, size_t size) {
  uintptr_t start = h->map_base;
  if (h->chunk != nullptr || reinterpret_cast<uintptr_t>(p) != start + kSlabHeader || size <= kMediumMax ||
      (size >= kHugePage && option(kOpt_huge_pages) != 0))
    return false;
  size_t want = (kSlabHeader + size + kSlabSize - 1) >> kSlabShift;
  if (want > kMaxRunSlabs) return false;
  size_t count = h->run_granules;
  bool done = true;
  if (want > count) {
    done = arena_grow_run(reinterpret_cast<Slab*>(start), count, want);
    if (done) g_large_bytes.fetch_add((want - count) * kSlabSize, std::memory_order_relaxed);
  } else if (want < count) {
    arena_free_slabs(reinterpret_cast<Slab*>(start + want * kSlabSize), count - want);
    g_large_bytes.fetch_sub((count - want) * kSlabSize, std::memory_order_relaxed);
  }
  if (done) {
    h->run_granules = want;
    h->user_size = start + want * kSlabSize - reinterpret_cast<uintptr_t>(p);
  }
  return done;
}

// A fork must not split a claim: the child has only the forking thread, so a block another
// thread had claimed would stay marked free there, and the child's own free of it (the program's
// pointer there is still p) would be reported as a double free, which stops the program. So
// large_resize holds a claim only inside the gate below. fork_prepare (api.cpp) closes the gate
// once it holds the stdio list lock and every region's locks (so no walk callback or stdio
// call is half way, which a claimer blocked at the gate might be inside) and before it takes
// the locks a claim needs (the arenas'), then waits for the claims in flight; a claim made
// while the gate is closed waits for the fork to finish. Each claim holds one of 32 slots a
// cache line apart (probed from a hash of its thread, so threads resizing blocks at once write
// no common line) tagged with its thread: fork_prepare waits for every slot but its own thread's
// (a signal handler that forks in the middle of its thread's claim cannot wait for it), and the
// child keeps only its own thread's slots, whose claims end there as in the parent. (A seq_cst
// tag then a seq_cst load of the gate on one side, a seq_cst close then seq_cst loads of the
// slots on the other: either the claimer sees the gate closed or fork_prepare sees the claim.)
// Claims were added by session 26 (run_resize) and 27; this gate by session 28.
namespace {
struct alignas(64) ClaimSlot {
  std::atomic<uintptr_t> tp{0};  // the claiming thread's pointer (thread_self); 0: free
};
constexpr unsigned kClaimSlots = 32;
ClaimSlot g_claims[kClaimSlots];
std::atomic<uint32_t> g_fork_gate{0};  // forks being prepared (closed while not 0)

SPACES_INLINE ClaimSlot& claim_enter() {
  uintptr_t me = thread_self();
  unsigned first = unsigned((me * 0x9e3779b97f4a7c15ull) >> 59);
  for (;;) {
    ClaimSlot* slot = nullptr;
    for (unsigned n = 0; slot == nullptr; n++) {
      ClaimSlot& c = g_claims[(first + n) % kClaimSlots];
      uintptr_t none = 0;
      if (c.tp.load(std::memory_order_relaxed) == 0 && c.tp.compare_exchange_strong(none, me, std::memory_order_seq_cst))
        slot = &c;
      else if (n % kClaimSlots == kClaimSlots - 1)
        os_yield();  // (32 claims in flight)
    }
    if (SPACES_LIKELY(g_fork_gate.load(std::memory_order_seq_cst) == 0)) return *slot;
    // (A signal handler's claim while its thread holds another: the fork waits for that one,
    // which ends only once the handler returns, so this one must not wait for the fork.)
    for (ClaimSlot& c : g_claims)
      if (&c != slot && c.tp.load(std::memory_order_relaxed) == me) return *slot;
    slot->tp.store(0, std::memory_order_seq_cst);
    while (g_fork_gate.load(std::memory_order_acquire) != 0) os_yield();
  }
}
SPACES_INLINE void claim_exit(ClaimSlot& slot) { slot.tp.store(0, std::memory_order_release); }
}  // namespace

void large_fork_wait() {
  g_fork_gate.fetch_add(1, std::memory_order_seq_cst);
  uintptr_t me = thread_self();
  for (unsigned k = 0; k < kClaimSlots;) {
    uintptr_t tp = g_claims[k].tp.load(std::memory_order_seq_cst);
    if (tp != 0 && tp != me) os_yield();
    else k++;
  }
}
void large_fork_open() { g_fork_gate.fetch_sub(1, std::memory_order_release); }
void large_fork_child() {
  uintptr_t me = thread_self();
  for (ClaimSlot& c : g_claims)
    if (c.tp.load(std::memory_order_relaxed) != me) c.tp.store(0, std::memory_order_relaxed);
  g_fork_gate.store(0, std::memory_order_relaxed);
}

// realloc of large block p (header h, of `kind`) to `size` without a copy, where it can be: a
// run resized in its arena (run_resize) or its span, a span's block moved out to a mapping of
// its own (span_to_direct), a direct mapping resized (direct_resize). The block is claimed first
// as large_free claims it (its kind exchanged for kSlabFree, then given back to the header the
// block ends with), so a free racing the realloc is reported as a double free instead of giving
// back granules or a mapping the resize is changing (once the block's pages have moved, its old
// pointer is no block at all: reported as an invalid free). The result, or NULL: not resized (the
// caller copies it; the claim is over), or `reported` (a free or realloc had claimed it first).
// The claim is held inside the fork gate above (claim_enter, claim_exit).
// (Until session 27 only run_resize claimed: span growth and direct_resize raced a free.)
SPACES_NOINLINE SPACES_HOT_TEXT void* large_resize(Slab* h, void* p, size_t size, uint8_t kind, bool* reported) {
  ClaimSlot& claims = claim_enter();
  if (!__atomic_compare_exchange_n(&h->kind, &kind, uint8_t(kSlabFree), false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
    claim_exit(claims);
    report_error(SPACES_ERROR_DOUBLE_FREE, p, "realloc of a freed block");
    *reported = true;
    return nullptr;
  }
  void* r = nullptr;
  Slab* nh = h;  // (the header after the resize: a moved mapping has a new one)
  size_t usable = h->user_size;
  if (kind == kSlabLargeRun && h->cls != kLargeInSpan) {
    if (run_resize(h, p, size)) r = p;
  } else if (kind == kSlabLargeRun) {
    // A span's run grows in place when the granules after it are free (a buffer grown by
    // doubling at the end of its span's used part, as a mapping would by mremap).
    size_t want = (reinterpret_cast<uintptr_t>(p) - h->map_base + size + kSlabSize - 1) >> kSlabShift;
    if (size > usable && want <= kSpanMaxRun &&
        arena_grow_span_run(reinterpret_cast<Slab*>(h->map_base), h->run_granules, want)) {
      g_large_bytes.fetch_add((want - h->run_granules) * kSlabSize, std::memory_order_relaxed);
      g_direct_bytes.fetch_add((want - h->run_granules) * kSlabSize, std::memory_order_relaxed);
      h->run_granules = want;  // (memcheck builds never get here: they move every block)
      h->user_size = h->map_base + want * kSlabSize - reinterpret_cast<uintptr_t>(p);
      r = p;
    } else {
      // Else its pages move to a mapping of their own: no copy, and no second copy resident
      // while the old one waits in its span to be reused or purged.
      // (Not below span_move_mib: a small block's copy costs less than the page faults of its
      // pages moved out of the span, which the next blocks would fault back in.)
      long long move_mib = option(kOpt_span_move_mib);
      if (size > usable && move_mib != 0 && usable >= size_t(move_mib) << 20 && (r = span_to_direct(h, p, size))) {
        claim_exit(claims);
        return r;  // (its header is the new mapping's, kSlabDirect; h's granules went back)
      }
    }
  } else if ((r = direct_resize(h, p, size)) != nullptr) {
    nh = head_of(r);
  }
  __atomic_store_n(&nh->kind, kind, __ATOMIC_RELEASE);  // (the claim is over)
  claim_exit(claims);
  return r;
}

SPACES_HOT_TEXT void* large_realloc(Slab* h, void* p, size_t size) {
  // (the kind is read once: what the checks pass is what large_resize claims)
  uint8_t kind = __atomic_load_n(&h->kind, __ATOMIC_ACQUIRE);
  if (SPACES_UNLIKELY(h->user_ptr != reinterpret_cast<uintptr_t>(p) || (kind != kSlabLargeRun && kind != kSlabDirect))) {
    if (h->user_ptr == reinterpret_cast<uintptr_t>(p) && kind == kSlabFree)  // (being freed or resized)
      report_error(SPACES_ERROR_DOUBLE_FREE, p, "realloc of a freed block");
    else
      report_error(SPACES_ERROR_INVALID_FREE, p, "invalid realloc (not a live block)");
    return nullptr;
  }
  size_t usable = h->user_size;
  // Fits and is not less than half used: keep it.
  // (Exactly the usable size stays too: an aligned block's usable size may be a small class.)
  if (!kMemcheckExactSizes && kind == kSlabLargeRun && realloc_in_place(size, usable, true)) return p;
  // (a direct mapping: an alignment above 4 MiB would not survive a move to a 4 MiB-aligned destination)
  if (!kMemcheckExactSizes &&
      (kind == kSlabLargeRun || (h->chunk == nullptr && size > (size_t(4) << 20) &&
                                 reinterpret_cast<uintptr_t>(p) - h->map_base <= kArenaSize))) {
    bool reported = false;
    if (void* r = large_resize(h, p, size, kind, &reported)) return r;
    if (reported) return nullptr;
  }
  void* n = spaces_malloc(size);
  if (n == nullptr) return nullptr;
  copy_block(n, p, size < usable ? size : usable);
  large_free(h, p);
  return n;
}

LargeTotals large_totals() {
  return LargeTotals{g_large_blocks.load(std::memory_order_relaxed), g_large_bytes.load(std::memory_order_relaxed),
                     g_direct_blocks.load(std::memory_order_relaxed), g_direct_bytes.load(std::memory_order_relaxed)};
}

}  // namespace spaces_core
