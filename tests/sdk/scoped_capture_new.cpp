// scoped_capture_new: ScopedRegion(CaptureHeap) routes this thread's plain operator new and
// malloc (here Spaces', through the override library) to the scope's region, restores the
// previous routing at scope exit, and nests. A plain program, not GoogleTest: GoogleTest
// allocates behind our back, and an allocation made inside a capturing scope dies with it.
//
// Nothing here allocates while a scope is capturing except the allocations under test: failed
// checks are recorded in a static table and printed once every scope has ended (stdout's buffer
// is allocated before the first scope, by the banner).
#include "spaces/ScopedRegion.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace {

long Passed, Failed;
struct Failure {
  int Line;
  const char *Expr;
};
Failure Failures[64];

bool record(bool Ok, int Line, const char *Expr) {
  if (Ok) {
    Passed++;
  } else {
    if (Failed < long(sizeof Failures / sizeof Failures[0]))
      Failures[Failed] = Failure{Line, Expr};
    Failed++;
  }
  return Ok;
}
#define CHECK(Expr) record(!!(Expr), __LINE__, #Expr)

int rawStats(SpacesChunk C) {
  struct spaces_chunk_stats St;
  std::memset(&St, 0, sizeof St);
  St.size = sizeof St;
  return spaces_chunk_stats(C, &St);
}

size_t liveBlocks(SpacesChunk C) {
  struct spaces_chunk_stats St;
  std::memset(&St, 0, sizeof St);
  St.size = sizeof St;
  spaces_chunk_stats(C, &St);
  return St.live_blocks;
}

struct alignas(64) Wide {
  double D[8];
};

// Keeps the compiler from eliding a new/delete or malloc/free pair.
void *volatile Sink;

void captureRoutesNewAndMalloc() {
  void *Before = std::malloc(40); // the thread's own heap; freed inside the scope
  std::memset(Before, 0, 40);
  CHECK(spaces_owns(Before) == 1);
  CHECK(spaces_chunk_of(Before) == nullptr);
  void *Moved = std::malloc(40); // the thread's own heap; realloc'ed inside the scope
  SpacesChunk H;
  {
    spaces::ScopedRegion S(spaces::ScopedRegion::CaptureHeap, "pass");
    H = S.handle();
    CHECK(S.capturesHeap());

    std::string *Str = new std::string(100, 'x');
    CHECK(spaces_chunk_of(Str) == H);
    CHECK(spaces_chunk_of(Str->data()) == H);
    CHECK(Str->size() == 100 && (*Str)[99] == 'x');

    void *M = std::malloc(50);
    Sink = M;
    CHECK(spaces_chunk_of(M) == H);

    std::vector<int> V(1000);
    CHECK(spaces_chunk_of(V.data()) == H);
    V.push_back(1); // grows: the new buffer is the region's too
    CHECK(spaces_chunk_of(V.data()) == H);

    int *Array = new int[10];
    CHECK(spaces_chunk_of(Array) == H);
    Wide *W = new Wide; // aligned operator new
    CHECK(spaces_chunk_of(W) == H);
    CHECK(reinterpret_cast<uintptr_t>(W) % 64 == 0);
    void *Z = std::calloc(100, 10);
    CHECK(spaces_chunk_of(Z) == H);
    void *Big = std::malloc(1 << 20);
    CHECK(spaces_chunk_of(Big) == H);
    void *Al = std::aligned_alloc(4096, 8192);
    CHECK(spaces_chunk_of(Al) == H);
    void *Grown = std::realloc(std::malloc(10), 100000);
    CHECK(spaces_chunk_of(Grown) == H);
    // The hazard: a block of the thread's own heap realloc'ed inside the scope moves into the
    // region (and dies with it).
    Moved = std::realloc(Moved, 5000);
    CHECK(spaces_chunk_of(Moved) == H);

    std::free(Before); // a block of the thread's own heap still frees normally
    size_t Live = liveBlocks(H);
    delete Str; // string buffer and object
    std::free(M);
    delete[] Array;
    delete W;
    CHECK(liveBlocks(H) == Live - 5);
    // Z, Big, Al, Grown and V's buffer are left to die with the scope.
    Sink = Z;
    Sink = Big;
    Sink = Al;
    Sink = Grown;
    Sink = Moved;
  }
  CHECK(rawStats(H) == -1); // destroyed (and no chunk created since)

  std::string *After = new std::string(100, 'y');
  CHECK(spaces_chunk_of(After) == nullptr);
  CHECK(spaces_chunk_of(After->data()) == nullptr);
  CHECK(spaces_owns(After) == 1);
  void *M = std::malloc(50);
  CHECK(spaces_chunk_of(M) == nullptr);
  std::vector<int> V(1000);
  CHECK(spaces_chunk_of(V.data()) == nullptr);
  void *Big = std::malloc(1 << 20);
  CHECK(spaces_chunk_of(Big) == nullptr);
  delete After;
  std::free(M);
  std::free(Big);
}

void nestedScopesRestoreInOrder() {
  {
    spaces::ScopedRegion Outer(spaces::ScopedRegion::CaptureHeap, "outer");
    int *A = new int(1);
    CHECK(spaces_chunk_of(A) == Outer.handle());
    {
      spaces::ScopedRegion Inner(spaces::ScopedRegion::CaptureHeap, "inner");
      int *B = new int(2);
      CHECK(spaces_chunk_of(B) == Inner.handle());
      {
        spaces::ScopedRegion Plain; // NoCapture: routing stays with Inner
        void *C = std::malloc(24);
        CHECK(spaces_chunk_of(C) == Inner.handle());
        CHECK(liveBlocks(Plain.handle()) == 0);
        void *D = Plain.Allocate(24); // explicit allocation still goes to Plain
        CHECK(spaces_chunk_of(D) == Plain.handle());
        std::free(C);
      }
      std::string *E = new std::string(200, 'e');
      CHECK(spaces_chunk_of(E) == Inner.handle());
      CHECK(spaces_chunk_of(E->data()) == Inner.handle());
      delete E;
      delete B;
    }
    int *F = new int(3);
    CHECK(spaces_chunk_of(F) == Outer.handle());
    std::vector<char> G(5000);
    CHECK(spaces_chunk_of(G.data()) == Outer.handle());
    delete A;
    delete F;
  }
  int *H = new int(4);
  CHECK(spaces_chunk_of(H) == nullptr);
  delete H;
}

void noCaptureDoesNotRoute() {
  spaces::ScopedRegion S;
  CHECK(!S.capturesHeap());
  int *P = new int(5);
  CHECK(spaces_chunk_of(P) == nullptr);
  void *M = std::malloc(100);
  CHECK(spaces_chunk_of(M) == nullptr);
  delete P;
  std::free(M);
}

} // namespace

int main() {
  std::printf("scoped_capture_new: plain new/malloc inside ScopedRegion(CaptureHeap)\n");
  std::fflush(stdout);
  void *Probe = std::malloc(16);
  std::memset(Probe, 0, 16);
  if (spaces_owns(Probe) != 1) {
    std::printf("malloc is not served by Spaces: link against the override library\n0 passed, 1 failed\n");
    return 1;
  }
  std::free(Probe);

  captureRoutesNewAndMalloc();
  nestedScopesRestoreInOrder();
  noCaptureDoesNotRoute();
  captureRoutesNewAndMalloc(); // the same thread can capture again

  for (long I = 0; I < Failed && I < long(sizeof Failures / sizeof Failures[0]); I++)
    std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, Failures[I].Line, Failures[I].Expr);
  std::printf("%ld passed, %ld failed\n", Passed, Failed);
  return Failed ? 1 : 0;
}
