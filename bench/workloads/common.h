// Shared helpers for the allocator workloads: option parsing, a small RNG, block patterns, the RESULT line.
// Each workload is one .cpp that includes only this header, so it builds with a single
// `g++ -O2 -std=c++17 -pthread file.cpp`. Nothing here allocates on a timed path.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace bench {

// ---- options: `--name value`, `--name=value`, and bare flags; unknown options are an error -------------
class Args {
 public:
  Args(int argc, char **argv) : argc_(argc), argv_(argv), used_(argc, false) {}

  bool flag(const char *name) {
    for (int i = 1; i < argc_; i++)
      if (std::strcmp(argv_[i], name) == 0) { used_[i] = true; return true; }
    return false;
  }
  std::string str(const char *name, const std::string &def) {
    size_t len = std::strlen(name);
    for (int i = 1; i < argc_; i++) {
      if (std::strcmp(argv_[i], name) == 0) {
        if (i + 1 >= argc_) die_usage(name, "needs a value");
        used_[i] = used_[i + 1] = true;
        return argv_[i + 1];
      }
      if (std::strncmp(argv_[i], name, len) == 0 && argv_[i][len] == '=') {
        used_[i] = true;
        return argv_[i] + len + 1;
      }
    }
    return def;
  }
  long long num(const char *name, long long def, long long lo = 0) {
    std::string s = str(name, "");
    if (s.empty()) return def;
    char *end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 0);
    if (*end == 'k' || *end == 'K') { v <<= 10; end++; }
    else if (*end == 'm' || *end == 'M') { v <<= 20; end++; }
    if (*end != '\0' || v < lo) die_usage(name, "is not a valid number");
    return v;
  }
  double real(const char *name, double def) {
    std::string s = str(name, "");
    if (s.empty()) return def;
    char *end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (*end != '\0') die_usage(name, "is not a valid number");
    return v;
  }
  // Call after every option was read: rejects what no one asked for (a typo must not run silently).
  void finish() {
    for (int i = 1; i < argc_; i++)
      if (!used_[i]) die_usage(argv_[i], "is not an option of this workload");
  }

 private:
  [[noreturn]] void die_usage(const char *what, const char *why) {
    std::fprintf(stderr, "%s: %s %s\n", argv_[0], what, why);
    std::exit(64);
  }
  int argc_;
  char **argv_;
  std::vector<char> used_;
};

// ---- randomness: deterministic per thread so that checksums match across allocators ----------------
inline uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(mix64(seed) | 1) {}
  uint64_t next() {  // xorshift64*
    s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  uint64_t below(uint64_t n) { return (uint64_t)(((unsigned __int128)next() * n) >> 64); }
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }  // inclusive
  double unit() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
};

// A unique key per allocation: thread index in the top bits, a per-thread counter below.
inline uint64_t make_key(unsigned thread, uint64_t counter) { return ((uint64_t)(thread + 1) << 44) ^ counter; }

// ---- failures: print what broke and exit non-zero (the runner records the run as failed) --------------
[[noreturn]] inline void fail(const char *workload, const char *what, const void *p, size_t size) {
  std::fprintf(stderr, "%s: FAILED: %s (block %p, size %zu)\n", workload, what, p, size);
  std::fflush(stderr);
  std::_Exit(3);
}

// Tells the compiler that p escapes and memory may have changed: no elision of a malloc/free pair, no folding
// of a pattern check into the fill before it. Costs no instruction.
inline void escape(const void *p) { asm volatile("" : : "r"(p) : "memory"); }

inline void *checked_malloc(const char *workload, size_t size) {
  void *p = std::malloc(size);
  escape(p);
  if (!p) fail(workload, "malloc returned NULL", nullptr, size);
  return p;
}

// ---- patterns ------------------------------------------------------------------------------------------
// Full pattern: the key in the first 8 bytes, a key-derived byte everywhere else. A block handed out twice,
// written after free or overlapping a neighbour shows up as a wrong key or a wrong byte.
inline unsigned char pattern_byte(uint64_t key) { return (unsigned char)(mix64(key) | 1); }

inline void fill(void *p, size_t n, uint64_t key) {
  std::memset(p, pattern_byte(key), n);
  if (n >= 8) std::memcpy(p, &key, 8);
  escape(p);
}

inline bool intact(const void *p, size_t n, uint64_t key) {
  const unsigned char *b = static_cast<const unsigned char *>(p);
  size_t start = 0;
  if (n >= 8) {
    uint64_t k;
    std::memcpy(&k, b, 8);
    if (k != key) return false;
    start = 8;
  }
  // Word at a time: -O2 does not vectorise a byte loop of unknown length, and the check must stay cheap next
  // to the allocator calls it brackets.
  unsigned char want = pattern_byte(key);
  uint64_t want8 = 0x0101010101010101ull * want, diff = 0;
  size_t i = start;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, b + i, 8);
    diff |= w ^ want8;
  }
  for (; i < n; i++) diff |= (unsigned char)(b[i] ^ want);
  return diff == 0;
}

// Light pattern for loops where a full fill would cost more than the allocator: first and last word only.
// With `touch_all` (a workload's --touch-all) the bytes between are written too (0x5a), as a program
// that uses its whole buffer does: the pages a block spans are then all resident, which is what an
// allocator that reuses freed pages for blocks at other offsets pays in RSS, where light patterns
// hide it (docs/benchmarks.md, "Page boxes"). The checks still read the two words only.
inline void fill_ends(void *p, size_t n, uint64_t key, bool touch_all = false) {
  if (touch_all && n > 16) std::memset(static_cast<char *>(p) + 8, 0x5a, n - 16);
  if (n < 8) {
    std::memset(p, pattern_byte(key), n);
  } else {
    std::memcpy(p, &key, 8);
    uint64_t tail = ~key;  // overlaps the head for n < 16: the head keeps its own word then
    if (n >= 16) std::memcpy(static_cast<char *>(p) + n - 8, &tail, 8);
  }
  escape(p);
}

inline bool intact_ends(const void *p, size_t n, uint64_t key) {
  if (n < 8) {
    for (size_t i = 0; i < n; i++)
      if (static_cast<const unsigned char *>(p)[i] != pattern_byte(key)) return false;
    return true;
  }
  uint64_t head, tail;
  std::memcpy(&head, p, 8);
  std::memcpy(&tail, static_cast<const char *>(p) + n - 8, 8);
  return head == key && (n < 16 || tail == ~key);
}

// ---- a reusable barrier (C++17 has no std::barrier); waiting does not allocate ---------------------------
class Barrier {
 public:
  explicit Barrier(unsigned n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lock(m_);
    unsigned gen = gen_;
    if (++count_ == n_) { count_ = 0; gen_++; cv_.notify_all(); return; }
    cv_.wait(lock, [&] { return gen != gen_; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  unsigned n_, count_ = 0, gen_ = 0;
};

// ---- timing and the result line ------------------------------------------------------------------------
using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Peak RSS of this program image in KiB: VmHWM, which starts afresh at exec. getrusage's ru_maxrss (and a
// parent's wait4) also count the RSS of the process that forked us before the exec, which for a Python
// runner is larger than the small workloads. Reads with syscalls into a stack buffer: no allocation.
inline long peak_rss_kib() {
  char buf[8192];
  ssize_t n = 0;
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t r;
    while (n < (ssize_t)sizeof buf - 1 && (r = ::read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += r;
    ::close(fd);
  }
  buf[n > 0 ? n : 0] = '\0';
  if (const char *hwm = std::strstr(buf, "VmHWM:")) return std::strtol(hwm + 6, nullptr, 10);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// The resident set now, in KiB (/proc/self/statm; 0 if unreadable): the workloads that report
// memory at points of their own (thread_rounds' rounds, abandon's frees).
inline long rss_kib() {
  char buf[256];
  int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  long pages = 0, resident = 0;
  if (std::sscanf(buf, "%ld %ld", &pages, &resident) != 2) return 0;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

inline void print_result(const char *name, unsigned threads, uint64_t ops, double seconds, uint64_t checksum) {
  std::printf("RESULT name=%s threads=%u ops=%llu seconds=%.6f checksum=%016llx peak_rss_kib=%ld\n", name,
              threads, (unsigned long long)ops, seconds, (unsigned long long)checksum, peak_rss_kib());
  std::fflush(stdout);
}

}  // namespace bench
