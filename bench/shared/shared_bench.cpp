// shared_bench: allocation throughput in memory shared by several processes, Spaces' shared
// region against Boost.Interprocess managed_shared_memory (its default rbtree best-fit allocator
// and interprocess mutex), in the same run.
//
// Each of P processes (fork) runs T threads; each thread allocates N blocks of random sizes
// (16..512 bytes, fixed sequence), writes their first 8 bytes, and keeps a window of 64 live
// blocks (frees the oldest). With --handoff every other block is freed by the *other* process
// (through a ring in the shared memory), which is the cross-process free. Reported: the time from
// the start signal until every process is done, as million operations (allocations + frees) per
// second, median of --reps runs, and the ratio Spaces / Boost.
//   shared_bench [--procs P] [--threads T] [--n N] [--reps R] [--handoff] [--smoke]
// Timing is reported, never asserted.
#include <spaces/spaces.h>

#include <boost/interprocess/managed_shared_memory.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace bip = boost::interprocess;

namespace {
using Clock = std::chrono::steady_clock;

struct Options {
  int procs = 2, threads = 1, reps = 5;
  size_t n = 1000000;
  bool handoff = false;
};

// Shared control block: start flag, done count, handoff rings (one per process, lock-free SPSC
// per producer/consumer pair is not needed: a spin lock keeps it simple and equal for both).
struct Ring {
  std::atomic<uint32_t> lock{0};
  uint64_t head = 0, tail = 0;
  void* slot[4096];
};
struct Control {
  std::atomic<int> ready{0}, go{0}, done{0};
  Ring ring[8];
};
void ring_lock(Ring& r) {
  while (r.lock.exchange(1, std::memory_order_acquire)) {
  }
}
void ring_unlock(Ring& r) { r.lock.store(0, std::memory_order_release); }

template <typename Alloc, typename Free>
void run_thread(const Options& o, Control* ctl, int proc, unsigned seed, Alloc&& alloc, Free&& release) {
  std::vector<void*> window(64, nullptr);
  uint32_t x = seed * 2654435761u + 1;
  Ring& mine = ctl->ring[proc];
  Ring& other = ctl->ring[(proc + 1) % o.procs];
  for (size_t i = 0; i < o.n; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    size_t size = 16 + x % 497;
    void* p = alloc(size);
    if (!p) {
      fprintf(stderr, "allocation failed\n");
      _exit(3);
    }
    memcpy(p, &i, 8);
    void*& slot = window[i & 63];
    if (slot) {
      if (o.handoff && (i & 1) && o.procs > 1) {  // let the other process free it
        ring_lock(other);
        bool ok = other.head - other.tail < 4096;
        if (ok) other.slot[other.head++ % 4096] = slot;
        ring_unlock(other);
        if (!ok) release(slot);
      } else {
        release(slot);
      }
    }
    slot = p;
    if (o.handoff && (i & 15) == 0) {  // free what the other process handed us
      for (;;) {
        ring_lock(mine);
        void* q = mine.tail < mine.head ? mine.slot[mine.tail++ % 4096] : nullptr;
        ring_unlock(mine);
        if (!q) break;
        release(q);
      }
    }
  }
  for (void* p : window)
    if (p) release(p);
}

// Forks the processes, runs, returns the seconds from "go" until the last process is done.
template <typename Setup>
double run_procs(const Options& o, Control* ctl, Setup&& body) {
  ctl->ready = 0, ctl->go = 0, ctl->done = 0;
  for (auto& r : ctl->ring) r.head = r.tail = 0;
  std::vector<pid_t> pids;
  for (int p = 0; p < o.procs; p++) {
    pid_t pid = fork();
    if (pid == 0) {
      ctl->ready++;
      while (!ctl->go.load()) {
      }
      std::vector<std::thread> ts;
      for (int t = 0; t < o.threads; t++) ts.emplace_back([&, t] { body(p, unsigned(p * 16 + t + 1)); });
      for (auto& t : ts) t.join();
      ctl->done++;
      _exit(0);
    }
    pids.push_back(pid);
  }
  while (ctl->ready.load() < o.procs) {
  }
  auto t0 = Clock::now();
  ctl->go = 1;
  while (ctl->done.load() < o.procs) std::this_thread::yield();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  for (pid_t pid : pids) {
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "a worker process failed\n");
      exit(1);
    }
  }
  return s;
}

// Blocks still in the rings when the processes finished (handed over, never taken): freed here.
template <typename Free>
void drain(Control* ctl, Free&& release) {
  for (auto& r : ctl->ring)
    while (r.tail < r.head) release(r.slot[r.tail++ % 4096]);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--procs") && i + 1 < argc) o.procs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) o.threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--n") && i + 1 < argc) o.n = strtoull(argv[++i], nullptr, 10);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) o.reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--handoff")) o.handoff = true;
    else if (!strcmp(argv[i], "--smoke")) o.n = 20000, o.reps = 1;
    else {
      fprintf(stderr, "usage: %s [--procs P] [--threads T] [--n N] [--reps R] [--handoff] [--smoke]\n", argv[0]);
      return 2;
    }
  }
  if (o.procs < 1 || o.procs > 8 || o.threads < 1) return 2;
  const size_t kBytes = size_t(256) << 20;
  Control* ctl = static_cast<Control*>(
      mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  new (ctl) Control();
  std::string sname = "bench-" + std::to_string(getpid());
  std::string bname = "spaces-bench-boost-" + std::to_string(getpid());
  std::vector<double> ts, tb;
  for (int rep = 0; rep < o.reps; rep++) {
    {  // Spaces: a shared region, created fresh each repetition, inherited by the children
      SpacesChunk c = spaces_chunk_create_shared(sname.c_str(), kBytes, 0);
      if (!c) {
        perror("spaces_chunk_create_shared");
        return 1;
      }
      ts.push_back(run_procs(o, ctl, [&](int proc, unsigned seed) {
        run_thread(o, ctl, proc, seed, [&](size_t n) { return spaces_chunk_alloc(c, n, 0); },
                   [](void* p) { spaces_free(p); });
      }));
      drain(ctl, [](void* p) { spaces_free(p); });
      struct spaces_chunk_stats st = {sizeof st};
      spaces_chunk_stats(c, &st);
      if (st.live_blocks != 0) fprintf(stderr, "spaces: %zu blocks left\n", st.live_blocks);
      spaces_chunk_close_shared(c);
      spaces_chunk_unlink_shared(sname.c_str());
    }
    {  // Boost.Interprocess: managed_shared_memory, default allocator
      bip::shared_memory_object::remove(bname.c_str());
      bip::managed_shared_memory seg(bip::create_only, bname.c_str(), kBytes);
      tb.push_back(run_procs(o, ctl, [&](int proc, unsigned seed) {
        run_thread(o, ctl, proc, seed, [&](size_t n) { return seg.allocate(n, std::nothrow); },
                   [&](void* p) { seg.deallocate(p); });
      }));
      drain(ctl, [&](void* p) { seg.deallocate(p); });
      if (seg.get_num_named_objects() != 0 || !seg.all_memory_deallocated())
        fprintf(stderr, "boost: memory left allocated\n");
      bip::shared_memory_object::remove(bname.c_str());
    }
  }
  double ops = 2.0 * double(o.n) * o.procs * o.threads;
  double s = median(ts), b = median(tb);
  printf("shared_bench: %d processes x %d threads, %zu allocations each (16-512 B, window 64)%s, %d reps (median)\n",
         o.procs, o.threads, o.n, o.handoff ? ", every other block freed by the other process" : "", o.reps);
  printf("  spaces shared region          %8.3f s  %7.2f Mops/s\n", s, ops / s / 1e6);
  printf("  boost managed_shared_memory   %8.3f s  %7.2f Mops/s\n", b, ops / b / 1e6);
  printf("RATIO spaces_over_boost_throughput=%.2f\n", b / s);
  return 0;
}
