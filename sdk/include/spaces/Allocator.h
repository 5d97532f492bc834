//===- spaces/Allocator.h - STL and std::pmr adaptors over a Region -*- C++ -*-===//
//
// spaces::Allocator<T>: a standard allocator whose memory comes from a Region (containers may
// outlive neither the region nor its reset()). spaces::MemoryResource: a
// std::pmr::memory_resource over a Region, for pmr containers. Both free blocks individually
// on deallocate (unlike std::pmr::monotonic_buffer_resource), and everything at once when the
// region is reset or destroyed.
//
// Threads: as the Region (an Exclusive region allocates from one thread at a time).
//
//===----------------------------------------------------------------------===//
#ifndef SPACES_ALLOCATOR_H
#define SPACES_ALLOCATOR_H

#include "spaces/Region.h"

#include <cstddef>
#include <cstring>
#include <limits>
#include <memory_resource>

namespace spaces {

template <typename T> class Allocator {
public:
  using value_type = T;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;

  explicit Allocator(Region &R) noexcept : R(&R) {}
  template <typename U> Allocator(const Allocator<U> &Other) noexcept : R(&Other.region()) {}

  /// Throws std::bad_alloc at the ceiling or when \p N is too large.
  T *allocate(size_t N) {
    if (N > std::numeric_limits<size_t>::max() / sizeof(T))
      detail::reportBadAlloc();
    return static_cast<T *>(R->Allocate(N * sizeof(T), alignof(T)));
  }
  void deallocate(T *P, size_t N) noexcept { R->Deallocate(P, N * sizeof(T), alignof(T)); }

  Region &region() const noexcept { return *R; }

  template <typename U> bool operator==(const Allocator<U> &O) const noexcept { return R == &O.region(); }
  template <typename U> bool operator!=(const Allocator<U> &O) const noexcept { return R != &O.region(); }

private:
  Region *R;
};

class MemoryResource final : public std::pmr::memory_resource {
public:
  explicit MemoryResource(Region &R) noexcept : R(R) {}
  Region &region() const noexcept { return R; }

private:
  void *do_allocate(size_t Bytes, size_t Alignment) override { return R.Allocate(Bytes, Alignment); }
  void do_deallocate(void *P, size_t Bytes, size_t Alignment) override { R.Deallocate(P, Bytes, Alignment); }
  // Two resources over one region can free each other's blocks, so they are equal. Knowing that
  // Other is a MemoryResource without RTTI (LLVM builds use -fno-rtti, where dynamic_cast does
  // not compile): the class is final, so Other is one exactly when it shares this object's
  // virtual table (the Itanium C++ ABI, which g++ and clang use on Linux, puts the vtable
  // pointer first in a polymorphic object).
  bool do_is_equal(const std::pmr::memory_resource &Other) const noexcept override {
    if (this == &Other)
      return true;
    const void *Mine, *Theirs;
    std::memcpy(&Mine, static_cast<const void *>(this), sizeof Mine);
    std::memcpy(&Theirs, static_cast<const void *>(&Other), sizeof Theirs);
    return Mine == Theirs && &static_cast<const MemoryResource &>(Other).R == &R;
  }

  Region &R;
};

} // namespace spaces

#endif // SPACES_ALLOCATOR_H
