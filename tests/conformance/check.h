/* check.h - the counting CHECK macro and byte patterns shared by the conformance programs.
 * These programs are plain `main`s linked against the override build, so that every malloc they
 * (and libc on their behalf) make goes to Spaces; nothing here allocates except stdio. */
#ifndef SPACES_TESTS_CONFORMANCE_CHECK_H
#define SPACES_TESTS_CONFORMANCE_CHECK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spaces/spaces.h"

static long check_passed, check_failed;
static char check_context[160]; /* printed with a failure: which size/alignment was being tested */

/* Failures are printed (the first 100 of them) but never stop the program. */
static inline int check_record(int ok, const char *expr, const char *file, int line) {
  if (ok) {
    ++check_passed;
  } else if (++check_failed <= 100) {
    int ctx = check_context[0] != 0;
    fprintf(stderr, "%s:%d: CHECK failed: %s%s%s%s\n", file, line, expr, ctx ? "  [" : "",
            check_context, ctx ? "]" : "");
  }
  return ok;
}
#define CHECK(expr) check_record(!!(expr), #expr, __FILE__, __LINE__)

static inline void check_set_context(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(check_context, sizeof check_context, fmt, ap);
  va_end(ap);
}

/* Prints the final line every runner parses and returns the exit code. */
static inline int check_finish(void) {
  printf("%ld passed, %ld failed\n", check_passed, check_failed);
  fflush(stdout);
  return check_failed ? 1 : 0;
}

/* Every conformance program starts here: without the override, testing malloc tests glibc. */
static inline void check_override_in_effect(void) {
  void *p = malloc(16);
  if (p) memset(p, 0, 16); /* initialised, so GCC does not warn about passing it to spaces_owns */
  if (!CHECK(p != NULL && spaces_owns(p) == 1)) {
    fprintf(stderr, "malloc is not served by Spaces: link against the override build\n");
    check_finish();
    exit(1);
  }
  free(p);
}

static inline int check_aligned(const void *p, size_t alignment) {
  return ((uintptr_t)p & (alignment - 1)) == 0;
}

/* A byte pattern that depends on the seed and the offset, so that two blocks sharing memory (or
 * a block handed out twice) overwrite each other's bytes with different values. */
static inline unsigned char check_pattern_byte(unsigned seed, size_t i) {
  return (unsigned char)(seed * 131u + (unsigned)i * 7u + (unsigned)(i >> 9) + 1u);
}
static inline void check_fill(void *p, size_t from, size_t to, unsigned seed) {
  unsigned char *b = (unsigned char *)p;
  for (size_t i = from; i < to; ++i) b[i] = check_pattern_byte(seed, i);
}
/* Returns 1 if bytes [from, to) still hold the pattern. */
static inline int check_pattern(const void *p, size_t from, size_t to, unsigned seed) {
  const unsigned char *b = (const unsigned char *)p;
  for (size_t i = from; i < to; ++i)
    if (b[i] != check_pattern_byte(seed, i)) return 0;
  return 1;
}

#endif /* SPACES_TESTS_CONFORMANCE_CHECK_H */
