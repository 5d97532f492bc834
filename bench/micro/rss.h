/* The resident set of this process in KiB (/proc/self/statm), for the bench/micro C programs
 * that print memory figures (memfit.c, decay.c, box_decay.c), and the loop both decay programs
 * run after their frees. */
#ifndef SPACES_BENCH_MICRO_RSS_H
#define SPACES_BENCH_MICRO_RSS_H
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  if (f) fclose(f);
  return resident * 4;
}

static inline double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Keeps the program lightly busy (one malloc/free of `size` every `pause_ms`, which is when an
 * allocator without a background thread may purge) and prints the resident set above `base`
 * every `every_ms` until `until_ms`. Returns 1 if a malloc failed. */
static inline int watch_rss(long base, size_t size, long pause_ms, double every_ms, double until_ms) {
  double t0 = now_ms(), next_print = 0;
  printf("%8s %12s\n", "ms", "rss_kib");
  for (;;) {
    double t = now_ms() - t0;
    if (t >= next_print) {
      printf("%8.0f %12ld\n", t, rss_kib() - base);
      next_print += every_ms;
      if (next_print > until_ms) return 0;
    }
    void *p = malloc(size);
    if (p == NULL) return 1;
    ((volatile char *)p)[0] = 1;
    free(p);
    struct timespec pause = {0, pause_ms * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}
#endif
