// The core compiled into the unit-test binary (one TU, as in the library), so the tests below
// can reach spaces_core internals through internal.h. spaces_* are the API build's: malloc and
// GoogleTest's own allocations stay glibc's.
#include "../../sdk/src/spaces.cpp"
