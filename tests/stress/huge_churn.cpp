// huge_churn: threads replace huge blocks (2-32 MiB, the sizes spans serve, and a few powers of
// two) in shared slots, so most are freed by another thread than the one that made them; a
// third are calloc'ed (checked zero where the span may reuse freed granules), one in eleven is
// grown by realloc, some twice (in place when the granules after it are free, else moved to a
// mapping of its own from span_move_mib up, else copied: stress.huge_churn_move runs it with
// SPACES_SPAN_MOVE_MIB=2, so that most growths move), and one thread forks while
// the others allocate. Each block carries its size at both ends and a byte per MiB, checked
// before it is freed: a run handed out twice, overlapping runs or a lost realloc are caught.
// --quick: fewer steps.
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

constexpr std::size_t kMiB = std::size_t(1) << 20;
constexpr int kSlots = 48;
std::atomic<unsigned char *> gSlots[kSlots];

struct Header {
  std::size_t size;
  std::uint64_t key;
};

unsigned char mark(std::uint64_t key, std::size_t i) { return static_cast<unsigned char>((key >> (i % 56)) + i); }

void stamp(unsigned char *p, std::size_t n, std::uint64_t key) {
  Header h{n, key};
  std::memcpy(p, &h, sizeof h);
  for (std::size_t off = kMiB, i = 0; off < n; off += kMiB, i++) p[off] = mark(key, i);
  std::memcpy(p + n - sizeof h, &h, sizeof h);
}

bool intact(const unsigned char *p) {
  Header h, t;
  std::memcpy(&h, p, sizeof h);
  if (h.size < 2 * kMiB || h.size > 64 * kMiB) return false;
  std::memcpy(&t, p + h.size - sizeof t, sizeof t);
  if (t.size != h.size || t.key != h.key) return false;
  for (std::size_t off = kMiB, i = 0; off < h.size; off += kMiB, i++)
    if (p[off] != mark(h.key, i)) return false;
  return true;
}

void release(unsigned char *p) {
  if (p == nullptr) return;
  EXPECT(intact(p));
  std::free(p);
}

void worker(int t, int steps) {
  Rng rng(1000 + t);
  for (int i = 0; i < steps; i++) {
    std::size_t n = 2 * kMiB + rng.below(30 * kMiB);
    if (rng.below(7) == 0) n = (std::size_t(1) << (21 + rng.below(4)));  // 2, 4, 8, 16 MiB
    bool zero = rng.below(3) == 0;
    auto *p = static_cast<unsigned char *>(zero ? std::calloc(1, n) : std::malloc(n));
    if (!EXPECT(p != nullptr)) continue;
    EXPECT(reinterpret_cast<std::uintptr_t>(p) % 16 == 0);
    if (zero)
      for (std::size_t off = 0; off < n; off += 32 * 1024) EXPECT(p[off] == 0 && p[n - 1 - off] == 0);
    std::uint64_t key = rng.next();
    stamp(p, n, key);
    if (rng.below(11) == 0) {
      std::size_t m = n + rng.below(12 * kMiB);
      auto *q = static_cast<unsigned char *>(std::realloc(p, m));
      if (!EXPECT(q != nullptr)) {
        std::free(p);
        continue;
      }
      EXPECT(intact(q));
      p = q;
      stamp(p, m, key);
      if (rng.below(2) == 0) {  // grown again: a block moved to a mapping of its own grows there
        std::size_t m2 = m + rng.below(8 * kMiB);
        q = static_cast<unsigned char *>(std::realloc(p, m2));
        if (EXPECT(q != nullptr)) {
          EXPECT(intact(q));
          p = q;
          stamp(p, m2, key);
        }
      }
    }
    release(gSlots[rng.below(kSlots)].exchange(p));
    if (t == 0 && i % 97 == 50) {  // fork while the others hold the shard locks now and then
      pid_t pid = fork();
      if (pid == 0) {
        auto *c = static_cast<unsigned char *>(std::malloc(5 * kMiB));
        if (c == nullptr) _exit(1);
        stamp(c, 5 * kMiB, 7);
        bool ok = intact(c);
        std::free(c);
        _exit(ok ? 0 : 1);
      }
      int status = 0;
      EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
  }
}

}  // namespace

int main(int argc, char **argv) {
  setUp(argc, argv);
  int steps = gQuick ? 150 : 600;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) threads.emplace_back(worker, t, steps);
  for (auto &th : threads) th.join();
  for (auto &s : gSlots) release(s.exchange(nullptr));
  spaces_collect(1);
  std::printf("huge_churn: 4 threads x %d huge blocks\n", steps);
  return finish();
}
