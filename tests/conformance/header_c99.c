/* spaces.h compiles as pedantic C99 and its API links and works from C. */
#include <spaces/spaces.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  struct spaces_stats st;
  char *p = (char *)spaces_malloc(100);
  int ok = p != NULL && spaces_owns(p) == 1 && spaces_usable_size(p) >= 100;
  memset(p, 1, 100);
  p = (char *)spaces_realloc(p, 100000);
  ok = ok && p != NULL && p[99] == 1;
  spaces_free(p);
  memset(&st, 0, sizeof st);
  st.size = sizeof st;
  ok = ok && spaces_stats(&st) == 0 && st.version == SPACES_STATS_VERSION;
  ok = ok && strcmp(spaces_version(), "0.1.0") == 0 && SPACES_VERSION == 100;
  printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
  return ok ? 0 : 1;
}
