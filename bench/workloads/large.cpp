// Models large buffers (64 KiB..32 MiB): each thread keeps a few live buffers, replaces them or grows them with
// realloc, and touches one byte per 4 KiB page so the memory is really faulted in. Checks the touched bytes
// (and that realloc kept the old contents) before every realloc and free; exits non-zero on a mismatch.
#include "common.h"

#include <cmath>
#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "large";
const size_t kPage = 4096;

struct Buf {
  unsigned char *p = nullptr;
  size_t size = 0;
  uint64_t key = 0;
};

struct Config {
  size_t iters, live, min_size, max_size;
  unsigned grow_pct;
  uint64_t seed;
};

struct alignas(64) Worker {
  uint64_t ops = 0, sum = 0;
};

inline unsigned char page_byte(uint64_t key, size_t page) { return (unsigned char)(mix64(key + page) | 1); }

// Writes the first byte of every page that starts at or after `from`.
void touch(const Buf &b, size_t from) {
  for (size_t off = (from + kPage - 1) / kPage * kPage; off < b.size; off += kPage)
    b.p[off] = page_byte(b.key, off / kPage);
}

void check(const Buf &b, size_t upto, const char *when) {
  for (size_t off = 0; off < upto; off += kPage)
    if (b.p[off] != page_byte(b.key, off / kPage)) fail(kName, when, b.p + off, b.size);
}

size_t random_size(Rng &rng, const Config &c) {
  // Log-uniform, so 64 KiB..1 MiB is as common as 1..32 MiB: real programs have many more small big blocks.
  double lo = std::log2((double)c.min_size), hi = std::log2((double)c.max_size);
  return (size_t)std::exp2(lo + (hi - lo) * rng.unit());
}

void work(Worker &w, unsigned t, const Config &c) {
  Rng rng(c.seed * 104729 + t);
  std::vector<Buf> bufs(c.live);
  uint64_t counter = 0;
  for (size_t i = 0; i < c.iters; i++) {
    Buf &b = bufs[rng.below(c.live)];
    if (b.p && b.size < c.max_size && rng.below(100) < c.grow_pct) {
      // Growth step: x1.25 .. x2, capped; contents up to the old size must survive.
      check(b, b.size, "pattern mismatch before realloc");
      size_t old = b.size;
      size_t want = old + old / 4 + rng.below(old - old / 4 + 1);
      if (want > c.max_size) want = c.max_size;
      auto *q = static_cast<unsigned char *>(std::realloc(b.p, want));
      if (!q) fail(kName, "realloc returned NULL", b.p, want);
      b.p = q;
      b.size = want;
      check(b, old, "realloc lost the contents");
      touch(b, old);
    } else {
      if (b.p) {
        check(b, b.size, "pattern mismatch before free");
        w.sum += b.key ^ b.size;
        std::free(b.p);
      }
      b.size = random_size(rng, c);
      b.key = make_key(t, counter++);
      b.p = static_cast<unsigned char *>(checked_malloc(kName, b.size));
      touch(b, 0);
    }
    w.ops++;
  }
  for (Buf &b : bufs) {
    if (!b.p) continue;
    check(b, b.size, "pattern mismatch at the end");
    w.sum += b.key ^ b.size;
    std::free(b.p);
  }
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  unsigned threads = (unsigned)a.num("--threads", 1, 1);
  Config c;
  c.iters = (size_t)a.num("--iters", smoke ? 50 : 4000, 1);  // operations per thread
  c.live = (size_t)a.num("--live", 4, 1);                     // live buffers per thread
  c.min_size = (size_t)a.num("--min-size", 64 << 10, kPage);
  c.max_size = (size_t)a.num("--max-size", smoke ? 8 << 20 : 32 << 20, kPage);
  c.grow_pct = (unsigned)a.num("--grow-pct", 30);
  c.seed = (uint64_t)a.num("--seed", 1);
  a.finish();
  if (c.max_size < c.min_size) c.max_size = c.min_size;

  std::vector<Worker> workers(threads);
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; t++) pool.emplace_back(work, std::ref(workers[t]), t, std::cref(c));
  work(workers[0], 0, c);
  for (auto &th : pool) th.join();
  double secs = seconds_since(t0);

  uint64_t ops = 0, sum = 0;
  for (const Worker &w : workers) { ops += w.ops; sum += w.sum; }
  print_result(kName, threads, ops, secs, sum);
  return 0;
}
