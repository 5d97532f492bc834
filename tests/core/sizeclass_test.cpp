#include "test_internal.h"

TEST(SizeClass, MapsEverySizeToTheSmallestClassThatFits) {
  for (size_t n = 0; n <= kMediumMax; n++) {
    unsigned c = n <= kSmallMax ? class_of(n) : medium_class_of(n);
    ASSERT_LT(c, kNumClasses) << n;
    ASSERT_GE(class_size(c), n) << n;
    if (c > 0) ASSERT_LT(class_size(c - 1), n == 0 ? 1 : n) << "size " << n << " skipped a smaller class";
  }
}

TEST(SizeClass, ClassesAreIncreasingAndAligned) {
  EXPECT_EQ(class_size(0), 8u);
  EXPECT_EQ(class_size(kNumSmallClasses - 1), kSmallMax);
  EXPECT_EQ(class_size(kNumClasses - 1), kMediumMax);
  for (unsigned c = 1; c < kNumClasses; c++) {
    EXPECT_GT(class_size(c), class_size(c - 1));
    EXPECT_EQ(class_size(c) % 16, 0u) << "class " << c << " breaks 16-byte alignment";
  }
}

TEST(SizeClass, WasteAbove128BytesIsAtMost12Point5Percent) {
  for (unsigned c = 1; c < kNumClasses; c++) {
    size_t smallest_request = class_size(c - 1) + 1;
    double waste = double(class_size(c) - smallest_request) / double(class_size(c));
    if (class_size(c - 1) >= 128) EXPECT_LE(waste, 0.125) << "class " << class_size(c);
    else EXPECT_LE(class_size(c) - smallest_request, 15u);
  }
}

TEST(SizeClass, EveryClassFitsSeveralBlocksInASlab) {
  for (unsigned c = 0; c < kNumClasses; c++) {
    unsigned g = g_classes.granules[c];
    if (c < kNumSmallClasses) EXPECT_EQ(g, 1u) << class_size(c);
    EXPECT_EQ(g & (g - 1), 0u) << "granules per slab must be a power of two";
    EXPECT_LE(g, 16u);
    size_t cap = ((size_t(g) << kSlabShift) - kSlabHeader) / class_size(c);
    EXPECT_GE(cap, c < kNumSmallClasses ? 7u : 3u) << class_size(c);
    // Medium slots stay 128-byte aligned (a header's colour is a multiple of 128; aligned_alloc
    // serves align <= 128 from them: kSlotAlignMax) and a block never starts on a granule
    // boundary (free looks its slab up from pointer - 1).
    if (c >= kNumSmallClasses) EXPECT_EQ(class_size(c) % 1024, 0u);
  }
}
