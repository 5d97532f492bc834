/* static_link_proof: linked with -Wl,--whole-archive libspaces.a, plain malloc (small and large)
 * and the allocations libc makes on the program's behalf (strdup) are Spaces' own blocks.
 * Prints "malloc is Spaces: yes" and exits 0 iff all of them are; otherwise "no" and exits 1. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spaces/spaces.h"

static void *volatile g_sink; /* keeps the compiler from eliding the allocations */

int main(void) {
  void *small = malloc(100), *large = malloc((size_t)1 << 22);
  char *dup = strdup("libc allocates through the executable's malloc");
  g_sink = small;
  g_sink = large;
  g_sink = dup;
  int yes = small && large && dup && spaces_owns(small) && spaces_owns(large) && spaces_owns(dup);
  free(dup); /* a libc-made block freed by Spaces' free: would abort if it were glibc's */
  free(large);
  free(small);
  printf("malloc is Spaces: %s\n", yes ? "yes" : "no");
  return yes ? 0 : 1;
}
