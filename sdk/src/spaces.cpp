// spaces.cpp - the whole allocator core as ONE translation unit.
//
// Build it alone with `c++ -O3 -pthread -fPIC -Isdk/include -c sdk/src/spaces.cpp`; the files it
// includes refuse to compile on their own. Order follows the layering in internal.h.
#define SPACES_CORE_TU 1
#include "internal.h"

#include "os.cpp"
#include "options.cpp"
#include "sizeclass.cpp"
#include "pagemap.cpp"
#include "arena.cpp"
#include "slab.cpp"
#include "heap.cpp"
#include "large.cpp"
#include "api.cpp"
#include "alloc.cpp"
#include "free.cpp"
#include "pages.cpp"
#include "chunk.cpp"
#include "shared.cpp"
#include "region.cpp"
#include "profile.cpp"
