/* realloc_conformance: realloc and reallocarray keep contents across every size-class boundary
 * up to 64 KiB and across large sizes up to 64 MiB, in both directions; impossible sizes fail
 * with ENOMEM and leave the original block intact; realloc(NULL, n) is malloc(n) and realloc(p, 0)
 * frees p and returns NULL (glibc's choice). */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void *volatile g_sink; /* defeats malloc/free elision, see malloc_conformance.c */
static volatile size_t g_impossible[] = {SIZE_MAX, SIZE_MAX / 2, (size_t)PTRDIFF_MAX + 1,
                                         SIZE_MAX - 4095};
#define N_IMPOSSIBLE (sizeof g_impossible / sizeof g_impossible[0])

/* Launders p through the sink, so that using a block after a realloc that must fail does not
 * draw -Wuse-after-free. */
static void *opaque(void *p) {
  g_sink = p;
  return g_sink;
}

static size_t g_sizes[1024];
static size_t g_nsizes;

/* Every plausible class boundary: 2^k, 2^k + i * 2^k / 8 (the 12.5 % steps), each -1, 0, +1;
 * then large sizes around the huge-page threshold, up to 64 MiB. Ascending, no duplicates. */
static void build_sizes(void) {
  g_sizes[g_nsizes++] = 1;
  for (size_t base = 8; base < 65536; base *= 2)
    for (size_t i = 0; i < 8; ++i)
      for (int d = -1; d <= 1; ++d) {
        size_t s = base + i * base / 8 + (size_t)(ptrdiff_t)d;
        if (s > g_sizes[g_nsizes - 1]) g_sizes[g_nsizes++] = s;
      }
  static const size_t large[] = {65535, 65536, 65537, 100000, 1 << 20, (2 << 20) - 1, 2 << 20,
                                 (2 << 20) + 1, 5 << 20, 16 << 20, 64 << 20};
  for (size_t i = 0; i < sizeof large / sizeof large[0]; ++i)
    if (large[i] > g_sizes[g_nsizes - 1]) g_sizes[g_nsizes++] = large[i];
}

/* Resizes *p from `old` to `size`: the first min(old, size) bytes must survive, then the rest is
 * filled so the pattern always covers [0, size). Returns 0 if realloc failed. */
static int resize(unsigned char **p, size_t old, size_t size, unsigned seed) {
  check_set_context("realloc %zu -> %zu", old, size);
  unsigned char *q = realloc(*p, size);
  g_sink = q;
  if (!CHECK(q != NULL)) return 0;
  *p = q;
  CHECK(spaces_owns(q) == 1);
  CHECK(malloc_usable_size(q) >= size);
  if (size >= 16) CHECK(check_aligned(q, 16));
  CHECK(check_pattern(q, 0, old < size ? old : size, seed));
  if (size > old) check_fill(q, old, size, seed);
  return 1;
}

/* Small neighbours allocated around the chain: a realloc that writes out of bounds hits them. */
static unsigned char *g_neighbour[64];
static void neighbours_alloc(void) {
  for (unsigned i = 0; i < 64; ++i) {
    g_neighbour[i] = malloc(8 + i * 24);
    if (g_neighbour[i]) check_fill(g_neighbour[i], 0, 8 + i * 24, 1000 + i);
  }
}
static void neighbours_check_free(void) {
  check_set_context("neighbours");
  for (unsigned i = 0; i < 64; ++i) {
    if (CHECK(g_neighbour[i] != NULL))
      CHECK(check_pattern(g_neighbour[i], 0, 8 + i * 24, 1000 + i));
    free(g_neighbour[i]);
  }
}

static void test_chains(void) {
  neighbours_alloc();
  unsigned char *p = realloc(NULL, 1); /* realloc(NULL, n) is malloc(n) */
  g_sink = p;
  if (!CHECK(p != NULL && spaces_owns(p) == 1)) return;
  check_fill(p, 0, 1, 7);
  size_t cur = 1;
  for (size_t i = 1; i < g_nsizes; ++i) /* grow through every boundary */
    if (resize(&p, cur, g_sizes[i], 7)) cur = g_sizes[i];
  for (size_t i = g_nsizes - 1; i-- > 0;) /* and shrink back */
    if (resize(&p, cur, g_sizes[i], 7)) cur = g_sizes[i];
  /* Random jumps (up to 5 MiB) between boundaries: small <-> large both ways. */
  unsigned x = 12345;
  for (int step = 0; step < 400; ++step) {
    x = x * 1103515245u + 12345u;
    size_t s = g_sizes[(x >> 8) % (g_nsizes - 2)];
    if (resize(&p, cur, s, 7)) cur = s;
  }
  free(p);
  neighbours_check_free();
  check_set_context("");
}

static void test_null_and_zero(void) {
  void *p = realloc(NULL, 100);
  g_sink = p;
  CHECK(p != NULL && spaces_owns(p) == 1 && malloc_usable_size(p) >= 100);
  free(p);
  p = realloc(NULL, 0); /* malloc(0): a unique, freeable pointer */
  g_sink = p;
  CHECK(p != NULL);
  free(p);
  /* realloc(p, 0): C17 lets it return NULL (p freed) or a minimum block; Spaces does what glibc
   * does, which programs preloading it were written against: p is freed and the result is NULL
   * (spaces_realloc; the fuzz model checks the same). Freed means freed: a large original leaves
   * the large-block count, a small one is the next block of its class this thread gets (a
   * thread's own frees are reused first). Small and large originals. */
  static const size_t from[] = {16, 1000, 1 << 20};
  for (int i = 0; i < 3; ++i) {
    check_set_context("realloc(%zu-byte block, 0)", from[i]);
    struct spaces_stats before;
    memset(&before, 0, sizeof before);
    CHECK(spaces_stats(&before) == 0);
    p = malloc(from[i]);
    g_sink = p;
    if (!CHECK(p != NULL)) continue;
    uintptr_t was = (uintptr_t)p;
    void *q = realloc(p, 0);
    g_sink = q;
    CHECK(q == NULL);
    if (from[i] > 256 * 1024) {
      struct spaces_stats after;
      memset(&after, 0, sizeof after);
      CHECK(spaces_stats(&after) == 0);
      CHECK(after.large_blocks == before.large_blocks);
    } else {
      void *again = malloc(from[i]);
      g_sink = again;
      CHECK((uintptr_t)again == was);
      free(again);
    }
    free(q); /* (NULL: a no-op) */
  }
  check_set_context("");
}

/* A failing resize must leave the block exactly as it was, still owned and still freeable. */
static void test_impossible(void) {
  static const size_t from[] = {100, 5000, 1 << 20};
  for (int i = 0; i < 3; ++i) {
    unsigned char *p = malloc(from[i]);
    g_sink = p;
    if (!CHECK(p != NULL)) continue;
    size_t usable = malloc_usable_size(p);
    check_fill(p, 0, from[i], 99);
    for (size_t k = 0; k < N_IMPOSSIBLE; ++k) {
      check_set_context("realloc(%zu-byte block, %zx)", from[i], g_impossible[k]);
      errno = 0;
      void *q = realloc(opaque(p), g_impossible[k]);
      g_sink = q;
      CHECK(q == NULL);
      CHECK(errno == ENOMEM);
    }
    volatile size_t n = SIZE_MAX / 2, s = 3;
    check_set_context("reallocarray(%zu-byte block, SIZE_MAX/2, 3)", from[i]);
    errno = 0;
    void *q = reallocarray(opaque(p), n, s);
    g_sink = q;
    CHECK(q == NULL);
    CHECK(errno == ENOMEM);
    CHECK(check_pattern(p, 0, from[i], 99));
    CHECK(malloc_usable_size(p) == usable);
    CHECK(spaces_owns(p) == 1);
    q = reallocarray(p, 50, from[i] / 10); /* and a valid reallocarray grows it, contents kept */
    g_sink = q;
    if (CHECK(q != NULL)) {
      p = q;
      CHECK(malloc_usable_size(p) >= 50 * (from[i] / 10));
      CHECK(check_pattern(p, 0, from[i], 99));
    }
    free(p);
  }
  check_set_context("");
}

/* realloc of an over-aligned block (the alignment need not survive, the contents must). */
static void test_aligned_origin(void) {
  static const size_t align[] = {64, 4096, 1 << 20};
  for (int i = 0; i < 3; ++i) {
    unsigned char *p = aligned_alloc(align[i], align[i] * 2);
    g_sink = p;
    if (!CHECK(p != NULL)) continue;
    check_fill(p, 0, align[i] * 2, 5);
    size_t cur = align[i] * 2;
    static const size_t to[] = {10, 300000, 48, 3 << 20};
    for (int k = 0; k < 4; ++k)
      if (resize(&p, cur, to[k], 5)) cur = to[k];
    free(p);
  }
  check_set_context("");
}

int main(void) {
  check_override_in_effect();
  build_sizes();
  printf("%zu sizes from %zu to %zu\n", g_nsizes, g_sizes[0], g_sizes[g_nsizes - 1]);
  test_null_and_zero();
  test_chains();
  test_impossible();
  test_aligned_origin();
  return check_finish();
}
