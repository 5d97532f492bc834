// Models thread churn with mixed lifetimes: waves of --threads short-lived threads each make a few hundred
// allocations, free most of them locally and hand some to one long-lived collector thread that keeps them a while.
// Every block's pattern is checked before free (by whichever thread frees it); exits non-zero on a mismatch.
#include "common.h"

#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "churn";
const size_t kWindow = 32;  // blocks a short thread keeps alive at once

struct Item {
  void *p;
  size_t size;
  uint64_t key;
};

struct Config {
  unsigned threads;
  size_t waves, allocs, hand_every, keep, min_size, max_size;
  uint64_t seed;
};

uint64_t check_free(const Item &it, const char *when) {
  if (!intact(it.p, it.size, it.key)) fail(kName, when, it.p, it.size);
  std::free(it.p);
  return it.key ^ it.size;
}

// Hand-over point between short threads and the collector. Both vectors are reserved up front and swapped,
// so passing blocks costs a lock but no allocation of the harness's own.
class Mailbox {
 public:
  explicit Mailbox(size_t cap) : cap_(cap) { in_.reserve(cap); out_.reserve(cap); }
  void post(const Item *items, size_t n) {
    std::unique_lock<std::mutex> lock(m_);
    space_.wait(lock, [&] { return in_.size() + n <= cap_; });
    in_.insert(in_.end(), items, items + n);
    ready_.notify_one();
  }
  // Returns the posted items (empty once closed and drained).
  std::vector<Item> &take() {
    std::unique_lock<std::mutex> lock(m_);
    ready_.wait(lock, [&] { return !in_.empty() || closed_; });
    out_.clear();
    in_.swap(out_);
    space_.notify_all();
    return out_;
  }
  void close() {
    std::lock_guard<std::mutex> lock(m_);
    closed_ = true;
    ready_.notify_one();
  }

 private:
  std::mutex m_;
  std::condition_variable ready_, space_;
  std::vector<Item> in_, out_;
  size_t cap_;
  bool closed_ = false;
};

struct Totals {
  std::atomic<uint64_t> sum{0}, ops{0};
};

void short_thread(unsigned id, Mailbox &box, Totals &tot, const Config &c) {
  Rng rng(c.seed * 2654435761u + id);
  Item window[kWindow] = {};
  Item handed[64];
  size_t nhanded = 0;
  uint64_t sum = 0;
  for (size_t i = 0; i < c.allocs; i++) {
    Item it;
    it.size = rng.range(c.min_size, c.max_size);
    it.key = make_key(id, i);
    it.p = checked_malloc(kName, it.size);
    fill(it.p, it.size, it.key);
    if (i % c.hand_every == 0) {  // goes to the collector: freed by another, long-lived thread
      handed[nhanded++] = it;
      if (nhanded == 64) { box.post(handed, nhanded); nhanded = 0; }
      continue;
    }
    Item &slot = window[rng.below(kWindow)];  // random lifetime inside the thread
    if (slot.p) sum += check_free(slot, "pattern mismatch before free");
    slot = it;
  }
  for (const Item &it : window)
    if (it.p) sum += check_free(it, "pattern mismatch at thread exit");
  if (nhanded) box.post(handed, nhanded);
  tot.sum += sum;
  tot.ops += c.allocs;
}

// Keeps the last `keep` handed blocks alive in a ring, so their lifetimes span many short threads.
void collector(Mailbox &box, Totals &tot, const Config &c) {
  std::vector<Item> ring(c.keep, Item{nullptr, 0, 0});
  size_t pos = 0;
  uint64_t sum = 0;
  for (;;) {
    std::vector<Item> &got = box.take();
    if (got.empty()) break;
    for (const Item &it : got) {
      Item &slot = ring[pos++ % c.keep];
      if (slot.p) sum += check_free(slot, "pattern mismatch in the collector");
      slot = it;
    }
  }
  for (const Item &it : ring)
    if (it.p) sum += check_free(it, "pattern mismatch at the end");
  tot.sum += sum;
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  Config c;
  c.threads = (unsigned)a.num("--threads", 1, 1);               // short threads alive at once (one wave)
  c.waves = (size_t)a.num("--waves", smoke ? 20 : 10000, 1);
  c.allocs = (size_t)a.num("--allocs", 400, 1);                 // allocations per short thread
  c.hand_every = (size_t)a.num("--hand-every", 8, 1);           // one in N goes to the collector
  c.keep = (size_t)a.num("--keep", 4096, 1);                    // blocks the collector keeps alive
  c.min_size = (size_t)a.num("--min-size", 16, 1);
  c.max_size = (size_t)a.num("--max-size", 2048, 1);
  c.seed = (uint64_t)a.num("--seed", 1);
  a.finish();
  if (c.max_size < c.min_size) c.max_size = c.min_size;

  Mailbox box(64 * (size_t)c.threads * 4);
  Totals tot;
  auto t0 = Clock::now();
  std::thread keeper(collector, std::ref(box), std::ref(tot), std::cref(c));
  std::vector<std::thread> wave;
  wave.reserve(c.threads);
  unsigned id = 0;
  for (size_t w = 0; w < c.waves; w++) {
    for (unsigned t = 0; t < c.threads; t++)
      wave.emplace_back(short_thread, id++ & 0xFFFFF, std::ref(box), std::ref(tot), std::cref(c));
    for (auto &th : wave) th.join();
    wave.clear();
  }
  box.close();
  keeper.join();
  double secs = seconds_since(t0);

  print_result(kName, c.threads, tot.ops.load(), secs, tot.sum.load());
  return 0;
}
