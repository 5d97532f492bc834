#include "test_internal.h"
#include <unistd.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

TEST(Large, RunsAndDirectMappingsAreZeroedAndUsable) {
  for (size_t n : {size_t(8193), size_t(65536), size_t(1) << 20, size_t(3) << 20, size_t(5) << 20, size_t(64) << 20}) {
    char* p = static_cast<char*>(spaces_calloc(1, n));
    ASSERT_NE(p, nullptr) << n;
    EXPECT_GE(spaces_usable_size(p), n);
    for (size_t i = 0; i < n; i += 4096) ASSERT_EQ(p[i], 0) << n;
    memset(p, 0xab, n);
    spaces_free(p);
    p = static_cast<char*>(spaces_calloc(1, n));  // reuse of a dirty run must still be zero
    for (size_t i = 0; i < n; i += 1024) ASSERT_EQ(p[i], 0) << n;
    spaces_free(p);
  }
}

TEST(Large, AlignmentsUpTo64MiB) {
  for (size_t a = 32; a <= (size_t(64) << 20); a <<= 1) {
    for (size_t n : {size_t(1), size_t(9000), size_t(300000), size_t(6) << 20}) {
      void* p = spaces_aligned_alloc(a, n);
      ASSERT_NE(p, nullptr) << a << " " << n;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % a, 0u) << a << " " << n;
      EXPECT_GE(spaces_usable_size(p), n);
      memset(p, 1, n);
      spaces_free(p);
    }
  }
}

TEST(Large, ReallocGrowsDirectMappingsWithoutLosingData) {
  size_t n = size_t(5) << 20;
  unsigned char* p = static_cast<unsigned char*>(spaces_malloc(n));
  for (size_t i = 0; i < n; i += 4096) p[i] = static_cast<unsigned char>(i >> 12);
  for (size_t m : {size_t(7) << 20, size_t(30) << 20, size_t(100) << 20, size_t(6) << 20}) {
    p = static_cast<unsigned char*>(spaces_realloc(p, m));
    ASSERT_NE(p, nullptr);
    for (size_t i = 0; i < n && i < m; i += 4096) ASSERT_EQ(p[i], static_cast<unsigned char>(i >> 12)) << m;
  }
  spaces_free(p);
}

TEST(Large, ImpossibleSizesAreEnomem) {
  errno = 0;
  EXPECT_EQ(spaces_malloc(SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(spaces_malloc(size_t(1) << 62), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(spaces_calloc(SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(spaces_aligned_alloc(3, 10), nullptr);
  EXPECT_EQ(errno, EINVAL);
  void* out = reinterpret_cast<void*>(0x1234);
  EXPECT_EQ(spaces_posix_memalign(&out, 24, 10), EINVAL);
  EXPECT_EQ(out, reinterpret_cast<void*>(0x1234));
}


// A freed huge block's mapping waits in the cache with its pages (reused warm), and is purged
// once purge_delay_ms has passed, on the next arena operation, like a free slab.
TEST(Large, CachedHugeMappingIsPurgedAfterTheDelay) {
  long long old_delay = spaces_option_get("purge_delay_ms");
  long long old_max = spaces_option_get("dirty_max_kib");
  ASSERT_EQ(spaces_option_set("dirty_max_kib", 1 << 20), 0);  // (the delay rule alone)
  ASSERT_EQ(spaces_option_set("purge_delay_ms", 200), 0);
  spaces_collect(1);
  size_t base = stats_now().committed_bytes;
  void* p = spaces_malloc(size_t(6) << 20);
  ASSERT_NE(p, nullptr);
  memset(p, 1, size_t(6) << 20);
  spaces_free(p);
  EXPECT_GE(stats_now().committed_bytes, base + (size_t(5) << 20)) << "within the delay the cached pages stay";
  void* again = spaces_malloc(size_t(6) << 20);
  EXPECT_EQ(again, p) << "the cached mapping is reused";
  spaces_free(again);
  usleep(400 * 1000);
  void* trigger = spaces_malloc(size_t(1) << 20);  // any arena operation runs the due purge
  spaces_free(trigger);
  EXPECT_LT(stats_now().committed_bytes, base + (size_t(3) << 20)) << "after the delay the cached pages are purged";
  spaces_option_set("purge_delay_ms", old_delay);
  spaces_option_set("dirty_max_kib", old_max);
}

// A huge block whose size is a multiple of 2 MiB starts on a 2 MiB boundary (N huge pages for
// N x 2 MiB); one that is not starts right after its header in a fresh mapping.
TEST(Large, HugeBlocksAreLaidOutForWholeHugePages) {
  for (size_t mib : {2, 4, 8}) {
    void* p = spaces_malloc(mib << 20);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (size_t(2) << 20), 0u) << mib << " MiB";
    EXPECT_GE(spaces_usable_size(p), mib << 20);
    spaces_free(p);
  }
  spaces_collect(1);  // (a fresh mapping: a cached one may keep its last block's layout)
  void* q = spaces_malloc((size_t(3) << 20) + 12345);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % (size_t(2) << 20), 256u) << "data right after the header";
  spaces_free(q);
}

namespace {
// Restores an option when it goes out of scope.
struct OptionScope {
  const char* name;
  long long old;
  OptionScope(const char* n, long long v) : name(n), old(spaces_option_get(n)) { EXPECT_EQ(spaces_option_set(n, v), 0); }
  ~OptionScope() { spaces_option_set(name, old); }
};
long minor_faults() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}
long vmstat(const char* key) {
  FILE* f = fopen("/proc/vmstat", "r");
  if (f == nullptr) return -1;
  char k[64];
  long v, r = -1;
  while (fscanf(f, "%63s %ld", k, &v) == 2)
    if (strcmp(k, key) == 0) r = v;
  fclose(f);
  return r;
}
}  // namespace

// A cached mapping whose last block had the huge layout (data from the second 2 MiB boundary, a
// small page for the header below it) serves the next block in the same layout when it fits:
// its lead holds a small-page table, so data placed there would fault 4 KiB at a time.
TEST(Large, AReusedHugeMappingKeepsItsLayoutWhenTheBlockFits) {
  OptionScope hp("huge_pages", 1);
  spaces_collect(1);  // (an empty mapping cache: the next free is the only entry)
  void* a = spaces_malloc(size_t(4) << 20);  // a multiple of 2 MiB: the huge layout
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(a) % (size_t(2) << 20), 0u);
  memset(a, 1, size_t(4) << 20);
  spaces_free(a);
  void* b = spaces_malloc((size_t(5) << 20) + 4096);  // alone it would start after its header
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b, a) << "the cached mapping, in the layout it had";
  spaces_free(b);
}

// When the new block does not fit that layout, the old lead is replaced by fresh pages, so the
// block's first 2 MiB faults as one huge page again (a purge would keep the small-page table).
TEST(Large, AReusedMappingsSmallPageLeadIsReplacedWhenDataMovesIntoIt) {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the sanitizer's shadow pages fault too: faults cannot be counted here "
                  "(the release, dev and clang presets run this test)";
#endif
  OptionScope hp("huge_pages", 1);
  OptionScope delay("purge_delay_ms", 3600000);
  spaces_collect(1);
  void* a = spaces_malloc(size_t(2) << 20);  // huge layout in a 4 MiB mapping
  ASSERT_NE(a, nullptr);
  memset(a, 1, size_t(2) << 20);
  uintptr_t base = reinterpret_cast<uintptr_t>(a) - (size_t(2) << 20);
  spaces_free(a);
  size_t n = (size_t(3) << 20) + 12345;  // 2 MiB + n does not fit in 4 MiB: right after the header
  long fallbacks = vmstat("thp_fault_fallback");  // (the header's write faults the first page)
  long before = minor_faults();
  char* b = static_cast<char*>(spaces_malloc(n));
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(b), base + 256) << "the cached mapping, in the other layout";
  for (size_t off = 0; off + 256 < (size_t(2) << 20); off += 4096) b[off] = 2;
  long faults = minor_faults() - before;
  if (faults > 64 && vmstat("thp_fault_fallback") != fallbacks)
    GTEST_SKIP() << "the kernel had no huge page to give (thp_fault_fallback grew)";
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
  if (mode.find("[never]") != std::string::npos) GTEST_SKIP() << "transparent huge pages are off";
  EXPECT_LE(faults, 64) << "the first 2 MiB faulted in small pages";
  spaces_free(b);
}

// The most recently freed huge mapping within the dirty bound does not count against it (the
// next big allocation most likely reuses it), so it is not purged the moment it is freed; a
// mapping bigger than the bound is purged like any other, with the rest over the bound.
TEST(Large, TheLastFreedHugeMappingWithinTheBoundWaitsForReuse) {
  OptionScope hp("huge_pages", 1);
  OptionScope delay("purge_delay_ms", 3600000);  // (the bound alone)
  spaces_free(spaces_malloc(1));  // (this thread's heap counts in the bound)
  size_t heaps = stats_now().heaps;
  OptionScope bound("dirty_max_kib", (5 * 1024 + heaps - 1) / heaps);  // 5 MiB in all
  spaces_collect(1);
  const size_t mib = size_t(1) << 20;
  void* a = spaces_malloc(2 * mib);      // counts 2 MiB + the header's page once freed
  void* small = spaces_malloc(4 * mib);  // 4 MiB + a page: with a, over the bound
  void* big = spaces_malloc(8 * mib);    // 8 MiB + a page: over the bound alone
  ASSERT_TRUE(a && small && big);
  memset(a, 1, 2 * mib);
  memset(small, 1, 4 * mib);
  memset(big, 1, 8 * mib);
  struct spaces_stats s0 = stats_now();
  spaces_free(a);
  spaces_free(small);
  struct spaces_stats s1 = stats_now();
  EXPECT_EQ(s1.purges, s0.purges) << "6 MiB dirty, but 4 of it the newest mapping: nothing is over the bound";
  EXPECT_GE(s1.committed_bytes + mib, s0.committed_bytes);
  spaces_free(big);
  struct spaces_stats s2 = stats_now();
  EXPECT_GE(s2.purges, s1.purges + 3) << "over the bound, all three go, oldest first";
  EXPECT_LE(s2.committed_bytes + 13 * mib, s1.committed_bytes);
}

namespace {
// The THPeligible field of /proc/self/smaps for the mapping that holds address a (-1: unknown).
int thp_eligible(uintptr_t a) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == nullptr) return -1;
  char line[512];
  bool in = false;
  int r = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') == line + strspn(line, "0123456789abcdef")) {
      in = a >= lo && a < hi;
    } else if (in && strncmp(line, "THPeligible:", 12) == 0) {
      r = atoi(line + 12);
      break;
    }
  }
  fclose(f);
  return r;
}
}  // namespace

// arena_huge_pages=2: thread heaps' arenas made before the process has arena_huge_after_mib
// committed keep small pages, those made after are advised transparent huge pages.
TEST(Large, AdaptiveHugePagesAdviseOnlyArenasMadePastTheThreshold) {
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
  if (mode.find("[madvise]") == std::string::npos)
    GTEST_SKIP() << "THP mode is not madvise (" << mode << "): advice cannot be told from smaps";
  OptionScope a("arena_huge_pages", 2);
  OptionScope t("arena_huge_after_mib", 16);
  std::vector<void*> blocks;
  for (int i = 0; i < 40 * 1024; i++) blocks.push_back(spaces_malloc(1000));  // 40 MB of slabs
  ASSERT_NE(blocks.back(), nullptr);
  if (thp_eligible(reinterpret_cast<uintptr_t>(blocks.back())) < 0) GTEST_SKIP() << "no THPeligible in smaps";
  EXPECT_EQ(thp_eligible(reinterpret_cast<uintptr_t>(blocks.front())), 0) << "the first arena was made below 16 MiB";
  EXPECT_EQ(thp_eligible(reinterpret_cast<uintptr_t>(blocks.back())), 1) << "the last arena was made past 16 MiB";
  for (void* p : blocks) spaces_free(p);
}
