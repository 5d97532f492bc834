// Models the allocator fast path in a tight loop, per thread. single: malloc then immediately free, sizes
// 8..512 from a precomputed mix. batch: malloc 1000 blocks, then free all 1000. Each block gets its first and
// last word written and checked before free (a full fill would cost more than the allocator); exits non-zero.
#include "common.h"

#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "tight";
const size_t kMix = 1024;  // sizes cycle through this table: no RNG on the timed path

struct Config {
  bool batch;
  size_t iters, batch_size, min_size, max_size;
  uint64_t seed;
};

struct alignas(64) Worker {
  uint64_t ops = 0, sum = 0;
};

void run_single(Worker &w, unsigned t, const Config &c, const std::vector<uint32_t> &mix) {
  uint64_t sum = 0;
  for (size_t i = 0; i < c.iters; i++) {
    size_t n = mix[i % kMix];
    uint64_t key = make_key(t, i);
    void *p = checked_malloc(kName, n);
    fill_ends(p, n, key);
    if (!intact_ends(p, n, key)) fail(kName, "pattern mismatch before free", p, n);
    sum += key ^ n;
    std::free(p);
  }
  w.ops = c.iters;
  w.sum = sum;
}

void run_batch(Worker &w, unsigned t, const Config &c, const std::vector<uint32_t> &mix) {
  std::vector<void *> ptrs(c.batch_size);
  uint64_t sum = 0, done = 0;
  while (done < c.iters) {
    size_t n = std::min<uint64_t>(c.batch_size, c.iters - done);
    for (size_t i = 0; i < n; i++) {
      size_t sz = mix[(done + i) % kMix];
      ptrs[i] = checked_malloc(kName, sz);
      fill_ends(ptrs[i], sz, make_key(t, done + i));
    }
    for (size_t i = 0; i < n; i++) {
      size_t sz = mix[(done + i) % kMix];
      uint64_t key = make_key(t, done + i);
      if (!intact_ends(ptrs[i], sz, key)) fail(kName, "pattern mismatch before free", ptrs[i], sz);
      sum += key ^ sz;
      std::free(ptrs[i]);
    }
    done += n;
  }
  w.ops = c.iters;
  w.sum = sum;
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  unsigned threads = (unsigned)a.num("--threads", 1, 1);
  std::string mode = a.str("--mode", "single");
  Config c;
  c.iters = (size_t)a.num("--iters", smoke ? 200000 : 50000000, 1);  // malloc/free pairs per thread
  c.batch_size = (size_t)a.num("--batch", 1000, 1);
  c.min_size = (size_t)a.num("--min-size", 8, 1);
  c.max_size = (size_t)a.num("--max-size", 512, 1);
  c.seed = (uint64_t)a.num("--seed", 1);
  a.finish();
  if (mode != "single" && mode != "batch") {
    std::fprintf(stderr, "%s: --mode must be single or batch\n", kName);
    return 64;
  }
  if (c.max_size < c.min_size) c.max_size = c.min_size;
  c.batch = mode == "batch";

  // Mostly small sizes, as in real programs: three quarters up to 64 B, the rest up to max_size.
  std::vector<uint32_t> mix(kMix);
  Rng rng(c.seed);
  size_t small_max = std::min<size_t>(64, c.max_size);
  for (uint32_t &s : mix)
    s = (uint32_t)(rng.below(4) ? rng.range(c.min_size, std::max(small_max, c.min_size)) : rng.range(c.min_size, c.max_size));

  std::vector<Worker> workers(threads);
  auto body = c.batch ? run_batch : run_single;
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; t++) pool.emplace_back(body, std::ref(workers[t]), t, std::cref(c), std::cref(mix));
  body(workers[0], 0, c, mix);
  for (auto &th : pool) th.join();
  double secs = seconds_since(t0);

  uint64_t ops = 0, sum = 0;
  for (const Worker &w : workers) { ops += w.ops; sum += w.sum; }
  std::string name = std::string(kName) + "_" + mode;
  print_result(name.c_str(), threads, ops, secs, sum);
  return 0;
}
