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

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

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
  double t0 = now_ms(), next_print = 0;
  printf("%8s %12s\n", "ms", "rss_kib");
  for (;;) {
    double t = now_ms() - t0;
    if (t >= next_print) {
      printf("%8.0f %12ld\n", t, rss_kib() - base);
      next_print += 100;
      if (next_print > 1200) break;
    }
    void *p = malloc(size);  /* the program stays lightly busy */
    if (p == NULL) return 1;
    ((volatile char *)p)[0] = 1;
    free(p);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return 0;
}
