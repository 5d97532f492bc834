// Uses the C API and the C++ SDK from an installed (or add_subdirectory'd) Spaces, and checks
// whether malloc is Spaces' exactly when the override variant was linked.
#include <spaces/SDK.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main() {
  int failed = 0;
  spaces::Region r("consumer");
  char *p = static_cast<char *>(r.Allocate(100, 16));
  std::strcpy(p, "hello");
  failed += !r.owns(p);
  spaces::TypedPool<std::string> pool;
  pool.create("a string that lives in a pool");
  failed += pool.size() != 1;
  void *m = std::malloc(32);
#ifdef EXPECT_OVERRIDE
  failed += spaces_owns(m) != 1;
#else
  failed += spaces_owns(m) != 0;
#endif
  std::free(m);
  failed += std::strcmp(spaces_version(), "0.1.0") != 0;
  std::printf("%d passed, %d failed\n", 4 - failed, failed);
  return failed != 0;
}
