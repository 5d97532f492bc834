//===- spaces/StringSaver.h - Copies of strings kept in a Region ---*- C++ -*-===//
//
// StringSaver is llvm::StringSaver over a Region instead of a BumpPtrAllocator: save() copies a
// string into the region, NUL-terminated, and returns a view of the copy, valid until the region
// is reset or destroyed. A compiler keeps identifier spellings, file names and diagnostics text
// this way; all of them go with one reset. (llvm::StringSaver itself is tied to
// BumpPtrAllocator, so it cannot take a Region.) For interning, put the strings in an
// llvm::StringMap<V, spaces::Region &> (docs/sdk.md).
//
// Threads: as the Region.
//
//===----------------------------------------------------------------------===//
#ifndef SPACES_STRINGSAVER_H
#define SPACES_STRINGSAVER_H

#include "spaces/Region.h"

#include <cstring>
#include <string_view>

namespace spaces {

class StringSaver {
public:
  explicit StringSaver(Region &R) noexcept : R(R) {}

  /// A NUL-terminated copy of \p S in the region. At the ceiling or out of memory: as
  /// Region::Allocate (std::bad_alloc, or the bad-alloc handler).
  std::string_view save(std::string_view S) {
    char *P = static_cast<char *>(R.Allocate(S.size() + 1, 1));
    if (!S.empty())
      std::memcpy(P, S.data(), S.size());
    P[S.size()] = 0;
    return std::string_view(P, S.size());
  }

  Region &region() const noexcept { return R; }

private:
  Region &R;
};

} // namespace spaces

#endif // SPACES_STRINGSAVER_H
