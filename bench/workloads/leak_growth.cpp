// Models a slowly leaking program: every thread keeps a growing set of blocks (a cache that never shrinks)
// while churning short-lived temporaries of wider sizes, then reports live bytes, peak RSS and RSS/live.
// Every block's pattern is checked before free; exits non-zero on a mismatch.
#include "common.h"

#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "leak_growth";
const size_t kRing = 64;  // temporaries alive at once per thread

struct Config {
  size_t iters, leak_every, kept_min, kept_max, temp_min, temp_max;
  uint64_t seed;
};

// Sizes come from the key so that only the pointer needs storing (bookkeeping stays small next to the heap).
inline size_t size_of(uint64_t key, size_t lo, size_t hi) { return lo + mix64(key ^ 0x5bd1e995) % (hi - lo + 1); }

struct alignas(64) Worker {
  std::vector<void *> kept;
  uint64_t ops = 0, sum = 0, kept_bytes = 0;
};

void work(Worker &w, unsigned t, const Config &c) {
  Rng rng(c.seed * 15485863 + t);
  void *ring[kRing] = {};
  uint64_t ring_key[kRing] = {};
  uint64_t counter = 0;
  for (size_t i = 0; i < c.iters; i++) {
    size_t r = rng.below(kRing);
    if (ring[r]) {
      size_t n = size_of(ring_key[r], c.temp_min, c.temp_max);
      if (!intact(ring[r], n, ring_key[r])) fail(kName, "temporary changed before free", ring[r], n);
      w.sum += ring_key[r] ^ n;
      std::free(ring[r]);
    }
    ring_key[r] = make_key(t, counter++);
    size_t n = size_of(ring_key[r], c.temp_min, c.temp_max);
    ring[r] = checked_malloc(kName, n);
    fill(ring[r], n, ring_key[r]);
    w.ops++;
    if (i % c.leak_every == 0) {
      // The kept block's key is its index in `kept`, so it can be recomputed at the end.
      uint64_t key = make_key(t, (1ull << 40) + w.kept.size());
      size_t k = size_of(key, c.kept_min, c.kept_max);
      void *p = checked_malloc(kName, k);
      fill(p, k, key);
      w.kept.push_back(p);
      w.kept_bytes += k;
      w.ops++;
    }
  }
  for (size_t r = 0; r < kRing; r++) {
    if (!ring[r]) continue;
    size_t n = size_of(ring_key[r], c.temp_min, c.temp_max);
    if (!intact(ring[r], n, ring_key[r])) fail(kName, "temporary changed at the end", ring[r], n);
    std::free(ring[r]);
  }
}

void check_and_free_kept(Worker &w, unsigned t, const Config &c) {
  for (size_t i = 0; i < w.kept.size(); i++) {
    uint64_t key = make_key(t, (1ull << 40) + i);
    size_t k = size_of(key, c.kept_min, c.kept_max);
    if (!intact(w.kept[i], k, key)) fail(kName, "kept block changed", w.kept[i], k);
    w.sum += key ^ k;
    std::free(w.kept[i]);
  }
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  unsigned threads = (unsigned)a.num("--threads", 1, 1);
  Config c;
  c.iters = (size_t)a.num("--iters", smoke ? 50000 : 3000000, 1);  // temporaries per thread
  c.leak_every = (size_t)a.num("--leak-every", 8, 1);              // keep one block every N temporaries
  c.kept_min = (size_t)a.num("--kept-min", 16, 1);
  c.kept_max = (size_t)a.num("--kept-max", 1024, 1);
  c.temp_min = (size_t)a.num("--temp-min", 16, 1);
  c.temp_max = (size_t)a.num("--temp-max", 16384, 1);
  c.seed = (uint64_t)a.num("--seed", 1);
  a.finish();
  if (c.kept_max < c.kept_min) c.kept_max = c.kept_min;
  if (c.temp_max < c.temp_min) c.temp_max = c.temp_min;

  long base_rss = peak_rss_kib();
  std::vector<Worker> workers(threads);
  for (Worker &w : workers) w.kept.reserve(c.iters / c.leak_every + 1);

  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; t++) pool.emplace_back(work, std::ref(workers[t]), t, std::cref(c));
  work(workers[0], 0, c);
  for (auto &th : pool) th.join();
  double secs = seconds_since(t0);

  // Live = what the program holds at its peak: kept blocks plus the arrays that point to them. The at most
  // kRing temporaries per thread in flight (under 1 MiB each with default sizes) are left out.
  uint64_t live = 0, ops = 0, sum = 0;
  for (const Worker &w : workers) live += w.kept_bytes + w.kept.capacity() * sizeof(void *);
  long peak_rss = peak_rss_kib();
  for (unsigned t = 0; t < threads; t++) {
    check_and_free_kept(workers[t], t, c);
    ops += workers[t].ops;
    sum += workers[t].sum;
  }
  std::printf("STAT name=%s live_bytes=%llu peak_rss_kib=%ld base_rss_kib=%ld rss_over_live=%.3f\n", kName,
              (unsigned long long)live, peak_rss, base_rss, (double)peak_rss * 1024.0 / (double)live);
  print_result(kName, threads, ops, secs, sum);
  return 0;
}
