#include "test_internal.h"

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
