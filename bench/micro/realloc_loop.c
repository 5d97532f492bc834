/* Buffers grown by realloc in big appends, as a C program reading a file or building a message
 * grows its buffer: `side` buffers (argv[1], default 1; a power of two up to 16) grow side by side
 * from 16 KiB by half their capacity at a time, each append writing 4 KiB (memset: cheap, so the
 * copies realloc makes show), and a buffer past `limit` bytes (argv[2], default 200 000: page boxes'
 * sizes; 1 900 000 takes them through the large runs of 256 KiB-2 MiB too) is checked and freed.
 * Prints the time,
 * how many reallocs moved their block, and the peak resident set. Run it under each allocator:
 *   cc -O2 bench/micro/realloc_loop.c -o /tmp/realloc_loop
 *   LD_PRELOAD=build/release/sdk/libspaces.so /tmp/realloc_loop 8 [limit]   (glibc: no preload)
 * Exits non-zero if a realloc fails or loses contents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rss.h"

int main(int argc, char **argv) {
  enum { kAppend = 4096, kSteps = 200000 };
  unsigned side = argc > 1 ? (unsigned)atoi(argv[1]) : 1;
  size_t kLimit = argc > 2 ? (size_t)atol(argv[2]) : 200000;
  if (side == 0 || side > 16 || (side & (side - 1)) != 0 || kLimit < kAppend || kLimit > ((size_t)1 << 30)) {
    fprintf(stderr, "usage: %s [side: 1, 2, 4, 8 or 16] [limit: 4096 - 2^30 bytes]\n", argv[0]);
    return 2;
  }
  unsigned char *buf[16] = {0};
  size_t cap[16] = {0}, len[16] = {0};
  unsigned long reallocs = 0, moved = 0;
  unsigned seed = 1;
  double t0 = now_ms();
  for (int step = 0; step < kSteps; step++) {
    seed = seed * 1103515245u + 12345u;
    unsigned k = (seed >> 16) & (side - 1);
    if (len[k] + kAppend > cap[k]) {
      size_t grown = cap[k] ? cap[k] + cap[k] / 2 : 16384;
      unsigned char *q = realloc(buf[k], grown);
      if (q == NULL) return 1;
      reallocs++;
      moved += q != buf[k];
      buf[k] = q;
      cap[k] = grown;
    }
    memset(buf[k] + len[k], (int)((len[k] / kAppend + k) & 0xff), kAppend);
    len[k] += kAppend;
    if (len[k] > kLimit) {
      for (size_t i = 0; i < len[k]; i += kAppend)
        if (buf[k][i] != (unsigned char)((i / kAppend + k) & 0xff) || buf[k][i + kAppend - 1] != buf[k][i]) {
          fprintf(stderr, "contents lost at %zu\n", i);
          return 1;
        }
      free(buf[k]);
      buf[k] = NULL;
      cap[k] = len[k] = 0;
    }
  }
  double ms = now_ms() - t0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("%.1f ms, %lu reallocs, %lu moved, peak RSS %ld KiB\n", ms, reallocs, moved, ru.ru_maxrss);
  for (unsigned k = 0; k < side; k++) free(buf[k]);
  return 0;
}
