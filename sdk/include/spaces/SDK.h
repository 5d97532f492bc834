//===- spaces/SDK.h - The whole C++ SDK ---------------------------*- C++ -*-===//
//
// Convenience header: Region, ScopedRegion, TypedPool<T>, Allocator<T>, MemoryResource,
// StringSaver.
// spaces/Format.h (fmt formatters) is separate because it needs fmt. (Until 0.1 this header was
// spaces/Spaces.h, a name that differs from the C API's spaces/spaces.h only in case: it broke
// installs on case-insensitive file systems, so it went without a forwarding header.)
//
//===----------------------------------------------------------------------===//
#ifndef SPACES_SPACES_SDK_H
#define SPACES_SPACES_SDK_H

#include "spaces/Allocator.h"
#include "spaces/Region.h"
#include "spaces/ScopedRegion.h"
#include "spaces/StringSaver.h"
#include "spaces/TypedPool.h"

#endif // SPACES_SPACES_SDK_H
