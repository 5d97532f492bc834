/* shared_strings: two processes share a hash table of strings through a shared Spaces region.
 *
 *   shared_strings publish NAME [COUNT]   create region NAME, fill a hash table with COUNT strings
 *                                         ("string-0" ...), publish it through the region's root
 *   shared_strings lookup NAME WORD...    open region NAME (another process), look the words up
 *   shared_strings unlink NAME            remove the region's name
 *   shared_strings demo                   all three, the lookup in a child started with fork+exec
 *
 * The table is made of plain pointers: the region is mapped at the same address in every process
 * (docs/shared.md). */
#include <spaces/spaces.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct entry {
  struct entry *next;
  uint64_t hash;
  size_t len;
  char text[];
};
struct table {
  size_t count;
  size_t buckets; /* a power of two */
  struct entry *slot[];
};

static uint64_t hash_of(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static int publish(const char *name, size_t count) {
  SpacesChunk c = spaces_chunk_create_shared(name, (size_t)64 << 20, 0);
  if (!c) {
    fprintf(stderr, "create_shared(%s): %s\n", name, strerror(errno));
    return 1;
  }
  size_t buckets = 1;
  while (buckets < count) buckets *= 2;
  struct table *t = spaces_chunk_alloc(c, sizeof *t + buckets * sizeof(struct entry *), SPACES_ZERO);
  if (!t) return 1;
  t->buckets = buckets;
  for (size_t i = 0; i < count; i++) {
    char word[32];
    int n = snprintf(word, sizeof word, "string-%zu", i);
    struct entry *e = spaces_chunk_alloc(c, sizeof *e + (size_t)n + 1, 0);
    if (!e) {
      fprintf(stderr, "region full after %zu strings: %s\n", i, strerror(errno));
      return 1;
    }
    e->hash = hash_of(word, (size_t)n);
    e->len = (size_t)n;
    memcpy(e->text, word, (size_t)n + 1);
    e->next = t->slot[e->hash & (buckets - 1)];
    t->slot[e->hash & (buckets - 1)] = e;
    t->count++;
  }
  spaces_chunk_set_root(c, t); /* what the other processes start from */
  struct spaces_chunk_stats st = {sizeof st};
  spaces_chunk_stats(c, &st);
  printf("published %zu strings in region '%s', table at %p: %zu blocks, %zu bytes live, footprint %zu bytes\n",
         t->count, name, (void *)t, st.live_blocks, st.live_bytes, st.footprint);
  spaces_chunk_close_shared(c); /* the region lives on until unlinked */
  return 0;
}

static int lookup(const char *name, int nwords, char **words) {
  SpacesChunk c = spaces_chunk_open_shared(name, 0);
  if (!c) {
    fprintf(stderr, "open_shared(%s): %s\n", name, strerror(errno));
    return 1;
  }
  const struct table *t = spaces_chunk_root(c);
  if (!t) {
    fprintf(stderr, "region '%s' has no table yet\n", name);
    return 1;
  }
  int found = 0;
  for (int i = 0; i < nwords; i++) {
    size_t n = strlen(words[i]);
    uint64_t h = hash_of(words[i], n);
    const struct entry *e = t->slot[h & (t->buckets - 1)];
    while (e && !(e->hash == h && e->len == n && memcmp(e->text, words[i], n) == 0)) e = e->next;
    printf("  %-16s %s\n", words[i], e ? "found" : "not found");
    found += e != NULL;
  }
  printf("process %d looked up %d words in %zu strings published by another process: %d found\n",
         (int)getpid(), nwords, t->count, found);
  spaces_chunk_close_shared(c);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "publish") == 0) return publish(argv[2], argc > 3 ? strtoul(argv[3], NULL, 10) : 100000);
  if (argc >= 3 && strcmp(argv[1], "lookup") == 0) return lookup(argv[2], argc - 3, argv + 3);
  if (argc == 3 && strcmp(argv[1], "unlink") == 0) return spaces_chunk_unlink_shared(argv[2]) == 0 ? 0 : 1;
  if (argc == 2 && strcmp(argv[1], "demo") == 0) {
    char name[64];
    snprintf(name, sizeof name, "shared-strings-demo-%d", (int)getpid());
    if (publish(name, 100000) != 0) return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      execl(argv[0], argv[0], "lookup", name, "string-0", "string-4242", "string-99999", "string-100000",
            "no-such-string", (char *)NULL);
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    spaces_chunk_unlink_shared(name);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  }
  fprintf(stderr, "usage: %s publish NAME [COUNT] | lookup NAME WORD... | unlink NAME | demo\n", argv[0]);
  return 2;
}
