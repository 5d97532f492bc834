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
  if (watch_rss(base, 20 << 10, 5, 250, 2000)) return 1;
  for (int i = 0; i < kBlocks; i += kKeepEvery) free(blocks[i]);
  return 0;
}
