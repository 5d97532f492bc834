/* A C program built with `cc $(pkg-config --cflags --libs spaces)`. */
#include <spaces/spaces.h>
#include <stdio.h>
int main(void) {
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  void *p = spaces_chunk_alloc(c, 64, SPACES_ZERO);
  int ok = p != NULL && spaces_chunk_of(p) == c;
  spaces_chunk_destroy(c);
  printf("%d passed, %d failed\n", ok, !ok);
  return !ok;
}
