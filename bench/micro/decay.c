/* How resident memory falls after a burst (issue 19's purging): allocate and write 48 x 1 MiB,
 * free it all, then keep the program lightly busy (one malloc/free of 1 MiB every 20 ms, which
 * is when an allocator without a background thread may purge) and print the resident set every
 * 100 ms for 1.2 s. Run it under each allocator:
 *   cc -O2 bench/micro/decay.c -o /tmp/decay
 *   LD_PRELOAD=build/release/sdk/libspaces.so /tmp/decay      (glibc: no preload)
 * Spaces' purge_delay_ms (default 1000) sets the time scale: SPACES_PURGE_DELAY_MS=... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rss.h"

int main(void) {
  enum { kBlocks = 48 };
  const size_t size = (size_t)1 << 20;
  void *blocks[kBlocks];
  long base = rss_kib();
  for (int i = 0; i < kBlocks; i++) {
    blocks[i] = malloc(size);
    if (blocks[i] == NULL) return 1;
    memset(blocks[i], 1, size);
  }
  printf("burst: +%ld KiB\n", rss_kib() - base);
  for (int i = 0; i < kBlocks; i++) free(blocks[i]);
  if (watch_rss(base, size, 20, 100, 1200)) return 1;
  return 0;
}
