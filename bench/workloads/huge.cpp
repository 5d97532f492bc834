// Models huge buffers (2..16 MiB, powers of two and not: decoded images, column chunks, arena backings):
// each thread keeps --live buffers, replaces a random one per step and touches every 4 KiB page of the new
// one, so the data is really resident. `rss_per_live` (STAT) is the peak RSS divided by the peak bytes the
// program held live: 1.0 is perfect, a huge page wasted per block shows as more. Pages carry a pattern
// checked before free; exits non-zero on a mismatch.
#include "common.h"

#include <atomic>
#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *const kName = "huge";
const size_t kPage = 4096;

struct Buf {
  unsigned char *p = nullptr;
  size_t size = 0;
  uint64_t key = 0;
};

struct Config {
  size_t iters, live;
  uint64_t seed;
};

std::atomic<long long> g_live{0}, g_peak_live{0};

void note_live(long long delta) {
  long long now = g_live.fetch_add(delta) + delta;
  long long peak = g_peak_live.load();
  while (now > peak && !g_peak_live.compare_exchange_weak(peak, now)) {
  }
}

size_t pick_size(Rng &rng) {
  static const size_t kSizes[] = {size_t(2) << 20, size_t(4) << 20, size_t(8) << 20, size_t(16) << 20,
                                  (size_t(3) << 20) + 12345, (size_t(5) << 20) + 4096, (size_t(10) << 20) + 777,
                                  (size_t(6) << 20)};
  return kSizes[rng.below(sizeof kSizes / sizeof kSizes[0])];
}

inline unsigned char page_byte(uint64_t key, size_t page) { return (unsigned char)(mix64(key + page) | 1); }

uint64_t release(const Buf &b) {
  for (size_t off = 0; off < b.size; off += kPage)
    if (b.p[off] != page_byte(b.key, off / kPage)) fail(kName, "pattern mismatch before free", b.p + off, b.size);
  std::free(b.p);
  note_live(-(long long)b.size);
  return b.key ^ b.size;
}

void work(uint64_t &sum, unsigned t, const Config &c) {
  Rng rng(c.seed * 337 + t);
  std::vector<Buf> bufs(c.live);
  uint64_t s = 0;
  for (size_t i = 0; i < c.iters; i++) {
    Buf &b = bufs[rng.below(c.live)];
    if (b.p) s += release(b);
    b.size = pick_size(rng);
    b.key = make_key(t, i);
    b.p = static_cast<unsigned char *>(checked_malloc(kName, b.size));
    note_live((long long)b.size);
    for (size_t off = 0; off < b.size; off += kPage) b.p[off] = page_byte(b.key, off / kPage);
  }
  for (Buf &b : bufs)
    if (b.p) s += release(b);
  sum = s;
}

}  // namespace

int main(int argc, char **argv) {
  Args a(argc, argv);
  bool smoke = a.flag("--smoke");
  unsigned threads = (unsigned)a.num("--threads", 1, 1);
  Config c;
  c.iters = (size_t)a.num("--iters", smoke ? 40 : 1500, 1);
  c.live = (size_t)a.num("--live", 4, 1);
  c.seed = (uint64_t)a.num("--seed", 1);
  a.finish();
  std::vector<uint64_t> sums(threads, 0);
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; t++) pool.emplace_back(work, std::ref(sums[t]), t, std::cref(c));
  for (auto &th : pool) th.join();
  double secs = seconds_since(t0);
  long peak = peak_rss_kib();
  std::printf("STAT peak_live_kib=%lld rss_per_live=%.3f\n", g_peak_live.load() / 1024,
              (double)peak * 1024.0 / (double)g_peak_live.load());
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  print_result(kName, threads, (uint64_t)threads * c.iters, secs, sum);
  return 0;
}
