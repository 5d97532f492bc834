// invalid_free_death: each misuse (free of memory Spaces does not own, double free on the same or
// another thread, interior pointers) runs in a forked child that must die by SIGABRT after one
// "spaces: error: ... at 0x<address>" line; a handler that returns lets the program go on intact.
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <string>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "stress_util.h"

extern "C" void free_sized(void *p, std::size_t size); // C23, not declared by glibc 2.36

using namespace stress;

namespace {

void *volatile gSink;
// Hides where a pointer came from, so GCC's -Wfree-nonheap-object / -Wuse-after-free stay quiet.
void *launder(void *p) {
  gSink = p;
  return gSink;
}

int gInfoFd = -1; // the child tells the parent which addresses it is about to misuse
void reportAddress(void *p) { // not const: GCC would take it for a read of *p
  auto a = reinterpret_cast<std::uintptr_t>(p);
  ssize_t ignored = write(gInfoFd, &a, sizeof a);
  (void)ignored;
}

void *mapPages(std::size_t bytes) {
  void *m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return m == MAP_FAILED ? nullptr : m;
}

// ---- the misuses, each run in its own child ----
void freeStack() {
  char local[64] = {1};
  reportAddress(local);
  std::free(launder(local));
}
void freeMmapPage() {
  void *page = mapPages(4096);
  reportAddress(page);
  std::free(page);
}
// A foreign, 64 KiB-aligned region holding a byte-for-byte copy of a real slab: a free that
// trusts the header at ptr & ~0xFFFF without checking the arena would accept it.
void freeForgedSlab() {
  auto *p = static_cast<unsigned char *>(std::malloc(32));
  auto base = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t(0xFFFF);
  auto *m = static_cast<unsigned char *>(mapPages(256 << 10));
  auto *fake = reinterpret_cast<unsigned char *>((reinterpret_cast<std::uintptr_t>(m) + 0xFFFF) &
                                                 ~std::uintptr_t(0xFFFF));
  std::memcpy(fake, reinterpret_cast<void *>(base), 64 << 10);
  unsigned char *forged = fake + (reinterpret_cast<std::uintptr_t>(p) - base);
  reportAddress(forged);
  std::free(forged);
}
void freeWild() {
  reportAddress(reinterpret_cast<void *>(0xdead0000));
  std::free(launder(reinterpret_cast<void *>(0xdead0000)));
}
void doubleFree(std::size_t size) {
  void *p = std::malloc(size), *again = launder(p);
  reportAddress(p);
  std::free(p);
  std::free(again);
}
void doubleFreeSmall() { doubleFree(32); }
void doubleFreeLarge() { doubleFree(1 << 20); }
void doubleFreeOtherThread() { // first free by the owner, second by another thread
  void *p = std::malloc(48), *again = launder(p);
  reportAddress(p);
  std::free(p);
  std::thread([again] { std::free(again); }).join();
}
void doubleFreeBothRemote() { // both frees by threads that do not own the block
  void *p = std::malloc(48);
  reportAddress(p);
  std::thread([p] { std::free(p); }).join();
  std::thread([p] { std::free(p); }).join();
}
void freeInterior(std::size_t size, std::size_t offset) {
  auto *p = static_cast<unsigned char *>(std::calloc(1, size)); // zeros where a header "is"
  reportAddress(p + offset);
  reportAddress(p); // reporting the block's start is acceptable too
  std::free(launder(p + offset));
}
void freeInteriorLargeNear() { freeInterior(1 << 20, 4096 + 16); }
void freeInteriorLargeFar() { freeInterior(1 << 20, (512 << 10) + 16); } // past its first 64 KiB
void freeInteriorSmall() { freeInterior(64, 16); }
void freeMisalignedSmall() { freeInterior(48, 1); }
// The owning thread frees a pointer into the header of a live slab: the next malloc of that
// class would otherwise hand out allocator metadata. The header is the one Spaces' slab_of finds:
// `colour` bytes into the granule (0-896 in steps of 128 by address bits 16-18: docs/design.md,
// "Slab"); offset < 0 names the colour's bytes before it (the granule's first byte + 8 when the
// colour is 0, which is the header again).
void freeSlabHeader(long offset) {
  auto *p = static_cast<unsigned char *>(std::malloc(48));
  std::uintptr_t g = (reinterpret_cast<std::uintptr_t>(p) - 1) & ~std::uintptr_t(0xFFFF);
  std::uintptr_t header = g + ((g >> 9) & 0x380);
  unsigned char *bad = offset >= 0 ? reinterpret_cast<unsigned char *>(header + std::uintptr_t(offset))
                                   : reinterpret_cast<unsigned char *>(g + 8);
  reportAddress(bad);
  std::free(launder(bad));
}
void freeSlabColour() { freeSlabHeader(-1); }
void freeSlabHeader16() { freeSlabHeader(16); }
void freeSlabHeader1() { freeSlabHeader(1); }
void freeSlabHeader248() { freeSlabHeader(248); }
void reallocInteriorSmall() {
  auto *p = static_cast<unsigned char *>(std::malloc(64));
  reportAddress(p + 16);
  void *volatile r = std::realloc(launder(p + 16), 200);
  (void)r;
}
void ignoreError(int, void *, const char *, void *) {}
void handlerRestored() { // after spaces_set_error_handler(NULL), the default aborts again
  spaces_set_error_handler(ignoreError, nullptr);
  spaces_set_error_handler(nullptr, nullptr);
  doubleFreeSmall();
}

struct DeathCase {
  const char *name;
  void (*misuse)();
  const char *words[2]; // one of them must appear
};
const DeathCase kCases[] = {
    {"free of a stack pointer", freeStack, {"invalid free", nullptr}},
    {"free of a glibc-mmap'd page", freeMmapPage, {"invalid free", nullptr}},
    {"free inside a forged copy of a slab", freeForgedSlab, {"invalid free", nullptr}},
    {"free of a wild pointer", freeWild, {"invalid free", nullptr}},
    {"double free, small block", doubleFreeSmall, {"double free", nullptr}},
    // Once unmapped, a large block may look foreign: either word is a correct diagnosis.
    {"double free, 1 MiB block", doubleFreeLarge, {"double free", "invalid free"}},
    {"double free, second free on another thread", doubleFreeOtherThread, {"double free", nullptr}},
    {"double free, both frees on other threads", doubleFreeBothRemote, {"double free", nullptr}},
    {"free of an interior pointer, large block, +4 KiB", freeInteriorLargeNear,
     {"invalid free", nullptr}},
    {"free of an interior pointer, large block, +512 KiB", freeInteriorLargeFar,
     {"invalid free", nullptr}},
    // The owner thread's free fast path checks block boundaries (a multiply, no divide).
    {"free of an interior pointer, small block", freeInteriorSmall, {"inside a block", nullptr}},
    {"free of a misaligned pointer, small block", freeMisalignedSmall, {"inside a block", nullptr}},
    {"free of a slab header pointer, +16", freeSlabHeader16, {"slab header", nullptr}},
    {"free of a slab header pointer, +1", freeSlabHeader1, {"slab header", nullptr}},
    {"free of a slab header pointer, +248", freeSlabHeader248, {"slab header", nullptr}},
    {"free of a pointer before a coloured slab header", freeSlabColour, {"slab header", nullptr}},
    {"realloc of an interior pointer, small block", reallocInteriorSmall, {"inside a block", nullptr}},
    {"default handler restored", handlerRestored, {"double free", nullptr}},
};

struct Outcome {
  int status = 0;
  std::string err;                      // everything the child wrote to stderr
  std::vector<std::uintptr_t> addresses; // what it said it would misuse
};

Outcome runChild(void (*body)()) {
  int err[2], info[2];
  Outcome out;
  if (pipe(err) != 0 || pipe(info) != 0) return out;
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err[1], 2);
    close(err[0]), close(info[0]), close(err[1]);
    gInfoFd = info[1];
    struct rlimit noCore = {0, 0};
    setrlimit(RLIMIT_CORE, &noCore);
    std::signal(SIGALRM, SIG_DFL);
    alarm(10);
    body();
    _exit(0); // reached only if the misuse went unnoticed
  }
  close(err[1]), close(info[1]);
  char buf[4096];
  for (ssize_t n; (n = read(err[0], buf, sizeof buf)) > 0;) out.err.append(buf, std::size_t(n));
  std::uintptr_t a;
  while (read(info[0], &a, sizeof a) == ssize_t(sizeof a)) out.addresses.push_back(a);
  close(err[0]), close(info[0]);
  waitpid(pid, &out.status, 0);
  return out;
}

// True if some 0x... number in the text equals one of the addresses (any padding, any case).
bool mentionsAddress(const std::string &text, const std::vector<std::uintptr_t> &addresses) {
  for (std::size_t at = text.find("0x"); at != std::string::npos; at = text.find("0x", at + 2)) {
    std::uintptr_t value = std::strtoull(text.c_str() + at + 2, nullptr, 16);
    if (std::find(addresses.begin(), addresses.end(), value) != addresses.end()) return true;
  }
  return false;
}

void runDeathCase(const DeathCase &c) {
  Outcome out = runChild(c.misuse);
  bool aborted = WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGABRT;
  bool prefix = out.err.find("spaces: error:") != std::string::npos;
  bool word = false;
  for (const char *w : c.words) word = word || (w && out.err.find(w) != std::string::npos);
  bool address = mentionsAddress(out.err, out.addresses);
  bool oneLine = std::count(out.err.begin(), out.err.end(), '\n') == 1 && out.err.back() == '\n';
  int failures = !CHECK(aborted);
  failures += !CHECK(prefix);
  failures += !CHECK(word);
  failures += !CHECK(address);
  failures += !CHECK(oneLine);
  std::printf("%-52s %s\n", c.name, failures == 0 ? "ok" : "FAILED");
  std::printf("    %s %d, stderr: %s", WIFSIGNALED(out.status) ? "signal" : "exit",
              WIFSIGNALED(out.status) ? WTERMSIG(out.status) : WEXITSTATUS(out.status),
              out.err.empty() ? "(nothing)\n" : out.err.c_str());
}

// ---- a handler that returns: the call is ignored and the program goes on ----
struct Recorded {
  int calls = 0, error = 0;
  void *addr = nullptr;
  bool message = false;
};
void recordError(int error, void *addr, const char *message, void *arg) {
  auto *r = static_cast<Recorded *>(arg);
  ++r->calls, r->error = error, r->addr = addr;
  r->message = message && message[0];
  void *probe = std::malloc(100); // no Spaces lock is held: allocating here must not deadlock
  std::free(probe);
}

void handlerContinues() {
  gFailed = 0; // this child's verdict only, not the failures the parent had before the fork
  Recorded r;
  spaces_set_error_handler(recordError, &r);
  std::vector<void *> keep; // live blocks that must come through untouched
  for (int i = 0; i < 64; ++i) {
    keep.push_back(std::malloc(48));
    fill(keep.back(), 48, i);
  }
  void *p = std::malloc(48), *again = launder(p);
  std::free(p);
  std::free(again);
  CHECK(r.calls == 1 && r.error == SPACES_ERROR_DOUBLE_FREE && r.addr == p && r.message);
  void *q = std::malloc(64), *qAgain = launder(q);
  std::free(q);
  std::thread([qAgain] { std::free(qAgain); }).join();
  CHECK(r.calls == 2 && r.error == SPACES_ERROR_DOUBLE_FREE && r.addr == q);
  char local[32] = {1};
  std::free(launder(local));
  CHECK(r.calls == 3 && r.error == SPACES_ERROR_INVALID_FREE && r.addr == local);
  void *page = mapPages(4096);
  std::free(page);
  CHECK(r.calls == 4 && r.error == SPACES_ERROR_INVALID_FREE && r.addr == page);
  void *s = std::malloc(32);
  // a size this block cannot have (from another thread: the owner's fast path reads no size)
  std::thread([s] { free_sized(s, 1 << 20); }).join();
  CHECK(r.calls == 5 && r.error == SPACES_ERROR_SIZE_MISMATCH && r.addr == s);

  // The ignored frees left the free lists sane: 2000 new blocks are distinct, old ones intact.
  std::vector<void *> fresh;
  for (int i = 0; i < 2000; ++i) fresh.push_back(std::malloc(48));
  std::sort(fresh.begin(), fresh.end());
  CHECK(std::adjacent_find(fresh.begin(), fresh.end()) == fresh.end());
  CHECK(std::find(fresh.begin(), fresh.end(), nullptr) == fresh.end());
  for (void *f : fresh) std::free(f);
  bool intact = true;
  for (int i = 0; i < 64; ++i) intact = intact && verify(keep[i], 48, i);
  CHECK(intact);
  for (void *k : keep) std::free(k);
  CHECK(r.calls == 5); // and nothing legitimate was reported
  _exit(gFailed.load() ? 1 : 0);
}

} // namespace

int main(int argc, char **argv) {
  setUp(argc, argv);
  for (const DeathCase &c : kCases) runDeathCase(c);

  // abort_on_oom: the report names the request, not an address.
  Outcome oom = runChild([] {
    spaces_option_set("abort_on_oom", 1);
    void *volatile p = std::malloc(std::size_t(1) << 50);
    (void)p;
  });
  bool oomOk = CHECK(WIFSIGNALED(oom.status) && WTERMSIG(oom.status) == SIGABRT);
  oomOk &= CHECK(oom.err == "spaces: error: out of memory (request of 1125899906842624 bytes)\n");
  std::printf("%-52s %s\n    stderr: %s", "abort_on_oom names the size", oomOk ? "ok" : "FAILED",
              oom.err.c_str());

  Outcome out = runChild(handlerContinues);
  bool ok = CHECK(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0);
  std::printf("%-52s %s\n", "handler that returns: program continues", ok ? "ok" : "FAILED");
  if (!ok)
    std::printf("    status: %s %d; stderr: %s", WIFSIGNALED(out.status) ? "signal" : "exit",
                WIFSIGNALED(out.status) ? WTERMSIG(out.status) : WEXITSTATUS(out.status),
                out.err.empty() ? "(nothing)\n" : out.err.c_str());
  return finish();
}
