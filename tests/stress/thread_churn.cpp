// thread_churn: 5000 short-lived threads (8 at a time), each doing a few hundred mallocs and
// frees and leaving blocks for the main thread to free after it has exited. Proves exited threads'
// heaps are reused (heaps ever created << threads) and memory stays bounded, contents intact.
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "stress_util.h"

using namespace stress;

namespace {

constexpr int kWave = 8;     // threads alive at once
constexpr int kHandOff = 4;  // blocks each thread leaves behind for the main thread
constexpr int kOps = 300;    // malloc/free pairs per thread
constexpr std::size_t kMiB = std::size_t(1) << 20;

struct Block {
  void *p = nullptr;
  std::size_t size = 0;
  std::uint64_t seed = 0;
};

LiveSet gLive;

Block allocateBlock(Rng &rng, std::uint64_t serial) {
  Block b;
  b.size = rng.below(16) == 0 ? 20000 : 8 + rng.below(4096);
  b.p = std::malloc(b.size);
  if (!EXPECT(b.p != nullptr)) return Block{};
  EXPECT(spaces_owns(b.p) == 1);
  EXPECT(gLive.insert(b.p, b.size));
  b.seed = seedOf(b.p, serial);
  fill(b.p, b.size, b.seed);
  return b;
}

void freeBlock(Block &b) {
  if (!b.p) return;
  EXPECT(verify(b.p, b.size, b.seed));
  EXPECT(gLive.erase(b.p));
  std::free(b.p);
  b = Block{};
}

// One short life: a window of 32 slots churned kOps times, then kHandOff blocks left behind.
void shortLife(int index, Block *handOff) {
  Rng rng(index + 1);
  Block window[32];
  for (int op = 0; op < kOps; ++op) {
    Block &slot = window[rng.below(32)];
    if (slot.p) freeBlock(slot);
    else slot = allocateBlock(rng, std::uint64_t(index) << 20 | std::uint64_t(op));
  }
  for (Block &b : window) freeBlock(b);
  for (int k = 0; k < kHandOff; ++k)
    handOff[k] = allocateBlock(rng, std::uint64_t(index) << 20 | std::uint64_t(kOps + k));
}

void printStats(const char *when, const struct spaces_stats &s) {
  std::printf("%-22s heaps %zu, abandoned %zu, threads_started %zu, committed %zu KiB, "
              "peak %zu KiB, reserved %zu KiB\n",
              when, s.heaps, s.heaps_abandoned, s.threads_started, s.committed_bytes >> 10,
              s.peak_committed_bytes >> 10, s.reserved_bytes >> 10);
}

} // namespace

int main(int argc, char **argv) {
  setUp(argc, argv);
  const int threads = static_cast<int>(scaled(5000));
  struct spaces_stats before = readStats();
  printStats("before:", before);

  // handOff[i] holds thread i's leftovers; a wave's are freed two waves later, after its
  // threads have exited and their heaps may already serve new threads.
  std::vector<Block> handOff(std::size_t(threads) * kHandOff);
  auto start = std::chrono::steady_clock::now();
  std::size_t maxCommitted = 0;
  for (int first = 0; first < threads; first += kWave) {
    std::vector<std::thread> wave;
    for (int i = first; i < first + kWave && i < threads; ++i)
      wave.emplace_back(shortLife, i, &handOff[std::size_t(i) * kHandOff]);
    for (auto &t : wave) t.join();
    for (int i = first - 2 * kWave; i >= 0 && i < first - kWave; ++i)
      for (int k = 0; k < kHandOff; ++k) freeBlock(handOff[std::size_t(i) * kHandOff + k]);
    if (first % (kWave * 64) == 0) {
      std::size_t committed = readStats().committed_bytes;
      if (committed > maxCommitted) maxCommitted = committed;
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  struct spaces_stats during = readStats();
  printStats("after the threads:", during);
  for (Block &b : handOff) freeBlock(b); // the last waves' leftovers
  spaces_collect(1);
  struct spaces_stats after = readStats();
  printStats("after collect(1):", after);
  std::printf("%d threads in %.2f s (%.0f threads/s), max committed sampled %zu KiB\n", threads,
              seconds, threads / seconds, maxCommitted >> 10);

  CHECK(during.heaps < 200); // heaps ever created: exited threads' heaps are reused
  CHECK(during.heaps_abandoned <= during.heaps);
  CHECK(during.threads_started >= std::size_t(threads)); // every thread allocated
  CHECK(during.committed_bytes < 256 * kMiB);
  CHECK(maxCommitted < 256 * kMiB);
  CHECK(after.committed_bytes <= during.committed_bytes);
  CHECK(after.heaps_abandoned <= after.heaps);
  std::size_t leftovers = 0;
  for (const Block &b : handOff) leftovers += b.p != nullptr;
  CHECK(leftovers == 0); // every handed-off block was verified and freed
  return finish();
}
