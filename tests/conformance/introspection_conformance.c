/* introspection_conformance: under the override, glibc's introspection calls answer with Spaces'
 * figures (spaces.h: spaces_mallinfo and friends), not glibc's empty arena: mallinfo2/mallinfo
 * count live blocks (this thread's, another thread's, huge ones), malloc_info writes glibc's XML
 * shape, malloc_stats glibc's report, and mallopt honours M_TRIM_THRESHOLD and refuses what
 * Spaces does not do. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static void *volatile g_sink;

enum { kBlocks = 20000, kSize = 100 };

static void test_mallinfo2_counts_live_blocks(void) {
  struct mallinfo2 before = mallinfo2();
  CHECK(before.arena > 0);
  CHECK(before.uordblks <= before.arena);
  CHECK(before.fordblks == before.arena - before.uordblks);
  void **v = malloc(kBlocks * sizeof(void *));
  for (int i = 0; i < kBlocks; i++) g_sink = v[i] = malloc(kSize);
  struct mallinfo2 live = mallinfo2();
  check_set_context("uordblks %zu -> %zu", before.uordblks, live.uordblks);
  CHECK(live.uordblks >= before.uordblks + (size_t)kBlocks * kSize);
  CHECK(live.uordblks <= before.uordblks + (size_t)kBlocks * 128 + (1u << 20));
  CHECK(live.arena >= live.uordblks);
  CHECK(live.fordblks == live.arena - live.uordblks);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo old = mallinfo(); /* (int fields; the values fit) */
#pragma GCC diagnostic pop
  CHECK((size_t)old.uordblks >= before.uordblks + (size_t)kBlocks * kSize);
  CHECK((size_t)old.arena >= (size_t)old.uordblks);
  for (int i = 0; i < kBlocks; i++) free(v[i]);
  free(v);
  struct mallinfo2 after = mallinfo2();
  check_set_context("uordblks %zu -> %zu -> %zu", before.uordblks, live.uordblks, after.uordblks);
  CHECK(after.uordblks + (size_t)kBlocks * kSize <= live.uordblks);
  CHECK(after.ordblks > 0); /* the freed slots */
  check_set_context("%s", "");
}

static void *other_thread(void *arg) {
  void **v = arg;
  for (int i = 0; i < 1000; i++) v[i] = malloc(1000);
  return NULL;
}

static void test_blocks_of_another_thread_count(void) {
  struct mallinfo2 before = mallinfo2();
  void **v = malloc(1000 * sizeof(void *));
  pthread_t t;
  CHECK(pthread_create(&t, NULL, other_thread, v) == 0);
  pthread_join(t, NULL); /* (the thread exited; its blocks live on) */
  struct mallinfo2 live = mallinfo2();
  CHECK(live.uordblks >= before.uordblks + 1000 * 1000);
  for (int i = 0; i < 1000; i++) free(v[i]);
  free(v);
}

static void test_huge_blocks_are_hblks(void) {
  struct mallinfo2 before = mallinfo2();
  char *big = malloc(8u << 20);
  CHECK(big != NULL);
  memset(big, 1, 4096);
  g_sink = big;
  struct mallinfo2 live = mallinfo2();
  CHECK(live.hblks == before.hblks + 1);
  CHECK(live.hblkhd >= before.hblkhd + (8u << 20));
  free(big);
  struct mallinfo2 after = mallinfo2();
  CHECK(after.hblks == before.hblks);
}

static void test_malloc_info_xml(void) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  CHECK(f != NULL);
  void *keep = malloc(48); /* (a slab with free slots: a <size> line) */
  g_sink = keep;
  CHECK(malloc_info(0, f) == 0);
  fclose(f);
  CHECK(text != NULL && strncmp(text, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", 42) == 0);
  CHECK(strstr(text, "<size from=\"") != NULL);
  CHECK(strstr(text, "<total type=\"rest\" count=\"") != NULL);
  CHECK(strstr(text, "<total type=\"mmap\" count=\"") != NULL);
  CHECK(strstr(text, "</heap>\n") != NULL);
  CHECK(len > 10 && strcmp(text + len - 10, "</malloc>\n") == 0);
  const char *cur = strstr(text, "<system type=\"current\" size=\"");
  CHECK(cur != NULL);
  if (cur) {
    unsigned long long size = strtoull(cur + strlen("<system type=\"current\" size=\""), NULL, 10);
    struct mallinfo2 m = mallinfo2();
    check_set_context("xml %llu, mallinfo2 %zu", size, m.arena);
    CHECK(size > 0 && size <= m.arena + (4u << 20) && m.arena <= size + (4u << 20));
    check_set_context("%s", "");
  }
  free(text);
  free(keep);
  errno = 0;
  CHECK(malloc_info(1, stdout) == -1); /* options must be 0 */
}

static void test_malloc_stats_report(void) {
  FILE *tmp = tmpfile();
  CHECK(tmp != NULL);
  if (!tmp) return;
  fflush(stderr);
  int saved = dup(2);
  dup2(fileno(tmp), 2);
  malloc_stats();
  dup2(saved, 2);
  close(saved);
  char buf[1024] = {0};
  rewind(tmp);
  size_t n = fread(buf, 1, sizeof buf - 1, tmp);
  fclose(tmp);
  CHECK(n > 0);
  CHECK(strncmp(buf, "Arena 0:\nsystem bytes     = ", 28) == 0);
  CHECK(strstr(buf, "\nin use bytes     = ") != NULL);
  CHECK(strstr(buf, "\nTotal (incl. mmap):\n") != NULL);
  CHECK(strstr(buf, "\nmax mmap bytes   = ") != NULL);
}

static void test_mallopt(void) {
  long long old = spaces_option_get("dirty_max_kib");
  CHECK(mallopt(M_TRIM_THRESHOLD, 4 << 20) == 1);
  CHECK(spaces_option_get("dirty_max_kib") == 4096);
  CHECK(mallopt(M_TRIM_THRESHOLD, -1) == 0); /* (glibc: -1 disables trimming; not honoured) */
  CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 0);
  CHECK(mallopt(M_ARENA_MAX, 1) == 0);
  CHECK(mallopt(M_PERTURB, 0xaa) == 0);
  CHECK(mallopt(12345, 1) == 0);
  spaces_option_set("dirty_max_kib", old);
}

int main(void) {
  check_override_in_effect();
  test_mallinfo2_counts_live_blocks();
  test_blocks_of_another_thread_count();
  test_huge_blocks_are_hblks();
  test_malloc_info_xml();
  test_malloc_stats_report();
  test_mallopt();
  return check_finish();
}
