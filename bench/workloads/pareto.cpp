// Models the size and lifetime mix of object-heavy programs: sizes follow a Pareto law (many tiny, few up to
// 1 KiB) and each block is freed after a random delay, kept in a timing wheel of pending frees (mostly short,
// some long lifetimes). Every block's pattern is checked before free; exits non-zero on a mismatch.
#include "common.h"

#include <cmath>
#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "pareto";
const uint32_t kNone = 0xFFFFFFFFu;

struct Config {
  size_t steps, max_delay, min_size, max_size;
  unsigned short_pct;
  double alpha;
  uint64_t seed;
};

struct Pending {
  void *p;
  uint32_t size;
  uint32_t next;  // next entry due at the same step, or kNone
  uint64_t key;
};

struct alignas(64) Worker {
  uint64_t ops = 0, sum = 0;
};

size_t pareto_size(Rng &rng, const Config &c) {
  for (;;) {  // inverse CDF, resampled above the cap so the cap does not become a spike
    double x = (double)c.min_size / std::pow(1.0 - rng.unit(), 1.0 / c.alpha);
    if (x <= (double)c.max_size) return (size_t)x;
  }
}

// 64 Ki draws taken before the timed part: pow() per allocation would cost more than a fast malloc.
std::vector<uint32_t> size_table(const Config &c) {
  Rng rng(c.seed);
  std::vector<uint32_t> table(1 << 16);
  for (uint32_t &s : table) s = (uint32_t)pareto_size(rng, c);
  return table;
}

void work(Worker &w, unsigned t, const Config &c, const std::vector<uint32_t> &sizes) {
  Rng rng(c.seed * 998244353 + t);
  const size_t wheel_size = c.max_delay + 1;  // a delay of d lands d slots ahead, never a full turn
  std::vector<uint32_t> wheel(wheel_size, kNone);
  std::vector<Pending> pool(wheel_size + 1);  // at most one allocation per step, each due within max_delay
  uint32_t free_head = 0;
  for (uint32_t i = 0; i < pool.size(); i++) pool[i].next = i + 1 < pool.size() ? i + 1 : kNone;

  auto release = [&](uint32_t e) {
    Pending &pd = pool[e];
    if (!intact(pd.p, pd.size, pd.key)) fail(kName, "pattern mismatch before free", pd.p, pd.size);
    w.sum += pd.key ^ pd.size;
    std::free(pd.p);
  };

  for (size_t step = 0; step < c.steps; step++) {
    uint32_t &head = wheel[step % wheel_size];
    for (uint32_t e = head; e != kNone;) {
      uint32_t nx = pool[e].next;
      release(e);
      pool[e].next = free_head;
      free_head = e;
      e = nx;
    }
    head = kNone;

    uint32_t e = free_head;
    free_head = pool[e].next;
    Pending &pd = pool[e];
    pd.size = sizes[rng.below(sizes.size())];
    pd.key = make_key(t, step);
    pd.p = checked_malloc(kName, pd.size);
    fill(pd.p, pd.size, pd.key);
    size_t delay = rng.below(100) < c.short_pct ? rng.range(1, std::min<size_t>(16, c.max_delay))
                                                : rng.range(1, c.max_delay);
    uint32_t &due = wheel[(step + delay) % wheel_size];
    pd.next = due;
    due = e;
    w.ops++;
  }
  for (uint32_t &head : wheel)
    for (uint32_t e = head; e != kNone; e = pool[e].next) release(e);
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  unsigned threads = (unsigned)a.num("--threads", 1, 1);
  Config c;
  c.steps = (size_t)a.num("--n", smoke ? 50000 : 30000000, 1);  // allocations per thread
  c.max_delay = (size_t)a.num("--max-delay", 20000, 1);          // longest lifetime, in allocations
  c.short_pct = (unsigned)a.num("--short-pct", 80);              // share of lifetimes of at most 16
  c.min_size = (size_t)a.num("--min-size", 8, 1);
  c.max_size = (size_t)a.num("--max-size", 1024, 1);
  c.alpha = a.real("--alpha", 1.2);
  c.seed = (uint64_t)a.num("--seed", 1);
  a.finish();
  if (c.max_size < c.min_size) c.max_size = c.min_size;
  if (c.alpha <= 0) c.alpha = 1.2;

  std::vector<Worker> workers(threads);
  const std::vector<uint32_t> sizes = size_table(c);
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; t++) pool.emplace_back(work, std::ref(workers[t]), t, std::cref(c), std::cref(sizes));
  work(workers[0], 0, c, sizes);
  for (auto &th : pool) th.join();
  double secs = seconds_since(t0);

  uint64_t ops = 0, sum = 0;
  for (const Worker &w : workers) { ops += w.ops; sum += w.sum; }
  print_result(kName, threads, ops, secs, sum);
  return 0;
}
