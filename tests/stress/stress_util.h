// stress_util.h - what the stress programs share: a thread-safe counting CHECK, cheap
// address/serial-derived block patterns, a registry of live blocks that catches a block handed out
// twice, and the --quick / watchdog handling. Nothing here may hide an allocation from Spaces.
#ifndef SPACES_TESTS_STRESS_UTIL_H
#define SPACES_TESTS_STRESS_UTIL_H

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <unistd.h>

#include "spaces/spaces.h"

namespace stress {

inline std::atomic<long> gPassed{0}, gFailed{0};

// Failures are printed (the first 50) and counted; they never stop the program.
inline bool record(bool ok, const char *expr, const char *file, int line) {
  if (ok) {
    gPassed.fetch_add(1, std::memory_order_relaxed);
  } else if (gFailed.fetch_add(1) < 50) {
    std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
  }
  return ok;
}
#define CHECK(expr) ::stress::record(!!(expr), #expr, __FILE__, __LINE__)
// For per-block conditions in hot loops: only a failure is counted (a phase then CHECKs totals).
#define EXPECT(expr) ((expr) ? true : ::stress::record(false, #expr, __FILE__, __LINE__))

inline int finish() {
  std::printf("%ld passed, %ld failed\n", gPassed.load(), gFailed.load());
  std::fflush(stdout);
  return gFailed.load() ? 1 : 0;
}

inline void onWatchdog(int) {
  static const char kMessage[] = "watchdog: no progress within the time limit (deadlock?)\n";
  ssize_t ignored = write(2, kMessage, sizeof kMessage - 1);
  (void)ignored;
  _exit(3);
}

inline bool gQuick = false;

// --quick makes every program ~10x smaller; the watchdog turns a deadlock into a failure rather
// than a hung CI job. Also asserts that the override is in effect.
inline void setUp(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) gQuick = gQuick || std::strcmp(argv[i], "--quick") == 0;
  std::signal(SIGALRM, onWatchdog);
  alarm(gQuick ? 60 : 180);
  void *probe = std::malloc(16);
  if (!CHECK(probe != nullptr && spaces_owns(probe) == 1))
    std::fprintf(stderr, "malloc is not served by Spaces: link against the override build\n");
  std::free(probe);
}
inline long scaled(long full) { return gQuick ? full / 10 : full; }

// A small, fast, per-thread generator (xorshift64*).
struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  std::uint64_t next() {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  // 8 B .. 16 KiB, log-uniform, and 1 % of 100 KiB: the mix the brief asks for.
  std::size_t blockSize() {
    if (below(100) == 0) return 100 * 1024;
    std::size_t base = std::size_t(8) << below(11);
    return base + below(base);
  }
};

// Pattern of a block: byte i is byte (i % 8) of word (seed + (i / 8) * K). Seeds mix the
// address and a serial, so a block handed out twice, or overlapping another, fails its check.
constexpr std::uint64_t kStep = 0x9E3779B97F4A7C15ull;
inline std::uint64_t seedOf(const void *p, std::uint64_t serial) {
  return reinterpret_cast<std::uintptr_t>(p) * 0xFF51AFD7ED558CCDull ^ serial;
}
inline unsigned char patternByte(std::uint64_t seed, std::size_t i) {
  return static_cast<unsigned char>((seed + (i / 8) * kStep) >> (i % 8 * 8));
}
inline void fillRange(void *p, std::size_t from, std::size_t to, std::uint64_t seed) {
  auto *b = static_cast<unsigned char *>(p);
  std::size_t i = from;
  for (; i < to && i % 8; ++i) b[i] = patternByte(seed, i);
  for (; i + 8 <= to; i += 8) {
    std::uint64_t w = seed + (i / 8) * kStep;
    std::memcpy(b + i, &w, 8);
  }
  for (; i < to; ++i) b[i] = patternByte(seed, i);
}
inline bool verifyRange(const void *p, std::size_t from, std::size_t to, std::uint64_t seed) {
  auto *b = static_cast<const unsigned char *>(p);
  std::size_t i = from;
  for (; i < to && i % 8; ++i)
    if (b[i] != patternByte(seed, i)) return false;
  for (; i + 8 <= to; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, b + i, 8);
    if (w != seed + (i / 8) * kStep) return false;
  }
  for (; i < to; ++i)
    if (b[i] != patternByte(seed, i)) return false;
  return true;
}
inline void fill(void *p, std::size_t n, std::uint64_t seed) { fillRange(p, 0, n, seed); }
inline bool verify(const void *p, std::size_t n, std::uint64_t seed) {
  return verifyRange(p, 0, n, seed);
}

// Every live block, by start address, in shards keyed by the 64 KiB slab it starts in: a new
// block that overlaps a live one in its slab (or repeats a large block's address) is caught.
class LiveSet {
public:
  bool insert(const void *p, std::size_t n) {
    auto a = reinterpret_cast<std::uintptr_t>(p), end = a + (n ? n : 1);
    Shard &s = shard(a);
    std::lock_guard<std::mutex> lock(s.mutex);
    auto next = s.live.lower_bound(a);
    if (next != s.live.end() && next->first < end) return false;
    if (next != s.live.begin() && std::prev(next)->second > a) return false;
    s.live.emplace_hint(next, a, end);
    return true;
  }
  bool erase(const void *p) {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    Shard &s = shard(a);
    std::lock_guard<std::mutex> lock(s.mutex);
    return s.live.erase(a) == 1;
  }

private:
  struct Shard {
    std::mutex mutex;
    std::map<std::uintptr_t, std::uintptr_t> live;
  };
  Shard &shard(std::uintptr_t a) { return shards_[(a >> 16) % 64]; }
  Shard shards_[64];
};

// (`struct` is required in C++: the function spaces_stats hides the type of the same name.)
inline struct spaces_stats readStats() {
  struct spaces_stats s;
  std::memset(&s, 0, sizeof s);
  s.size = sizeof s;
  spaces_stats(&s);
  return s;
}

} // namespace stress

#endif // SPACES_TESTS_STRESS_UTIL_H
