#include "test_internal.h"

#include <sys/mman.h>

TEST(PageMap, OwnsNeverFaultsAndKnowsItsMemory) {
  int local = 0;
  static int global_var = 0;
  EXPECT_EQ(spaces_owns(nullptr), 0);
  EXPECT_EQ(spaces_owns(&local), 0);
  EXPECT_EQ(spaces_owns(&global_var), 0);
  EXPECT_EQ(spaces_owns(reinterpret_cast<void*>(1)), 0);
  EXPECT_EQ(spaces_owns(reinterpret_cast<void*>(~uintptr_t(0))), 0);
  EXPECT_EQ(spaces_owns(reinterpret_cast<void*>(uintptr_t(1) << 47)), 0);
  void* m = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_EQ(spaces_owns(m), 0);
  munmap(m, 1 << 20);
  void* small = spaces_malloc(16);
  void* large = spaces_malloc(10 << 20);
  EXPECT_EQ(spaces_owns(small), 1);
  EXPECT_EQ(spaces_owns(large), 1);
  EXPECT_EQ(spaces_owns(static_cast<char*>(large) + (5 << 20)), 1) << "interior of a large block";
  spaces_free(small);
  spaces_free(large);
}

TEST(PageMap, HeadBitsFollowSlabs) {
  void* p = spaces_malloc(40);
  EXPECT_TRUE(pagemap_is_head(reinterpret_cast<uintptr_t>(p) - 1));
  EXPECT_FALSE(pagemap_is_head(reinterpret_cast<uintptr_t>(&p)));
  EXPECT_FALSE(pagemap_is_head(~uintptr_t(0)));
  spaces_free(p);
  void* big = spaces_malloc(300000);  // (above the medium classes: a large run)
  uintptr_t head = reinterpret_cast<uintptr_t>(slab_of(big));
  EXPECT_TRUE(pagemap_is_head(head));
  // the byte the free fast path and slab_find test says the same as the bit
  EXPECT_EQ(pagemap_back(pagemap_leaf(head), head), kBackHead);
  EXPECT_EQ(slab_find(big), reinterpret_cast<Slab*>(head));
  spaces_free(big);
  EXPECT_FALSE(pagemap_is_head(head)) << "a freed large block's head bit must clear";
  EXPECT_EQ(pagemap_back(pagemap_leaf(head), head), 0) << "and its head byte";
  HandlerScope h;
  spaces_free(big);  // (a double free: the byte is clear, so it is reported, never followed)
  EXPECT_EQ(g_caught.count, 1);
  EXPECT_EQ(g_caught.code, SPACES_ERROR_DOUBLE_FREE);
}
