// vg_planted: the core built with SPACES_VALGRIND (memcheck client requests), driven through the
// spaces_* API. `vg_planted CASE` plants one error; run_memcheck.sh checks memcheck reports it,
// and that the `clean` case reports nothing.
#define SPACES_VALGRIND 1
#include "../../sdk/src/spaces.cpp"

#include <cstdio>
#include <cstring>
#include <thread>

namespace {
volatile char g_sink;
int walkCount(void*, size_t, void* arg) {
  ++*static_cast<int*>(arg);
  return 0;
}

int clean() {
  // Everything legal: nothing may be reported, nothing leaked.
  char* small = static_cast<char*>(spaces_malloc(24));
  std::memset(small, 1, 24);
  small = static_cast<char*>(spaces_realloc(small, 5000));
  small = static_cast<char*>(spaces_realloc(small, 100));
  g_sink = small[23];
  spaces_free(small);
  int* zeros = static_cast<int*>(spaces_calloc(100, sizeof(int)));
  g_sink = char(zeros[99]);
  spaces_free(zeros);
  void* aligned = spaces_aligned_alloc(256, 1000);
  std::memset(aligned, 2, 1000);
  spaces_free(aligned);
  char* big = static_cast<char*>(spaces_malloc(3 << 20));
  big[(3 << 20) - 1] = 1;
  spaces_free(big);
  std::thread([] {
    void* p = spaces_malloc(64);
    std::memset(p, 3, 64);
    spaces_free(p);
  }).join();
  void* handed = spaces_malloc(80);
  std::thread([&] { spaces_free(handed); }).join();
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  for (int i = 0; i < 1000; i++) std::memset(spaces_chunk_alloc(c, 40, 0), 4, 40);
  void* one = spaces_chunk_alloc(c, 70000, 0);
  std::memset(one, 5, 70000);
  spaces_free(one);
  int n = 0;
  spaces_chunk_walk(c, walkCount, &n);
  spaces_chunk_reset(c);
  std::memset(spaces_chunk_alloc(c, 40, 0), 6, 40);
  spaces_chunk_destroy(c);
  return n == 1000 ? 0 : 1;
}
}  // namespace

int main(int argc, char** argv) {
  const char* what = argc > 1 ? argv[1] : "clean";
  if (!std::strcmp(what, "clean")) return clean();
  if (!std::strcmp(what, "use_after_free")) {
    char* p = static_cast<char*>(spaces_malloc(64));
    spaces_free(p);
    g_sink = p[10];
  } else if (!std::strcmp(what, "overflow")) {
    char* p = static_cast<char*>(spaces_malloc(24));  // a 32-byte slot: memcheck knows 24
    p[24] = 1;
    spaces_free(p);
  } else if (!std::strcmp(what, "leak")) {
    void* p = spaces_malloc(100);
    std::memset(p, 0, 100);
    p = nullptr;
  } else if (!std::strcmp(what, "use_after_destroy")) {
    SpacesChunk c = spaces_chunk_create(0);
    char* p = static_cast<char*>(spaces_chunk_alloc(c, 64, 0));
    spaces_chunk_destroy(c);
    g_sink = p[0];
  } else if (!std::strcmp(what, "use_after_reset")) {
    SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
    char* p = static_cast<char*>(spaces_chunk_alloc(c, 64, 0));
    spaces_chunk_reset(c);
    g_sink = p[0];
    spaces_chunk_destroy(c);
  } else if (!std::strcmp(what, "large_use_after_free")) {
    char* p = static_cast<char*>(spaces_malloc(200000));
    spaces_free(p);
    g_sink = p[100];
  } else if (!std::strcmp(what, "slab_colour")) {
    // the bytes before a coloured slab header (internal.h, slab_colour): an overrun past the
    // previous granule's last block lands there
    for (size_t size = 16; size <= 4096; size += 16) {
      spaces_core::Slab* s = spaces_core::slab_of(spaces_malloc(size));
      if (reinterpret_cast<uintptr_t>(s) != spaces_core::slab_base(s)) {
        g_sink = *reinterpret_cast<volatile char*>(spaces_core::slab_base(s) + 8);
        break;
      }
    }
  } else {
    std::fprintf(stderr, "unknown case %s\n", what);
    return 2;
  }
  return 0;
}
