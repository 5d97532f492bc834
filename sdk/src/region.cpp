// region.cpp - the spaces_chunk_* functions every kind of region answers, and the one place that
// decides which kind a handle is.
//
// Two kinds of region stand behind a SpacesChunk handle: a Chunk (chunk.cpp: heaps and bump
// slabs in the process's arenas) and an attached shared region (ShAttach, shared.cpp: a mapped
// object several processes allocate in). Each implements the same small set of operations as
// static functions of a struct (ChunkRegion, SharedRegion), checked here at compile time
// (RegionOps), and region_call picks the struct from the handle:
//
//   operation     Chunk (ChunkRegion, chunk.cpp)          shared (SharedRegion, shared.cpp)
//   ------------- --------------------------------------- ------------------------------------
//   alloc         bump slab / heap / large, ceiling,       the region's lock, its size classes
//                   pressure handler, retry                  or granule runs, pressure handler
//   realloc       in place if it fits, else move           in place if it fits, else move
//   reset         every slab and large block released      every granule discarded
//   destroy       released, the record recycled            reported: close or unlink it
//   set_ceiling   any value (0: none)                      clamped to the capacity
//   ceiling, stats, walk, set_pressure: the record's own figures, blocks and handler
//
// What only one kind has stays in its file: creation, names, the allocation window, pages and
// thread capture for a Chunk (chunk.cpp); create/open/close/unlink and the root pointer for a
// shared region (shared.cpp). Frees need no handle: free.cpp finds the kind from the address.
// A handle that is neither (NULL, destroyed, closed, garbage that is not a record) gets the
// entry point's error value; destroy of such a handle, NULL excepted, is reported.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

#include <type_traits>

namespace spaces_core {

// The interface: Ops::Record is the record type; each operation takes it first.
template <class Ops>
struct RegionOps {
  using R = typename Ops::Record;
  static_assert(std::is_same<decltype(&Ops::alloc), void* (*)(R*, size_t, size_t, bool)>::value, "alloc(r, align, size, zero)");
  static_assert(std::is_same<decltype(&Ops::realloc), void* (*)(R*, void*, size_t)>::value, "realloc(r, live block, size)");
  static_assert(std::is_same<decltype(&Ops::reset), void (*)(R*)>::value, "reset(r)");
  static_assert(std::is_same<decltype(&Ops::destroy), void (*)(R*)>::value, "destroy(r)");
  static_assert(std::is_same<decltype(&Ops::set_ceiling), int (*)(R*, size_t)>::value, "set_ceiling(r, bytes)");
  static_assert(std::is_same<decltype(&Ops::ceiling), size_t (*)(R*)>::value, "ceiling(r)");
  static_assert(std::is_same<decltype(&Ops::stats), int (*)(R*, struct spaces_chunk_stats*)>::value, "stats(r, out)");
  static_assert(std::is_same<decltype(&Ops::walk), int (*)(R*, spaces_walk_fn, void*)>::value, "walk(r, fn, arg)");
  static_assert(std::is_same<decltype(&Ops::set_pressure), void (*)(R*, spaces_pressure_fn, void*)>::value, "set_pressure(r, fn, arg)");
  static_assert(__builtin_offsetof(R, magic) == 0, "the record starts with the region prefix");
  static constexpr bool ok = true;
};
static_assert(RegionOps<ChunkRegion>::ok && RegionOps<SharedRegion>::ok, "both kinds of region");

// The dispatch: f(Ops{}, record) for the handle's kind; false (f not called) for a handle of no
// region. A Chunk is told by its magic (chunk_checked); a shared region's handle by its address
// (an entry of the process's attachment table), never by memory another process can write.
template <class F>
bool region_call(SpacesChunk handle, F f) {
  if (Chunk* c = chunk_checked(handle)) {
    f(ChunkRegion(), c);
    return true;
  }
  if (ShAttach* at = sh_by_handle(handle)) {
    f(SharedRegion(), at);
    return true;
  }
  return false;
}

// The arguments every region allocation checks, whatever the kind: EINVAL for unknown flags or an
// alignment that is not a power of two, ENOMEM for what no region could hold.
bool region_args_ok(size_t align, size_t size, unsigned flags) {
  if ((flags & ~SPACES_ZERO) != 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return false;
  }
  if (size > kMaxRequest || align > kMaxAlign) {
    errno = ENOMEM;
    return false;
  }
  return true;
}

// (inline: heap profiling takes the allocating frame from chunk_alloc's return address)
SPACES_INLINE void* region_alloc(SpacesChunk handle, size_t align, size_t size, unsigned flags) {
  void* p = nullptr;
  if (!region_call(handle, [&](auto ops, auto* r) {
        if (region_args_ok(align, size, flags)) p = ops.alloc(r, align, size, (flags & SPACES_ZERO) != 0);
      }))
    errno = EINVAL;
  return p;
}

}  // namespace spaces_core

using namespace spaces_core;

extern "C" {

SPACES_API void* spaces_chunk_alloc(SpacesChunk handle, size_t size, unsigned flags) noexcept {
  // Fast path: a live exclusive Chunk, room in its window. No lock, no atomic read-modify-write:
  // one bounds test, a start mark, the bump (the SDK inlines the same spaces_window_alloc).
  // (magic and flags compared as one word, which the region prefix makes safe for a handle of
  // any kind: a shared region's or a destroyed chunk's never matches; size 0 takes the slow path;
  // an untracked chunk's window is the same, without marks)
  if (SPACES_LIKELY(handle != nullptr &&
                    (region_key(handle) & ~(uint64_t(SPACES_CHUNK_UNTRACKED) << 32)) == kExclusiveKey && flags == 0)) {
    Chunk* c = reinterpret_cast<Chunk*>(handle);
    if (void* p = spaces_window_alloc(&c->win, size)) {
      track_alloc(c, p, size, false);
      return p;
    }
  }
  return region_alloc(handle, 0, size, flags);
}

SPACES_API void* spaces_chunk_aligned_alloc(SpacesChunk handle, size_t align, size_t size, unsigned flags) noexcept {
  if (align == 0) {
    errno = EINVAL;
    return nullptr;
  }
  return region_alloc(handle, align, size, flags);
}

SPACES_API void* spaces_chunk_realloc(SpacesChunk handle, void* p, size_t size) noexcept {
  void* out = nullptr;
  if (!region_call(handle, [&](auto ops, auto* rec) {
        if (p == nullptr) {
          out = region_alloc(handle, 0, size, 0);
        } else if (size == 0) {
          spaces_free(p);
        } else if (size > kMaxRequest) {
          errno = ENOMEM;
        } else if (spaces_chunk_of(p) != handle) {
          report_error(SPACES_ERROR_INVALID_FREE, p, "chunk_realloc of a block of another chunk");
          errno = EINVAL;
        } else {
          out = ops.realloc(rec, p, size);
        }
      }))
    errno = EINVAL;
  return out;
}

SPACES_API void spaces_chunk_destroy(SpacesChunk handle) noexcept {
  if (!region_call(handle, [](auto ops, auto* r) { ops.destroy(r); }) && handle != nullptr)
    report_error(SPACES_ERROR_INVALID_FREE, handle, "destroy of an invalid or destroyed chunk");
}

SPACES_API void spaces_chunk_reset(SpacesChunk handle) noexcept {
  region_call(handle, [](auto ops, auto* r) { ops.reset(r); });
}

SPACES_API int spaces_chunk_set_ceiling(SpacesChunk handle, size_t bytes) noexcept {
  int r = -1;
  if (!region_call(handle, [&](auto ops, auto* rec) { r = ops.set_ceiling(rec, bytes); })) errno = EINVAL;
  return r;
}

SPACES_API size_t spaces_chunk_ceiling(SpacesChunk handle) noexcept {
  size_t r = 0;
  region_call(handle, [&](auto ops, auto* rec) { r = ops.ceiling(rec); });
  return r;
}

SPACES_API SpacesChunk spaces_chunk_of(const void* p) noexcept {
  if (p == nullptr) return nullptr;
  Slab* s = slab_find(p);
  if (s == nullptr) return shared_chunk_of(p);
  if (s->kind != kSlabSmall && s->kind != kSlabLargeRun && s->kind != kSlabDirect && s->kind != kSlabBump)
    return nullptr;
  return reinterpret_cast<SpacesChunk>(s->chunk);
}

SPACES_API int spaces_chunk_stats(SpacesChunk handle, struct spaces_chunk_stats* out) noexcept {
  size_t want;
  struct spaces_chunk_stats st;
  memset(&st, 0, sizeof st);
  // (a shared region whose lock could not be had reports zeros, as it always has)
  if (!stats_room(out, &want) || !region_call(handle, [&](auto ops, auto* rec) { ops.stats(rec, &st); })) {
    errno = EINVAL;
    return -1;
  }
  st.version = SPACES_CHUNK_STATS_VERSION;
  stats_copy_out(out, st, want);
  return 0;
}

SPACES_API int spaces_chunk_walk(SpacesChunk handle, spaces_walk_fn fn, void* arg) noexcept {
  int r = -1;
  if (fn == nullptr || !region_call(handle, [&](auto ops, auto* rec) { r = ops.walk(rec, fn, arg); })) errno = EINVAL;
  return r;
}

SPACES_API void spaces_chunk_set_pressure_handler(SpacesChunk handle, spaces_pressure_fn fn, void* arg) noexcept {
  region_call(handle, [&](auto ops, auto* r) { ops.set_pressure(r, fn, arg); });
}

}  // extern "C"
