/* aligned_conformance: aligned_alloc, posix_memalign, memalign, spaces_aligned_alloc, valloc and
 * pvalloc return aligned, writable, non-overlapping blocks of at least the size asked, for every
 * power-of-two alignment up to 4 MiB; bad alignments give EINVAL exactly where C and POSIX say. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static void *volatile g_sink; /* defeats malloc/free elision, see malloc_conformance.c */

enum { FN_ALIGNED_ALLOC, FN_POSIX_MEMALIGN, FN_MEMALIGN, FN_SPACES, FN_COUNT };
void *__libc_memalign(size_t alignment, size_t size); /* glibc exports it; so does the override */

static const char *const fn_name[FN_COUNT] = {"aligned_alloc", "posix_memalign", "memalign",
                                              "spaces_aligned_alloc"};
static const size_t g_sizes[] = {0, 1, 8, 15, 16, 17, 100, 4096, 8193, 70000, 1 << 20, 3 << 20};
#define N_SIZES (sizeof g_sizes / sizeof g_sizes[0])

typedef struct {
  unsigned char *p;
  size_t usable;
  unsigned seed;
} block;

static void *allocate(int fn, size_t alignment, size_t size) {
  void *p = NULL;
  switch (fn) {
  case FN_ALIGNED_ALLOC: return aligned_alloc(alignment, size);
  case FN_MEMALIGN: return memalign(alignment, size);
  case FN_SPACES: return spaces_aligned_alloc(alignment, size);
  default:
    if (alignment < sizeof(void *)) { /* POSIX: not a multiple of sizeof(void *) */
      CHECK(posix_memalign(&p, alignment, size) == EINVAL);
      return NULL;
    }
    CHECK(posix_memalign(&p, alignment, size) == 0);
    return p;
  }
}

/* All blocks of one alignment stay live together, then every pattern is checked. */
static void test_alignment(size_t alignment) {
  block blocks[FN_COUNT * N_SIZES];
  size_t n = 0;
  for (int fn = 0; fn < FN_COUNT; ++fn)
    for (size_t i = 0; i < N_SIZES; ++i) {
      size_t size = g_sizes[i];
      check_set_context("%s(%zu, %zu)", fn_name[fn], alignment, size);
      unsigned char *p = allocate(fn, alignment, size);
      g_sink = p;
      if (fn == FN_POSIX_MEMALIGN && alignment < sizeof(void *)) continue;
      if (!CHECK(p != NULL)) continue;
      CHECK(check_aligned(p, alignment));
      if (size >= 16) CHECK(check_aligned(p, 16));
      CHECK(spaces_owns(p) == 1);
      size_t usable = malloc_usable_size(p);
      CHECK(usable >= size);
      CHECK(spaces_usable_size(p) == usable);
      blocks[n].p = p;
      blocks[n].usable = usable;
      blocks[n].seed = (unsigned)(alignment * 31 + size + (size_t)fn);
      check_fill(p, 0, usable, blocks[n].seed);
      ++n;
    }
  check_set_context("alignment %zu", alignment);
  size_t damaged = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!check_pattern(blocks[i].p, 0, blocks[i].usable, blocks[i].seed)) ++damaged;
    free(blocks[i].p);
  }
  CHECK(damaged == 0);
}

static void test_page_aligned(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 70000, 1 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    size_t size = sizes[i], rounded = (size + page - 1) / page * page;
    check_set_context("valloc(%zu)", size);
    unsigned char *v = valloc(size);
    g_sink = v;
    if (CHECK(v != NULL)) {
      CHECK(check_aligned(v, page));
      CHECK(spaces_owns(v) == 1);
      CHECK(malloc_usable_size(v) >= size);
      memset(v, 0x11, malloc_usable_size(v));
    }
    check_set_context("pvalloc(%zu)", size);
    unsigned char *pv = pvalloc(size);
    g_sink = pv;
    if (CHECK(pv != NULL)) {
      CHECK(check_aligned(pv, page));
      CHECK(spaces_owns(pv) == 1);
      CHECK(malloc_usable_size(pv) >= rounded);
      memset(pv, 0x22, rounded);
    }
    free(v);
    free(pv);
  }
  check_set_context("");
}

static void test_invalid(void) {
  /* posix_memalign: EINVAL returned, *out and errno untouched. */
  static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 4095, 65537};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    check_set_context("posix_memalign alignment %zu", bad[i]);
    void *out = (void *)(uintptr_t)0x1234;
    errno = EDOM;
    CHECK(posix_memalign(&out, bad[i], 64) == EINVAL);
    CHECK(out == (void *)(uintptr_t)0x1234);
    CHECK(errno == EDOM);
  }
  /* aligned_alloc / spaces_aligned_alloc: not a power of two (0 included) is NULL + EINVAL. */
  static const size_t npot[] = {0, 3, 24, 48, 100, 4097, ((size_t)1 << 20) + 4096};
  for (size_t i = 0; i < sizeof npot / sizeof npot[0]; ++i) {
    check_set_context("aligned_alloc alignment %zu", npot[i]);
    errno = 0;
    void *p = aligned_alloc(npot[i], 64);
    g_sink = p;
    CHECK(p == NULL);
    CHECK(errno == EINVAL);
    free(p);
    check_set_context("spaces_aligned_alloc alignment %zu", npot[i]);
    errno = 0;
    p = spaces_aligned_alloc(npot[i], 64);
    g_sink = p;
    CHECK(p == NULL);
    CHECK(errno == EINVAL);
    free(p);
  }
  /* memalign (and __libc_memalign) as glibc's: an alignment that is not a power of two is rounded
     up to one (0 and the small ones: malloc's 16), never refused; past SIZE_MAX / 2 + 1 it is EINVAL. */
  for (size_t i = 0; i < sizeof npot / sizeof npot[0]; ++i) {
    check_set_context("memalign alignment %zu", npot[i]);
    size_t want = 16;
    while (want < npot[i]) want <<= 1;
    void *p = memalign(npot[i], 1000);
    g_sink = p;
    if (CHECK(p != NULL)) {
      CHECK(check_aligned(p, want));
      CHECK(malloc_usable_size(p) >= 1000);
    }
    free(p);
    p = __libc_memalign(npot[i], 1000);
    g_sink = p;
    if (CHECK(p != NULL)) CHECK(check_aligned(p, want));
    free(p);
  }
  check_set_context("memalign alignment past SIZE_MAX / 2 + 1");
  errno = 0;
  g_sink = memalign(((size_t)1 << 63) + 1, 64);
  CHECK(g_sink == NULL);
  CHECK(errno == EINVAL);
  /* Impossible sizes, including ones that overflow once the alignment slack is added. */
  static volatile size_t huge[] = {SIZE_MAX, SIZE_MAX - 100, SIZE_MAX / 2, (size_t)PTRDIFF_MAX + 1};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; ++i)
    for (size_t a = 16; a <= ((size_t)1 << 22); a <<= 6) {
      check_set_context("alignment %zu size %zx", a, huge[i]);
      errno = 0;
      void *p = aligned_alloc(a, huge[i]);
      g_sink = p;
      CHECK(p == NULL && errno == ENOMEM);
      errno = 0;
      p = memalign(a, huge[i]);
      g_sink = p;
      CHECK(p == NULL && errno == ENOMEM);
      p = NULL;
      CHECK(posix_memalign(&p, a, huge[i]) == ENOMEM);
    }
  check_set_context("");
}

/* The header promises alignments up to 1 GiB: only address space, the page is touched once. */
static void test_huge_alignment(void) {
  static const size_t align[] = {(size_t)64 << 20, (size_t)1 << 30};
  for (int i = 0; i < 2; ++i) {
    check_set_context("spaces_aligned_alloc(%zu, 100)", align[i]);
    unsigned char *p = spaces_aligned_alloc(align[i], 100);
    g_sink = p;
    if (CHECK(p != NULL)) {
      CHECK(check_aligned(p, align[i]));
      CHECK(spaces_owns(p) == 1);
      memset(p, 0x33, 100);
    }
    free(p);
  }
  check_set_context("");
}

int main(void) {
  check_override_in_effect();
  for (size_t a = 1; a <= ((size_t)4 << 20); a *= 2) test_alignment(a);
  test_page_aligned();
  test_invalid();
  test_huge_alignment();
  return check_finish();
}
