// override_tu.cpp - the override library's one translation unit: the core, then the forwarders.
//
// override.cpp includes only the public header; compiling it in the same unit as the core (a
// unity build, no link-time optimisation needed) lets the compiler inline spaces_malloc and
// spaces_free into malloc, operator new and operator delete. Built with the core's flags
// (-fno-semantic-interposition among them, which always_inline on exported functions needs).
// (GCC warns that an always_inline function not declared `inline` "might not be inlinable": it
// is, here; declaring them inline would change their linkage. The core's own build, spaces.cpp,
// still reports every attribute warning.)
#pragma GCC diagnostic ignored "-Wattributes"
#define SPACES_INLINE_FAST_API 1
#include "spaces.cpp"
#include "override.cpp"
