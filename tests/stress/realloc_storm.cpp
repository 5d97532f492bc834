// realloc_storm: several threads grow "strings" byte-run by byte-run and "vectors" by doubling,
// from 1 byte to several MiB and back down, and realloc each other's buffers; every byte a
// realloc must keep is checked, so a lost, shared or half-copied buffer is caught.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "stress_util.h"

using namespace stress;

namespace {

constexpr std::size_t kMiB = std::size_t(1) << 20;
std::size_t gMaxBytes = 4 * kMiB;
std::atomic<long> gReallocs{0};

// A buffer whose bytes [0, size) always hold the pattern of `seed` (independent of its address,
// since realloc may move it).
struct Buffer {
  unsigned char *p = nullptr;
  std::size_t size = 0;
  std::uint64_t seed = 0;
};

// Resizes b; checks what must survive: all of it when `full`, else the two ends and a sample.
bool resize(Buffer &b, std::size_t size, bool full, Rng &rng) {
  auto *q = static_cast<unsigned char *>(std::realloc(b.p, size));
  gReallocs.fetch_add(1, std::memory_order_relaxed);
  if (!EXPECT(q != nullptr)) return false;
  EXPECT(size < 16 || reinterpret_cast<std::uintptr_t>(q) % 16 == 0);
  std::size_t kept = size < b.size ? size : b.size;
  if (full || kept <= 256) {
    EXPECT(verifyRange(q, 0, kept, b.seed));
  } else {
    EXPECT(verifyRange(q, 0, 64, b.seed));
    EXPECT(verifyRange(q, kept - 64, kept, b.seed));
    std::size_t at = rng.below(kept - 64);
    EXPECT(verifyRange(q, at, at + 64, b.seed));
  }
  if (size > b.size) fillRange(q, b.size, size, b.seed);
  b.p = q, b.size = size;
  return true;
}

// Strings: four buffers appended to in turn (so none can always grow in place), by 1..64 bytes
// up to 64 KiB, then by 1.25x..2x up to gMaxBytes, then halved back down to 1 byte.
void strings(Rng &rng, std::uint64_t id) {
  Buffer s[4];
  for (int k = 0; k < 4; ++k) s[k].seed = id * 16 + k;
  for (bool growing = true; growing;) {
    growing = false;
    for (Buffer &b : s)
      if (b.size < 65536) {
        growing = true;
        std::size_t next = b.size + 1 + rng.below(64);
        bool crossing = __builtin_clzll(next) < __builtin_clzll(b.size | 1); // a power of two
        resize(b, next, crossing, rng);
      }
  }
  for (bool growing = true; growing;) {
    growing = false;
    for (Buffer &b : s)
      if (b.size < gMaxBytes) {
        growing = true;
        std::size_t next = b.size + b.size / 4 + rng.below(b.size);
        resize(b, next < gMaxBytes ? next : gMaxBytes, true, rng);
      }
  }
  for (bool shrinking = true; shrinking;) {
    shrinking = false;
    for (Buffer &b : s)
      if (b.size > 1) {
        shrinking = true;
        resize(b, b.size / 2, true, rng);
      }
  }
  for (Buffer &b : s) {
    EXPECT(verifyRange(b.p, 0, b.size, b.seed));
    std::free(b.p);
  }
}

// Vectors of 64-bit elements: push_back with capacity doubling via reallocarray, then pop_back
// with shrink-to-fit at every halving. Element i is a function of (id, i).
void vectors(std::uint64_t id) {
  std::size_t size = 0, capacity = 0;
  std::uint64_t *data = nullptr;
  auto value = [id](std::size_t i) { return id * 0x100000001B3ull ^ (i * kStep); };
  std::size_t target = gMaxBytes / sizeof(std::uint64_t);
  for (; size < target; ++size) {
    if (size == capacity) {
      capacity = capacity ? capacity * 2 : 1;
      auto *grown = static_cast<std::uint64_t *>(reallocarray(data, capacity, sizeof *data));
      gReallocs.fetch_add(1, std::memory_order_relaxed);
      if (!EXPECT(grown != nullptr)) break;
      data = grown;
      bool intact = true;
      for (std::size_t i = 0; i < size; ++i) intact = intact && data[i] == value(i);
      EXPECT(intact);
    }
    data[size] = value(size);
  }
  while (size > 0) {
    --size;
    if (size > 0 && size <= capacity / 2) {
      capacity = size;
      auto *shrunk = static_cast<std::uint64_t *>(reallocarray(data, capacity, sizeof *data));
      gReallocs.fetch_add(1, std::memory_order_relaxed);
      if (!EXPECT(shrunk != nullptr)) break;
      data = shrunk;
      bool intact = true;
      for (std::size_t i = 0; i < size; ++i) intact = intact && data[i] == value(i);
      EXPECT(intact);
    }
  }
  std::free(data);
}

// Shared buffers: any thread reallocs any of them (blocks of other threads' heaps).
struct SharedSlot {
  std::mutex mutex;
  Buffer buffer;
};
SharedSlot gShared[16];

void shared(Rng &rng, long steps) {
  for (long i = 0; i < steps; ++i) {
    SharedSlot &slot = gShared[rng.below(16)];
    std::lock_guard<std::mutex> lock(slot.mutex);
    std::size_t size = std::size_t(1) << rng.below(21);
    resize(slot.buffer, size + rng.below(size), true, rng);
  }
}

} // namespace

int main(int argc, char **argv) {
  setUp(argc, argv);
  const int kThreads = 4;
  const long rounds = gQuick ? 1 : 5, sharedSteps = scaled(2000);
  if (gQuick) gMaxBytes = kMiB / 2;
  for (int i = 0; i < 16; ++i) gShared[i].buffer.seed = 0xABC0 + i;

  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([=] {
      Rng rng(t + 1);
      for (long r = 0; r < rounds; ++r) {
        strings(rng, std::uint64_t(t) << 8 | r);
        vectors(std::uint64_t(t) << 8 | r);
        shared(rng, sharedSteps / rounds);
      }
    });
  for (auto &th : threads) th.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::size_t sharedLive = 0;
  for (SharedSlot &slot : gShared) {
    Buffer &b = slot.buffer;
    if (b.p) {
      CHECK(verifyRange(b.p, 0, b.size, b.seed));
      CHECK(spaces_owns(b.p) == 1);
      sharedLive += b.size;
    }
    std::free(b.p);
  }
  std::printf("%d threads, %ld reallocs up to %zu KiB in %.2f s (%zu KiB shared at the end)\n",
              kThreads, gReallocs.load(), gMaxBytes >> 10, seconds, sharedLive >> 10);
  CHECK(gReallocs.load() > 0);
  return finish();
}
