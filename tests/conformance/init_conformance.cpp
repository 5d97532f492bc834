// init_conformance: Spaces initialises safely before main - from an ELF constructor (which runs
// before C++ static constructors of this file), from C++ static constructors, and from a thread
// started in a constructor - and every one of those blocks is Spaces' and stays usable in main.
#include <spaces/spaces.h>

#include <pthread.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {
void* g_early = nullptr;
void* g_thread_block = nullptr;
pthread_t g_thread;

void* thread_body(void*) {
  g_thread_block = std::malloc(300);
  std::memset(g_thread_block, 0x33, 300);
  return nullptr;
}

__attribute__((constructor(101))) void very_early() {
  g_early = std::malloc(100);  // possibly the process's first Spaces call
  std::memset(g_early, 0x11, 100);
  pthread_create(&g_thread, nullptr, thread_body, nullptr);
}

struct Global {
  std::map<std::string, std::vector<int>> m;
  Global() {
    for (int i = 0; i < 1000; i++) m["key" + std::to_string(i)].push_back(i);
  }
};
Global g_global;  // a C++ static constructor that allocates
}  // namespace

int main() {
  int passed = 0, failed = 0;
  auto check = [&](bool ok, const char* what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    ok ? passed++ : failed++;
  };
  pthread_join(g_thread, nullptr);
  check(spaces_owns(g_early) == 1, "block from an ELF constructor is Spaces'");
  check(static_cast<unsigned char*>(g_early)[99] == 0x11, "its contents survived to main");
  check(spaces_owns(g_thread_block) == 1, "block from a thread started before main is Spaces'");
  check(static_cast<unsigned char*>(g_thread_block)[299] == 0x33, "its contents survived");
  check(g_global.m.size() == 1000 && g_global.m["key999"][0] == 999, "static constructor's map intact");
  check(spaces_owns(g_global.m.begin()->second.data()) == 1,
        "static constructor's blocks are Spaces'");
  std::free(g_early);
  std::free(g_thread_block);  // freed by another thread than the one that allocated it
  g_global.m.clear();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
