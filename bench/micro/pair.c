/* pair: N same-thread malloc(SIZE)+free pairs (32 bytes unless a second argument says);
 * bench/micro/callgrind_pair.sh counts instructions. */
#include <stdlib.h>
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  size_t size = argc > 2 && argv[2][0] ? (size_t)atol(argv[2]) : 32;
  void *volatile sink;
  for (long i = 0; i < n; i++) {
    void *p = malloc(size);
    sink = p;
    free(p);
  }
  (void)sink;
  return 0;
}
