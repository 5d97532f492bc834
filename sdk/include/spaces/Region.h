//===- spaces/Region.h - An owning handle to a Spaces region -----*- C++ -*-===//
//
// Region owns one chunk (see spaces.h): a heap of its own that can be capped, walked, reset and
// destroyed in one call. It satisfies LLVM's allocator concept (Allocate/Deallocate by name), so
// `llvm::StringMap<V, spaces::Region &>` and `new (Region) T(...)` work.
//
// Threads: a Region created Exclusive (the default) may allocate from one thread at a time; a
// Shared one from any number at once. Blocks may be freed (Deallocate, spaces_free, free) from
// any thread. reset(), the destructor and forEachLive() need the allocating side to be quiet.
//
//===----------------------------------------------------------------------===//
#ifndef SPACES_REGION_H
#define SPACES_REGION_H

#include "spaces/spaces.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace spaces {

/// Statistics of one region (live blocks and bytes, footprint, ceiling...).
struct RegionStats : ::spaces_chunk_stats {
  // (the struct shares its name with a function: zero it without naming its constructor)
  RegionStats() {
    std::memset(static_cast<struct ::spaces_chunk_stats *>(this), 0, sizeof(struct ::spaces_chunk_stats));
    size = sizeof(struct ::spaces_chunk_stats);
  }
};

namespace detail {
/// Allocation failure in the SDK: std::bad_alloc when exceptions are on, else abort().
[[noreturn]] inline void reportBadAlloc() {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
  throw std::bad_alloc();
#else
  std::abort();
#endif
}
} // namespace detail

class Region {
public:
  enum Mode : unsigned {
    Exclusive = SPACES_CHUNK_EXCLUSIVE, ///< one allocating thread, no synchronisation
    Shared = 0,                         ///< any thread may allocate concurrently
  };

  /// Creates the region. On failure (out of memory) throws std::bad_alloc (or aborts when
  /// built without exceptions). \p Name is kept by pointer: pass a string literal.
  explicit Region(Mode M = Exclusive, const char *Name = "region")
      : Chunk(spaces_chunk_create(M)), Name(Name) {
    if (!Chunk)
      detail::reportBadAlloc();
  }
  explicit Region(const char *Name) : Region(Exclusive, Name) {}

  /// Destroys every block at once (time proportional to slabs, not blocks).
  ~Region() { spaces_chunk_destroy(Chunk); }

  Region(Region &&Other) noexcept : Chunk(Other.Chunk), Name(Other.Name) { Other.Chunk = nullptr; }
  Region &operator=(Region &&Other) noexcept {
    if (this != &Other) {
      spaces_chunk_destroy(Chunk);
      Chunk = Other.Chunk;
      Name = Other.Name;
      Other.Chunk = nullptr;
    }
    return *this;
  }
  Region(const Region &) = delete;
  Region &operator=(const Region &) = delete;

  /// LLVM allocator concept. Returns memory aligned to \p Alignment (a power of two). At the
  /// ceiling or out of memory: throws std::bad_alloc (aborts without exceptions); use
  /// tryAllocate() to get nullptr instead.
  void *Allocate(size_t Size, size_t Alignment = alignof(std::max_align_t)) {
    void *P = tryAllocate(Size, Alignment);
    if (!P)
      detail::reportBadAlloc();
    return P;
  }
  /// Like Allocate() but returns nullptr (errno = ENOMEM) at the ceiling.
  void *tryAllocate(size_t Size, size_t Alignment = alignof(std::max_align_t)) noexcept {
    if (Alignment > 16)
      return spaces_chunk_aligned_alloc(Chunk, Alignment, Size, 0);
    // Blocks of 16 bytes and more are 16-aligned; smaller ones only 8: round tiny requests up.
    return spaces_chunk_alloc(Chunk, Size < Alignment ? Alignment : Size, 0);
  }
  /// LLVM allocator concept: frees one block now (any thread). Size and alignment are unused.
  void Deallocate(const void *Ptr, size_t /*Size*/ = 0, size_t /*Alignment*/ = 0) noexcept {
    spaces_free(const_cast<void *>(Ptr));
  }
  /// LLVM allocator concept: same as reset().
  void Reset() noexcept { reset(); }

  /// Constructs a T in the region. Destructors are not run by reset()/destruction: use
  /// TypedPool<T> for objects that need them.
  template <typename T, typename... ArgTs> T *create(ArgTs &&...Args) {
    void *Mem = Allocate(sizeof(T), alignof(T));
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    try {
      return new (Mem) T(std::forward<ArgTs>(Args)...);
    } catch (...) {
      Deallocate(Mem);  // a throwing constructor gives the block back
      throw;
    }
#else
    return new (Mem) T(std::forward<ArgTs>(Args)...);
#endif
  }

  /// Frees every block, keeps the region (and a few slabs) for reuse.
  void reset() noexcept { spaces_chunk_reset(Chunk); }

  /// Caps the footprint; 0 removes the cap. Returns false for an invalid region.
  bool setCeiling(size_t Bytes) noexcept { return spaces_chunk_set_ceiling(Chunk, Bytes) == 0; }
  size_t ceiling() const noexcept { return spaces_chunk_ceiling(Chunk); }

  /// Called before an allocation fails at the ceiling; return true after freeing memory to have
  /// it retried once. \p Fn must outlive the region or be cleared with nullptr.
  void setPressureHandler(spaces_pressure_fn Fn, void *Arg) noexcept {
    spaces_chunk_set_pressure_handler(Chunk, Fn, Arg);
  }

  RegionStats stats() const noexcept {
    RegionStats S;
    ::spaces_chunk_stats(Chunk, static_cast<struct ::spaces_chunk_stats *>(&S));
    return S;
  }

  /// Calls \p Fn(void *Block, size_t UsableSize) for every live block. \p Fn may free the block
  /// it is given. No thread may allocate in the region meanwhile.
  template <typename FnT> void forEachLive(FnT &&Fn) const {
    spaces_chunk_walk(
        Chunk,
        [](void *Block, size_t Size, void *Arg) -> int {
          (*static_cast<std::remove_reference_t<FnT> *>(Arg))(Block, Size);
          return 0;
        },
        const_cast<void *>(static_cast<const void *>(&Fn)));
  }

  /// True if \p Ptr is a block of this region.
  bool owns(const void *Ptr) const noexcept { return Chunk && spaces_chunk_of(Ptr) == Chunk; }

  const char *name() const noexcept { return Name; }
  SpacesChunk handle() const noexcept { return Chunk; }

private:
  SpacesChunk Chunk;
  const char *Name;
};

} // namespace spaces

/// `new (Region) T(...)`: placement allocation in a region (LLVM-style).
inline void *operator new(size_t Size, spaces::Region &R) {
  return R.Allocate(Size, alignof(std::max_align_t));
}
/// Called only if T's constructor throws in `new (Region) T(...)`.
inline void operator delete(void *Ptr, spaces::Region &R) noexcept { R.Deallocate(Ptr); }
/// `new (Region) T(...)` for over-aligned T (C++17 passes the alignment).
inline void *operator new(size_t Size, std::align_val_t Align, spaces::Region &R) {
  return R.Allocate(Size, static_cast<size_t>(Align));
}
inline void operator delete(void *Ptr, std::align_val_t, spaces::Region &R) noexcept { R.Deallocate(Ptr); }

#endif // SPACES_REGION_H
