// Batched remote frees (free.cpp, internal.h: RemoteEntry): a thread's frees into another thread's
// slabs wait in its batch and are pushed kRemoteBatch at a time, at its exit, on spaces_collect,
// at its refills when idle, and never reach a region's counts late. Double frees of batched
// blocks are still reported, whoever frees twice.
#include "test_internal.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <thread>
#include <vector>

namespace {

// n blocks of `size` bytes made by this thread, all in one slab (the slab of the first).
std::vector<void*> blocks_of_one_slab(size_t size, size_t n, std::vector<void*>* others) {
  std::vector<void*> out;
  Slab* s = nullptr;
  while (out.size() < n) {
    void* p = spaces_malloc(size);
    if (s == nullptr) s = slab_of(p);
    (slab_of(p) == s ? out : *others).push_back(p);
  }
  return out;
}

size_t pushed(Slab* s) {  // blocks on s's remote stack (read only: the owner collects later)
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  uintptr_t p = tf_ptr(s->thread_free.load(std::memory_order_acquire));
  size_t n = 0;
  while (p != base && n <= s->capacity) {
    n++;
    p = base + (link_get(reinterpret_cast<Block*>(p)) ^ s->key);
  }
  return n;
}

void free_all(std::vector<void*>& v) {
  for (void* p : v) spaces_free(p);
  v.clear();
}

// Spin until flag is set (the tests' threads hand over in order).
void wait_for(const std::atomic<int>& flag, int value) {
  while (flag.load() != value) std::this_thread::yield();
}

}  // namespace

TEST(Remote, FreesGoInBatchesOfKRemoteBatch) {
  std::vector<void*> others;
  std::vector<void*> v = blocks_of_one_slab(64, kRemoteBatch + 8, &others);
  Slab* s = slab_of(v[0]);
  size_t before = 0, at_batch = 0, after_more = 0;
  std::thread([&] {
    for (uint32_t i = 0; i + 1 < kRemoteBatch; i++) spaces_free(v[i]);
    before = pushed(s);
    spaces_free(v[kRemoteBatch - 1]);
    at_batch = pushed(s);
    for (size_t i = kRemoteBatch; i < v.size(); i++) spaces_free(v[i]);
    after_more = pushed(s);
  }).join();
  EXPECT_EQ(before, 0u) << "the first blocks wait in the freeing thread's batch";
  EXPECT_EQ(at_batch, size_t(kRemoteBatch)) << "one push of the whole batch";
  EXPECT_EQ(after_more, size_t(kRemoteBatch)) << "the next ones wait again";
  EXPECT_EQ(pushed(s), v.size()) << "the thread's exit pushed the rest";
  free_all(others);
}

TEST(Remote, CollectAndIdleRefillsPushTheBatches) {
  std::vector<void*> others;
  std::vector<void*> v = blocks_of_one_slab(96, 12, &others);
  Slab* s = slab_of(v[0]);
  size_t after_collect = 0, idle = 0, after_refills = 0;
  std::thread([&] {
    for (int i = 0; i < 4; i++) spaces_free(v[i]);
    spaces_collect(0);  // this thread's batches go now
    after_collect = pushed(s);
    for (int i = 4; i < 8; i++) spaces_free(v[i]);
    // refills of this thread's own heap: the batch sits idle through one, and goes at the next
    std::vector<void*> mine;
    for (int i = 0; i < 3000 && idle == 0; i++) {
      mine.push_back(spaces_malloc(4000));
      if (pushed(s) > after_collect) idle = mine.size();
    }
    after_refills = pushed(s);
    free_all(mine);
  }).join();
  EXPECT_EQ(after_collect, 4u);
  EXPECT_EQ(after_refills, 8u) << "an idle batch is pushed at the freeing thread's refills";
  EXPECT_GT(idle, 1u) << "not at the first refill after it was filled";
  for (int i = 8; i < 12; i++) spaces_free(v[i]);
  free_all(others);
}

TEST(Remote, CollectInAnyThreadMakesEveryThreadPushAtItsNextRefill) {
  std::vector<void*> others;
  std::vector<void*> v = blocks_of_one_slab(160, 6, &others);
  Slab* s = slab_of(v[0]);
  std::atomic<int> step{0};
  size_t before = 0, after = 0;
  std::thread t([&] {
    for (int i = 0; i < 3; i++) spaces_free(v[i]);
    before = pushed(s);
    step = 1;
    wait_for(step, 2);
    std::vector<void*> mine;  // (until a refill: the first, unless the heap came from the pool)
    while (pushed(s) == 0 && mine.size() < 1000) mine.push_back(spaces_malloc(5000));
    after = pushed(s);
    free_all(mine);
  });
  wait_for(step, 1);
  spaces_collect(0);  // another thread's request
  step = 2;
  t.join();
  EXPECT_EQ(before, 0u);
  EXPECT_EQ(after, 3u);
  for (int i = 3; i < 6; i++) spaces_free(v[i]);
  free_all(others);
}

TEST(Remote, DoubleFreesOfBatchedBlocksAreReported) {
  HandlerScope h;
  std::vector<void*> others;
  std::vector<void*> v = blocks_of_one_slab(48, 8, &others);
  std::atomic<int> step{0};
  std::thread b([&] {
    spaces_free(v[0]);  // batched here
    spaces_free(v[0]);  // the same thread again
    step = 1;
    wait_for(step, 3);
  });
  wait_for(step, 1);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
  EXPECT_EQ(g_caught.count, 1);
  std::thread([&] { spaces_free(v[0]); }).join();  // a third thread, while it waits in b's batch
  EXPECT_EQ(g_caught.count, 2);
  spaces_free(v[0]);  // the owner (this thread), ditto
  EXPECT_EQ(g_caught.count, 3);
  EXPECT_EQ(g_caught.addr, v[0]);
  step = 3;
  b.join();
  EXPECT_EQ(pushed(slab_of(v[0])), 1u) << "pushed once, at b's exit";
  // the lists are intact: every block comes back once
  for (size_t i = 1; i < v.size(); i++) spaces_free(v[i]);
  std::vector<void*> again;
  for (int i = 0; i < 2000; i++) again.push_back(spaces_malloc(48));
  std::sort(again.begin(), again.end());
  EXPECT_EQ(std::adjacent_find(again.begin(), again.end()), again.end()) << "a block handed out twice";
  EXPECT_EQ(g_caught.count, 3);
  free_all(again);
  free_all(others);
}

// A batch whose slab was re-initialised under it (possible only after a double free went unseen)
// is dropped when pushed, never linked into the new slab with the old key's encoding.
TEST(Remote, BatchOfAReinitialisedSlabIsDroppedNotPushed) {
  std::vector<void*> others;
  std::vector<void*> v = blocks_of_one_slab(64, 4, &others);
  Slab* s = slab_of(v[0]);
  uintptr_t key = s->key;
  std::atomic<int> step{0};
  uintptr_t tf_after = 0;
  std::thread t([&] {
    spaces_free(v[0]);
    spaces_free(v[1]);
    step = 1;
    wait_for(step, 2);
    spaces_collect(0);  // pushes this thread's batches: the stale one must go nowhere
    tf_after = s->thread_free.load();
    step = 3;
  });
  wait_for(step, 1);
  s->key = s->pop_key = key ^ (uintptr_t(0x5a5a) << 40);  // "re-initialised" (the test's stand-in)
  step = 2;
  wait_for(step, 3);
  t.join();
  s->key = s->pop_key = key;
  EXPECT_EQ(tf_ptr(tf_after), reinterpret_cast<uintptr_t>(s)) << "nothing pushed";
  EXPECT_EQ(tf_count(tf_after), 0u);
  spaces_free(v[2]);
  spaces_free(v[3]);  // (v[0] and v[1] stay counted as used: leaked, as documented)
  free_all(others);
}

TEST(Remote, RegionBlocksAreNeverBatched) {
  SpacesChunk c = spaces_chunk_create(0);
  std::vector<void*> v;
  for (int i = 0; i < 10; i++) v.push_back(spaces_chunk_alloc(c, 64, 0));
  struct spaces_chunk_stats st;
  std::thread([&] {
    for (void* p : v) spaces_free(p);
    std::memset(&st, 0, sizeof st);
    st.size = sizeof st;
    spaces_chunk_stats(c, &st);
  }).join();
  EXPECT_EQ(st.live_blocks, 0u) << "a region's counts drop at each free (its walk and ceiling)";
  spaces_chunk_destroy(c);
}

// In a child of fork, the threads that did not survive leave batches that are dropped (never
// pushed: their owner may have been between two stores); the child goes on allocating.
TEST(Remote, ForkChildDropsDeadThreadsBatches) {
  std::vector<void*> others;
  std::vector<void*> v = blocks_of_one_slab(64, 8, &others);
  std::atomic<int> step{0};
  std::thread b([&] {
    for (int i = 0; i < 5; i++) spaces_free(v[i]);
    step = 1;
    wait_for(step, 2);
  });
  wait_for(step, 1);
  pid_t pid = fork();
  if (pid == 0) {
    Slab* s = slab_of(v[0]);
    int bad = pushed(s) != 0;
    for (int i = 5; i < 8; i++) spaces_free(v[i]);
    std::vector<void*> mine;
    for (int i = 0; i < 20000; i++) mine.push_back(spaces_malloc(64));
    for (void* p : mine) spaces_free(p);
    _exit(bad ? 3 : 0);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  step = 2;
  b.join();
  EXPECT_EQ(pushed(slab_of(v[0])), 5u);
  for (int i = 5; i < 8; i++) spaces_free(v[i]);
  free_all(others);
}
