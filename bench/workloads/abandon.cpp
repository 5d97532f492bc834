// Models a program whose worker threads build data and exit while another thread lives on and
// frees it (a loader pool that fills a cache, a batch of producer threads whose results a
// long-lived thread consumes): --threads producer threads allocate and write --blocks blocks in
// all (a mix of 40 B, 700 B, 6 000 B and 30 000 B: small classes and medium blocks, about 950 MB
// at full size), and exit; the main thread then frees every block. What it measures is whether
// the memory comes back: STAT `rss_freed_kib` is the resident set after the frees above the
// resident set before the producers started, `held_after_free` that figure over what the
// producers' blocks took (1.0: nothing came back, 0: all of it). The timed part is the
// producers' allocations and the frees. Every block's ends carry a pattern checked before free
// (the whole block is written); exits non-zero on a mismatch. (bench/micro/abandon.c has the
// same program with a free-only thread and with 500 short producer threads, and watches the
// resident set for 2 s after the frees: docs/benchmarks.md, session 29.)
#include "common.h"

#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "abandon";

size_t size_of(size_t k) {
  static const size_t kSizes[] = {40, 700, 6000, 30000};
  return kSizes[k % 4];
}

void produce(std::vector<void *> &blocks, size_t from, size_t to) {
  for (size_t k = from; k < to; k++) {
    blocks[k] = checked_malloc(kName, size_of(k));
    fill_ends(blocks[k], size_of(k), make_key(0, k), true);
  }
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  unsigned threads = (unsigned)a.num("--threads", 1, 1);
  size_t n = (size_t)a.num("--blocks", smoke ? 2000 : 100000, 1);
  a.finish();

  std::vector<void *> blocks(n, nullptr);
  std::free(checked_malloc(kName, 64));  // (the main thread's own allocator state, before the base)
  long base = rss_kib();
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; t++)
    pool.emplace_back(produce, std::ref(blocks), n * t / threads, n * (t + 1) / threads);
  for (auto &th : pool) th.join();
  long allocated = rss_kib();
  uint64_t sum = 0;
  for (size_t k = 0; k < n; k++) {
    if (!intact_ends(blocks[k], size_of(k), make_key(0, k)))
      fail(kName, "pattern mismatch before free", blocks[k], size_of(k));
    sum += make_key(0, k) ^ size_of(k);
    std::free(blocks[k]);
  }
  double secs = seconds_since(t0);
  long freed = rss_kib();
  std::printf("STAT rss_freed_kib=%ld held_after_free=%.3f\n", freed - base,
              allocated > base ? (double)(freed - base) / (double)(allocated - base) : 0.0);
  print_result(kName, threads, 2 * (uint64_t)n, secs, sum);
  return 0;
}
