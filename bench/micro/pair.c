/* pair: N same-thread malloc(32)+free pairs; bench/micro/callgrind_pair.sh counts instructions. */
#include <stdlib.h>
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  void *volatile sink;
  for (long i = 0; i < n; i++) {
    void *p = malloc(32);
    sink = p;
    free(p);
  }
  (void)sink;
  return 0;
}
