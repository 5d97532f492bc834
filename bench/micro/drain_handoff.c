/* Frees into a pooled heap from several threads at once: one thread allocates a million small
 * blocks (16-1024 B, every class in turn) and exits; then argv[1] threads (default 2) free them,
 * thread t the blocks t, t + n, t + 2n, ... (so they all free into the same slabs). Prints the
 * wall time of the frees and, per thread, the longest single free() (monotonic clock) and the
 * thread's total. Before session 30 one free() drained the exited thread's heap for every thread
 * that kept freeing into it (heap.cpp, pool_drain: a free that queues a slab of a pooled heap
 * drains the heap's list), for tens of milliseconds; now a drain hands over after 8 passes of
 * 64 slabs. (With more threads than cores the longest free is mostly preemption: compare at
 * the core count.)
 *   cc -O2 bench/micro/drain_handoff.c -o /tmp/drain_handoff -lpthread
 *   LD_PRELOAD=build/release/sdk/libspaces.so /tmp/drain_handoff 2       (glibc: no preload)
 * docs/design.md, "A pooled heap's notify list"; docs/benchmarks.md, session 30. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { kBlocks = 1000000, kMaxThreads = 16 };
static void *g_blocks[kBlocks];
static int g_threads;
static uint64_t g_longest[kMaxThreads], g_total[kMaxThreads];

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *produce(void *arg) {
  (void)arg;
  for (int i = 0; i < kBlocks; i++) {
    g_blocks[i] = malloc(16 + (size_t)(i % 64) * 16);
    if (g_blocks[i] == NULL) abort();
    *(char *)g_blocks[i] = 1;
  }
  return NULL;
}

static void *consume(void *arg) {
  long t = (long)arg;
  uint64_t longest = 0, t0 = now_ns();
  for (int i = (int)t; i < kBlocks; i += g_threads) {
    uint64_t s = now_ns();
    free(g_blocks[i]);
    uint64_t d = now_ns() - s;
    if (d > longest) longest = d;
  }
  g_longest[t] = longest;
  g_total[t] = now_ns() - t0;
  return NULL;
}

int main(int argc, char **argv) {
  g_threads = argc > 1 ? atoi(argv[1]) : 2;
  if (g_threads < 1 || g_threads > kMaxThreads) return 2;
  pthread_t p, c[kMaxThreads];
  if (pthread_create(&p, NULL, produce, NULL) != 0) abort();
  pthread_join(p, NULL);
  uint64_t t0 = now_ns();
  for (long t = 0; t < g_threads; t++)
    if (pthread_create(&c[t], NULL, consume, (void *)t) != 0) abort();
  for (int t = 0; t < g_threads; t++) pthread_join(c[t], NULL);
  printf("frees: %.1f ms; longest free / thread's total (ms):", (double)(now_ns() - t0) / 1e6);
  for (int t = 0; t < g_threads; t++) printf(" %.3f/%.1f", (double)g_longest[t] / 1e6, (double)g_total[t] / 1e6);
  printf("\n");
  return 0;
}
