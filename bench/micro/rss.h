/* The resident set of this process in KiB (/proc/self/statm), for the bench/micro C programs
 * that print memory figures (memfit.c, decay.c). */
#ifndef SPACES_BENCH_MICRO_RSS_H
#define SPACES_BENCH_MICRO_RSS_H
#include <stdio.h>

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  if (f) fclose(f);
  return resident * 4;
}
#endif
