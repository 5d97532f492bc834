// Models allocator-induced false sharing. active: every thread allocates small blocks (8..64 B) and writes them
// hard. passive: the main thread allocates the first blocks back to back and hands them out; each thread frees
// its block, allocates again and writes hard. Each block's bytes are checked after the writes, before free.
#include "common.h"

#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "false_sharing";

struct Config {
  bool passive;
  size_t iters, writes, min_size, max_size, handed;
  uint64_t seed;
};

struct Handed {
  unsigned char *p;
  size_t n;
  unsigned char fill;
};

struct alignas(64) Worker {
  std::vector<Handed> handed;  // passive mode: blocks the main thread allocated for this worker
  uint64_t sum = 0;
};

// Writes every byte `writes` times; the compiler barrier keeps each pass a real store to the block.
inline void hammer(unsigned char *p, size_t n, size_t writes) {
  for (size_t w = 0; w < writes; w++) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(p[i] + 1);
    asm volatile("" ::: "memory");
  }
}

void check_hammered(const unsigned char *p, size_t n, unsigned char start, size_t writes) {
  unsigned char want = (unsigned char)(start + writes);
  for (size_t i = 0; i < n; i++)
    if (p[i] != want) fail(kName, "block changed under the writer", p, n);
}

void work(Worker &w, unsigned t, const Config &c) {
  Rng rng(c.seed * 31337 + t);
  for (const Handed &h : w.handed) {
    check_hammered(h.p, h.n, h.fill, 0);
    std::free(h.p);
  }
  for (size_t it = 0; it < c.iters; it++) {
    size_t n = rng.range(c.min_size, c.max_size);
    unsigned char start = (unsigned char)rng.next();
    auto *p = static_cast<unsigned char *>(checked_malloc(kName, n));
    std::memset(p, start, n);
    hammer(p, n, c.writes);
    check_hammered(p, n, start, c.writes);
    w.sum += n * 131 + start;
    std::free(p);
  }
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  unsigned threads = (unsigned)a.num("--threads", 1, 1);
  std::string mode = a.str("--mode", "active");
  Config c;
  c.iters = (size_t)a.num("--iters", smoke ? 2000 : 100000, 1);  // allocations per thread
  c.writes = (size_t)a.num("--writes", smoke ? 100 : 500, 1);    // write passes per allocation
  c.min_size = (size_t)a.num("--min-size", 8, 1);
  c.max_size = (size_t)a.num("--max-size", 64, 1);
  c.handed = (size_t)a.num("--handed", 16);  // passive: blocks the main thread allocates per worker
  c.seed = (uint64_t)a.num("--seed", 1);
  a.finish();
  if (mode != "active" && mode != "passive") {
    std::fprintf(stderr, "%s: --mode must be active or passive\n", kName);
    return 64;
  }
  if (c.max_size < c.min_size) c.max_size = c.min_size;
  c.passive = mode == "passive";

  std::vector<Worker> workers(threads);
  for (Worker &w : workers) w.handed.reserve(c.handed);

  auto t0 = Clock::now();
  if (c.passive) {
    // Interleaved hand-out: consecutive allocations of the main thread go to different workers, so neighbours
    // in one cache line end up written by different threads unless the allocator separates them on free.
    Rng rng(c.seed);
    for (size_t i = 0; i < c.handed; i++)
      for (unsigned t = 0; t < threads; t++) {
        Handed h;
        h.n = rng.range(c.min_size, c.max_size);
        h.fill = (unsigned char)rng.next();
        h.p = static_cast<unsigned char *>(checked_malloc(kName, h.n));
        std::memset(h.p, h.fill, h.n);
        workers[t].handed.push_back(h);
      }
  }
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; t++) pool.emplace_back(work, std::ref(workers[t]), t, std::cref(c));
  work(workers[0], 0, c);
  for (auto &th : pool) th.join();
  double secs = seconds_since(t0);

  uint64_t sum = 0;
  for (const Worker &w : workers) sum += w.sum;
  std::string name = std::string(kName) + "_" + mode;
  print_result(name.c_str(), threads, (uint64_t)c.iters * threads, secs, sum);
  return 0;
}
