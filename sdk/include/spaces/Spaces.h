//===- spaces/Spaces.h - The whole C++ SDK ------------------------*- C++ -*-===//
//
// Convenience header: Region, ScopedRegion, TypedPool<T>, Allocator<T>, MemoryResource.
// spaces/Format.h (fmt formatters) is separate because it needs fmt.
//
//===----------------------------------------------------------------------===//
#ifndef SPACES_SPACES_SDK_H
#define SPACES_SPACES_SDK_H

#include "spaces/Allocator.h"
#include "spaces/Region.h"
#include "spaces/ScopedRegion.h"
#include "spaces/TypedPool.h"

#endif // SPACES_SPACES_SDK_H
