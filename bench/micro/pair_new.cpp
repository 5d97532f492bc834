// pair_new: N same-thread `new char[32]`-sized operator new + operator delete pairs, plain or sized
// (argv[2] = "sized": C++14 sized ::operator delete(p, 32)); bench/micro/callgrind_pair.sh counts
// instructions.
#include <cstdlib>
#include <cstring>
#include <new>
int main(int argc, char **argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 1000000;
  bool sized = argc > 2 && std::strcmp(argv[2], "sized") == 0;
  void *volatile sink;
  for (long i = 0; i < n; i++) {
    void *p = ::operator new(32);
    sink = p;
    if (sized)
      ::operator delete(p, 32);
    else
      ::operator delete(p);
  }
  (void)sink;
  return 0;
}
