// medium_cache: the thread heaps' cache of freed medium blocks (9-256 KiB) under threads, thread
// exits and fork. Waves of 4 threads replace medium blocks in private and shared slots: a block
// freed by its owner waits in that thread's cache, and one freed through a shared slot goes back
// to its slab from another thread. One in eight is grown or shrunk by realloc. Threads exit with
// full caches, which go back to their slabs at exit. Thread 0 forks while the others allocate;
// the child allocates, frees and runs spaces_collect(1), which merges the dead threads' heaps and
// flushes their caches. Each block carries a pattern seeded by its address and a serial, and
// every live block is in a registry: a block handed out twice, or one still in a cache when it
// is handed out, fails its check. At the end spaces_collect(1) must leave no live bytes and no
// slab in use beyond the start. --quick: fewer steps.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "stress_util.h"

using namespace stress;

namespace {

constexpr int kShared = 64;
constexpr int kPrivate = 24;
struct Slot {
  unsigned char *p = nullptr;
  std::size_t n = 0;
  std::uint64_t seed = 0;
};
std::mutex gSharedLock;
Slot gShared[kShared];
LiveSet gLive;
std::atomic<std::uint64_t> gSerial{1};

std::size_t mediumSize(Rng &rng) { return 8193 + rng.below((256u << 10) - 8192); }

void put(Slot &s, std::size_t n, Rng &rng) {
  s.p = static_cast<unsigned char *>(rng.below(4) == 0 ? std::calloc(1, n) : std::malloc(n));
  s.n = n;
  if (!EXPECT(s.p != nullptr)) return;
  EXPECT(gLive.insert(s.p, n));
  s.seed = seedOf(s.p, gSerial.fetch_add(1));
  fill(s.p, n, s.seed);
}

void drop(Slot &s) {
  if (s.p == nullptr) return;
  EXPECT(verify(s.p, s.n, s.seed));
  EXPECT(gLive.erase(s.p));
  std::free(s.p);
  s.p = nullptr;
}

bool childWork() {
  Rng rng(77);
  std::vector<Slot> mine(16);
  for (int i = 0; i < 400; i++) {
    Slot &s = mine[rng.below(mine.size())];
    if (s.p) {
      if (!verify(s.p, s.n, s.seed)) return false;
      std::free(s.p);
    }
    s.n = mediumSize(rng);
    s.p = static_cast<unsigned char *>(std::malloc(s.n));
    if (s.p == nullptr) return false;
    s.seed = seedOf(s.p, std::uint64_t(i) + 1);
    fill(s.p, s.n, s.seed);
  }
  spaces_collect(1);  // (merges the dead threads' heaps: their caches go back to their slabs)
  for (Slot &s : mine) {
    if (!verify(s.p, s.n, s.seed)) return false;
    std::free(s.p);
  }
  return true;
}

void worker(int t, int steps) {
  Rng rng(4000 + std::uint64_t(t) * 7919 + gSerial.load());
  Slot mine[kPrivate];
  for (int i = 0; i < steps; i++) {
    Slot &s = mine[rng.below(kPrivate)];
    unsigned op = unsigned(rng.below(8));
    if (op == 0 && s.p) {  // realloc: grow or shrink, contents kept up to the smaller size
      std::size_t m = mediumSize(rng);
      EXPECT(verify(s.p, s.n, s.seed));
      EXPECT(gLive.erase(s.p));
      auto *q = static_cast<unsigned char *>(std::realloc(s.p, m));
      if (!EXPECT(q != nullptr)) {
        std::free(s.p);
        s.p = nullptr;
        continue;
      }
      EXPECT(verifyRange(q, 0, m < s.n ? m : s.n, s.seed));
      EXPECT(gLive.insert(q, m));
      s.p = q;
      s.n = m;
      s.seed = seedOf(q, gSerial.fetch_add(1));
      fill(q, m, s.seed);
    } else if (op == 1 && s.p) {  // into a shared slot: what was there is freed here (often
      Slot out;                   // another thread's block)
      {
        std::lock_guard<std::mutex> lock(gSharedLock);
        Slot &g = gShared[rng.below(kShared)];
        out = g;
        g = s;
      }
      s.p = nullptr;
      drop(out);
    } else {
      drop(s);
      put(s, mediumSize(rng), rng);
    }
    if (t == 0 && i % 251 == 125) {
      pid_t pid = fork();
      if (pid == 0) _exit(childWork() ? 0 : 1);
      int status = 0;
      EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
  }
  for (Slot &s : mine) drop(s);
}

}  // namespace

int main(int argc, char **argv) {
  setUp(argc, argv);
  spaces_collect(1);
  struct spaces_stats st0;
  st0.size = sizeof st0;
  spaces_stats(&st0);
  int steps = gQuick ? 600 : 4000;
  for (int wave = 0; wave < 3; wave++) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++) threads.emplace_back(worker, t, steps);
    for (auto &th : threads) th.join();
  }
  for (Slot &g : gShared) drop(g);
  spaces_collect(1);
  struct spaces_mallinfo mi;
  CHECK(spaces_mallinfo(&mi) == 0);
  CHECK(mi.uordblks < (std::size_t(1) << 20));  // (the program's own vectors and stdio buffers)
  struct spaces_stats st;
  st.size = sizeof st;
  spaces_stats(&st);
  CHECK(st.slabs_in_use <= st0.slabs_in_use + 64);
  std::printf("medium_cache: 3 waves x 4 threads x %d medium blocks, forks every 251 steps\n", steps);
  return finish();
}
