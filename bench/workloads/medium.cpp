// Models medium buffers (8 KiB..256 KiB by default: I/O buffers, hash-table arrays, string builders): each
// thread keeps --live slots, replaces a random one per step (so lifetimes are random), and about half of the
// blocks it replaces are handed to its neighbour thread, which frees them (cross-thread frees). Every block's
// first and last 64 bytes carry a pattern checked before free; exits non-zero on a mismatch.
// With --threads 1 the hand-over goes to the same thread (a local free, for reference).
#include "common.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "medium";

struct Item {
  void *p = nullptr;
  size_t size = 0;
  uint64_t key = 0;
};

struct Config {
  size_t iters, live, min_size, max_size;
  uint64_t seed;
  bool touch_all;
};

// One single-producer single-consumer ring per thread: thread t pushes into ring (t + 1) % n.
struct alignas(64) Ring {
  explicit Ring(size_t cap) : slots(cap) {}
  std::vector<Item> slots;
  alignas(64) std::atomic<size_t> head{0};  // consumer
  alignas(64) std::atomic<size_t> tail{0};  // producer
  bool push(const Item &it) {
    size_t t = tail.load(std::memory_order_relaxed);
    if (t - head.load(std::memory_order_acquire) == slots.size()) return false;
    slots[t % slots.size()] = it;
    tail.store(t + 1, std::memory_order_release);
    return true;
  }
  bool pop(Item &it) {
    size_t h = head.load(std::memory_order_relaxed);
    if (h == tail.load(std::memory_order_acquire)) return false;
    it = slots[h % slots.size()];
    head.store(h + 1, std::memory_order_release);
    return true;
  }
};

struct alignas(64) Worker {
  uint64_t ops = 0, sum = 0;
};

uint64_t release(const Item &it) {
  if (!intact_ends(it.p, it.size, it.key)) fail(kName, "pattern mismatch before free", it.p, it.size);
  std::free(it.p);
  return it.key ^ it.size;
}

void drain(Ring &in, Worker &w) {
  Item it;
  while (in.pop(it)) w.sum += release(it);
}

void work(Worker &w, unsigned t, unsigned n, std::vector<std::unique_ptr<Ring>> &rings, std::atomic<unsigned> &done,
          const Config &c) {
  Rng rng(c.seed * 6151 + t);
  std::vector<Item> slots(c.live);
  Ring &out = *rings[(t + 1) % n];
  Ring &in = *rings[t];
  uint64_t counter = 0;
  for (size_t i = 0; i < c.iters; i++) {
    Item &s = slots[rng.below(c.live)];
    if (s.p) {
      if (rng.below(2) == 0) {
        while (!out.push(s)) drain(in, w);  // (never blocks on a full ring: frees our own inbox meanwhile)
      } else {
        w.sum += release(s);
      }
    }
    s.size = c.min_size + (size_t)rng.below(c.max_size - c.min_size + 1);
    s.key = make_key(t, counter++);
    s.p = checked_malloc(kName, s.size);
    fill_ends(s.p, s.size, s.key, c.touch_all);
    w.ops++;
    if ((i & 15) == 0) drain(in, w);
  }
  for (Item &s : slots)
    if (s.p) w.sum += release(s);
  done.fetch_add(1);
  while (done.load() < n) {  // keep freeing what the neighbour still hands over
    drain(in, w);
    std::this_thread::yield();
  }
  drain(in, w);
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  unsigned threads = (unsigned)a.num("--threads", 1, 1);
  Config c;
  c.iters = (size_t)a.num("--iters", smoke ? 2000 : 400000, 1);  // replacements per thread
  c.live = (size_t)a.num("--live", 64, 1);
  c.min_size = (size_t)a.num("--min-size", 8193, 1);
  c.max_size = (size_t)a.num("--max-size", 262144, 1);
  c.seed = (uint64_t)a.num("--seed", 1);
  c.touch_all = a.flag("--touch-all");  // write whole blocks, not just their ends (common.h)
  a.finish();
  if (c.max_size < c.min_size) c.max_size = c.min_size;

  std::vector<std::unique_ptr<Ring>> rings;
  for (unsigned t = 0; t < threads; t++) rings.emplace_back(new Ring(256));
  std::vector<Worker> ws(threads);
  std::atomic<unsigned> done{0};
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; t++)
    pool.emplace_back(work, std::ref(ws[t]), t, threads, std::ref(rings), std::ref(done), std::cref(c));
  for (auto &th : pool) th.join();
  double secs = seconds_since(t0);
  uint64_t ops = 0, sum = 0;
  for (auto &w : ws) ops += w.ops, sum += w.sum;
  print_result(c.touch_all ? "medium_touch" : kName, threads, ops, secs, sum);
  return 0;
}
