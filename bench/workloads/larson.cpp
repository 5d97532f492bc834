// Models a larson-style server: each thread owns a slot array of random-sized blocks and replaces random slots;
// after every round the arrays move to the next thread, so most blocks are freed by a thread that did not
// allocate them. Checks every block's pattern before it is freed; exits non-zero on a mismatch.
// --sized: the blocks come from ::operator new and go back through C++14 sized ::operator delete (what a
// C++ server compiled with -fsized-deallocation does), to compare sized and plain frees.
#include "common.h"

#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "larson";

struct Slot {
  void *p;
  size_t size;
  uint64_t key;
};

struct Config {
  unsigned threads;
  size_t slots, rounds, per_round, min_size, max_size;
  uint64_t seed;
  bool sized;  // ::operator new / sized ::operator delete instead of malloc / free
};

void *obtain(size_t n, const Config &c) { return c.sized ? ::operator new(n) : checked_malloc(kName, n); }
void release(void *p, size_t n, const Config &c) {
  if (c.sized)
    ::operator delete(p, n);
  else
    std::free(p);
}

struct alignas(64) Worker {  // one cache line each: the harness must not false-share
  Rng rng{0};
  uint64_t counter = 0, ops = 0, sum = 0;
};

void replace(Slot &s, Worker &w, unsigned t, const Config &c) {
  if (!intact(s.p, s.size, s.key)) fail(kName, "pattern mismatch before free", s.p, s.size);
  w.sum += s.key ^ s.size;
  release(s.p, s.size, c);
  s.size = w.rng.range(c.min_size, c.max_size);
  s.key = make_key(t, w.counter++);
  s.p = obtain(s.size, c);
  fill(s.p, s.size, s.key);
  w.ops++;
}

}  // namespace

int main(int argc, char **argv) {
  bench::Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  Config c;
  c.threads = (unsigned)a.num("--threads", 1, 1);
  c.slots = (size_t)a.num("--slots", smoke ? 200 : 2000, 1);
  c.rounds = (size_t)a.num("--rounds", smoke ? 10 : 200, 1);
  c.per_round = (size_t)a.num("--ops-per-round", smoke ? 1000 : 20000, 1);
  c.min_size = (size_t)a.num("--min-size", 16, 1);
  c.max_size = (size_t)a.num("--max-size", 1024, 1);
  c.seed = (uint64_t)a.num("--seed", 1);
  c.sized = a.flag("--sized");
  a.finish();
  if (c.max_size < c.min_size) c.max_size = c.min_size;

  // arrays[i] is owned by thread (i + round) % threads during a round; the barrier hands it on.
  std::vector<std::vector<Slot>> arrays(c.threads, std::vector<Slot>(c.slots));
  std::vector<Worker> workers(c.threads);
  bench::Barrier barrier(c.threads);

  auto body = [&](unsigned t) {
    Worker &w = workers[t];
    w.rng = Rng(c.seed * 1000003 + t);
    for (Slot &s : arrays[t]) {
      s.size = w.rng.range(c.min_size, c.max_size);
      s.key = make_key(t, w.counter++);
      s.p = obtain(s.size, c);
      fill(s.p, s.size, s.key);
    }
    for (size_t r = 0; r < c.rounds; r++) {
      barrier.wait();
      std::vector<Slot> &mine = arrays[(t + r) % c.threads];
      for (size_t i = 0; i < c.per_round; i++) replace(mine[w.rng.below(c.slots)], w, t, c);
    }
    barrier.wait();
    // The final free is also cross-thread: each thread empties the array it holds last.
    for (Slot &s : arrays[(t + c.rounds) % c.threads]) {
      if (!intact(s.p, s.size, s.key)) fail(kName, "pattern mismatch at the end", s.p, s.size);
      w.sum += s.key ^ s.size;
      release(s.p, s.size, c);
    }
  };

  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < c.threads; t++) pool.emplace_back(body, t);
  body(0);
  for (auto &th : pool) th.join();
  double secs = seconds_since(t0);

  uint64_t ops = 0, sum = 0;
  for (const Worker &w : workers) { ops += w.ops; sum += w.sum; }
  print_result(c.sized ? "larson_sized" : kName, c.threads, ops, secs, sum);
  return 0;
}
