// rlimit_as: Spaces under an address-space limit (ulimit -v, containers). Each case runs in a
// forked child that sets RLIMIT_AS first:
//   64mib     - 64 MiB: the program allocates small and large blocks until malloc says NULL with
//               ENOMEM, having got most of what the limit leaves; after freeing everything it can
//               allocate again. (The flat ownership map reserved 260 MiB at start, so the first
//               allocation failed under any limit below that.)
//   9threads  - 200 MiB, 9 threads (8 MiB stacks each) allocating until memory runs out: every
//               thread starts, every one ends on ENOMEM, none crashes.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "stress_util.h"

using namespace stress;

namespace {

size_t vmSizeBytes() {
  FILE *f = std::fopen("/proc/self/status", "r");
  char line[256];
  size_t kb = 0;
  while (f && std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmSize:", 7) == 0) kb = std::strtoul(line + 7, nullptr, 10);
  if (f) std::fclose(f);
  return kb << 10;
}

bool limitTo(size_t bytes) {
  struct rlimit r = {bytes, bytes};
  return setrlimit(RLIMIT_AS, &r) == 0;
}

// Allocates blocks of sizes cycling through small, medium and large until NULL; returns the
// bytes obtained, frees them all. errnoAtEnd: errno of the failing call.
// (The block list is made before the limit is set: under it, the vector's own growth could fail.)
size_t fillUntilFull(int *errnoAtEnd, std::vector<void *> &blocks) {
  static const size_t sizes[] = {48, 700, 5000, 20000, 300000, 3 << 20};
  size_t maxBlocks = blocks.capacity();
  blocks.clear();
  size_t total = 0;
  *errnoAtEnd = 0;
  for (size_t i = 0; blocks.size() < maxBlocks; i++) {
    size_t n = sizes[i % 6];
    errno = 0;
    void *p = std::malloc(n);
    if (p == nullptr) {
      *errnoAtEnd = errno;
      // smaller sizes may still fit: keep going with small blocks for a while
      if (n <= 48) break;
      continue;
    }
    std::memset(p, 1, n < 4096 ? n : 4096);
    blocks.push_back(p);
    total += n;
  }
  for (void *p : blocks) std::free(p);
  blocks.clear();
  return total;
}

int run64() {
  std::vector<void *> blocks;
  // 1 MiB of pointers, far more than the limit lets it fill: a 2 MiB array would be a huge block,
  // whose first one reserves a 64 MiB span (docs/options.md, huge_spans) before the limit.
  blocks.reserve(1 << 17);
  size_t base = vmSizeBytes();
  if (!limitTo(size_t(64) << 20)) return 2;
  int err = 0;
  size_t got = fillUntilFull(&err, blocks);
  std::printf("64mib: VmSize at start %zu MiB, got %zu MiB before ENOMEM (errno %d)\n", base >> 20,
              got >> 20, err);
  CHECK(err == ENOMEM);
  CHECK(base < (size_t(64) << 20));
  CHECK(got >= (size_t(64) << 20) - base - (size_t(24) << 20));  // most of what the limit leaves
  int err2 = 0;
  size_t again = fillUntilFull(&err2, blocks);
  CHECK(err2 == ENOMEM && again >= got / 2);
  return finish();
}

struct ThreadResult {
  std::vector<void *> blocks;
  size_t got = 0;
  int err = 0;
};
std::atomic<bool> gGo{false};
void *threadFill(void *arg) {
  auto *r = static_cast<ThreadResult *>(arg);
  while (!gGo.load()) usleep(100);  // every thread exists before any fills memory
  r->got = fillUntilFull(&r->err, r->blocks);
  return nullptr;
}

int run9threads() {
  ThreadResult results[9];
  for (auto &r : results) r.blocks.reserve(1 << 16);
  if (!limitTo(size_t(200) << 20)) return 2;
  pthread_t t[9];
  int started = 0;
  for (int i = 0; i < 9; i++) started += pthread_create(&t[i], nullptr, threadFill, &results[i]) == 0;
  CHECK(started == 9);
  gGo = true;
  size_t total = 0;
  int enomem = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(t[i], nullptr);
    total += results[i].got;
    enomem += results[i].err == ENOMEM;
  }
  std::printf("9threads: %d threads started, %zu MiB allocated, %d ended on ENOMEM\n", started,
              total >> 20, enomem);
  CHECK(enomem == started);
  CHECK(total > (size_t(40) << 20));
  return finish();
}

int runCase(int (*body)()) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(120);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    std::printf("  FAILED: %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    return 1;
  }
  return 0;
}

}  // namespace

int main() {
  int failed = runCase(run64) + runCase(run9threads);
  std::printf("%d cases failed\n", failed);
  return failed ? 1 : 0;
}
