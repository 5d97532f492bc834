// override.cpp - the malloc & operator new/delete symbols of the override library.
//
// Only one-line forwarders onto the public spaces_* API live here: every semantic is in the
// core, where tests reach it without replacing libc, and this file includes nothing of the core
// but the public header (tests/core/layout_check.py fails otherwise). The only logic of its own
// is operator new's std::new_handler loop.
//
// Speed: the build compiles this file in one translation unit with the core (override_tu.cpp),
// which marks spaces_malloc and spaces_free always-inline there, so `malloc`, `operator new` and
// `operator delete` are the fast paths themselves, not calls to them (bench/micro/
// callgrind_pair.sh: a call layer costs 6 instructions per new+delete pair). Why forwarders and
// not symbol aliases (`malloc` as an alias of `spaces_malloc`): an alias gives the core's own
// calls of spaces_free the name `free`, which valgrind's memcheck intercepts by name in a
// statically linked program, so the core's internal frees became memcheck's; and an alias saves
// one instruction, which the inlined forwarders already save.
#include <spaces/spaces.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <malloc.h>
#include <new>

#ifndef SPACES_HOT_TEXT  // (os.h: the section that keeps the code every program runs together)
#define SPACES_HOT_TEXT
#endif
#define SPACES_EXPORT extern "C" __attribute__((visibility("default"))) SPACES_HOT_TEXT
// Entry points a program calls rarely, if ever (introspection, cfree): outside the hot window,
// which they would crowd (preload.hot_window). A program that calls one faults in one more 64 KiB
// stretch of the library's text, once.
#define SPACES_EXPORT_RARE extern "C" __attribute__((visibility("default")))
#define OVERRIDE_NOINLINE __attribute__((noinline))
#define OVERRIDE_INLINE inline __attribute__((always_inline))
#define OVERRIDE_LIKELY(x) __builtin_expect(!!(x), 1)

SPACES_EXPORT void* malloc(size_t n) noexcept { return spaces_malloc(n); }
SPACES_EXPORT void free(void* p) noexcept { spaces_free(p); }
SPACES_EXPORT void* calloc(size_t n, size_t s) noexcept { return spaces_calloc(n, s); }
SPACES_EXPORT void* realloc(void* p, size_t n) noexcept { return spaces_realloc(p, n); }
SPACES_EXPORT_RARE void* reallocarray(void* p, size_t n, size_t s) noexcept { return spaces_reallocarray(p, n, s); }
SPACES_EXPORT int posix_memalign(void** out, size_t a, size_t n) noexcept { return spaces_posix_memalign(out, a, n); }
SPACES_EXPORT void* aligned_alloc(size_t a, size_t n) noexcept { return spaces_aligned_alloc(a, n); }
// memalign as glibc's: an alignment that is not a power of two is rounded up to one (0 and the
// small ones give malloc's 16), where aligned_alloc and posix_memalign refuse it (EINVAL). Old
// programs pass such alignments; a drop-in must not fail them.
static void* memalign_glibc(size_t a, size_t n) noexcept {
  if (a > (SIZE_MAX >> 1) + 1) {
    errno = EINVAL;
    return nullptr;
  }
  if (a & (a - 1)) a = size_t(1) << (64 - __builtin_clzll(a));
  return spaces_aligned_alloc(a < 16 ? 16 : a, n);
}
SPACES_EXPORT void* memalign(size_t a, size_t n) noexcept { return memalign_glibc(a, n); }
SPACES_EXPORT void* valloc(size_t n) noexcept { return spaces_aligned_alloc(4096, n); }
SPACES_EXPORT void* pvalloc(size_t n) noexcept { return spaces_pvalloc(n); }
SPACES_EXPORT size_t malloc_usable_size(void* p) noexcept { return spaces_usable_size(p); }
SPACES_EXPORT void free_sized(void* p, size_t n) noexcept { spaces_free_sized(p, n); }
SPACES_EXPORT void free_aligned_sized(void* p, size_t a, size_t n) noexcept { spaces_free_aligned_sized(p, a, n); }
SPACES_EXPORT_RARE void cfree(void* p) noexcept { spaces_free(p); }
SPACES_EXPORT_RARE int malloc_trim(size_t) noexcept { return spaces_collect(1), 1; }
// glibc's introspection calls, answered with Spaces' figures (spaces.h)
static_assert(sizeof(struct spaces_mallinfo) == sizeof(struct mallinfo2), "mallinfo2's layout");
SPACES_EXPORT_RARE struct mallinfo2 mallinfo2() noexcept {
  struct mallinfo2 m;
  spaces_mallinfo(reinterpret_cast<struct spaces_mallinfo*>(&m));
  return m;
}
SPACES_EXPORT_RARE struct mallinfo mallinfo() noexcept {  // (int fields: saturated)
  struct mallinfo2 m = mallinfo2();
  auto sat = [](size_t v) { return v > size_t(INT_MAX) ? INT_MAX : int(v); };
  struct mallinfo r;
  r.arena = sat(m.arena), r.ordblks = sat(m.ordblks), r.smblks = sat(m.smblks), r.hblks = sat(m.hblks);
  r.hblkhd = sat(m.hblkhd), r.usmblks = sat(m.usmblks), r.fsmblks = sat(m.fsmblks);
  r.uordblks = sat(m.uordblks), r.fordblks = sat(m.fordblks), r.keepcost = sat(m.keepcost);
  return r;
}
SPACES_EXPORT_RARE void malloc_stats() noexcept { spaces_malloc_stats(); }
SPACES_EXPORT_RARE int malloc_info(int options, FILE* fp) noexcept {
  if (fp == nullptr) return -1;
  char buf[16384];  // (the XML of every size class fits; no allocation before the write)
  long n = spaces_malloc_info(options, buf, sizeof buf);
  if (n < 0) return -1;
  size_t len = size_t(n) < sizeof buf ? size_t(n) : sizeof buf - 1;
  return fwrite(buf, 1, len, fp) == len ? 0 : -1;
}
SPACES_EXPORT_RARE int mallopt(int param, int value) noexcept { return spaces_mallopt(param, value); }
// glibc-internal names some programs and libraries call directly
SPACES_EXPORT void* __libc_malloc(size_t n) noexcept { return spaces_malloc(n); }
SPACES_EXPORT void __libc_free(void* p) noexcept { spaces_free(p); }
SPACES_EXPORT void* __libc_calloc(size_t n, size_t s) noexcept { return spaces_calloc(n, s); }
SPACES_EXPORT void* __libc_realloc(void* p, size_t n) noexcept { return spaces_realloc(p, n); }
SPACES_EXPORT void* __libc_memalign(size_t a, size_t n) noexcept { return memalign_glibc(a, n); }

// libstdc++ is referenced weakly, so a C program links libspaces.a with --whole-archive and
// -lpthread alone; in a C++ program these resolve to the real functions.
namespace std {
extern new_handler get_new_handler() noexcept __attribute__((weak));
extern void __throw_bad_alloc() __attribute__((weak, noreturn));
}  // namespace std

namespace {
// std::new_handler semantics: retry after each handler call; no handler: throw bad_alloc (or
// return nullptr for the nothrow forms). This file is built without exception tables, so a
// handler that throws propagates straight to the caller of new (for the nothrow forms too: a
// deviation from the standard, which would return nullptr).
OVERRIDE_NOINLINE void* new_slow(size_t n, size_t align, bool nothrow) {
  for (;;) {
    void* p = align ? spaces_aligned_alloc(align, n) : spaces_malloc(n);
    if (p) return p;
    std::new_handler h = &std::get_new_handler ? std::get_new_handler() : nullptr;
    if (h == nullptr) {
      if (nothrow) return nullptr;
      if (&std::__throw_bad_alloc) std::__throw_bad_alloc();
      abort();
    }
    h();
  }
}
OVERRIDE_INLINE void* new_impl(size_t n) {
  void* p = spaces_malloc(n);  // (inlined: see the top)
  return OVERRIDE_LIKELY(p != nullptr) ? p : new_slow(n, 0, false);
}
OVERRIDE_INLINE void* new_aligned(size_t n, std::align_val_t a) {
  void* p = spaces_aligned_alloc(size_t(a), n);
  return OVERRIDE_LIKELY(p != nullptr) ? p : new_slow(n, size_t(a), false);
}
}  // namespace

#define SPACES_NEW __attribute__((visibility("default"))) SPACES_HOT_TEXT
SPACES_NEW void* operator new(size_t n) { return new_impl(n); }
SPACES_NEW void* operator new[](size_t n) { return new_impl(n); }
SPACES_NEW void* operator new(size_t n, const std::nothrow_t&) noexcept { void* p = spaces_malloc(n); return p ? p : new_slow(n, 0, true); }
SPACES_NEW void* operator new[](size_t n, const std::nothrow_t&) noexcept { void* p = spaces_malloc(n); return p ? p : new_slow(n, 0, true); }
SPACES_NEW void* operator new(size_t n, std::align_val_t a) { return new_aligned(n, a); }
SPACES_NEW void* operator new[](size_t n, std::align_val_t a) { return new_aligned(n, a); }
SPACES_NEW void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { void* p = spaces_aligned_alloc(size_t(a), n); return p ? p : new_slow(n, size_t(a), true); }
SPACES_NEW void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { void* p = spaces_aligned_alloc(size_t(a), n); return p ? p : new_slow(n, size_t(a), true); }
SPACES_NEW void operator delete(void* p) noexcept { spaces_free(p); }
SPACES_NEW void operator delete[](void* p) noexcept { spaces_free(p); }
SPACES_NEW void operator delete(void* p, const std::nothrow_t&) noexcept { spaces_free(p); }
SPACES_NEW void operator delete[](void* p, const std::nothrow_t&) noexcept { spaces_free(p); }
SPACES_NEW void operator delete(void* p, size_t n) noexcept { spaces_free_sized(p, n); }
SPACES_NEW void operator delete[](void* p, size_t n) noexcept { spaces_free_sized(p, n); }
SPACES_NEW void operator delete(void* p, std::align_val_t) noexcept { spaces_free(p); }
SPACES_NEW void operator delete[](void* p, std::align_val_t) noexcept { spaces_free(p); }
SPACES_NEW void operator delete(void* p, size_t n, std::align_val_t a) noexcept { spaces_free_aligned_sized(p, size_t(a), n); }
SPACES_NEW void operator delete[](void* p, size_t n, std::align_val_t a) noexcept { spaces_free_aligned_sized(p, size_t(a), n); }
SPACES_NEW void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { spaces_free(p); }
SPACES_NEW void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { spaces_free(p); }
