/* How resident memory falls when medium blocks (16-256 KiB) were freed but a few stay live, so
 * that no page box empties: allocate and write 320 blocks (or argv[1]) of random sizes, free all but every
 * 16th, then keep the program lightly busy (one malloc/free of 20 KiB every 5 ms) and print the
 * resident set every 250 ms for 2 s. Run it under each allocator:
 *   cc -O2 bench/micro/box_decay.c -o /tmp/box_decay
 *   LD_PRELOAD=build/release/sdk/libspaces.so /tmp/box_decay      (glibc: no preload)
 * Spaces purges a box's free pages purge_delay_ms (default 1000) after the first of them was
 * freed: SPACES_PURGE_DELAY_MS=... sets the time scale. */
#include <stdint.h>
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

int main(int argc, char **argv) {
  enum { kMaxBlocks = 4096, kKeepEvery = 16 };
  static void *blocks[kMaxBlocks];
  int kBlocks = argc > 1 ? atoi(argv[1]) : 320;
  if (kBlocks < 1 || kBlocks > kMaxBlocks) return 64;
  uint64_t x = 12345;
  size_t kept = 0;
  long base = rss_kib();
  for (int i = 0; i < kBlocks; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    size_t size = (16 << 10) + (size_t)(x >> 40) % (240 << 10);
    blocks[i] = malloc(size);
    if (blocks[i] == NULL) return 1;
    memset(blocks[i], 1, size);
    if (i % kKeepEvery == 0) kept += size;
  }
  printf("burst: +%ld KiB\n", rss_kib() - base);
  for (int i = 0; i < kBlocks; i++)
    if (i % kKeepEvery != 0) free(blocks[i]);
  printf("kept live: %zu KiB\n", kept >> 10);
  double t0 = now_ms(), next_print = 0;
  printf("%8s %12s\n", "ms", "rss_kib");
  for (;;) {
    double t = now_ms() - t0;
    if (t >= next_print) {
      printf("%8.0f %12ld\n", t, rss_kib() - base);
      next_print += 250;
      if (next_print > 2000) break;
    }
    void *p = malloc(20 << 10); /* the program stays lightly busy */
    if (p == NULL) return 1;
    ((volatile char *)p)[0] = 1;
    free(p);
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  for (int i = 0; i < kBlocks; i += kKeepEvery) free(blocks[i]);
  return 0;
}
