#include "test_internal.h"
#include <unistd.h>

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
// N x 2 MiB); one that is not starts right after its header.
TEST(Large, HugeBlocksAreLaidOutForWholeHugePages) {
  for (size_t mib : {2, 4, 8}) {
    void* p = spaces_malloc(mib << 20);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (size_t(2) << 20), 0u) << mib << " MiB";
    EXPECT_GE(spaces_usable_size(p), mib << 20);
    spaces_free(p);
  }
  void* q = spaces_malloc((size_t(3) << 20) + 12345);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % (size_t(2) << 20), 256u) << "data right after the header";
  spaces_free(q);
}
