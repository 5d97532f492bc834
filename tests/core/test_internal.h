// Included by the core unit tests: the core's internal declarations (defined in core_unity.cpp).
#pragma once
#define SPACES_CORE_TU 1
#include "../../sdk/src/internal.h"
#include <gtest/gtest.h>
using namespace spaces_core;

// Shared by the tests: the error handler's last report, caught while a HandlerScope lives
// (each test file gets its own copy: anonymous namespace).
namespace {
struct Caught {
  int code = 0;
  void* addr = nullptr;
  int count = 0;
};
Caught g_caught;
inline void record(int code, void* addr, const char*, void*) {
  g_caught.code = code;
  g_caught.addr = addr;
  g_caught.count++;
}
struct HandlerScope {
  HandlerScope() {
    g_caught = Caught();
    spaces_set_error_handler(record, nullptr);
  }
  ~HandlerScope() { spaces_set_error_handler(nullptr, nullptr); }
};
// Medium classes from per-class slabs for the scope (option medium_pages 0), for the tests of the
// slab path and the medium block cache; page boxes serve them by default (pages_test.cpp).
struct MediumSlabsScope {
  long long old = spaces_option_get("medium_pages");
  MediumSlabsScope() { spaces_option_set("medium_pages", 0); }
  ~MediumSlabsScope() { spaces_option_set("medium_pages", old); }
};
// The kind of block spaces_aligned_alloc(align, size) hands out (0: it failed or was misaligned,
// which the call reports as a test failure); the block is written whole and freed.
inline unsigned aligned_block_kind(size_t align, size_t size) {
  void* p = spaces_aligned_alloc(align, size);
  EXPECT_NE(p, nullptr) << "align " << align << " size " << size;
  if (p == nullptr) return 0;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << "align " << align << " size " << size;
  unsigned kind = reinterpret_cast<uintptr_t>(p) % align ? 0 : slab_find(p)->kind;
  memset(p, 0x5a, size);
  spaces_free(p);
  return kind;
}
// Process statistics now (spaces_stats with the current layout).
inline struct spaces_stats stats_now() {
  struct spaces_stats st;
  st.size = sizeof st;
  spaces_stats(&st);
  return st;
}
}  // namespace
