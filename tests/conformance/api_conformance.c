/* api_conformance: the knobs and diagnostics of spaces.h: options by name (and from SPACES_<NAME>
 * in the environment), stats with the size handshake that keeps old binaries safe, the text
 * report, the version, and spaces_collect actually giving a freed 100 MiB working set back. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static void *volatile g_sink; /* defeats malloc/free elision, see malloc_conformance.c */
static const char *const g_options[] = {"purge_delay_ms", "show_stats", "verbose", "huge_pages",
                                        "slab_cache"};
#define MIB ((size_t)1 << 20)

static void test_options(void) {
  for (int i = 0; i < 5; ++i) {
    check_set_context("option %s", g_options[i]);
    errno = 0;
    long long value = spaces_option_get(g_options[i]);
    CHECK(!(value == -1 && errno == EINVAL));
    CHECK(spaces_option_set(g_options[i], value) == 0); /* its own value is always in range */
    CHECK(spaces_option_get(g_options[i]) == value);
  }
  check_set_context("purge_delay_ms round trip");
  long long delay = spaces_option_get("purge_delay_ms"), other = delay > 1000 ? 17 : delay + 17;
  CHECK(spaces_option_set("purge_delay_ms", other) == 0);
  CHECK(spaces_option_get("purge_delay_ms") == other);
  CHECK(spaces_option_set("purge_delay_ms", delay) == 0);
  CHECK(spaces_option_get("purge_delay_ms") == delay);

  /* Out of range: the flags are 0/1, the delay is -1 (never) or a number of ms. */
  static const struct { const char *name; long long value; } bad[] = {
      {"show_stats", 3}, {"verbose", -1}, {"purge_delay_ms", -2}, {"huge_pages", -1}};
  for (int i = 0; i < 4; ++i) {
    check_set_context("option %s = %lld", bad[i].name, bad[i].value);
    long long before = spaces_option_get(bad[i].name);
    errno = 0;
    CHECK(spaces_option_set(bad[i].name, bad[i].value) == -1);
    CHECK(errno == EINVAL);
    CHECK(spaces_option_get(bad[i].name) == before); /* unchanged */
  }

  static const char *const unknown[] = {"no_such_option", "", "purge_delay", "purge_delay_ms_"};
  for (int i = 0; i < 4; ++i) {
    check_set_context("unknown option \"%s\"", unknown[i]);
    errno = 0;
    CHECK(spaces_option_get(unknown[i]) == -1);
    CHECK(errno == EINVAL);
    errno = 0;
    CHECK(spaces_option_set(unknown[i], 1) == -1);
    CHECK(errno == EINVAL);
  }
  check_set_context("");
}

/* The environment is read once at initialisation: re-run this binary with a variable set. */
static void test_option_environment(const char *self) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("SPACES_PURGE_DELAY_MS", "4321", 1);
    execl(self, self, "--env-child", (char *)NULL);
    _exit(127);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  check_set_context("child with SPACES_PURGE_DELAY_MS=4321, status %d", status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  check_set_context("");
}

static void test_stats(void) {
  struct spaces_stats s;
  memset(&s, 0, sizeof s);
  s.size = sizeof s;
  CHECK(spaces_stats(&s) == 0);
  CHECK(s.size == sizeof s);
  CHECK(s.version == SPACES_STATS_VERSION);
  CHECK(s.committed_bytes <= s.reserved_bytes);
  CHECK(s.peak_committed_bytes >= s.committed_bytes);
  CHECK(s.committed_bytes > 0 && s.arenas >= 1 && s.slabs_in_use >= 1 && s.mmap_calls >= 1);
  CHECK(s.heaps >= 1 && s.threads_started >= 1 && s.heaps_abandoned < s.heaps);

  memset(&s, 0, sizeof s); /* .size = 0 means "the size this header was compiled with" */
  CHECK(spaces_stats(&s) == 0);
  CHECK(s.size == sizeof s);
  CHECK(s.version == SPACES_STATS_VERSION);

  /* An old binary that knows only 16 bytes: nothing past them may be written. */
  union {
    struct spaces_stats s;
    unsigned char bytes[sizeof(struct spaces_stats) + 64];
  } u;
  memset(&u, 0xA5, sizeof u);
  u.s.size = 16;
  CHECK(spaces_stats(&u.s) == 0);
  CHECK(u.s.size <= 16);
  CHECK(u.s.version == SPACES_STATS_VERSION);
  size_t touched = 0;
  for (size_t i = 16; i < sizeof u.bytes; ++i) touched += u.bytes[i] != 0xA5;
  CHECK(touched == 0);

  /* A newer binary asking for more than this library knows: it fills what it has, says so. */
  memset(&u, 0xA5, sizeof u);
  u.s.size = sizeof u.bytes;
  CHECK(spaces_stats(&u.s) == 0);
  CHECK(u.s.size == sizeof(struct spaces_stats));
  touched = 0;
  for (size_t i = sizeof(struct spaces_stats); i < sizeof u.bytes; ++i)
    touched += u.bytes[i] != 0xA5;
  CHECK(touched == 0);

  /* NULL is EINVAL; asked in a child so that a crash is one failure, not the end of the run. */
  pid_t pid = fork();
  if (pid == 0) {
    errno = 0;
    _exit(spaces_stats(NULL) == -1 && errno == EINVAL ? 0 : 1);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  /* large_blocks counts live blocks over 8 KiB. */
  memset(&s, 0, sizeof s);
  spaces_stats(&s);
  size_t large_before = s.large_blocks;
  void *big = malloc(MIB);
  g_sink = big;
  memset(&s, 0, sizeof s);
  spaces_stats(&s);
  CHECK(s.large_blocks == large_before + 1);
  CHECK(s.large_bytes >= MIB);
  free(big);
  memset(&s, 0, sizeof s);
  spaces_stats(&s);
  CHECK(s.large_blocks == large_before);
}

static void test_stats_print(void) {
  char path[] = "/tmp/spaces_api_conformance_XXXXXX";
  int fd = mkstemp(path);
  if (!CHECK(fd >= 0)) return;
  unlink(path);
  spaces_stats_print(fd);
  char text[8192];
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  close(fd);
  CHECK(n > 0);
  if (n <= 0) return;
  text[n] = '\0';
  CHECK(strlen(text) == (size_t)n); /* text, no NUL bytes */
  CHECK(strpbrk(text, "0123456789") != NULL);
  CHECK(text[n - 1] == '\n' || n == (ssize_t)sizeof text - 1);
}

static void test_version(void) {
  const char *v = spaces_version();
  char expected[32];
  snprintf(expected, sizeof expected, "%d.%d.%d", SPACES_VERSION_MAJOR, SPACES_VERSION_MINOR,
           SPACES_VERSION_PATCH);
  CHECK(v != NULL && strcmp(v, "0.1.0") == 0);
  CHECK(v != NULL && strcmp(v, expected) == 0);
  CHECK(SPACES_VERSION == 100);
}

static size_t committed(void) {
  struct spaces_stats s;
  memset(&s, 0, sizeof s);
  s.size = sizeof s;
  spaces_stats(&s);
  return s.committed_bytes;
}

/* 100 MiB of small blocks, freed, then collected: the committed figure must fall by at least
 * half of that; collecting (any force) and malloc_trim never break live blocks. */
static void test_collect(void) {
  spaces_collect(0);
  spaces_collect(1);
  malloc_trim(0);
  size_t cap = 1 << 16, n = 0, total = 0;
  unsigned char **blocks = malloc(cap * sizeof *blocks);
  unsigned x = 1;
  while (blocks && total < 100 * MIB) {
    if (n == cap) {
      unsigned char **grown = realloc(blocks, 2 * cap * sizeof *blocks);
      if (!CHECK(grown != NULL)) break;
      blocks = grown, cap *= 2;
    }
    x = x * 1103515245u + 12345u;
    size_t size = 16 + (x >> 8) % 1009;
    blocks[n] = malloc(size);
    if (blocks[n] == NULL) { /* counted only when it fails: 200 000 passes would drown the rest */
      CHECK(blocks[n] != NULL);
      break;
    }
    memset(blocks[n], (int)(n & 0xFF), size);
    total += size, ++n;
  }
  size_t live = committed();
  spaces_collect(0); /* the set is live: nothing of it may go */
  malloc_trim(0);
  size_t damaged = 0;
  for (size_t i = 0; i < n; i += 97)
    if (blocks[i][0] != (unsigned char)(i & 0xFF)) ++damaged;
  CHECK(damaged == 0);
  for (size_t i = 0; i < n; ++i) free(blocks[i]);
  free(blocks);
  spaces_collect(1);
  size_t after = committed();
  printf("committed: %zu KiB with %zu MiB in %zu blocks live, %zu KiB after free + collect(1)\n",
         live >> 10, total / MIB, n, after >> 10);
  check_set_context("committed live %zu, after collect %zu", live, after);
  CHECK(live >= total);
  CHECK(after + 50 * MIB < live);
  check_set_context("");
  void *p = malloc(64); /* still works */
  CHECK(p != NULL && spaces_owns(p) == 1);
  free(p);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--env-child") == 0)
    return spaces_option_get("purge_delay_ms") == 4321 ? 0 : 1;
  check_override_in_effect();
  test_options();
  test_option_environment("/proc/self/exe");
  test_stats();
  test_stats_print();
  test_version();
  test_collect();
  return check_finish();
}
