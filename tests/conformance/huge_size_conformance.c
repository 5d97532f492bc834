/* huge_size_conformance: every size computation (page round-up, alignment padding, header
 * addition, count x size) is checked for overflow: a size that cannot be served is NULL with
 * errno = ENOMEM on every entry point, never a small block the caller believes is huge. Aligned
 * blocks keep a usable size near the request, and realloc to that usable size does not move. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "spaces/spaces.h"

extern void *pvalloc(size_t size);

static void expect_enomem(void *p, const char *what, size_t size) {
  int ok = p == NULL && errno == ENOMEM;
  if (!ok) printf("  %s(%zu): %p errno %d\n", what, size, p, errno);
  CHECK(ok);
  if (p) free(p);
}

int main(void) {
  static const size_t minus[] = {0, 1, 15, 16, 255, 4095, 4096, 65535, 65536, (size_t)2 << 20};
  for (unsigned i = 0; i < sizeof minus / sizeof minus[0]; i++) {
    size_t n = SIZE_MAX - minus[i];
    errno = 0, expect_enomem(malloc(n), "malloc", n);
    errno = 0, expect_enomem(calloc(1, n), "calloc", n);
    errno = 0, expect_enomem(pvalloc(n), "pvalloc", n);
    errno = 0, expect_enomem(valloc(n), "valloc", n);
    errno = 0, expect_enomem(memalign(64, n), "memalign", n);
    errno = 0, expect_enomem(aligned_alloc(4096, n), "aligned_alloc", n);
    errno = 0, expect_enomem(spaces_pvalloc(n), "spaces_pvalloc", n);
    void *p = NULL;
    CHECK(posix_memalign(&p, 4096, n) == ENOMEM && p == NULL);
    void *keep = malloc(100);
    errno = 0;
    CHECK(realloc(keep, n) == NULL && errno == ENOMEM);
    free(keep); /* still valid after the refused realloc */
    SpacesChunk c = spaces_chunk_create(0);
    errno = 0, expect_enomem(spaces_chunk_alloc(c, n, 0), "spaces_chunk_alloc", n);
    errno = 0, expect_enomem(spaces_chunk_aligned_alloc(c, 4096, n, 0), "spaces_chunk_aligned_alloc", n);
    spaces_chunk_destroy(c);
  }
  volatile size_t half = SIZE_MAX / 2, top = (size_t)1 << 63; /* (hidden from -Walloc-size) */
  errno = 0, expect_enomem(calloc(half, 3), "calloc", SIZE_MAX);
  errno = 0, expect_enomem(malloc(top), "malloc", top);

  /* pvalloc rounds to whole pages */
  void *pv = pvalloc(1);
  CHECK(pv != NULL && ((uintptr_t)pv & 4095) == 0 && malloc_usable_size(pv) >= 4096);
  free(pv);

  /* aligned blocks: usable size within the request's class, realloc to it stays */
  static const size_t aligns[] = {64, 4096, 65536};
  static const size_t sizes[] = {4097, 9000, 40000, 100000};
  for (unsigned a = 0; a < 3; a++)
    for (unsigned s = 0; s < 4; s++) {
      void *q = aligned_alloc(aligns[a], sizes[s]);
      CHECK(q != NULL && ((uintptr_t)q & (aligns[a] - 1)) == 0);
      size_t u = malloc_usable_size(q);
      int near = u >= sizes[s] && u <= (sizes[s] < 8192 ? 16000 : sizes[s] + sizes[s] / 8 + 4096);
      if (!near) printf("  aligned_alloc(%zu, %zu): usable %zu\n", aligns[a], sizes[s], u);
      CHECK(near);
      void *r = realloc(q, u);
#ifndef SPACES_TEST_MEMCHECK_BUILD /* (memcheck builds: realloc always moves, by design) */
      CHECK(r == q);
#endif
      CHECK(r != NULL);
      free(r);
    }
  return check_finish();
}
