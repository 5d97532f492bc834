/* What taking a fresh page costs on this machine (option populate, docs/benchmarks.md,
 * "Populating a growing class's fresh slabs"): map 64 MiB, then (a) write one byte per 4 KiB
 * page, a page fault each, or (b) madvise(MADV_POPULATE_WRITE) it 64 KiB at a time (what Spaces
 * does for a growing class's fresh slab) and then write one byte per page; a second pass over
 * the pages shows what the first write still costs. Needs Linux 5.14 for (b).
 *   cc -O2 bench/micro/faults.c -o /tmp/faults && /tmp/faults */
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
  const size_t size = (size_t)64 << 20, page = 4096, chunk = (size_t)64 << 10;
  for (int populate = 0; populate < 2; populate++) {
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    double t0 = now();
    if (populate) {
      for (size_t i = 0; i < size; i += chunk)
        if (madvise(p + i, chunk, MADV_POPULATE_WRITE) != 0) {
          perror("madvise(MADV_POPULATE_WRITE)");
          return 1;
        }
    } else {
      for (size_t i = 0; i < size; i += page) p[i] = 1;
    }
    double t1 = now();
    for (size_t i = 0; i < size; i += page) p[i] = 2;
    double t2 = now();
    double pages = (double)(size / page);
    printf("%-28s %6.2f us/page, then first writes %5.2f us/page, total %6.2f us/page\n",
           populate ? "MADV_POPULATE_WRITE 64 KiB" : "page faults (write)", (t1 - t0) * 1e6 / pages,
           (t2 - t1) * 1e6 / pages, (t2 - t0) * 1e6 / pages);
    munmap(p, size);
  }
  return 0;
}
