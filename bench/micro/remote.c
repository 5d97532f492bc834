/* remote: N malloc(SIZE) blocks (64 bytes unless a third argument says) made by the main thread,
 * then freed by another thread while the main thread lives (remote frees: its slabs stay owned),
 * or by the main thread itself ("local"), or every other one by the main thread ("half").
 * bench/micro/callgrind_free.sh counts the instructions of free_all() alone, per block. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void **blocks;
static long n;

__attribute__((noinline)) void free_all(void) {
  for (long i = 0; i < n; i++) free(blocks[i]);
}
/* Every other block ("half", local): no slab empties, so each free is the path alone. */
__attribute__((noinline)) void free_half(void) {
  for (long i = 1; i < n; i += 2) free(blocks[i]);
}
static void *freer(void *arg) {
  (void)arg;
  free_all();
  return NULL;
}
int main(int argc, char **argv) {
  n = argc > 1 ? atol(argv[1]) : 1000000;
  int local = argc > 2 && strcmp(argv[2], "local") == 0;
  int half = argc > 2 && strcmp(argv[2], "half") == 0;
  size_t size = argc > 3 ? (size_t)atol(argv[3]) : 64;
  blocks = malloc(sizeof(void *) * n);
  for (long i = 0; i < n; i++) blocks[i] = malloc(size);
  if (half) {
    free_half();
    for (long i = 0; i < n; i += 2) free(blocks[i]);
  } else if (local) {
    free_all();
  } else {
    pthread_t t;
    pthread_create(&t, NULL, freer, NULL);
    pthread_join(t, NULL);
  }
  free(blocks);
  return 0;
}
