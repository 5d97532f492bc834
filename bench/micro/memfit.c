/* Resident memory a few fixed allocation patterns cost beyond their data (issue 19's memory
 * goals): `memfit huge` holds 8 x malloc(4 MiB), `memfit medium` 20 000 x malloc(9000), every
 * byte written. Prints the RSS growth over the data. Run it under each allocator:
 *   cc -O2 bench/micro/memfit.c -o /tmp/memfit
 *   LD_PRELOAD=build/release/sdk/libspaces.so /tmp/memfit huge      (glibc: no preload) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rss.h"

int main(int argc, char **argv) {
  int huge = argc > 1 && strcmp(argv[1], "huge") == 0;
  size_t n = huge ? 8 : 20000, size = huge ? (size_t)4 << 20 : 9000;
  void **blocks = calloc(n, sizeof *blocks);
  long base = rss_kib();
  for (size_t i = 0; i < n; i++) {
    blocks[i] = malloc(size);
    if (blocks[i] == NULL) return 1;
    memset(blocks[i], 1, size);
  }
  long grown = rss_kib() - base;
  double data = (double)n * (double)size / 1024.0;
  printf("%zu x malloc(%zu): RSS +%ld KiB for %.0f KiB of data (%+.1f %%)\n", n, size, grown, data,
         100.0 * ((double)grown - data) / data);
  for (size_t i = 0; i < n; i++) free(blocks[i]);
  free(blocks);
  return 0;
}
