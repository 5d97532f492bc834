//===- spaces/ScopedRegion.h - A region bound to a scope ----------*- C++ -*-===//
//
// ScopedRegion is a Region for one compiler pass: it lives on the stack, cannot be copied or
// moved, and destroys everything allocated in it when the scope ends.
//
// With CaptureHeap, the calling thread's plain malloc/new (and free of the region's blocks) are
// served by the region for the scope's lifetime, and restored at scope exit; scopes nest.
// HAZARD: with CaptureHeap, every allocation made on this thread inside the scope - by your
// code, the STL, any library - dies with the scope. Nothing allocated inside may escape it (no
// global caches, no strings stored in longer-lived objects, no thread_local initialisation).
// Only the creating thread may use a capturing scope, and it must end before the thread exits.
//
//===----------------------------------------------------------------------===//
#ifndef SPACES_SCOPEDREGION_H
#define SPACES_SCOPEDREGION_H

#include "spaces/Region.h"

namespace spaces {

class ScopedRegion : private Region {
public:
  enum Capture : bool { NoCapture = false, CaptureHeap = true };

  explicit ScopedRegion(Capture C = NoCapture, const char *Name = "scoped-region")
      : Region(Region::Exclusive, Name), Captured(C) {
    pin();  // region() hands out a Region&: moving it out of the scope aborts (asserts in debug)
    if (Captured)
      Previous = spaces_thread_set_chunk(handle());
  }
  ~ScopedRegion() {
    if (Captured)
      spaces_thread_set_chunk(Previous);
  }

  ScopedRegion(const ScopedRegion &) = delete;
  ScopedRegion &operator=(const ScopedRegion &) = delete;
  ScopedRegion(ScopedRegion &&) = delete;
  ScopedRegion &operator=(ScopedRegion &&) = delete;

  using Region::Allocate;
  using Region::create;
  using Region::Deallocate;
  using Region::forEachLive;
  using Region::handle;
  using Region::name;
  using Region::owns;
  using Region::Reset;
  using Region::reset;
  using Region::ceiling;
  using Region::setCeiling;
  using Region::setPressureHandler;
  using Region::stats;
  using Region::tryAllocate;

  /// The region, for APIs that take a Region& (allocators, containers). It is pinned to the
  /// scope: `Region R(std::move(S.region()))` is a programming error (abort; assert in debug).
  Region &region() noexcept { return *this; }
  bool capturesHeap() const noexcept { return Captured; }

private:
  bool Captured;
  SpacesChunk Previous = nullptr;
};

} // namespace spaces

#endif // SPACES_SCOPEDREGION_H
