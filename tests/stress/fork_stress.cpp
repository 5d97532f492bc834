// fork_stress: fork() while 4 threads allocate and free, and a fifth resizes a large block, is
// safe: every child can malloc, free, realloc and use large blocks, free its copies of blocks
// other parent threads allocated, and start a thread, without deadlock (alarm in the child) or
// damage to any block, in either process.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "stress_util.h"

using namespace stress;

namespace {

struct Block {
  void *p = nullptr;
  std::size_t size = 0;
  std::uint64_t seed = 0;
};

Block allocateBlock(Rng &rng, std::uint64_t serial) {
  Block b;
  b.size = rng.blockSize();
  b.p = std::malloc(b.size);
  if (!b.p) return Block{};
  b.seed = seedOf(b.p, serial);
  fill(b.p, b.size, b.seed);
  return b;
}

// Blocks the worker threads publish for others to free; fork() happens with gPoolMutex held
// by the forking thread, so the child sees a consistent pool.
std::mutex gPoolMutex;
std::vector<Block> gPool;
std::atomic<bool> gStop{false};
std::atomic<long> gParentDamaged{0}, gParentNull{0}, gParentOps{0};

void parentFree(Block &b) {
  if (!b.p) return;
  if (!verify(b.p, b.size, b.seed)) gParentDamaged.fetch_add(1);
  std::free(b.p);
  b = Block{};
}

void worker(int id) {
  Rng rng(id + 1);
  std::vector<Block> window(64);
  for (std::uint64_t op = 0; !gStop.load(std::memory_order_relaxed); ++op) {
    Block &slot = window[rng.below(window.size())];
    if (slot.p) parentFree(slot);
    else if (!(slot = allocateBlock(rng, op)).p) gParentNull.fetch_add(1);
    if (op % 16 == 0) {
      Block shared = allocateBlock(rng, ~op);
      std::lock_guard<std::mutex> lock(gPoolMutex);
      if (gPool.size() < 256) gPool.push_back(shared);
      else parentFree(shared);
    }
    gParentOps.fetch_add(1, std::memory_order_relaxed);
  }
  for (Block &b : window) parentFree(b);
}

// A large block grown and shrunk by realloc without a pause: most of these resize it in place
// (a run in its arena, a span's run, a mapping by mremap), under a claim that fork_prepare waits
// for (sdk/src/large.cpp, the fork gate), so forks come while it resizes: nothing may hang or
// break in either process. (The children do not free this block; Large.AForkWaitsForAReallocsClaim
// checks what a child finds.)
void resizer() {
  const std::size_t sizes[] = {300 << 10, 1 << 20, 3 << 20, 6 << 20, 40 << 20, 70 << 20, 9 << 20, 500 << 10};
  std::size_t n = sizes[0];
  auto *big = static_cast<unsigned char *>(std::malloc(n));
  if (!big) { gParentNull.fetch_add(1); return; }
  fill(big, n, 99);
  for (unsigned i = 1; !gStop.load(std::memory_order_relaxed); ++i) {
    std::size_t m = sizes[i % (sizeof sizes / sizeof sizes[0])];
    auto *next = static_cast<unsigned char *>(std::realloc(big, m));
    if (!next) { gParentNull.fetch_add(1); break; }
    if (!verify(next, m < n ? m : n, 99)) gParentDamaged.fetch_add(1);
    big = next;
    if (m > n) fillRange(big, n, m, 99);
    n = m;
    gParentOps.fetch_add(1, std::memory_order_relaxed);
  }
  std::free(big);
}

// ---- the child: only write(2) for output, only _exit to leave ----
int gChildFailures = 0;
void childFail(const char *what) {
  ++gChildFailures;
  ssize_t ignored = write(2, what, std::strlen(what));
  ignored = write(2, "\n", 1);
  (void)ignored;
}

void childChurn(long ops, std::uint64_t salt, LiveSet &live) {
  Rng rng(salt);
  std::vector<Block> window(256);
  for (long op = 0; op < ops; ++op) {
    Block &slot = window[rng.below(window.size())];
    if (slot.p) {
      if (!verify(slot.p, slot.size, slot.seed)) childFail("child: block damaged");
      if (!live.erase(slot.p)) childFail("child: freeing a block not live");
      std::free(slot.p);
      slot = Block{};
    } else if (!(slot = allocateBlock(rng, salt + op)).p) {
      childFail("child: malloc returned NULL");
    } else if (!live.insert(slot.p, slot.size)) {
      childFail("child: new block overlaps a live one (handed out twice?)");
    }
  }
  for (Block &b : window)
    if (b.p) {
      if (!verify(b.p, b.size, b.seed)) childFail("child: block damaged at the end");
      live.erase(b.p);
      std::free(b.p);
    }
}

[[noreturn]] void childMain(long ops, int index) {
  std::signal(SIGALRM, SIG_DFL); // a deadlock kills the child with SIGALRM
  alarm(10);
  auto *live = new LiveSet;
  // The pool is our copy of blocks the parent's other threads allocated: check, free half.
  for (std::size_t i = 0; i < gPool.size(); ++i) {
    Block &b = gPool[i];
    if (!verify(b.p, b.size, b.seed)) childFail("child: inherited block damaged");
    if (i % 2 == 0) {
      std::free(b.p);
      b = Block{};
    } else if (!live->insert(b.p, b.size)) {
      childFail("child: inherited blocks overlap");
    }
  }
  childChurn(ops, 1000 + index, *live);
  std::thread helper(childChurn, ops / 10, 5000 + index, std::ref(*live)); // threads still work
  helper.join();

  // A large block grown and shrunk by realloc, contents checked at every step.
  std::size_t sizes[] = {4 << 20, 12 << 20, 3 << 20, 100};
  auto *big = static_cast<unsigned char *>(std::malloc(sizes[0]));
  if (!big) childFail("child: large malloc returned NULL");
  if (big) fill(big, sizes[0], 77);
  for (int i = 1; big && i < 4; ++i) {
    auto *next = static_cast<unsigned char *>(std::realloc(big, sizes[i]));
    if (!next) { childFail("child: realloc returned NULL"); break; }
    big = next;
    std::size_t kept = sizes[i] < sizes[i - 1] ? sizes[i] : sizes[i - 1];
    if (!verify(big, kept, 77)) childFail("child: realloc lost contents");
    fill(big, sizes[i], 77);
  }
  std::free(big);
  auto *zero = static_cast<unsigned char *>(std::calloc(1000, 64));
  for (std::size_t i = 0; zero && i < 64000; ++i)
    if (zero[i]) { childFail("child: calloc not zeroed"); break; }
  std::free(zero);

  for (Block &b : gPool) // the half we kept was not overwritten by our own allocations
    if (b.p && !verify(b.p, b.size, b.seed)) childFail("child: inherited block damaged later");
  _exit(gChildFailures ? 1 : 0);
}

} // namespace

int main(int argc, char **argv) {
  setUp(argc, argv);
  const int forks = gQuick ? 5 : 50;
  const long childOps = scaled(10000);
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) workers.emplace_back(worker, i);
  workers.emplace_back(resizer);

  auto start = std::chrono::steady_clock::now();
  int ok = 0, bad = 0;
  for (int f = 0; f < forks && bad < 3; ++f) { // three broken children are enough to report
    std::this_thread::sleep_for(std::chrono::milliseconds(5)); // let the workers churn
    gPoolMutex.lock();
    pid_t pid = fork();
    if (pid == 0) childMain(childOps, f);
    gPoolMutex.unlock();
    if (!CHECK(pid > 0)) continue;
    std::vector<Block> drained; // the parent frees its own half of the pool meanwhile
    {
      std::lock_guard<std::mutex> lock(gPoolMutex);
      for (std::size_t i = gPool.size() / 2; i < gPool.size(); ++i) drained.push_back(gPool[i]);
      gPool.resize(gPool.size() / 2);
    }
    for (Block &b : drained) parentFree(b);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    bool exited = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    ok += exited, bad += !exited;
    if (!CHECK(exited))
      std::fprintf(stderr, "fork %d: child %s %d%s\n", f,
                   WIFEXITED(status) ? "exited" : "killed by signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                   WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (deadlock)" : "");
  }
  gStop = true;
  for (auto &t : workers) t.join();
  for (Block &b : gPool) parentFree(b);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d of %d children clean; parent threads did %ld operations in %.2f s\n", ok, forks,
              gParentOps.load(), seconds);
  CHECK(gParentDamaged.load() == 0);
  CHECK(gParentNull.load() == 0);
  return finish();
}
