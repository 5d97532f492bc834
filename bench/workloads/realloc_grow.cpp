// Models string and vector growth by realloc: several buffers per thread grow side by side, strings by appending
// short byte runs (capacity x1.5 or +16..64 B), vectors by pushing 8-byte elements (capacity x1.5). Contents are
// checked after every realloc near the moved data and fully before free; exits non-zero on a mismatch.
#include "common.h"

#include <cmath>
#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "realloc_grow";
const size_t kSide = 8;  // buffers growing side by side, so realloc cannot always extend in place

struct Config {
  size_t rounds, min_len, max_len;
  uint64_t seed;
};

struct Buf {
  unsigned char *p = nullptr;
  size_t len = 0, cap = 0, target = 0;
  uint64_t key = 0;
  bool vec = false, additive = false;  // vector of uint64 / string; string growth by +small instead of x1.5
};

struct alignas(64) Worker {
  uint64_t ops = 0, sum = 0;
};

// Byte i of a buffer is a function of its key: strings use it directly, vectors store element j = key * (j+1).
inline unsigned char byte_at(const Buf &b, size_t i) {
  if (b.vec) {
    uint64_t e = b.key * (i / 8 + 1);
    return (unsigned char)(e >> (8 * (i % 8)));
  }
  return (unsigned char)((i * 0x9D) ^ (i >> 9) ^ b.key ^ (b.key >> 8));
}

void check_range(const Buf &b, size_t from, size_t to, const char *when) {
  for (size_t i = from; i < to; i++)
    if (b.p[i] != byte_at(b, i)) fail(kName, when, b.p, b.len);
}

void grow(Buf &b, size_t need, Rng &rng) {
  size_t cap = b.cap ? b.cap : 16;
  while (cap < need) cap = b.additive ? cap + rng.range(16, 64) : cap + cap / 2;
  auto *q = static_cast<unsigned char *>(std::realloc(b.p, cap));
  if (!q) fail(kName, "realloc returned NULL", b.p, cap);
  b.p = q;
  b.cap = cap;
  // Cheap check after each move: the first and last 64 bytes kept; the whole buffer is checked before free.
  check_range(b, 0, std::min<size_t>(b.len, 64), "realloc lost the head");
  check_range(b, b.len > 64 ? b.len - 64 : 0, b.len, "realloc lost the tail");
}

void start(Buf &b, unsigned t, uint64_t n, Rng &rng, const Config &c) {
  b = Buf();
  b.key = make_key(t, n);
  b.vec = rng.below(2);
  b.additive = !b.vec && rng.below(4) == 0;
  // Log-uniform target length; additive growth is quadratic in copies, so it stays short.
  double lo = std::log2((double)c.min_len), hi = std::log2((double)c.max_len);
  b.target = (size_t)std::exp2(lo + (hi - lo) * rng.unit());
  if (b.additive) b.target = std::min<size_t>(b.target, 8192);
}

void append(Buf &b, size_t n, Rng &rng, Worker &w) {
  if (b.len + n > b.cap) { grow(b, b.len + n, rng); w.ops++; }
  if (b.vec) {
    for (size_t i = b.len; i < b.len + n; i += 8) {
      uint64_t e = b.key * (i / 8 + 1);
      std::memcpy(b.p + i, &e, 8);
    }
  } else {
    for (size_t i = b.len; i < b.len + n; i++) b.p[i] = byte_at(b, i);
  }
  b.len += n;
}

void finish_buf(Buf &b, Worker &w) {
  check_range(b, 0, b.len, "contents wrong before free");
  w.sum += b.key ^ b.len;
  std::free(b.p);
  b.p = nullptr;
}

void work(Worker &w, unsigned t, const Config &c) {
  Rng rng(c.seed * 40503 + t);
  Buf bufs[kSide];
  uint64_t n = 0;
  for (Buf &b : bufs) start(b, t, n++, rng, c);
  for (size_t done = 0; done < c.rounds;) {
    Buf &b = bufs[rng.below(kSide)];
    append(b, b.vec ? 8 * rng.range(1, 4) : rng.range(1, 32), rng, w);
    if (b.len >= b.target) {
      finish_buf(b, w);
      start(b, t, n++, rng, c);
      done++;
    }
  }
  for (Buf &b : bufs)
    if (b.p) finish_buf(b, w);
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  unsigned threads = (unsigned)a.num("--threads", 1, 1);
  Config c;
  c.rounds = (size_t)a.num("--n", smoke ? 300 : 30000, 1);  // buffers grown to their target, per thread
  c.min_len = (size_t)a.num("--min-len", 64, 16);
  c.max_len = (size_t)a.num("--max-len", 256 << 10, 16);
  c.seed = (uint64_t)a.num("--seed", 1);
  a.finish();
  if (c.max_len < c.min_len) c.max_len = c.min_len;

  std::vector<Worker> workers(threads);
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; t++) pool.emplace_back(work, std::ref(workers[t]), t, std::cref(c));
  work(workers[0], 0, c);
  for (auto &th : pool) th.join();
  double secs = seconds_since(t0);

  uint64_t ops = 0, sum = 0;
  for (const Worker &w : workers) { ops += w.ops; sum += w.sum; }
  print_result(kName, threads, ops, secs, sum);
  return 0;
}
