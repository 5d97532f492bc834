/* Memory of exited threads, freed by a thread that lives on: 4 producer threads allocate and
 * write 100 000 blocks in all (a mix of 40 B, 700 B, 6 000 B and 30 000 B: small classes and
 * page boxes, about 950 MB) and exit; the main thread then frees every block and stays lightly
 * busy (one malloc/free of 64 B every 5 ms, from the slab it already has), printing the resident
 * set above the start every 250 ms for 2 s. argv[1] (0-2): 0 as above; 1: a free-only thread
 * frees the blocks instead of the main thread (its first allocator call is a free) and exits; 2:
 * 500 producer threads of 200 blocks each, each followed by a free-only thread that frees them.
 *   cc -O2 bench/micro/abandon.c -o /tmp/abandon -lpthread
 *   LD_PRELOAD=build/release/sdk/libspaces.so /tmp/abandon 0       (glibc: no preload)
 * Before session 29 the exited threads' heaps waited in Spaces' pool with every slab those
 * frees emptied (no thread drained them): 964 MB stayed resident. docs/benchmarks.md, session 29. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rss.h"

enum { kBlocks = 100000, kProducers = 4 };
static void *g_blocks[kBlocks];

static size_t size_of(size_t k) {
  static const size_t kSizes[] = {40, 700, 6000, 30000};
  return kSizes[k % 4];
}

struct Range {
  size_t from, to;
};

static void *produce(void *arg) {
  const struct Range *r = arg;
  for (size_t k = r->from; k < r->to; k++) {
    g_blocks[k] = malloc(size_of(k));
    if (g_blocks[k] == NULL) abort();
    memset(g_blocks[k], 7, size_of(k));
  }
  return NULL;
}

static void *free_range(void *arg) {
  const struct Range *r = arg;
  for (size_t k = r->from; k < r->to; k++) free(g_blocks[k]);
  return NULL;
}

static void run(void *(*fn)(void *), size_t from, size_t to) {
  pthread_t t;
  struct Range r = {from, to};
  if (pthread_create(&t, NULL, fn, &r) != 0) abort();
  pthread_join(t, NULL);
}

int main(int argc, char **argv) {
  int mode = argc > 1 ? atoi(argv[1]) : 0;
  free(malloc(64));  // (the main thread's own heap, before the producers')
  long base = rss_kib();
  if (mode == 2) {
    for (size_t i = 0; i < 500; i++) {
      run(produce, i * 200, i * 200 + 200);
      run(free_range, i * 200, i * 200 + 200);
    }
  } else {
    pthread_t t[kProducers];
    struct Range r[kProducers];
    for (int i = 0; i < kProducers; i++) {
      r[i].from = (size_t)i * (kBlocks / kProducers);
      r[i].to = r[i].from + kBlocks / kProducers;
      if (pthread_create(&t[i], NULL, produce, &r[i]) != 0) abort();
    }
    for (int i = 0; i < kProducers; i++) pthread_join(t[i], NULL);
    printf("allocated: rss %ld KiB above the start\n", rss_kib() - base);
    if (mode == 1)
      run(free_range, 0, kBlocks);
    else
      for (size_t k = 0; k < kBlocks; k++) free(g_blocks[k]);
  }
  printf("freed: rss %ld KiB above the start\n", rss_kib() - base);
  return watch_rss(base, 64, 5, 250, 2000);
}
