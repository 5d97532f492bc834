// Multithreaded behaviour of the spaces_* API (runs under the asan and tsan presets too).
#include "test_internal.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
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

namespace {
// Restores purge_delay_ms (which also sets how long an abandoned heap waits for a new thread).
struct PurgeDelay {
  long long old = spaces_option_get("purge_delay_ms");
  explicit PurgeDelay(long long ms) { EXPECT_EQ(spaces_option_set("purge_delay_ms", ms), 0); }
  ~PurgeDelay() { spaces_option_set("purge_delay_ms", old); }
};
// Allocates 8 KiB blocks (a handful per slab) until the calling thread's heap has asked for
// `slabs` fresh slabs, each ask a chance to merge a stale abandoned heap; frees them again.
void force_refills(int slabs) {
  std::vector<void*> v;
  for (int i = 0; i < slabs * 8; i++) v.push_back(spaces_malloc(8000));
  for (void* p : v) spaces_free(p);
}
}  // namespace

// A steady stream of short threads reuses whole heaps: a heap left by an exited thread is not
// stripped by living threads that need slabs (that moved every slab between heaps and arenas
// and grew RSS fourfold under churn); the next thread takes it with its slabs.
TEST(Threads, AnAbandonedHeapWaitsWholeForTheNextThread) {
  PurgeDelay delay(3600000);
  spaces_free(spaces_malloc(1));  // (this thread has its own heap, so it cannot take the pooled one)
  void* kept = nullptr;
  Heap* first = nullptr;
  std::thread([&] {
    kept = spaces_malloc(100);
    first = t_heap;
  }).join();
  ASSERT_NE(kept, nullptr);
  force_refills(64);
  Slab* s = slab_find(kept);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(__atomic_load_n(&s->owner, __ATOMIC_RELAXED), first) << "a fresh heap was merged";
  Heap* second = nullptr;
  void* next = nullptr;
  std::thread([&] {
    next = spaces_malloc(100);
    second = t_heap;
  }).join();
  EXPECT_EQ(second, first) << "the newest abandoned heap goes to the next thread";
  EXPECT_EQ(slab_find(next), s) << "and with it its warm slab";
  spaces_free(next);
  spaces_free(kept);
}

// Heaps that no new thread takes within the purge delay are folded into living threads, so a
// burst of threads that ended leaves no memory stranded.
TEST(Threads, AStaleAbandonedHeapIsMergedByALivingThread) {
  PurgeDelay delay(0);
  spaces_free(spaces_malloc(1));  // (this thread has its own heap, so it cannot take the pooled one)
  void* kept = nullptr;
  std::thread([&] { kept = spaces_malloc(100); }).join();
  ASSERT_NE(kept, nullptr);
  Slab* s = slab_find(kept);
  ASSERT_NE(s, nullptr);
  size_t pooled = stats_now().heaps_abandoned;
  for (size_t i = 0; i <= pooled && __atomic_load_n(&s->owner, __ATOMIC_RELAXED) != t_heap; i++)
    force_refills(1);  // one stale heap per refill that finds nothing, oldest first
  EXPECT_EQ(__atomic_load_n(&s->owner, __ATOMIC_RELAXED), t_heap) << "the stale heap was not merged";
  EXPECT_EQ(stats_now().heaps_abandoned, pooled) << "the emptied heap stays in the pool for reuse";
  spaces_free(kept);
}

namespace {
// A block of each slab (or page box) that holds these blocks.
std::vector<void*> one_per_slab(const std::vector<void*>& blocks) {
  std::vector<std::pair<Slab*, void*>> v;
  for (void* p : blocks)
    if (p) v.push_back({slab_find(p), p});
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<void*> r;
  for (size_t i = 0; i < v.size(); i++)
    if (i == 0 || v[i].first != v[i - 1].first) r.push_back(v[i].second);
  return r;
}
// How many of those slabs are still in use (the page map still names them, not empty). Read
// through the page map: a slab given back may lie in memory returned to the kernel.
size_t still_in_use(const std::vector<void*>& one_each) {
  size_t n = 0;
  for (void* p : one_each) {
    Slab* s = slab_find(p);
    n += s != nullptr && (s->kind == kSlabSmall || s->kind == kSlabPages);
  }
  return n;
}
}  // namespace

// Blocks of threads that exited, freed by another thread that then allocates no more (or only
// from slabs it has): their heaps wait in the pool, and no thread drained the slabs those frees
// emptied, so they stayed in use for ever (session 28's adversarial pass: 964 MB after every
// block was freed). The freeing thread now drains a pooled heap's notify list itself (heap.cpp,
// pool_drain): the emptied slabs and boxes go back.
TEST(Threads, BlocksOfExitedThreadsFreedElsewhereGiveTheirSlabsBack) {
  PurgeDelay delay(3600000);  // (no merge of the stale heaps meanwhile)
  spaces_free(spaces_malloc(1));  // (this thread has its own heap, so takes no pooled one)
  constexpr size_t kPer = 4000;
  std::vector<void*> blocks(4 * kPer);
  std::vector<std::thread> producers;
  for (size_t t = 0; t < 4; t++)
    producers.emplace_back([&, t] {
      static const size_t kSizes[] = {40, 700, 6000, 30000};  // (small classes, and page boxes)
      for (size_t i = 0; i < kPer; i++) blocks[t * kPer + i] = spaces_malloc(kSizes[(t + i) % 4]);
    });
  for (auto& p : producers) p.join();
  std::vector<void*> slabs = one_per_slab(blocks);  // (the producers' slabs, their pooled heaps')
  for (void* p : blocks) spaces_free(p);        // (no malloc from here: no refill)
  size_t after = still_in_use(slabs);
  // (what stays: the heaps' current slabs, each class's, and an empty box each)
  EXPECT_LT(after, slabs.size() / 8) << after << " of the blocks' " << slabs.size() << " slabs still in use";
}

// The same when the exited threads had freed part of their blocks themselves: their slabs with
// room were still tracked (kStateNormal), and a remote free into such a slab queues nothing. A
// thread arms them as it lets its heap go (kStateFull while attached), so those frees notify too.
TEST(Threads, PartlyFreedSlabsOfExitedThreadsAreGivenBackToo) {
  PurgeDelay delay(3600000);
  spaces_free(spaces_malloc(1));
  constexpr size_t kPer = 6000;
  std::vector<void*> blocks(2 * kPer);
  std::vector<std::thread> producers;
  for (size_t t = 0; t < 2; t++)
    producers.emplace_back([&, t] {
      for (size_t i = 0; i < kPer; i++) blocks[t * kPer + i] = spaces_malloc(i / 2 % 2 ? 48 : 2000);
      for (size_t i = 0; i < kPer; i += 2) {  // (every other block of each class: its slabs keep room, tracked)
        spaces_free(blocks[t * kPer + i]);
        blocks[t * kPer + i] = nullptr;
      }
    });
  for (auto& p : producers) p.join();
  std::vector<void*> slabs = one_per_slab(blocks);
  for (void* p : blocks) spaces_free(p);
  spaces_collect(0);  // (pushes this thread's batches of small remote frees: free.cpp, remote_put)
  size_t after = still_in_use(slabs);
  EXPECT_LT(after, slabs.size() / 8) << after << " of the blocks' " << slabs.size() << " slabs still in use";
}

// A thread whose first call frees another thread's small block makes a heap for its batches of
// remote frees (it must not take a pooled heap with slabs it may never use). Each such heap went
// to the pool when its thread exited, as the newest, so the next thread took it, empty, and the
// next free-only thread made another: heaps without bound (session 29's adversarial pass: 5 000
// free-only threads, 5 001 heaps and 82 MB). A heap with no slab now waits apart and is reused.
TEST(Threads, FreeOnlyThreadsReuseTheirHeaps) {
  spaces_free(spaces_malloc(1));
  size_t heaps = heap_totals().heaps;
  for (int round = 0; round < 100; round++) {
    void* b = spaces_malloc(64);
    std::thread([b] { spaces_free(b); }).join();  // (its only call: a free of this thread's block)
    std::thread([] { spaces_free(spaces_malloc(64)); }).join();  // (one that allocates: a pooled heap)
  }
  EXPECT_LE(heap_totals().heaps, heaps + 4) << "heaps were made for every free-only thread";
}

// The same threads when they then allocate: the heap a free-first thread made (bare) got its
// slabs and was pooled at its exit, and the next free-first thread made another, since such a
// thread never takes a pooled heap (session 30's adversarial pass: 5 000 threads, 5 001 heaps,
// 4 GB). A heap with no slab yet is traded for a pooled one when it needs its first slab
// (heap.cpp, heap_trade_bare).
TEST(Threads, FreeFirstThreadsThatThenAllocateReuseHeaps) {
  spaces_free(spaces_malloc(1));
  size_t heaps = heap_totals().heaps;
  void* left = spaces_malloc(100);
  for (int round = 0; round < 200; round++)
    std::thread([&left] {
      spaces_free(left);  // (its first call: a free of the previous thread's block)
      void* v[16];
      for (size_t i = 0; i < 16; i++) v[i] = spaces_malloc(16 + i * 100);
      for (size_t i = 1; i < 16; i++) spaces_free(v[i]);
      left = v[0];
    }).join();
  EXPECT_LE(heap_totals().heaps, heaps + 4) << "free-first threads that allocate made a heap each";
  // The same when the first allocation is an aligned medium block: a page box, which the aligned
  // path took without the trade (the second adversarial pass: 3 000 threads, 3 001 heaps).
  heaps = heap_totals().heaps;
  for (int round = 0; round < 200; round++)
    std::thread([&left] {
      spaces_free(left);
      spaces_free(spaces_aligned_alloc(256, 20000));
      left = spaces_malloc(100);
    }).join();
  spaces_free(left);
  EXPECT_LE(heap_totals().heaps, heaps + 4) << "free-first threads whose first block is an aligned box block made a heap each";
}

// spaces_collect(1) (and malloc_trim) took the whole pool for its pass, so every thread that
// started meanwhile made a new heap, and those stayed: with collects back to back beside a
// stream of short threads, heaps without bound (session 30's adversarial pass: 2 000 heaps and
// 38 MB in 30 s). The pass now sweeps one heap at a time and puts it back.
TEST(Threads, ThreadsStartingDuringACollectReusePooledHeaps) {
  spaces_free(spaces_malloc(1));
  size_t heaps = heap_totals().heaps;
  std::atomic<bool> stop{false};
  std::thread collector([&] {
    while (!stop.load()) spaces_collect(1);
  });
  for (int round = 0; round < 1000; round++)
    std::thread([] {
      void* v[8];
      for (size_t i = 0; i < 8; i++) v[i] = spaces_malloc(16 + i * 300);
      for (void* p : v) spaces_free(p);
    }).join();
  stop = true;
  collector.join();
  EXPECT_LE(heap_totals().heaps, heaps + 8) << "threads that started during a collect made a heap each";
}

// A pthread-key destructor that runs after Spaces' own (its key made later) and allocates takes
// a heap again; Spaces' destructor gives it back in the next round of destructors, but glibc
// runs four (PTHREAD_DESTRUCTOR_ITERATIONS) and a heap taken in the last stayed bound to the
// exited thread (session 30's adversarial pass: 5 000 threads, 5 001 heaps and 668 MB). Spaces'
// destructor now runs in each of the first three rounds, and a malloc after its last takes no heap.
namespace {
pthread_key_t g_late_key;
void late_destructor(void* v) {
  uintptr_t round = reinterpret_cast<uintptr_t>(v);
  // (After Spaces' destructor in this round. Odd rounds allocate aligned first: that path took a
  // heap too, the second adversarial pass.)
  void* p = round % 2 ? spaces_aligned_alloc(64, 64) : spaces_malloc(64);
  memset(p, 1, 64);
  spaces_free(p);
  p = round % 2 ? spaces_malloc(48) : spaces_aligned_alloc(64, 48);
  memset(p, 1, 48);
  spaces_free(p);
  if (round < 4) pthread_setspecific(g_late_key, reinterpret_cast<void*>(round + 1));  // (again next round)
}
}  // namespace

TEST(Threads, AKeyDestructorThatAllocatesInEveryRoundLeavesNoHeapBehind) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer tears the thread down in the last round, before this destructor";
#endif
  spaces_free(spaces_malloc(1));
  ASSERT_EQ(pthread_key_create(&g_late_key, late_destructor), 0);
  size_t heaps = heap_totals().heaps;
  for (int t = 0; t < 100; t++)
    std::thread([] {
      spaces_free(spaces_malloc(100));  // (this thread's heap, and Spaces' key set first)
      pthread_setspecific(g_late_key, reinterpret_cast<void*>(1));
    }).join();
  EXPECT_LE(heap_totals().heaps, heaps + 4) << "heaps taken by the last round of key destructors stayed";
  pthread_key_delete(g_late_key);
}

// A heap merged into a living thread's keeps the slabs it had detached when full (on none of its
// lists). A thread that then took it and never allocated a small block made it look bare, and a
// bare heap waits outside the pool: frees into those slabs queued them on a heap nobody drained
// (session 29's second review). A heap that ever had a slab is pooled.
TEST(Threads, AMergedHeapWithFullSlabsIsNeverTakenForBare) {
  PurgeDelay delay(0);            // (stale at once: the next refill that finds nothing merges it)
  spaces_free(spaces_malloc(1));
  std::vector<void*> blocks(6000);
  std::thread([&] {
    for (void*& p : blocks) p = spaces_malloc(64);  // (several slabs, filled: detached)
  }).join();
  std::vector<void*> slabs = one_per_slab(blocks);
  size_t pooled = stats_now().heaps_abandoned;
  for (size_t i = 0; i <= pooled; i++) force_refills(1);  // (merges the stale heaps, this one too)
  std::thread([] { spaces_free(spaces_malloc(size_t(4) << 20)); }).join();  // (takes it; no small block)
  for (void* p : blocks) spaces_free(p);
  spaces_collect(0);  // (pushes this thread's batches)
  size_t after = still_in_use(slabs);
  EXPECT_LT(after, slabs.size() / 2 + 1) << after << " of the blocks' " << slabs.size() << " slabs still in use";
}

// Several threads free the blocks of exited threads at once, each slab's blocks spread over all
// of them, while new threads take the pooled heaps (whose slabs are then disarmed) and others
// exit: the drains of a pooled heap race with frees into the same slabs, with each other and
// with the heap's reuse. A slab given back twice would be handed out twice: every block live at
// the end of a round is checked against its own pattern, and their address ranges must not
// overlap. (The tsan preset runs it too: the drain's protocol is in heap.cpp, pool_drain.)
TEST(Threads, ConcurrentFreesIntoPooledHeapsNeverGiveASlabBackTwice) {
  PurgeDelay delay(0);  // (stale heaps merged as well: every pool path in play)
  constexpr size_t kProducers = 4, kFreers = 3, kPer = 3000;
  static const size_t kSizes[] = {16, 48, 200, 1000, 3000, 9000, 20000, 60000};
  std::atomic<int> bad{0};
  for (int round = 0; round < 4; round++) {
    std::vector<Item> items(kProducers * kPer);
    std::vector<std::thread> ts;
    for (size_t t = 0; t < kProducers; t++)
      ts.emplace_back([&, t] {
        for (size_t i = 0; i < kPer; i++) {
          Item& it = items[t * kPer + i];
          it.n = kSizes[(i * 7 + t) % 8];
          it.seed = uint32_t(round * 1000003 + t * kPer + i);
          it.p = spaces_malloc(it.n);
          if (it.p) fill(it.p, it.n < 64 ? it.n : 64, it.seed);
        }
      });
    for (auto& t : ts) t.join();
    ts.clear();
    // Freers: block i goes to freer i % kFreers (the blocks of one slab spread over all of
    // them); one block in 8 stays live. Meanwhile short threads come and go (taking, arming and
    // giving back the pooled heaps) and allocate: their live blocks are checked too.
    std::vector<std::vector<Item>> kept(kFreers + 2);
    for (size_t f = 0; f < kFreers; f++)
      ts.emplace_back([&, f] {
        for (size_t i = f; i < items.size(); i += kFreers) {
          Item& it = items[i];
          if (it.p == nullptr) continue;
          if (!check(it.p, it.n < 64 ? it.n : 64, it.seed)) bad++;
          if (i % 8 == 0)
            kept[f].push_back(it);
          else
            spaces_free(it.p);
        }
      });
    for (size_t c = 0; c < 2; c++)
      ts.emplace_back([&, c] {
        for (int k = 0; k < 20; k++)
          std::thread([&, c, k] {
            std::vector<Item> mine;
            for (uint32_t i = 0; i < 200; i++) {
              Item it{nullptr, kSizes[(i + k) % 8], uint32_t(0x5000000 + c * 100000 + k * 1000 + i)};
              it.p = spaces_malloc(it.n);
              if (it.p) fill(it.p, it.n < 64 ? it.n : 64, it.seed);
              if (i % 4)
                spaces_free(it.p);
              else
                mine.push_back(it);
            }
            static std::mutex mu;
            std::lock_guard<std::mutex> l(mu);
            for (Item& it : mine) kept[kFreers + c].push_back(it);
          }).join();
      });
    for (auto& t : ts) t.join();
    std::vector<Item> live;
    for (auto& v : kept) live.insert(live.end(), v.begin(), v.end());
    std::sort(live.begin(), live.end(), [](const Item& a, const Item& b) { return a.p < b.p; });
    for (size_t i = 0; i < live.size(); i++) {
      if (!check(live[i].p, live[i].n < 64 ? live[i].n : 64, live[i].seed)) bad++;
      if (i + 1 < live.size() && static_cast<char*>(live[i].p) + live[i].n > live[i + 1].p) bad++;
    }
    EXPECT_EQ(bad.load(), 0) << "round " << round << ": blocks overwritten or overlapping";
    for (Item& it : live) spaces_free(it.p);
  }
}

namespace {
size_t notify_length(Heap* a) {
  size_t n = 0;
  for (Slab* s = a->notify.load(); s; s = s->notify_next) n++;
  return n;
}
}  // namespace

// A free that drains a pooled heap for long hands the drain over (heap.cpp, pool_drain): after
// kDrainPasses passes of kDrainSlabs slabs the drainer asks for a successor (handoff 1); the
// first free that finds the drain taken commits (2) and waits for the flag; the drainer lets go
// after its pass without looking at the list again, and the successor drains the rest. Without
// it one free() drained for every thread that kept freeing into the heap (session 30: 50 ms in
// one free with 4 threads freeing a dead thread's million blocks). Both halves, driven by hand:
// a phantom drain (the flag set here) lets the frees queue every slab first.
TEST(Threads, ALongPoolDrainIsHandedToAnotherFreeingThread) {
  PurgeDelay delay(3600000);  // (no merge of the pooled heap meanwhile)
  spaces_free(spaces_malloc(1));
  std::vector<void*> blocks(9000);
  Heap* a = nullptr;
  std::thread([&] {
    for (void*& p : blocks) p = spaces_malloc(3000);  // (21 a slab: about 430 slabs)
    a = t_home_heap;
  }).join();
  ASSERT_EQ(__atomic_load_n(&a->pooled, __ATOMIC_SEQ_CST), 1);
  std::vector<void*> slabs = one_per_slab(blocks);
  ASSERT_GT(slabs.size(), 4 * kDrainSlabs);
  __atomic_store_n(&a->handoff, uint8_t(0), __ATOMIC_SEQ_CST);  // (a request left by an earlier test)
  __atomic_store_n(&a->draining, uint8_t(1), __ATOMIC_SEQ_CST);  // (the phantom drain)
  for (void* p : blocks) spaces_free(p);
  spaces_collect(0);  // (pushes this thread's batches: every slab queued, none drained)
  size_t queued = notify_length(a);
  EXPECT_GE(queued, slabs.size() - 2);
  // The drainer's half: a successor has committed, so a pass drains kDrainSlabs and lets go.
  __atomic_store_n(&a->handoff, uint8_t(2), __ATOMIC_SEQ_CST);
  __atomic_store_n(&a->draining, uint8_t(0), __ATOMIC_SEQ_CST);
  pool_drain(a);
  EXPECT_EQ(notify_length(a), queued - kDrainSlabs) << "the drainer went on past its successor's commit";
  EXPECT_EQ(__atomic_load_n(&a->draining, __ATOMIC_SEQ_CST), 0);
  // The successor's half: a drainer asks; a free that finds the drain taken commits and waits.
  __atomic_store_n(&a->handoff, uint8_t(1), __ATOMIC_SEQ_CST);
  __atomic_store_n(&a->draining, uint8_t(1), __ATOMIC_SEQ_CST);
  std::thread successor([&] { pool_drain(a); });
  for (int i = 0; i < 10000 && __atomic_load_n(&a->handoff, __ATOMIC_SEQ_CST) != 2; i++)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  EXPECT_EQ(__atomic_load_n(&a->handoff, __ATOMIC_SEQ_CST), 2) << "no free committed to take the drain over";
  EXPECT_EQ(notify_length(a), queued - kDrainSlabs) << "the successor drained before the drainer let go";
  __atomic_store_n(&a->draining, uint8_t(0), __ATOMIC_SEQ_CST);  // (the drainer lets go)
  successor.join();
  EXPECT_EQ(notify_length(a), 0u) << "the successor left slabs queued";
  EXPECT_EQ(__atomic_load_n(&a->handoff, __ATOMIC_SEQ_CST), 0);
  EXPECT_EQ(__atomic_load_n(&a->draining, __ATOMIC_SEQ_CST), 0);
  size_t after = still_in_use(slabs);
  EXPECT_LT(after, slabs.size() / 8) << after << " of the blocks' " << slabs.size() << " slabs still in use";
}

// spaces_mallinfo (what mallinfo2 answers under the override) reads every thread's slab headers
// while those threads allocate and free, and regions' bump slabs while they are filled: the
// figures stay consistent (in use never above committed) and nothing races (the tsan preset).
TEST(Threads, MallinfoWhileOtherThreadsAllocate) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; t++)
    workers.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<void*> live;
      SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
      while (!stop.load(std::memory_order_relaxed)) {
        if (live.size() < 2000 || rng() % 2) {
          live.push_back(spaces_malloc(rng() % 3000 + 1));
          if (spaces_chunk_alloc(c, rng() % 200 + 1, 0) == nullptr) ADD_FAILURE();
        } else {
          size_t i = rng() % live.size();
          spaces_free(live[i]);
          live[i] = live.back();
          live.pop_back();
        }
      }
      for (void* p : live) spaces_free(p);
      spaces_chunk_destroy(c);
    });
  for (int i = 0; i < 200; i++) {
    struct spaces_mallinfo m;
    ASSERT_EQ(spaces_mallinfo(&m), 0);
    EXPECT_LE(m.uordblks, m.arena);
    EXPECT_EQ(m.fordblks, m.arena - m.uordblks);
    char xml[16384];
    EXPECT_GT(spaces_malloc_info(0, xml, sizeof xml), 0);
  }
  stop = true;
  for (auto& w : workers) w.join();
  struct spaces_mallinfo m;
  ASSERT_EQ(spaces_mallinfo(nullptr), -1);
  ASSERT_EQ(spaces_mallinfo(&m), 0);
  EXPECT_EQ(spaces_malloc_info(7, nullptr, 0), -1) << "options must be 0";
  EXPECT_GT(spaces_malloc_info(0, nullptr, 0), 100) << "the length it needs";
}

// A thread whose home shard has no dirty slabs takes another shard's before clean memory (threads
// take home shards in turn: one short-lived thread after another must not leave each shard its own
// dirty slabs while the next faults in fresh ones).
TEST(Threads, AnotherShardsDirtySlabsGoBeforeCleanOnes) {
  if (arena_shard_count() < 2) GTEST_SKIP() << "one shard on this machine";
  arena_collect(true);  // (no dirty slab anywhere: the next ones are this test's)
  auto on_shard = [](auto&& body, unsigned shard, bool other) {  // runs body on a new thread whose
    for (int attempt = 0; attempt < 64; attempt++) {              // home shard is (or is not) `shard`
      bool ran = false;
      std::thread([&] {
        if ((arena_home_shard() == shard) == other) return;
        ran = true;
        body();
      }).join();
      if (ran) return true;
    }
    return false;
  };
  bool dirty;
  Slab* freed = nullptr;
  ASSERT_TRUE(on_shard([&] { freed = arena_alloc_slabs(4, &dirty); }, 0, false));
  ASSERT_NE(freed, nullptr);
  unsigned a = arena_of_shard_for_test(freed);
  // The other shard gets clean memory of its own: its threads could take that instead.
  Slab* hold = nullptr;
  ASSERT_TRUE(on_shard([&] { hold = arena_alloc_slabs(1, &dirty); }, a, true));
  ASSERT_NE(hold, nullptr);
  memset(freed, 1, 4 * kSlabSize);
  arena_free_slabs(freed, 4);  // (dirty, in shard a)
  Slab* got = nullptr;  // (on hold's shard, which has clean memory of its own)
  ASSERT_TRUE(on_shard([&] { got = arena_alloc_slabs(1, &dirty); }, arena_of_shard_for_test(hold), false));
  ASSERT_NE(got, nullptr);
  EXPECT_TRUE(dirty);
  EXPECT_GE(reinterpret_cast<uintptr_t>(got), reinterpret_cast<uintptr_t>(freed));
  EXPECT_LT(reinterpret_cast<uintptr_t>(got), reinterpret_cast<uintptr_t>(freed) + 4 * kSlabSize);
  arena_free_slabs(got, 1);
  arena_free_slabs(hold, 1);
  arena_collect(true);
}
