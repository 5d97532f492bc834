// new_delete_conformance: every replaceable operator new/delete (plain, array, nothrow, sized,
// aligned, aligned nothrow, aligned sized) is served by Spaces with the right alignment, and
// failure follows the standard: new_handler loop, then std::bad_alloc, or nullptr for nothrow.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "check.h"

// Clang before 17 leaves sized deallocation off (-fsized-deallocation) and <new> then hides the
// sized forms; declaring them is enough to call them, and the override defines them either way.
#if !defined(__cpp_sized_deallocation)
void operator delete(void *, std::size_t) noexcept;
void operator delete[](void *, std::size_t) noexcept;
void operator delete(void *, std::size_t, std::align_val_t) noexcept;
void operator delete[](void *, std::size_t, std::align_val_t) noexcept;
#endif

static void *volatile g_sink;  // stores here keep GCC from eliding new/delete pairs
static volatile std::size_t g_impossible = static_cast<std::size_t>(-1) / 2;

static const std::size_t kSizes[] = {0,    1,    8,      16,      24,      100,
                                     1000, 8192, 8193, 100000, 1 << 20, 5 << 20};

// A block straight from an operator new: owned, aligned, usable, writable.
static void checkBlock(void *p, std::size_t size, std::size_t alignment, const char *form) {
  check_set_context("%s size %zu alignment %zu", form, size, alignment);
  g_sink = p;
  if (!CHECK(p != nullptr)) return;
  CHECK(spaces_owns(p) == 1);
  CHECK(check_aligned(p, alignment));
  if (size >= 16) CHECK(check_aligned(p, 16));
  CHECK(spaces_usable_size(p) >= size);
  std::memset(p, 0x5C, size);
}

static void testUnaligned() {
  for (std::size_t size : kSizes) {
    void *p = ::operator new(size);
    checkBlock(p, size, 1, "new");
    ::operator delete(p);
    p = ::operator new(size);
    checkBlock(p, size, 1, "new/sized delete");
    ::operator delete(p, size);
    p = ::operator new[](size);
    checkBlock(p, size, 1, "new[]");
    ::operator delete[](p);
    p = ::operator new[](size);
    checkBlock(p, size, 1, "new[]/sized delete[]");
    ::operator delete[](p, size);
    p = ::operator new(size, std::nothrow);
    checkBlock(p, size, 1, "new nothrow");
    ::operator delete(p, std::nothrow);
    p = ::operator new[](size, std::nothrow);
    checkBlock(p, size, 1, "new[] nothrow");
    ::operator delete[](p, std::nothrow);
  }
  // Zero-size news are distinct objects.
  std::vector<void *> zeros;
  for (int i = 0; i < 32; ++i) zeros.push_back(::operator new(0));
  for (std::size_t i = 0; i < zeros.size(); ++i)
    for (std::size_t j = i + 1; j < zeros.size(); ++j) CHECK(zeros[i] != zeros[j]);
  for (void *p : zeros) ::operator delete(p);
}

static void testAligned() {
  for (std::size_t a = 1; a <= (std::size_t(1) << 20); a *= 2) {
    std::align_val_t al{a};
    for (std::size_t size : kSizes) {
      void *p = ::operator new(size, al);
      checkBlock(p, size, a, "aligned new");
      ::operator delete(p, al);
      p = ::operator new(size, al);
      checkBlock(p, size, a, "aligned new/sized delete");
      ::operator delete(p, size, al);
      p = ::operator new[](size, al);
      checkBlock(p, size, a, "aligned new[]");
      ::operator delete[](p, al);
      p = ::operator new[](size, al);
      checkBlock(p, size, a, "aligned new[]/sized delete[]");
      ::operator delete[](p, size, al);
      p = ::operator new(size, al, std::nothrow);
      checkBlock(p, size, a, "aligned new nothrow");
      ::operator delete(p, al, std::nothrow);
      p = ::operator new[](size, al, std::nothrow);
      checkBlock(p, size, a, "aligned new[] nothrow");
      ::operator delete[](p, al, std::nothrow);
    }
  }
}

// new-expressions pick the forms themselves (aligned for over-aligned types, sized delete).
struct alignas(256) OverAligned {
  char bytes[300];
};
struct Plain {
  std::uint64_t words[5];
};

static void testExpressions() {
  auto *o = new OverAligned();
  checkBlock(o, sizeof *o, 256, "new OverAligned");
  delete o;
  auto *oa = new OverAligned[7];
  checkBlock(oa, 7 * sizeof *oa, 256, "new OverAligned[7]");
  delete[] oa;
  auto *pl = new Plain{};
  checkBlock(pl, sizeof *pl, alignof(Plain), "new Plain");
  delete pl;
  auto *ints = new int[100000];
  checkBlock(ints, 100000 * sizeof(int), alignof(int), "new int[100000]");
  delete[] ints;
  std::vector<std::uint64_t> v; // the containers too
  for (std::uint64_t i = 0; i < 100000; ++i) v.push_back(i * 3);
  check_set_context("vector");
  CHECK(spaces_owns(v.data()) == 1);
  bool intact = true;
  for (std::uint64_t i = 0; i < v.size(); ++i) intact = intact && v[i] == i * 3;
  CHECK(intact);
}

static int g_handlerCalls;
// Counts, then uninstalls itself: the retry fails again and the operator must then give up.
static void countingHandler() {
  ++g_handlerCalls;
  std::set_new_handler(nullptr);
}

enum Form { kNew, kNewArray, kNewAligned, kNewArrayAligned, kNothrow, kNothrowAligned };
static const char *const kFormName[] = {"new", "new[]", "aligned new", "aligned new[]",
                                        "nothrow new", "aligned nothrow new"};

// Returns 1 if std::bad_alloc was thrown; *result gets what a nothrow form returned.
static int allocateImpossible(Form form, void **result) {
  std::align_val_t al{64};
  *result = nullptr;
  try {
    switch (form) {
    case kNew: *result = ::operator new(g_impossible); break;
    case kNewArray: *result = ::operator new[](g_impossible); break;
    case kNewAligned: *result = ::operator new(g_impossible, al); break;
    case kNewArrayAligned: *result = ::operator new[](g_impossible, al); break;
    case kNothrow: *result = ::operator new(g_impossible, std::nothrow); break;
    case kNothrowAligned: *result = ::operator new(g_impossible, al, std::nothrow); break;
    }
    g_sink = *result;
  } catch (const std::bad_alloc &) {
    return 1;
  }
  return 0;
}

static void testFailure() {
  for (int f = kNew; f <= kNothrowAligned; ++f) {
    Form form = static_cast<Form>(f);
    bool nothrow = form == kNothrow || form == kNothrowAligned;
    void *result;
    check_set_context("%s of %zu bytes, no handler", kFormName[f], (std::size_t)g_impossible);
    std::set_new_handler(nullptr);
    int threw = allocateImpossible(form, &result);
    CHECK(threw == (nothrow ? 0 : 1));
    CHECK(result == nullptr);

    check_set_context("%s of %zu bytes, with handler", kFormName[f], (std::size_t)g_impossible);
    g_handlerCalls = 0;
    std::set_new_handler(countingHandler);
    threw = allocateImpossible(form, &result);
    CHECK(g_handlerCalls == 1); // nothrow forms call the handler too ([new.delete.single])
    CHECK(threw == (nothrow ? 0 : 1));
    CHECK(result == nullptr);
    CHECK(std::get_new_handler() == nullptr);
  }
  check_set_context("");
  void *p = ::operator new(64); // healthy afterwards
  CHECK(spaces_owns(p) == 1);
  ::operator delete(p, 64);
}

int main() {
  check_override_in_effect();
  testUnaligned();
  testAligned();
  testExpressions();
  testFailure();
  return check_finish();
}
