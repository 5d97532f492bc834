//===- spaces/Region.h - An owning handle to a Spaces region -----*- C++ -*-===//
//
// Region owns one chunk (see spaces.h): a heap of its own that can be capped, walked, reset and
// destroyed in one call. It satisfies LLVM's allocator concept (Allocate/Deallocate by name), so
// `llvm::StringMap<V, spaces::Region &>` and `new (Region) T(...)` work.
//
// Threads: a Region created Exclusive (the default) may allocate from one thread at a time; a
// Concurrent one from any number at once. Blocks may be freed (Deallocate, spaces_free, free) from
// any thread. reset(), the destructor and forEachLive() need the allocating side to be quiet.
//
//===----------------------------------------------------------------------===//
#ifndef SPACES_REGION_H
#define SPACES_REGION_H

#include "spaces/spaces.h"

#include <cassert>
#include <cstddef>
#include <cstdio>
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

/// Called when an SDK allocation fails (out of memory, or at a region's ceiling), like the
/// handler of llvm::install_bad_alloc_error_handler. It must not return (abort, exit, or
/// longjmp out); if it does, the program is aborted.
using BadAllocHandler = void (*)(void *UserData, const char *Reason);

namespace detail {
struct BadAllocHandlerSlot {
  BadAllocHandler Fn = nullptr;
  void *UserData = nullptr;
};
inline BadAllocHandlerSlot TheBadAllocHandler; // (one per program: C++17 inline variable)

/// Allocation failure in the SDK, LLVM's report_bad_alloc_error convention: the installed
/// BadAllocHandler if any; else std::bad_alloc when exceptions are on; else (-fno-exceptions,
/// LLVM's default) one line on stderr, then abort(). tryAllocate() returns nullptr instead.
[[noreturn]] inline void reportBadAlloc() {
  const char *Reason = "spaces: allocation failed (out of memory or at the region's ceiling)";
  if (BadAllocHandler Fn = TheBadAllocHandler.Fn) {
    Fn(TheBadAllocHandler.UserData, Reason);
    std::fputs("spaces: the bad-alloc handler returned\n", stderr);
    std::abort();
  }
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
  throw std::bad_alloc();
#else
  std::fputs(Reason, stderr);
  std::fputc('\n', stderr);
  std::abort();
#endif
}
/// A programming error (a moved-from Region used, a pinned region moved): asserts in debug
/// builds; release builds print it and abort, as the error is not recoverable.
[[noreturn]] inline void programmingError(const char *What) {
  std::fputs("spaces: programming error: ", stderr);
  std::fputs(What, stderr);
  std::fputc('\n', stderr);
  assert(false && "spaces SDK programming error");
  std::abort();
}
/// Calls Fn(Block, Size); true to go on. Fn may return void (always go on) or bool (false stops).
template <typename FnT> bool visitBlock(FnT &Fn, void *Block, size_t Size) {
  if constexpr (std::is_same<decltype(Fn(Block, Size)), void>::value) {
    Fn(Block, Size);
    return true;
  } else {
    return static_cast<bool>(Fn(Block, Size));
  }
}
} // namespace detail

/// Installs \p Fn as the handler of SDK allocation failures (not thread-safe: install it at
/// start-up, as LLVM's). nullptr restores the default.
inline void installBadAllocHandler(BadAllocHandler Fn, void *UserData = nullptr) noexcept {
  detail::TheBadAllocHandler.Fn = Fn;
  detail::TheBadAllocHandler.UserData = UserData;
}
inline void removeBadAllocHandler() noexcept { installBadAllocHandler(nullptr, nullptr); }

class Region {
public:
  enum Mode : unsigned {
    Exclusive = SPACES_CHUNK_EXCLUSIVE, ///< one allocating thread, no synchronisation
    Concurrent = 0,                     ///< any thread may allocate concurrently
    /// Exclusive, and its small blocks are not recorded one by one (SPACES_CHUNK_UNTRACKED):
    /// bump-pointer speed, at the cost of forEachLive (returns false), Deallocate of those
    /// blocks (a no-op: memory comes back at reset or destruction) and usable sizes.
    Untracked = SPACES_CHUNK_EXCLUSIVE | SPACES_CHUNK_UNTRACKED,
    /// The 0.1 name of Concurrent ("shared" elsewhere means shared across processes).
    Shared [[deprecated("use Region::Concurrent")]] = 0,
  };

  /// Creates the region. On failure (out of memory) throws std::bad_alloc (or aborts when
  /// built without exceptions). \p Name is kept by pointer: pass a string literal.
  explicit Region(Mode M = Exclusive, const char *Name = "region")
      : Chunk(spaces_chunk_create(M)), Window(spaces_chunk_window(Chunk)), Name(Name) {
    if (!Chunk)
      detail::reportBadAlloc();
    spaces_chunk_set_name(Chunk, Name); // (in the JSON statistics)
  }
  explicit Region(const char *Name) : Region(Exclusive, Name) {}

  /// Destroys every block at once (time proportional to slabs, not blocks).
  ~Region() { spaces_chunk_destroy(Chunk); }

  /// Moves the region. Moving the region of a ScopedRegion (which is pinned to its scope) is a
  /// programming error.
  Region(Region &&Other) noexcept : Chunk(Other.Chunk), Window(Other.Window), Name(Other.Name) {
    if (Other.Pinned)
      detail::programmingError("a ScopedRegion's region cannot be moved out of its scope");
    Other.Chunk = nullptr;
    Other.Window = spaces_chunk_window(nullptr);  // (never has room)
  }
  Region &operator=(Region &&Other) noexcept {
    if (Other.Pinned || Pinned)
      detail::programmingError("a ScopedRegion's region cannot be moved out of its scope");
    if (this != &Other) {
      spaces_chunk_destroy(Chunk);
      Chunk = Other.Chunk;
      Window = Other.Window;
      Name = Other.Name;
      Other.Chunk = nullptr;
      Other.Window = spaces_chunk_window(nullptr);
    }
    return *this;
  }
  Region(const Region &) = delete;
  Region &operator=(const Region &) = delete;

  /// LLVM allocator concept. Returns memory aligned to \p Alignment (a power of two). At the
  /// ceiling or out of memory: throws std::bad_alloc (aborts without exceptions); use
  /// tryAllocate() to get nullptr instead.
  void *Allocate(size_t Size, size_t Alignment = alignof(std::max_align_t)) {
    if (Alignment <= 16)
      if (void *P = spaces_window_alloc(Window, Size)) // inline (see tryAllocate)
        return P;
    return allocateOrFail(Size, Alignment);
  }
  /// LLVM allocator concept (AllocatorBase): room for \p Num objects of type T, aligned for T.
  /// Not constructed: use create() or placement new.
  template <typename T> T *Allocate(size_t Num = 1) {
    if (Num > size_t(-1) / sizeof(T))
      detail::reportBadAlloc();
    return static_cast<T *>(Allocate(Num * sizeof(T), alignof(T)));
  }
  /// Like Allocate() but returns nullptr (errno = ENOMEM) at the ceiling.
  /// An Exclusive region's small blocks are carved inline from its allocation window (spaces.h),
  /// as a bump allocator does: a bounds test, one byte in the region's start-mark map (what walk
  /// and free read; none in an Untracked region), the bump. The library refills the window.
  void *tryAllocate(size_t Size, size_t Alignment = alignof(std::max_align_t)) noexcept {
    assert(Alignment != 0 && (Alignment & (Alignment - 1)) == 0 && "alignment must be a power of two");
    assert(Chunk && "use of a moved-from Region");
    if (Alignment > 16)
      return spaces_chunk_aligned_alloc(Chunk, Alignment, Size, 0);
    if (void *P = spaces_window_alloc(Window, Size)) // (16-aligned, whatever the size)
      return P;
    return allocateSlow(Size, Alignment);
  }
  /// The allocating thread's inline path, for code that wants it without the Region object
  /// (one pointer instead of two): see spaces_window_alloc in spaces.h.
  spaces_window *window() const noexcept { return Window; }
  /// LLVM allocator concept: frees one block now (any thread). Size and alignment are unused.
  /// (An Untracked region's bump block: nothing happens; its memory comes back at reset.)
  void Deallocate(const void *Ptr, size_t /*Size*/ = 0, size_t /*Alignment*/ = 0) noexcept {
    spaces_free(const_cast<void *>(Ptr));
  }
  /// LLVM allocator concept (AllocatorBase): frees what Allocate<T>(Num) returned. Does not run
  /// ~T.
  template <typename T> std::enable_if_t<!std::is_same<std::remove_cv_t<T>, void>::value> Deallocate(T *Ptr, size_t Num = 1) noexcept {
    Deallocate(static_cast<const void *>(Ptr), Num * sizeof(T), alignof(T));
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

  /// Calls \p Fn(void *Block, size_t UsableSize) for every live block; \p Fn returns void, or
  /// bool (false stops the walk). \p Fn may free the block it is given (hence not const). No
  /// thread may allocate in the region meanwhile. Returns false if \p Fn stopped the walk, or
  /// at once for an Untracked region (it cannot be walked).
  template <typename FnT> bool forEachLive(FnT &&Fn) {
    if (!Chunk)
      return true;  // (a moved-from region has no blocks)
    using Callable = std::remove_reference_t<FnT>;
    int R = spaces_chunk_walk(
        Chunk,
        [](void *Block, size_t Size, void *Arg) -> int {
          return detail::visitBlock(*static_cast<Callable *>(Arg), Block, Size) ? 0 : 1;
        },
        const_cast<void *>(static_cast<const void *>(&Fn)));
    return R == 0;
  }

  /// True if \p Ptr is a block of this region.
  bool owns(const void *Ptr) const noexcept { return Chunk && spaces_chunk_of(Ptr) == Chunk; }

  const char *name() const noexcept { return Name; }
  SpacesChunk handle() const noexcept { return Chunk; }

protected:
  /// ScopedRegion pins its region: moving it out of the scope is then a programming error.
  void pin() noexcept { Pinned = true; }

private:
  /// Out of line: the window has no room (the library refills it), or the region is not
  /// Exclusive, or the size is 0 or above the window's limit.
  __attribute__((noinline)) void *allocateSlow(size_t Size, size_t Alignment) noexcept {
    assert(Chunk && "use of a moved-from Region");
    // Blocks of 16 bytes and more are 16-aligned; smaller ones only 8: round tiny requests up.
    return spaces_chunk_alloc(Chunk, Size < Alignment ? Alignment : Size, 0);
  }
  __attribute__((noinline)) void *allocateOrFail(size_t Size, size_t Alignment) {
    void *P = tryAllocate(Size, Alignment);
    if (!P)
      detail::reportBadAlloc();
    return P;
  }

  SpacesChunk Chunk;
  spaces_window *Window; ///< Chunk's allocation window (never null)
  const char *Name;
  bool Pinned = false;
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
