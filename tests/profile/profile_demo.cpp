// profile_demo - a program with known allocation sites for the heap-profile test
// (check_profile.py runs it with SPACES_PROFILE and reads the profiles with google-pprof).
//
// Live at the explicit dump (spaces_profile_dump(argv[1])):
//   hold_small   64 MiB in 64-byte blocks        hold_pages   16 MiB in 4 KiB blocks
//   hold_medium  16 MiB in 20 KiB blocks          hold_huge    16 MiB in 2 MiB blocks
//   hold_remote  16 MiB in 256-byte blocks allocated by a thread that then exits
//   build_ast    32 MiB in 64-byte blocks of Region "ast" (Exclusive)
//   grow_buffer  one block grown by realloc from 8 to 48 MiB (mremap moves it: the record follows)
//   shrink_buffer one 48 MiB block shrunk by realloc to 8 MiB in place (the record shrinks too)
//   fill_tmp     8 MiB in Region "tmp": destroyed before the dump (nothing live)
//   churn        64 MiB allocated and freed (allocated, nothing live)
//   free_remote  16 MiB allocated here and freed by another thread (nothing live)
// Then SIGUSR2 is raised (SPACES_PROFILE_SIGNAL=12 writes a profile) and it exits.
//
// `profile_demo --stress <path>`: 4 threads x random malloc/calloc/aligned/realloc/free of every
// size class (small, medium, large, huge), a third of them freed by another thread, regions
// (Exclusive and Concurrent) with single frees, reset and destroy, a fork; everything is freed
// before the dump, so no stress_* function may hold anything in it (check_profile.py).
#include <spaces/Region.h>
#include <spaces/spaces.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/wait.h>
#include <unistd.h>

#include <errno.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

static std::vector<void*> g_keep;
static void keep(void* p) { g_keep.push_back(p); }

#define NOINLINE __attribute__((noinline))
NOINLINE void hold_small() {
  for (int i = 0; i < (64 << 20) / 64; i++) keep(malloc(64));
}
NOINLINE void hold_pages() {
  for (int i = 0; i < (16 << 20) / 4096; i++) keep(malloc(4096));
}
NOINLINE void hold_medium() {
  for (int i = 0; i < (16 << 20) / 20480; i++) keep(malloc(20480));
}
NOINLINE void hold_huge() {
  for (int i = 0; i < 8; i++) keep(malloc(2 << 20));
}
NOINLINE void hold_remote_in_thread(std::vector<void*>* out) {
  for (int i = 0; i < (16 << 20) / 256; i++) out->push_back(malloc(256));
}
NOINLINE void churn() {
  for (int i = 0; i < (64 << 20) / 128; i++) {
    void* p = malloc(128);
    __asm__ volatile("" : : "r"(p) : "memory");
    free(p);
  }
}
NOINLINE void free_remote_alloc(std::vector<void*>* out) {
  for (int i = 0; i < (16 << 20) / 512; i++) out->push_back(malloc(512));
}
NOINLINE void grow_buffer() {
  void* p = malloc(8 << 20);
  memset(p, 7, 4096);
  for (size_t size = 16 << 20; size <= (48u << 20); size += 8 << 20) p = realloc(p, size);
  keep(p);
}
NOINLINE void shrink_buffer() {
  void* p = malloc(48 << 20);
  keep(realloc(p, 8 << 20));
}
NOINLINE void build_ast(spaces::Region& r) {
  for (int i = 0; i < (32 << 20) / 64; i++) memset(r.Allocate(64, 16), 0, 8);
}
NOINLINE void fill_tmp(spaces::Region& r) {
  for (int i = 0; i < (8 << 20) / 64; i++) r.Allocate(64, 16);
}

// ---- --edge: cases an independent review found -----------------------------------------------
// A double free of a sampled block reported to a handler that allocates (the report must come
// after the profiler lets go of its lock); a region struct recycled for a region of another name
// (samples must go by name); a name longer than 32 characters; a dump path too long.
static int g_reports = 0;
static void allocating_handler(int, void*, const char*, void*) {
  g_reports++;
  void* p = malloc(100);  // (sampled too, at SPACES_PROFILE_SAMPLE=1)
  free(p);
}
NOINLINE void alpha_site(spaces::Region& r) {
  for (int i = 0; i < 4096; i++) r.Allocate(64, 16);
}
NOINLINE void beta_site(spaces::Region& r) {
  for (int i = 0; i < 8192; i++) r.Allocate(64, 16);
}
NOINLINE void spaced_site(spaces::Region& r) {
  for (int i = 0; i < 10; i++) r.Allocate(1 << 20, 16);
}
NOINLINE void underscored_site(spaces::Region& r) {
  for (int i = 0; i < 3; i++) r.Allocate(1 << 20, 16);
}
static int edge(const char* dir) {
  spaces_set_error_handler(allocating_handler, nullptr);
  void* a = malloc(100);
  void* b = malloc(100);
  free(a);
  free(a);  // reported once; the handler allocates
  free(b);
  printf("reports %d\n", g_reports);
  spaces_set_error_handler(nullptr, nullptr);
  static const char kLong[] = "beta_region_with_a_name_longer_than_thirty_two_characters";
  { spaces::Region alpha("alpha"); alpha_site(alpha); }
  spaces::Region beta(kLong);  // (most likely alpha's recycled struct)
  beta_site(beta);
  // Two names that are the same once made safe for a file name ("a b" -> "a_b"): a file each.
  spaces::Region spaced("a b"), underscored("a_b");
  spaced_site(spaced);
  underscored_site(underscored);
  char path[512];
  snprintf(path, sizeof path, "%s/edge.heap", dir);
  if (spaces_profile_dump(path) != 0) {
    perror("spaces_profile_dump");
    return 1;
  }
  std::string toolong(5000, 'x');
  errno = 0;
  int r = spaces_profile_dump(toolong.c_str());
  printf("long path: %d %s\n", r, errno == ENAMETOOLONG ? "ENAMETOOLONG" : strerror(errno));
  printf("edge done\n");
  return 0;
}

// ---- --stress --------------------------------------------------------------------------------
static uint64_t rnd(uint64_t* x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}
static size_t stress_size(uint64_t* x) {
  switch (rnd(x) % 8) {
    case 0: return (4u << 20) + rnd(x) % (4u << 20);  // huge
    case 1: return (256u << 10) + rnd(x) % (1u << 20);  // large
    case 2: case 3: return 8192 + rnd(x) % (248u << 10);  // medium
    default: return rnd(x) % 1024;  // small (0 included)
  }
}
struct Handoff {
  std::vector<void*> blocks;
  std::atomic<int> ready{0};
};
NOINLINE void* stress_alloc(uint64_t* x) {
  size_t n = stress_size(x);
  switch (rnd(x) % 4) {
    case 0: return calloc(1, n);
    case 1: {
      void* p = nullptr;
      if (posix_memalign(&p, size_t(16) << (rnd(x) % 9), n ? n : 1) != 0) return nullptr;
      return p;
    }
    default: return malloc(n);
  }
}
NOINLINE void stress_thread(int id, Handoff* mine, Handoff* next) {
  uint64_t x = 0x9E3779B97F4A7C15ull * (id + 1);
  std::vector<void*> live;
  for (int i = 0; i < 8000; i++) {
    uint64_t op = rnd(&x) % 10;
    if (op < 5 || live.empty()) {
      if (void* p = stress_alloc(&x)) live.push_back(p);
    } else if (op < 7) {
      size_t k = rnd(&x) % live.size();
      void* q = realloc(live[k], stress_size(&x) + 1);  // (realloc to 0 would free it)
      if (q) live[k] = q;
    } else {
      size_t k = rnd(&x) % live.size();
      if (rnd(&x) % 3 == 0)
        next->blocks.push_back(live[k]);  // freed by the next thread
      else
        free(live[k]);
      live[k] = live.back();
      live.pop_back();
    }
    if (live.size() > 64) {  // (bounded: huge blocks add up)
      free(live.back());
      live.pop_back();
    }
  }
  for (void* p : live) free(p);
  next->ready.store(1);
  while (!mine->ready.load()) std::this_thread::yield();
  for (void* p : mine->blocks) free(p);
  std::vector<void*>().swap(mine->blocks);  // (its storage was allocated here too)
}
NOINLINE void stress_regions() {
  uint64_t x = 12345;
  for (int round = 0; round < 10; round++) {
    spaces::Region ex("stress_ex");
    spaces::Region co(spaces::Region::Concurrent, "stress_co");
    std::vector<void*> blocks;
    for (int i = 0; i < 20000; i++) {
      spaces::Region& r = i % 3 ? ex : co;
      void* p = r.Allocate(1 + rnd(&x) % (i % 50 ? 512 : 100000), 16);
      if (rnd(&x) % 4 == 0) blocks.push_back(p);
    }
    for (void* p : blocks) free(p);  // single frees of region blocks
    if (round % 2) ex.reset();
    std::thread([&] {  // a region block freed by another thread
      void* p = co.Allocate(3000, 16);
      free(p);
    }).join();
  }
}
static int stress(const char* path) {
  Handoff h[4];
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; i++) ts.emplace_back(stress_thread, i, &h[i], &h[(i + 1) % 4]);
  for (auto& t : ts) t.join();
  stress_regions();
  pid_t pid = fork();
  if (pid == 0) {  // the child allocates and frees too, then exits without a profile of its own
    void* p = malloc(1 << 20);
    free(p);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "fork child failed\n");
    return 1;
  }
  if (spaces_profile_dump(path) != 0) {
    perror("spaces_profile_dump");
    return 1;
  }
  printf("stress done\n");
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "--stress") == 0) return stress(argv[2]);
  if (argc == 3 && strcmp(argv[1], "--edge") == 0) return edge(argv[2]);
  if (argc < 2) {
    fprintf(stderr, "usage: profile_demo <profile path>\n");
    return 2;
  }
  g_keep.reserve(2 << 20);
  printf("active %d\n", spaces_profile_active());
  hold_small();
  hold_pages();
  hold_medium();
  hold_huge();
  grow_buffer();
  shrink_buffer();
  std::vector<void*> remote;
  remote.reserve(1 << 20);
  std::thread([&] { hold_remote_in_thread(&remote); }).join();
  churn();
  std::vector<void*> to_free;
  to_free.reserve(1 << 20);
  free_remote_alloc(&to_free);
  std::thread([&] {
    for (void* p : to_free) free(p);
  }).join();
  spaces::Region ast("ast");
  build_ast(ast);
  {
    spaces::Region tmp("tmp");
    fill_tmp(tmp);
  }
  if (spaces_profile_dump(argv[1]) != 0) {
    perror("spaces_profile_dump");
    return spaces_profile_active() ? 1 : 0;
  }
  if (getenv("SPACES_PROFILE_SIGNAL")) raise(SIGUSR2);  // (=12: one more profile)
  for (void* p : g_keep) free(p);
  for (void* p : remote) free(p);
  printf("done\n");
  return 0;
}
