// producer_consumer: blocks allocated on one thread and freed on another (the cross-thread free
// path) keep their contents, are never handed out twice while live, and are all accounted for;
// a ring variant makes every thread free its predecessor's blocks while spaces_collect runs.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "stress_util.h"

using namespace stress;

namespace {

struct Item {
  void *p;
  std::size_t size;
  std::uint64_t seed;
};

LiveSet gLive;
std::atomic<long> gAllocated{0}, gFreed{0};

// A fixed ring under one mutex: producers block when it is full, consumers when it is empty.
class BoundedQueue {
public:
  explicit BoundedQueue(std::size_t capacity) : ring_(capacity) {}
  void push(const Item &item) {
    std::unique_lock<std::mutex> lock(mutex_);
    notFull_.wait(lock, [&] { return count_ < ring_.size(); });
    ring_[(head_ + count_++) % ring_.size()] = item;
    notEmpty_.notify_one();
  }
  bool pop(Item &item) { // false once closed and drained
    std::unique_lock<std::mutex> lock(mutex_);
    notEmpty_.wait(lock, [&] { return count_ > 0 || closed_; });
    if (count_ == 0) return false;
    item = ring_[head_];
    head_ = (head_ + 1) % ring_.size(), --count_;
    notFull_.notify_one();
    return true;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    notEmpty_.notify_all();
  }

private:
  std::mutex mutex_;
  std::condition_variable notFull_, notEmpty_;
  std::vector<Item> ring_;
  std::size_t head_ = 0, count_ = 0;
  bool closed_ = false;
};

Item allocateItem(Rng &rng, std::uint64_t serial) {
  std::size_t size = rng.blockSize();
  void *p = std::malloc(size);
  if (!EXPECT(p != nullptr)) return Item{nullptr, 0, 0};
  EXPECT(spaces_owns(p) == 1);
  EXPECT(size < 16 || reinterpret_cast<std::uintptr_t>(p) % 16 == 0);
  EXPECT(gLive.insert(p, size)); // overlaps no live block
  Item item{p, size, seedOf(p, serial)};
  fill(p, size, item.seed);
  gAllocated.fetch_add(1, std::memory_order_relaxed);
  return item;
}

void freeItem(const Item &item) {
  if (!item.p) return;
  EXPECT(verify(item.p, item.size, item.seed));
  EXPECT(gLive.erase(item.p));
  std::free(item.p);
  gFreed.fetch_add(1, std::memory_order_relaxed);
}

void producer(BoundedQueue &queue, int id, long items) {
  Rng rng(id + 1);
  for (long i = 0; i < items; ++i) {
    queue.push(allocateItem(rng, std::uint64_t(id) << 40 | std::uint64_t(i)));
    if (rng.below(4) == 0) freeItem(allocateItem(rng, ~std::uint64_t(i))); // same-thread churn
  }
}

// Holds a window of blocks so that frees come out of allocation order.
void consumer(BoundedQueue &queue, int id) {
  Rng rng(100 + id);
  std::vector<Item> window(32, Item{nullptr, 0, 0});
  Item item;
  while (queue.pop(item)) {
    std::size_t slot = rng.below(window.size());
    freeItem(window[slot]);
    window[slot] = item;
  }
  for (const Item &held : window) freeItem(held);
}

// Collects and reads stats while everything else runs: a purge must never touch a live block.
void chaos(std::atomic<bool> &stop) {
  for (int k = 0; !stop.load(); ++k) {
    spaces_collect(k & 1);
    struct spaces_stats s = readStats();
    EXPECT(s.committed_bytes <= s.reserved_bytes);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void runQueue(long itemsPerProducer) {
  const int kProducers = 3, kConsumers = 3;
  BoundedQueue queue(1024);
  std::atomic<bool> stop{false};
  std::thread chaosThread(chaos, std::ref(stop));
  std::vector<std::thread> consumers, producers;
  for (int i = 0; i < kConsumers; ++i) consumers.emplace_back(consumer, std::ref(queue), i);
  for (int i = 0; i < kProducers; ++i)
    producers.emplace_back(producer, std::ref(queue), i, itemsPerProducer);
  for (auto &t : producers) t.join();
  queue.close();
  for (auto &t : consumers) t.join();
  stop = true;
  chaosThread.join();
}

// Ring: thread i hands each batch to thread i+1 and frees the batch thread i-1 handed it.
struct Mailbox {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::vector<Item>> batches;
};

void ringThread(std::vector<Mailbox> &boxes, int id, long rounds) {
  Rng rng(1000 + id);
  Mailbox &mine = boxes[id], &next = boxes[(id + 1) % boxes.size()];
  for (long r = 0; r < rounds; ++r) {
    std::vector<Item> batch;
    for (int k = 0; k < 64; ++k)
      batch.push_back(allocateItem(rng, std::uint64_t(id) << 56 | std::uint64_t(r) << 8 | k));
    {
      std::unique_lock<std::mutex> lock(next.mutex);
      next.changed.wait(lock, [&] { return next.batches.size() < 4; });
      next.batches.push_back(std::move(batch));
      next.changed.notify_all();
    }
    std::vector<Item> incoming;
    {
      std::unique_lock<std::mutex> lock(mine.mutex);
      mine.changed.wait(lock, [&] { return !mine.batches.empty(); });
      incoming = std::move(mine.batches.front());
      mine.batches.erase(mine.batches.begin());
      mine.changed.notify_all();
    }
    for (const Item &item : incoming) freeItem(item);
  }
}

void runRing(long rounds) {
  const int kThreads = 4;
  std::vector<Mailbox> boxes(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(ringThread, std::ref(boxes), i, rounds);
  for (auto &t : threads) t.join();
  for (auto &box : boxes) CHECK(box.batches.empty());
}

} // namespace

int main(int argc, char **argv) {
  setUp(argc, argv);
  long items = scaled(300000), rounds = scaled(1200);

  auto start = std::chrono::steady_clock::now();
  runQueue(items);
  long allocated = gAllocated.load();
  CHECK(allocated == gFreed.load());
  CHECK(allocated >= 3 * items);
  runRing(rounds);
  CHECK(gAllocated.load() == gFreed.load());
  CHECK(gAllocated.load() == allocated + 4 * 64 * rounds);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  struct spaces_stats s = readStats();
  std::printf("%ld blocks through the queue, %ld round the ring in %.2f s; committed %zu KiB, "
              "peak %zu KiB\n",
              allocated, 4 * 64 * rounds, seconds, s.committed_bytes >> 10,
              s.peak_committed_bytes >> 10);
  return finish();
}
