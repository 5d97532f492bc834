// Models a producer/consumer pipeline: a producer thread allocates and fills blocks and passes them through a
// bounded lock-free queue to a consumer thread that checks and frees them (pairs of threads for --threads > 2;
// one thread alternates both roles for --threads 1). Every block's pattern is checked before free.
#include "common.h"

#include <memory>
#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "xthread";

struct Item {
  void *p;
  size_t size;
  uint64_t key;
};

// Single-producer single-consumer ring; the slots are allocated before the timed part.
class Ring {
 public:
  explicit Ring(size_t cap) : slots_(cap) {}
  bool push(const Item &it) {
    size_t h = head_.load(std::memory_order_relaxed);
    if (h - tail_.load(std::memory_order_acquire) == slots_.size()) return false;
    slots_[h % slots_.size()] = it;
    head_.store(h + 1, std::memory_order_release);
    return true;
  }
  bool pop(Item &it) {
    size_t t = tail_.load(std::memory_order_relaxed);
    if (t == head_.load(std::memory_order_acquire)) return false;
    it = slots_[t % slots_.size()];
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

 private:
  std::vector<Item> slots_;
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
};

struct alignas(64) Pair {
  explicit Pair(size_t cap) : ring(cap) {}
  Ring ring;
  uint64_t produced_sum = 0, consumed_sum = 0;
};

struct Config {
  size_t blocks, min_size, max_size, queue, batch;
  uint64_t seed;
};

Item make_item(Rng &rng, unsigned id, uint64_t n, const Config &c) {
  Item it;
  it.size = rng.range(c.min_size, c.max_size);
  it.key = make_key(id, n);
  it.p = checked_malloc(kName, it.size);
  fill(it.p, it.size, it.key);
  return it;
}

uint64_t consume(const Item &it) {
  if (!intact(it.p, it.size, it.key)) fail(kName, "pattern mismatch before free", it.p, it.size);
  std::free(it.p);
  return it.key ^ it.size;
}

void producer(Pair &pr, unsigned id, const Config &c) {
  Rng rng(c.seed * 7919 + id);
  for (uint64_t n = 0; n < c.blocks; n++) {
    Item it = make_item(rng, id, n, c);
    pr.produced_sum += it.key ^ it.size;
    while (!pr.ring.push(it)) std::this_thread::yield();
  }
}

void consumer(Pair &pr, const Config &c) {
  Item it;
  for (uint64_t n = 0; n < c.blocks; n++) {
    while (!pr.ring.pop(it)) std::this_thread::yield();
    pr.consumed_sum += consume(it);
  }
}

// --threads 1: the same thread fills the queue with a batch, then drains it (same-thread free, for reference).
void alternate(Pair &pr, const Config &c) {
  Rng rng(c.seed * 7919);
  Item it;
  for (uint64_t n = 0; n < c.blocks;) {
    for (size_t b = 0; b < c.batch && n < c.blocks; b++, n++) {
      it = make_item(rng, 0, n, c);
      pr.produced_sum += it.key ^ it.size;
      pr.ring.push(it);
    }
    while (pr.ring.pop(it)) pr.consumed_sum += consume(it);
  }
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  unsigned threads = (unsigned)a.num("--threads", 1, 1);
  Config c;
  c.blocks = (size_t)a.num("--n", smoke ? 20000 : 4000000, 1);  // blocks per producer
  c.min_size = (size_t)a.num("--min-size", 16, 1);
  c.max_size = (size_t)a.num("--max-size", 512, 1);
  c.queue = (size_t)a.num("--queue", 1024, 1);
  c.seed = (uint64_t)a.num("--seed", 1);
  a.finish();
  if (c.max_size < c.min_size) c.max_size = c.min_size;
  c.batch = c.queue;

  unsigned pairs = threads < 2 ? 1 : threads / 2;
  unsigned used = threads < 2 ? 1 : pairs * 2;  // an odd thread count drops the last thread
  if (used != threads) std::fprintf(stderr, "%s: using %u threads (pairs)\n", kName, used);
  std::vector<std::unique_ptr<Pair>> ps;
  for (unsigned i = 0; i < pairs; i++) ps.emplace_back(new Pair(c.queue));

  auto t0 = Clock::now();
  if (threads < 2) {
    alternate(*ps[0], c);
  } else {
    std::vector<std::thread> pool;
    for (unsigned i = 0; i < pairs; i++) {
      pool.emplace_back(producer, std::ref(*ps[i]), i, std::cref(c));
      pool.emplace_back(consumer, std::ref(*ps[i]), std::cref(c));
    }
    for (auto &th : pool) th.join();
  }
  double secs = seconds_since(t0);

  uint64_t sum = 0;
  for (const auto &p : ps) {
    if (p->produced_sum != p->consumed_sum) fail(kName, "a block was lost between producer and consumer", nullptr, 0);
    sum += p->consumed_sum;
  }
  print_result(kName, used, (uint64_t)c.blocks * pairs, secs, sum);
  return 0;
}
