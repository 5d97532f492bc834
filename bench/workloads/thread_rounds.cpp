// Models a server that starts fresh threads forever (a thread per request batch, a pool that is torn down and
// rebuilt): each round starts --threads new threads; each allocates --allocs blocks of 16 B..64 KiB (a few up
// to 512 KiB), frees most of them itself, frees the blocks the previous round left behind (cross-thread frees of
// blocks whose allocating thread has exited) and leaves --keep blocks for the next round, then exits. The live
// data is the same every round, so a flat RSS is the goal: STAT lines give the resident set after rounds 25,
// 100, 200 and 400 (and the last) and `rss_growth` = RSS at the last round / RSS at round 25.
// --min-size/--max-size replace that mix with sizes uniform in [min, max] (one size band, e.g. the
// 9-15 KiB classes: docs/benchmarks.md, session 25).
// Blocks carry a pattern checked before free; exits non-zero on a mismatch.
#include "common.h"

#include <mutex>
#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "thread_rounds";

struct Item {
  void *p;
  size_t size;
  uint64_t key;
};

struct Config {
  unsigned threads;
  size_t rounds, allocs, keep;
  uint64_t seed;
  bool touch_all;
  size_t min_size, max_size;  // max_size 0: the mix in pick_size
};

size_t pick_size(Rng &rng, const Config &c) {
  if (c.max_size) return c.min_size + (size_t)rng.below(c.max_size - c.min_size + 1);  // (--min-size/--max-size)
  uint64_t r = rng.below(1000);
  if (r < 700) return 16 + (size_t)rng.below(240);           // small objects
  if (r < 950) return 256 + (size_t)rng.below(4096 - 256);   // strings, vectors
  if (r < 995) return 4096 + (size_t)rng.below(65536 - 4096);  // buffers
  return 65536 + (size_t)rng.below(524288 - 65536);          // the odd big one
}

uint64_t release(const Item &it) {
  if (!intact_ends(it.p, it.size, it.key)) fail(kName, "pattern mismatch before free", it.p, it.size);
  std::free(it.p);
  return it.key ^ it.size;
}

void round_thread(unsigned id, uint64_t round, const Config &c, std::vector<Item> &inherit, std::vector<Item> &leave,
                  uint64_t &sum) {
  Rng rng(c.seed * 1000003 + round * 131 + id);
  std::vector<Item> mine;
  mine.reserve(64);
  uint64_t s = 0;
  for (size_t i = 0; i < c.allocs; i++) {
    Item it;
    it.size = pick_size(rng, c);
    it.key = make_key(id, round * c.allocs + i);
    it.p = checked_malloc(kName, it.size);
    fill_ends(it.p, it.size, it.key, c.touch_all);
    mine.push_back(it);
    if (mine.size() == 64) {  // a working set of 64 blocks: free the oldest half
      for (size_t k = 0; k < 32; k++) s += release(mine[k]);
      mine.erase(mine.begin(), mine.begin() + 32);
    }
  }
  for (const Item &it : inherit) s += release(it);  // the previous round's blocks (their threads are gone)
  inherit.clear();
  for (size_t k = 0; k < mine.size(); k++) {
    if (k < c.keep) leave.push_back(mine[k]);
    else s += release(mine[k]);
  }
  sum += s;
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  Config c;
  c.threads = (unsigned)a.num("--threads", 1, 1);
  c.rounds = (size_t)a.num("--rounds", smoke ? 30 : 400, 1);
  c.allocs = (size_t)a.num("--allocs", 2000, 1);
  c.keep = (size_t)a.num("--keep", 16, 0);
  c.seed = (uint64_t)a.num("--seed", 1);
  c.touch_all = a.flag("--touch-all");  // write whole blocks, not just their ends (common.h)
  c.min_size = (size_t)a.num("--min-size", 16, 1);  // with --max-size: every block uniform in [min, max]
  c.max_size = (size_t)a.num("--max-size", 0, 0);
  a.finish();
  if (c.max_size && c.max_size < c.min_size) c.max_size = c.min_size;

  std::vector<std::vector<Item>> carry(c.threads), next(c.threads);
  std::vector<uint64_t> sums(c.threads, 0);
  long rss25 = 0;
  auto t0 = Clock::now();
  for (size_t r = 1; r <= c.rounds; r++) {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < c.threads; t++)
      pool.emplace_back(round_thread, t, (uint64_t)r, std::cref(c), std::ref(carry[(t + 1) % c.threads]),
                        std::ref(next[t]), std::ref(sums[t]));
    for (auto &th : pool) th.join();
    std::swap(carry, next);
    if (r == 25 || r == 100 || r == 200 || r == 400 || r == c.rounds) {
      long rss = rss_kib();
      if (r == 25) rss25 = rss;
      std::printf("STAT round=%zu rss_kib_r%zu=%ld\n", r, r, rss);
    }
  }
  double secs = seconds_since(t0);
  long last = rss_kib();
  if (rss25 > 0) std::printf("STAT rss_growth=%.3f\n", (double)last / (double)rss25);
  uint64_t sum = 0;
  for (auto &v : carry)
    for (const Item &it : v) sum += release(it);
  for (uint64_t s : sums) sum += s;
  print_result(c.touch_all ? "thread_rounds_touch" : kName, c.threads, (uint64_t)c.rounds * c.threads * c.allocs, secs, sum);
  return 0;
}
