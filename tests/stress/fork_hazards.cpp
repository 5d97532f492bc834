// fork_hazards: fork() in the situations that used to leave the child hung or two threads on one
// heap. Each scenario runs in a forked "scenario process" under a watchdog (alarm), so a
// deadlock shows as a failure with the scenario's name instead of hanging the suite:
//   region_lock    - other threads allocate in a thread-shared region (its lock is held often)
//                    while the main thread forks: every child allocates in that region, reads
//                    its stats and mallocs (the lock used to be inherited held: 3 of 5 children
//                    hung).
//   capture        - fork while the thread has captured a region's heap (ScopedRegion's
//                    CaptureHeap) and another thread has captured another one: in the child the
//                    forking thread keeps its own heap (a new thread used to be given it) and the
//                    other thread's region is usable.
//   signal_fork    - a single-threaded process forks from a signal handler that interrupted
//                    malloc/free (the prepare handler used to wait for a lock the interrupted
//                    call held).
//   stdio          - fork while other threads allocate under stdio locks (getline, fflush(NULL)):
//                    our prepare handler must take glibc's stdio list lock before ours.
//   walk           - fork while another thread walks a region and its callback uses another
//                    region, the region pool and stdio, and resizes a large block: the region
//                    locks are taken all at once or retried, never waited for in order, and the
//                    large resizes are waited for only once they are held.
//   region_large   - fork while other threads allocate and free large blocks of two regions
//                    (thread-shared and exclusive), then reset one and destroy the other in the
//                    child, with no error reported: a block whose free was under way stayed on
//                    the region's list marked free, and the child's reset or destroy reported
//                    it as a double free (stopping the program) or, with an error handler that
//                    returns, retried it for ever (session 28's adversarial pass: 5 of 17).
//   pool_drain     - fork while other threads free the blocks of exited threads (each such free
//                    may drain the exited thread's pooled heap, page boxes included); the child
//                    frees every block still live, starts threads and allocates: a heap whose
//                    drainer did not survive had its box lists half changed, and the child's
//                    drains crashed in box_pages_back (session 29's adversarial pass: 5 of 6).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <pthread.h>
#include <string>
#include <sys/time.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "stress_util.h"

using namespace stress;

namespace {

constexpr int kWatchdogSeconds = 60;

// Forks a child that waits (up to 10 s) to be done; true if it exited 0 in time.
bool childExitsCleanly(void (*inChild)(void *), void *arg) {
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    alarm(10);
    inChild(arg);
    _exit(0);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    std::fprintf(stderr, "  child: %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// ---- region_lock ----
void regionChild(void *arg) {
  auto c = static_cast<SpacesChunk>(arg);
  void *p = spaces_chunk_alloc(c, 100, 0);
  void *q = spaces_chunk_alloc(c, 20000, 0);
  struct spaces_chunk_stats st;
  st.size = sizeof st;
  int r = spaces_chunk_stats(c, &st);
  void *m = std::malloc(64);
  if (!p || !q || r != 0 || !m) _exit(3);
  spaces_free(p);
  spaces_free(q);
  std::free(m);
}

void regionLock() {
  SpacesChunk c = spaces_chunk_create(0);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; t++)
    threads.emplace_back([&, t] {
      std::vector<void *> keep(32, nullptr);
      for (unsigned i = 0; !stop.load(std::memory_order_relaxed); i++) {
        void *&slot = keep[(i * 7 + t) % keep.size()];
        spaces_free(slot);
        slot = spaces_chunk_alloc(c, (i % 5 == 0) ? 12000 : 16 + i % 500, 0);
        if (i % 64 == 0) {
          struct spaces_chunk_stats st;
          st.size = sizeof st;
          spaces_chunk_stats(c, &st);
        }
      }
      for (void *p : keep) spaces_free(p);
    });
  int ok = 0;
  const int forks = 40;
  for (int i = 0; i < forks; i++) {
    ok += childExitsCleanly(regionChild, c);
    usleep(2000);
  }
  stop = true;
  for (auto &t : threads) t.join();
  CHECK(ok == forks);
  std::printf("region_lock: %d of %d children allocated in the region\n", ok, forks);
  spaces_chunk_destroy(c);
}

// ---- capture ----
struct CaptureArg {
  SpacesChunk mine, other;
};
void captureChild(void *p) {
  auto *a = static_cast<CaptureArg *>(p);
  // Still captured: plain malloc is served by our region.
  void *inRegion = std::malloc(48);
  if (spaces_chunk_of(inRegion) != a->mine) _exit(4);
  std::free(inRegion);
  spaces_thread_set_chunk(nullptr);  // back to the thread's own heap
  void *mine = std::malloc(48);
  if (spaces_chunk_of(mine) != nullptr) _exit(5);
  // A new thread must get a heap of its own, not the forking thread's.
  void *theirs = nullptr;
  std::thread([&] { theirs = std::malloc(48); }).join();
  auto slab = [](void *x) { return reinterpret_cast<std::uintptr_t>(x) >> 16; };
  if (slab(mine) == slab(theirs)) _exit(6);
  // The region the dead thread had captured is usable from here.
  void *o = spaces_chunk_alloc(a->other, 64, 0);
  if (!o) _exit(7);
  spaces_free(o);
  std::free(mine);
  std::free(theirs);
}

void capture() {
  CaptureArg a{spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE), spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE)};
  std::atomic<int> phase{0};
  std::thread holder([&] {
    spaces_thread_set_chunk(a.other);
    void *p = std::malloc(100);
    phase = 1;
    while (phase.load() != 2) usleep(100);
    std::free(p);
    spaces_thread_set_chunk(nullptr);
  });
  while (phase.load() != 1) usleep(100);
  void *warm = std::malloc(48);  // the main heap exists and has a 48-byte slab
  spaces_thread_set_chunk(a.mine);
  bool ok = childExitsCleanly(captureChild, &a);
  spaces_thread_set_chunk(nullptr);
  phase = 2;
  holder.join();
  std::free(warm);
  CHECK(ok);
  std::printf("capture: %s\n", ok ? "child kept its heap" : "FAILED");
  spaces_chunk_destroy(a.mine);
  spaces_chunk_destroy(a.other);
}

// ---- signal_fork (must run in a process that never had a second thread) ----
std::atomic<int> gSignalForks{0}, gSignalForkFailures{0};
void onTimer(int) {
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) gSignalForkFailures++;
  gSignalForks++;
  errno = saved;
}

void signalFork() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = onTimer;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGPROF, &sa, nullptr);
  struct itimerval it = {{0, 200}, {0, 200}};  // every 200 us of CPU time
  setitimer(ITIMER_PROF, &it, nullptr);
  std::vector<void *> keep(64, nullptr);
  // Until 300 forks, bounded by wall time, not iterations: how often the profiling timer fires
  // depends on the host's tick (one VM gave 131 ticks in 50M iterations).
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (unsigned i = 0; gSignalForks.load() < 300; i++) {
    if ((i & 0xffff) == 0) {
      clock_gettime(CLOCK_MONOTONIC, &t);
      if (t.tv_sec - t0.tv_sec > 60) break;
    }
    void *&slot = keep[i % keep.size()];
    std::free(slot);
    // large blocks take the arena lock, small ones run the heap paths
    slot = std::malloc(i % 3 == 0 ? 200000 + i % 4096 : 16 + i % 3000);
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_PROF, &off, nullptr);
  for (void *p : keep) std::free(p);
  CHECK(gSignalForks.load() >= 300);
  CHECK(gSignalForkFailures.load() == 0);
  std::printf("signal_fork: %d forks from a handler interrupting malloc/free\n", gSignalForks.load());
}

// ---- stdio ----
void stdioChild(void *) {
  void *p = std::malloc(1000);
  std::free(p);
}

void stdioLocks() {
  // Long lines: getline grows its buffer past 8 KiB while it holds the FILE's lock, which takes
  // the large-block path and its lock.
  std::string text;
  for (int i = 0; i < 200; i++) text += std::string(20000 + 37 * i, 'x') + "\n";
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; t++)
    threads.emplace_back([&] {
      FILE *f = fmemopen(const_cast<char *>(text.data()), text.size(), "r");
      while (!stop.load(std::memory_order_relaxed)) {
        char *line = nullptr;
        size_t cap = 0;
        if (getline(&line, &cap, f) < 0) rewind(f);
        std::free(line);
      }
      std::fclose(f);
    });
  threads.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) std::fflush(nullptr);
  });
  int ok = 0;
  const int forks = 200;
  for (int i = 0; i < forks; i++) ok += childExitsCleanly(stdioChild, nullptr);
  stop = true;
  for (auto &t : threads) t.join();
  CHECK(ok == forks);
  std::printf("stdio: %d of %d children ran\n", ok, forks);
}

// ---- walk ----
// A thread walks a thread-shared region (holding its lock) while its callback frees into another
// region, creates and destroys a region and flushes stdio; the main thread forks meanwhile. The
// prepare handler used to wait for the walked region's lock while holding the locks the callback
// needed.
void walkChild(void *) {
  void *p = std::malloc(100);
  std::free(p);
}

void walkDuringFork() {
  SpacesChunk walked = spaces_chunk_create(0);
  SpacesChunk other = spaces_chunk_create(0);
  for (int i = 0; i < 64; i++) {
    void *keep = spaces_chunk_alloc(walked, 64, 0);  // (freed by the destroy)
    (void)keep;
  }
  std::atomic<bool> stop{false};
  std::thread walker([&] {
    while (!stop.load()) {
      spaces_chunk_walk(
          walked,
          [](void *, size_t, void *arg) -> int {
            SpacesChunk o = static_cast<SpacesChunk>(arg);
            spaces_free(spaces_chunk_alloc(o, 20000, 0));  // the other region's locks
            spaces_chunk_destroy(spaces_chunk_create(0));  // the chunk pool's lock
            std::fflush(nullptr);                          // the stdio list lock
            // A large block resized in place (a claim: large.cpp's fork gate, which fork_prepare
            // must close only once it holds the region locks, or it waits here for ever).
            static void *grown = std::malloc(300 << 10);
            static bool big = false;
            big = !big;
            if (void *r = std::realloc(grown, big ? 600 << 10 : 300 << 10)) grown = r;
            return 0;
          },
          other);
    }
  });
  int ok = 0;
  const int forks = 60;
  for (int i = 0; i < forks; i++) ok += childExitsCleanly(walkChild, nullptr);
  stop = true;
  walker.join();
  CHECK(ok == forks);
  std::printf("walk: %d of %d children ran\n", ok, forks);
  spaces_chunk_destroy(walked);
  spaces_chunk_destroy(other);
}

// ---- region_large ----
std::atomic<int> gChildReports{0};
void countReport(int, void *, const char *, void *) { gChildReports.fetch_add(1); }
struct TwoRegions {
  SpacesChunk shared, exclusive;
};
void regionLargeChild(void *arg) {
  auto *r = static_cast<TwoRegions *>(arg);
  spaces_set_error_handler(countReport, nullptr);  // (a report is the failure; a hang is the alarm)
  spaces_chunk_reset(r->shared);
  spaces_chunk_destroy(r->exclusive);
  void *p = spaces_chunk_alloc(r->shared, 100000, 0);  // (the reset region still works)
  if (p == nullptr || gChildReports.load() != 0) _exit(4);
  spaces_free(p);
}

void regionLargeFrees() {
  TwoRegions r{spaces_chunk_create(0), spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE)};
  std::atomic<bool> stop{false};
  std::thread sharedUser([&] {  // (blocks above 8 KiB are the region's large blocks)
    for (unsigned i = 0; !stop.load(std::memory_order_relaxed); i++)
      spaces_free(spaces_chunk_alloc(r.shared, 9000 + (i % 7) * 30000, 0));
  });
  std::thread exclusiveUser([&] {  // (an exclusive region: this thread alone uses it)
    for (unsigned i = 0; !stop.load(std::memory_order_relaxed); i++)
      spaces_free(spaces_chunk_alloc(r.exclusive, 100000 + (i % 3) * 70000, 0));
  });
  int ok = 0;
  const int forks = 60;
  for (int i = 0; i < forks; i++) {
    ok += childExitsCleanly(regionLargeChild, &r);
    usleep(1000);
  }
  stop = true;
  sharedUser.join();
  exclusiveUser.join();
  CHECK(ok == forks);
  std::printf("region_large: %d of %d children reset and destroyed their regions\n", ok, forks);
  spaces_chunk_destroy(r.shared);
  spaces_chunk_destroy(r.exclusive);
}

// ---- pool_drain ----
struct Blocks {
  std::vector<std::atomic<void *>> slot;
  explicit Blocks(size_t n) : slot(n) {}
};
void poolDrainChild(void *arg) {
  auto *b = static_cast<Blocks *>(arg);
  for (auto &s : b->slot)  // (a block whose free was under way at the fork was taken out first)
    if (void *p = s.load(std::memory_order_relaxed)) std::free(p);
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; t++)
    ts.emplace_back([] {
      for (int i = 0; i < 2000; i++) std::free(std::malloc(16 + (i * 977) % 70000));
    });
  for (auto &t : ts) t.join();
}

void poolDrainFork() {
  constexpr size_t kPer = 1500, kProducers = 4, kFreers = 3;
  int ok = 0, forks = 0;
  for (int round = 0; round < 12; round++) {
    Blocks b(kPer * kProducers);
    std::vector<std::thread> ts;
    for (size_t t = 0; t < kProducers; t++)
      ts.emplace_back([&, t] {  // (medium blocks: page boxes; small ones: slabs)
        for (size_t i = 0; i < kPer; i++)
          b.slot[t * kPer + i].store(std::malloc(i % 3 ? 16000 + (i * 4099) % 150000 : 24 + i % 900),
                                     std::memory_order_relaxed);
      });
    for (auto &t : ts) t.join();  // (their heaps are pooled now)
    ts.clear();
    for (size_t f = 0; f < kFreers; f++)
      ts.emplace_back([&, f] {
        for (size_t i = f; i < b.slot.size(); i += kFreers)
          std::free(b.slot[i].exchange(nullptr, std::memory_order_relaxed));
      });
    for (int k = 0; k < 3; k++, forks++) {
      ok += childExitsCleanly(poolDrainChild, &b);
    }
    for (auto &t : ts) t.join();
  }
  CHECK(ok == forks);
  std::printf("pool_drain: %d of %d children freed the exited threads' blocks\n", ok, forks);
}

struct Scenario {
  const char *name;
  void (*run)();
};
const Scenario kScenarios[] = {
    {"signal_fork", signalFork}, {"region_lock", regionLock}, {"capture", capture}, {"stdio", stdioLocks},
    {"walk", walkDuringFork}, {"region_large", regionLargeFrees}, {"pool_drain", poolDrainFork}};

}  // namespace

int main(int argc, char **argv) {
  // Each scenario in a process of its own (signal_fork needs one that never had threads).
  int failures = 0;
  for (const Scenario &s : kScenarios) {
    if (argc > 1 && std::strcmp(argv[1], s.name) != 0) continue;
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      alarm(kWatchdogSeconds);
      s.run();
      std::fflush(nullptr);
      _exit(finish());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) {
      failures++;
      std::printf("%s: FAILED (%s %d)\n", s.name, WIFSIGNALED(status) ? "signal" : "exit",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
  }
  std::printf("%d scenarios failed\n", failures);
  return failures ? 1 : 0;
}
