// Multithreaded behaviour of the spaces_* API (runs under the asan and tsan presets too).
#include "test_internal.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace {
void fill(void* p, size_t n, uint32_t seed) {
  auto* b = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < n; i++) b[i] = static_cast<unsigned char>(seed + i * 7);
}
bool check(const void* p, size_t n, uint32_t seed) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i++)
    if (b[i] != static_cast<unsigned char>(seed + i * 7)) return false;
  return true;
}
struct Item {
  void* p;
  size_t n;
  uint32_t seed;
};
}  // namespace

TEST(Threads, ProducerConsumerCrossThreadFrees) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> q;
  bool done = false;
  std::atomic<int> bad{0};
  const int kItems = 200000;
  std::thread consumer([&] {
    for (;;) {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return !q.empty() || done; });
      if (q.empty()) return;
      Item it = q.front();
      q.pop_front();
      l.unlock();
      if (!check(it.p, it.n, it.seed)) bad++;
      spaces_free(it.p);
    }
  });
  std::mt19937 rng(1);
  for (int i = 0; i < kItems; i++) {
    size_t n = (rng() % 16 == 0) ? rng() % 100000 + 1 : rng() % 512 + 1;
    void* p = spaces_malloc(n);
    ASSERT_NE(p, nullptr);
    fill(p, n, uint32_t(i));
    std::lock_guard<std::mutex> l(mu);
    q.push_back({p, n, uint32_t(i)});
    cv.notify_one();
  }
  {
    std::lock_guard<std::mutex> l(mu);
    done = true;
    cv.notify_all();
  }
  consumer.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Threads, ManyThreadsRandomOpsWithHandOff) {
  const int kThreads = 4;
  std::vector<std::vector<Item>> outbox(kThreads);
  std::vector<std::mutex> mus(kThreads);
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      std::mt19937 rng(t + 10);
      std::vector<Item> mine;
      for (int i = 0; i < 60000; i++) {
        int op = rng() % 10;
        if (op < 5 || mine.empty()) {
          size_t n = rng() % 2048;
          void* p = spaces_malloc(n);
          fill(p, n, uint32_t(i * 31 + t));
          mine.push_back({p, n, uint32_t(i * 31 + t)});
        } else if (op < 8) {
          size_t k = rng() % mine.size();
          if (!check(mine[k].p, mine[k].n, mine[k].seed)) bad++;
          spaces_free(mine[k].p);
          mine[k] = mine.back();
          mine.pop_back();
        } else {  // hand a block to the next thread
          size_t k = rng() % mine.size();
          std::lock_guard<std::mutex> l(mus[(t + 1) % kThreads]);
          outbox[(t + 1) % kThreads].push_back(mine[k]);
          mine[k] = mine.back();
          mine.pop_back();
        }
        if (i % 1000 == 0) {
          std::lock_guard<std::mutex> l(mus[t]);
          for (Item& it : outbox[t]) mine.push_back(it);
          outbox[t].clear();
        }
      }
      for (Item& it : mine) {
        if (!check(it.p, it.n, it.seed)) bad++;
        spaces_free(it.p);
      }
    });
  }
  for (auto& th : ts) th.join();
  for (int t = 0; t < kThreads; t++)
    for (Item& it : outbox[t]) {
      if (!check(it.p, it.n, it.seed)) bad++;
      spaces_free(it.p);
    }
  EXPECT_EQ(bad.load(), 0);
}

TEST(Threads, ThreadChurnReusesHeaps) {
  struct spaces_stats before;
  before.size = sizeof before;
  spaces_stats(&before);
  std::vector<void*> handed;
  std::mutex mu;
  for (int wave = 0; wave < 250; wave++) {
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++) {
      ts.emplace_back([&, t] {
        std::vector<void*> v;
        for (int i = 0; i < 200; i++) v.push_back(spaces_malloc(size_t(16 + (i * 13 + t) % 700)));
        std::lock_guard<std::mutex> l(mu);
        handed.push_back(v[0]);
        for (size_t i = 1; i < v.size(); i++) spaces_free(v[i]);
      });
    }
    for (auto& th : ts) th.join();
  }
  for (void* p : handed) spaces_free(p);
  struct spaces_stats after;
  after.size = sizeof after;
  spaces_stats(&after);
  EXPECT_GE(after.threads_started - before.threads_started, 1000u);
  EXPECT_LE(after.heaps - before.heaps, 8u) << "exited threads' heaps must be reused";
}
