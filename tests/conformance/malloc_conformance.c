/* malloc_conformance: under the override, malloc/calloc/free/free_sized and the usable-size
 * queries keep the C17/POSIX contract: usable >= requested, 16-byte alignment, no two live blocks
 * overlap, ENOMEM for impossible sizes, calloc zeroes reused memory, and spaces_owns never lies. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"

/* C23; glibc 2.36 does not declare them, the override exports them. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

/* Storing into a volatile makes every pointer escape, so the compiler cannot drop a
 * malloc/free pair or fold a NULL test; volatile sizes keep -Walloc-size-larger-than quiet. */
static void *volatile g_sink;
static volatile size_t g_impossible[] = {SIZE_MAX, SIZE_MAX / 2, (size_t)PTRDIFF_MAX + 1,
                                         SIZE_MAX - 4095};
#define N_IMPOSSIBLE (sizeof g_impossible / sizeof g_impossible[0])
static int g_static_object;

typedef struct {
  unsigned char *p;
  size_t size, usable;
} block;

static int block_by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const block *)a)->p, y = (uintptr_t)((const block *)b)->p;
  return x < y ? -1 : x > y;
}

/* Checks a fresh block and fills every usable byte with the pattern of `seed`. */
static void check_fresh(block *b, unsigned seed) {
  check_set_context("size %zu", b->size);
  g_sink = b->p;
  if (!CHECK(b->p != NULL)) return;
  b->usable = malloc_usable_size(b->p);
  CHECK(b->usable >= b->size);
  CHECK(spaces_usable_size(b->p) == b->usable);
  CHECK(spaces_owns(b->p) == 1);
  if (b->size >= 16) CHECK(check_aligned(b->p, 16));
  else if (b->size >= 8) CHECK(check_aligned(b->p, 8));
  check_fill(b->p, 0, b->usable, seed);
}

/* Live blocks, sorted by address, must not share a byte of their usable ranges. */
static void check_disjoint(block *blocks, size_t n) {
  qsort(blocks, n, sizeof *blocks, block_by_address);
  size_t overlaps = 0;
  for (size_t i = 1; i < n; ++i)
    if (blocks[i - 1].p && blocks[i - 1].p + blocks[i - 1].usable > blocks[i].p) ++overlaps;
  check_set_context("%zu blocks", n);
  CHECK(overlaps == 0);
}

static void test_sizes(void) {
  static block blocks[4096];
  size_t n = 0;
  for (size_t s = 1; s <= 1024; ++s) blocks[n++].size = s;
  for (size_t s = 1025; s <= 20000; s += s < 4096 ? 3 : 17) blocks[n++].size = s;
  for (size_t i = 0; i < n; ++i) {
    blocks[i].p = malloc(blocks[i].size);
    check_fresh(&blocks[i], (unsigned)blocks[i].size);
  }
  check_disjoint(blocks, n);
  size_t damaged = 0; /* every pattern survives the allocation of all the others */
  for (size_t i = 0; i < n; ++i) {
    if (blocks[i].p && !check_pattern(blocks[i].p, 0, blocks[i].usable, (unsigned)blocks[i].size))
      ++damaged;
    free(blocks[i].p);
  }
  check_set_context("sizes 1..20000");
  CHECK(damaged == 0);

  static const size_t large[] = {8193, 65537, 1 << 20, 2 << 20, 5 << 20, 64 << 20};
  block live[6];
  for (int i = 0; i < 6; ++i) {
    live[i].size = large[i];
    live[i].p = malloc(large[i]);
    check_fresh(&live[i], (unsigned)large[i]);
  }
  check_disjoint(live, 6);
  for (int i = 0; i < 6; ++i) {
    check_set_context("size %zu", live[i].size);
    if (live[i].p) CHECK(check_pattern(live[i].p, 0, live[i].usable, (unsigned)live[i].size));
    free(live[i].p);
  }
  check_set_context("");
}

static void test_zero_size(void) {
  block b[64];
  for (int i = 0; i < 64; ++i) {
    b[i].p = malloc(0);
    g_sink = b[i].p;
    b[i].size = 0;
    b[i].usable = b[i].p ? malloc_usable_size(b[i].p) : 0;
    CHECK(b[i].p != NULL);
    CHECK(spaces_owns(b[i].p) == 1);
    if (b[i].p && b[i].usable) memset(b[i].p, 0x5A, b[i].usable);
  }
  qsort(b, 64, sizeof *b, block_by_address);
  for (int i = 1; i < 64; ++i) CHECK(b[i].p != b[i - 1].p); /* unique */
  for (int i = 0; i < 64; ++i) free(b[i].p);
  CHECK(malloc_usable_size(NULL) == 0);
  CHECK(spaces_usable_size(NULL) == 0);
}

static void test_impossible(void) {
  for (size_t i = 0; i < N_IMPOSSIBLE; ++i) {
    check_set_context("size %zx", g_impossible[i]);
    errno = 0;
    void *p = malloc(g_impossible[i]);
    g_sink = p;
    CHECK(p == NULL);
    CHECK(errno == ENOMEM);
  }
  static const size_t pairs[][2] = {{SIZE_MAX / 2, 3}, {3, SIZE_MAX / 2}, {SIZE_MAX, SIZE_MAX},
                                    {1, SIZE_MAX}, {(size_t)1 << 32, (size_t)1 << 32}};
  for (int i = 0; i < 5; ++i) {
    volatile size_t n = pairs[i][0], s = pairs[i][1];
    check_set_context("calloc(%zx, %zx)", (size_t)n, (size_t)s);
    errno = 0;
    void *p = calloc(n, s);
    g_sink = p;
    CHECK(p == NULL);
    CHECK(errno == ENOMEM);
  }
  check_set_context("");
  void *p = malloc(100); /* still healthy after the failures */
  CHECK(p != NULL && spaces_owns(p));
  free(p);
}

/* calloc must zero even a block that was just freed dirty (the fast path reuses it). */
static void test_calloc(void) {
  static const size_t sizes[] = {1, 8, 24, 100, 1000, 4096, 8192, 8193, 65536, 1 << 20, 5 << 20};
  static unsigned char *held[200];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    size_t n = sizes[i], count = n <= 65536 ? 200 : 4;
    check_set_context("calloc size %zu", n);
    for (size_t j = 0; j < count; ++j) {
      held[j] = malloc(n);
      if (held[j]) memset(held[j], 0xAA, malloc_usable_size(held[j]));
    }
    for (size_t j = 0; j < count; ++j) free(held[j]);
    size_t dirty = 0, failed = 0;
    for (size_t j = 0; j < count; ++j) {
      held[j] = j & 1 ? calloc(n, 1) : calloc(1, n);
      if (!held[j]) { ++failed; continue; }
      for (size_t k = 0; k < n; ++k)
        if (held[j][k]) { ++dirty; break; }
      memset(held[j], 0xAA, n); /* dirty again for the next round */
    }
    CHECK(failed == 0);
    CHECK(dirty == 0);
    for (size_t j = 0; j < count; ++j) free(held[j]);
  }
  check_set_context("");
  void *a = calloc(0, 16), *b = calloc(16, 0); /* zero size: unique, freeable */
  g_sink = a;
  g_sink = b;
  CHECK(a != NULL && b != NULL && a != b);
  free(a);
  free(b);
}

static int g_errors; /* calls of the error handler during test_free */
static void count_error(int error, void *addr, const char *message, void *arg) {
  (void)error, (void)addr, (void)message, (void)arg;
  ++g_errors;
}

static void test_free(void) {
  free(NULL);
  free_sized(NULL, 0);
  free_aligned_sized(NULL, 64, 0);
  spaces_set_error_handler(count_error, NULL); /* a correct size must never be reported */
  static const size_t sizes[] = {0, 1, 8, 16, 17, 100, 1024, 8192, 8193, 100000, 3 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    void *p = malloc(sizes[i]);
    g_sink = p;
    CHECK(p != NULL);
    free_sized(p, sizes[i]);
    for (size_t a = 8; a <= 65536; a *= 8) {
      size_t n = (sizes[i] + a - 1) / a * a; /* C11 aligned_alloc: a multiple of a */
      p = aligned_alloc(a, n);
      g_sink = p;
      CHECK(p != NULL && check_aligned(p, a));
      free_aligned_sized(p, a, n);
    }
  }
  CHECK(g_errors == 0);
  spaces_set_error_handler(NULL, NULL);
}

static void test_owns(void) {
  int local = 0;
  g_sink = &local;
  CHECK(spaces_owns(&local) == 0);
  CHECK(spaces_owns(&g_static_object) == 0);
  CHECK(spaces_owns((const void *)(uintptr_t)&test_owns) == 0);
  CHECK(spaces_owns(NULL) == 0);
  CHECK(spaces_owns((void *)1) == 0);
  CHECK(spaces_owns((void *)-1) == 0);
  CHECK(spaces_owns((void *)(uintptr_t)0x7fffffffffffULL) == 0);
  CHECK(spaces_owns((void *)(uintptr_t)0xffff800000000000ULL) == 0);
  /* A foreign mapping, 64 KiB-aligned so a slab-header lookup lands in it, full of junk. */
  size_t len = 256 << 10;
  unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (CHECK(m != MAP_FAILED)) {
    unsigned char *a = (unsigned char *)(((uintptr_t)m + 0xFFFF) & ~(uintptr_t)0xFFFF);
    memset(m, 0xFF, len / 2);
    CHECK(spaces_owns(m) == 0);
    CHECK(spaces_owns(a + 64) == 0);
    CHECK(spaces_owns(m + len - 1) == 0);
    munmap(m, len); /* and once unmapped, asking must not fault either */
    CHECK(spaces_owns(a + 64) == 0);
  }
  unsigned char *big = malloc(5 << 20), *small = malloc(100);
  g_sink = big;
  g_sink = small;
  if (CHECK(big != NULL && small != NULL)) {
    CHECK(spaces_owns(big) == 1);
    CHECK(spaces_owns(big + 1) == 1);
    CHECK(spaces_owns(big + (3 << 20) + 12345) == 1);
    CHECK(spaces_owns(big + (5 << 20) - 1) == 1);
    CHECK(spaces_owns(small + 99) == 1);
  }
  free(big);
  free(small);
}

int main(void) {
  check_override_in_effect();
  test_sizes();
  test_zero_size();
  test_impossible();
  test_calloc();
  test_free();
  test_owns();
  return check_finish();
}
