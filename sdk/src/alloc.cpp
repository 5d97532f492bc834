// alloc.cpp - every allocation path of the malloc family: where each kind of block comes from.
//
// The request's size (and alignment) picks the block kind; the thread's heap (t_heap) picks the
// owner. The dispatch is in one place per entry point (malloc_fast, then heap_malloc_slow's
// first lines; heap_aligned_alloc for alignments above 16):
//
//   request                                    where it is served                file
//   ------------------------------------------ --------------------------------- -----------
//   size <= 8 KiB, the class's current slab    malloc_fast (inline: spaces_malloc, alloc.cpp
//     has a free block                           the override's malloc/new)
//   the thread's first allocation              heap_thread_init, then as below    heap.cpp
//   heap profiling on (a thread heap)          heap_malloc_slow: counted; a       heap.cpp,
//                                                sample from g_prof_heap          profile.cpp
//   the thread captured a region               chunk_alloc_routed (ceilings,      chunk.cpp
//     (spaces_thread_set_chunk)                  bump slabs stay the region's)
//   size <= 256 KiB (small and medium classes) heap_malloc_slow_rest: the class's heap.cpp
//                                                slab, else heap_refill
//   size > 256 KiB, or > 8 KiB in a region     large_alloc: a run of granules or  large.cpp
//                                                a mapping of its own (huge)
//   alignment > 16                             heap_aligned_alloc: a class whose  alloc.cpp
//                                                slots are aligned, an over-sized
//                                                slot, or a large block
//   a region's block (spaces_chunk_alloc ...)  region.cpp's dispatch: chunk.cpp   region.cpp
//                                                (bump slabs, heap) or shared.cpp
//
// realloc keeps a block in place when realloc_in_place says it fits (internal.h), keeps a
// region's block in its region, resizes a page box's block (pages.cpp, box_realloc) and a large
// block (an arena run, a span run, a direct mapping: large.cpp) in place where it can, reports a
// block freed already (realloc_of_freed_block), and otherwise allocates, copies and frees
// (free.cpp).
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

namespace spaces_core {

// The malloc fast path, forced inline into spaces_malloc and the override's malloc and operator
// new: left to the compiler's heuristics, it stopped being inlined into operator new when this
// translation unit grew (session 6: +6 instructions per new/delete pair, callgrind_pair.sh).
SPACES_INLINE void* malloc_fast(size_t size) {
  Heap* h = t_heap;
  if (SPACES_LIKELY(size <= kSmallMax)) {
    Slab* s = h->direct[(size + 7) >> 3];
    if (Block* b = slab_pop(s)) {
      track_alloc(s->chunk, b, size, false);
      return b;
    }
  }
  return heap_malloc_slow(h, size, false);
}

// A medium block of `rounded` bytes from a page box (page-aligned), or NULL when no box serves
// its class. Out of the hot text: alignments of 256 to 4096 on medium blocks are rare.
SPACES_NOINLINE static void* aligned_from_box(Heap* h, size_t rounded) {
  unsigned cls = medium_class_of(rounded);
  if (!box_class(cls)) return nullptr;  // (box_class: never while profiling)
  return box_alloc(heap_trade_if_bare(h), cls, rounded, false);  // (a free-first thread's first box: session 30)
}

// Alignment above 16 (a power of two) from heap h (a thread heap or a chunk's).
SPACES_HOT_TEXT void* heap_aligned_alloc(Heap* h, size_t align, size_t size) {
  if (align > kMaxAlign || size > kMaxRequest) return out_of_memory(size);  // also: no overflow below
  if (h->state == kHeapStatic) {
    // (past the thread's last round of key destructors: no heap, as heap_malloc_slow_rest)
    if (SPACES_UNLIKELY(heap_thread_past_destructors())) return heap_alloc_heapless(size, align, false);
    h = heap_thread_init();
    if (h == nullptr) return out_of_memory(size);
  }
  if (chunk_route_slow(h)) return chunk_alloc_routed(h, align, size, false);
  // Slots are naturally aligned when the slab's first block (256 bytes past a header that is
  // 128-aligned: internal.h, slab_colour) and the class size are both multiples of the alignment.
  size_t rounded = (size + align - 1) & ~(align - 1);
  if (rounded == 0) rounded = align;
  if (align <= kSlotAlignMax && rounded <= kSmallMax && class_size(class_of(rounded)) % align == 0)
    return heap_malloc_slow(h, rounded, false);
  // Medium classes are multiples of 1 KiB after the header: every slot is 128-aligned. A page
  // box's blocks (classes above one granule, by default) start on a page: alignments up to a page
  // come from a box when one serves the class, else from the large path below.
  if (rounded > kSmallMax && rounded <= kMediumMax && h->chunk == nullptr) {
    if (align <= kSlotAlignMax) return heap_malloc_slow(h, rounded, false);
    if (align <= kPageSize)
      if (void* p = aligned_from_box(h, rounded)) return p;
  }
  if (size + align <= kSmallMax) {
    // (heap profiling: counted, never sampled here - a sample's slab would accept interior
    // pointers once it held an aligned block; the sample passes to the thread's next allocation)
    if (SPACES_UNLIKELY(g_prof_on) && h->chunk == nullptr && prof_tick(size)) t_prof_left = 0;
    uint8_t* b = static_cast<uint8_t*>(heap_malloc_slow_rest(h, size + align - 1, false));
    if (b == nullptr) return nullptr;
    uintptr_t a = (reinterpret_cast<uintptr_t>(b) + align - 1) & ~(uintptr_t)(align - 1);
    if (a != reinterpret_cast<uintptr_t>(b)) {
      heap_mark_aligned(slab_of(b));
      track_free(h->chunk, b, b, 0);  // memcheck sees the aligned pointer, not the slot
      track_alloc(h->chunk, reinterpret_cast<void*>(a), size, false);
    }
    return reinterpret_cast<void*>(a);
  }
  size_t asked = size;
  if (size < kSmallMax + 1) size = kSmallMax + 1;  // the large path (usable: 12 KiB, not the run)
  void* p = large_alloc(size, align, false, h->chunk);
  if (SPACES_UNLIKELY(g_prof_on) && p && h->chunk == nullptr && h != &g_prof_heap && prof_tick(asked))
    prof_record(p, asked, nullptr, __builtin_return_address(0));
  return p;
}

}  // namespace spaces_core

using namespace spaces_core;

extern "C" {

SPACES_FAST_API void* spaces_malloc(size_t size) noexcept { return malloc_fast(size); }

SPACES_API void* spaces_calloc(size_t count, size_t size) noexcept {
  size_t total;
  if (SPACES_UNLIKELY(__builtin_mul_overflow(count, size, &total))) return out_of_memory(SIZE_MAX);
  if (total > kSmallMax) {
    Heap* h = t_heap;
    return heap_malloc_slow(h, total, true);
  }
  void* p = spaces_malloc(total);
  if (p) memset(p, 0, total);
  return p;
}

// The usable size of p, a pointer into s (checked_slab's answer), by s's kind; 0: reported as
// `what` (not a block start). A freed small or box block is not looked for (block_is_freed).
SPACES_INLINE size_t block_usable(Slab* s, const void* p, const char* what) {
  if (s->kind == kSlabSmall) return small_usable(s, p, what);
  if (s->kind == kSlabBump) return bump_usable(s, p);
  if (s->kind == kSlabPages) return box_usable(s, p, what);
  return large_usable(s, p);
}

SPACES_API SPACES_HOT_TEXT size_t spaces_usable_size(const void* p) noexcept {
  if (p == nullptr) return 0;
  size_t shared_size;
  if (slab_find(p) == nullptr && shared_usable(p, &shared_size)) return shared_size;
  Slab* s = checked_slab(p, "usable_size of a pointer that is not a live block");
  if (s == nullptr) return 0;
  size_t usable = block_usable(s, p, "usable_size of a pointer that is not a live block");
  // (a freed block too: on a free list, in a batch or cache, on a box's stack, as realloc checks)
  if (usable != 0 && (s->kind == kSlabSmall || s->kind == kSlabPages) &&
      block_is_freed(s, p, usable, "usable_size of a freed block"))
    return 0;
  return usable;
}

SPACES_API SPACES_HOT_TEXT void* spaces_realloc(void* p, size_t size) noexcept {
  if (p == nullptr) return spaces_malloc(size);
  if (size == 0) {  // glibc's behaviour, which programs preloading us were written against
    spaces_free(p);
    return nullptr;
  }
  if (size > kMaxRequest) return out_of_memory(size);  // (p stays valid and untouched)
  if (slab_find(p) == nullptr && shared_owns(p)) return shared_realloc_any(p, size);
  Slab* s = checked_slab(p, "realloc of a pointer that is not a live block");
  if (s == nullptr) return nullptr;
  if (s->chunk) return chunk_realloc_block(s->chunk, p, size);  // stays in its chunk
  if (s->kind != kSlabSmall && s->kind != kSlabPages)
    return SPACES_LIKELY(!s->sampled) ? large_realloc(s, p, size) : prof_large_realloc(s, p, size);
  size_t usable = s->kind == kSlabPages ? box_usable(s, p, "realloc of a pointer that is not a live block")
                                        : small_usable(s, p, "realloc of a pointer that is not a live block");
  if (usable == 0 || realloc_of_freed_block(s, p, usable)) return nullptr;  // (reported)
  if (!kMemcheckExactSizes && realloc_in_place(size, usable, false))
    return p;  // shrink in place unless it wastes half
  if (s->kind == kSlabPages)  // (grows into the free pages after it, or gives back its tail)
    if (void* r = box_realloc(s, p, medium_class_of(usable), size)) return r;
  void* n = spaces_malloc(size);
  if (n == nullptr) return nullptr;
  copy_block(n, p, size < usable ? size : usable);
  spaces_free(p);
  return n;
}

SPACES_API void* spaces_reallocarray(void* p, size_t count, size_t size) noexcept {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) return out_of_memory(SIZE_MAX);
  return spaces_realloc(p, total);
}

SPACES_API SPACES_HOT_TEXT void* spaces_aligned_alloc(size_t align, size_t size) noexcept {
  if (align == 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  if (align <= 16) return spaces_malloc(size < align ? align : size);
  return heap_aligned_alloc(t_heap, align, size);
}

// pvalloc: whole pages. The round-up is checked (SIZE_MAX used to wrap to a one-page block).
SPACES_API void* spaces_pvalloc(size_t size) noexcept {
  size_t page = os_page_size();
  if (size > kMaxRequest) return out_of_memory(size);
  size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
  return spaces_aligned_alloc(page, rounded);
}

SPACES_API int spaces_posix_memalign(void** out, size_t align, size_t size) noexcept {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  int saved = errno;
  void* p = spaces_aligned_alloc(align, size);
  if (p == nullptr) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

}  // extern "C"
