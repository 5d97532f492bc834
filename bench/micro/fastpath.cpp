// Micro benchmarks of the allocator fast path (Google Benchmark): a malloc+free pair of 32 B and of mixed small
// sizes, 100 mallocs then 100 frees, new/delete of a 40-byte object, calloc of 64 B. Every pointer goes through
// DoNotOptimize and ClobberMemory so the compiler can neither elide nor merge the calls. Run under LD_PRELOAD.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace {

// 64 sizes, mostly small as in real programs; a power of two so the index wraps with a mask.
constexpr size_t kMixed[64] = {
    16, 24, 32, 8,  48, 64, 16,  32, 40, 24,  96,  16, 128, 32, 56, 16, 24,  80, 32, 16,  256, 48,
    16, 32, 24, 64, 16, 512, 40, 32, 16, 112, 24,  32, 64,  16, 48, 8,  192, 32, 24, 16,  72,  32,
    16, 48, 24, 32, 384, 16, 64, 40, 16, 24,  160, 32, 16,  48, 88, 32, 24,  16, 320, 64,
};

struct Object40 {
  uint64_t a, b, c, d, e;
};
static_assert(sizeof(Object40) == 40, "the new/delete case measures a 40-byte object");

void BM_malloc_free_32(benchmark::State &state) {
  for (auto _ : state) {
    void *p = std::malloc(32);
    benchmark::DoNotOptimize(p);
    benchmark::ClobberMemory();
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_malloc_free_32);

void BM_malloc_free_mixed(benchmark::State &state) {
  size_t i = 0;
  for (auto _ : state) {
    void *p = std::malloc(kMixed[i++ & 63]);
    benchmark::DoNotOptimize(p);
    benchmark::ClobberMemory();
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_malloc_free_mixed);

void BM_batch_100(benchmark::State &state) {
  void *ptrs[100];
  for (auto _ : state) {
    for (size_t i = 0; i < 100; i++) {
      ptrs[i] = std::malloc(kMixed[i & 63]);
      benchmark::DoNotOptimize(ptrs[i]);
    }
    benchmark::ClobberMemory();
    for (size_t i = 0; i < 100; i++) std::free(ptrs[i]);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * 100);  // items = malloc+free pairs
}
BENCHMARK(BM_batch_100);

void BM_new_delete_40(benchmark::State &state) {
  for (auto _ : state) {
    Object40 *o = new Object40;
    benchmark::DoNotOptimize(o);
    benchmark::ClobberMemory();
    delete o;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_new_delete_40);

void BM_calloc_64(benchmark::State &state) {
  for (auto _ : state) {
    void *p = std::calloc(1, 64);
    benchmark::DoNotOptimize(p);
    benchmark::ClobberMemory();
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_calloc_64);

}  // namespace

BENCHMARK_MAIN();
