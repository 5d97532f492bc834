//===- SdkTestSupport.h - What the SDK tests share -------------------------===//
//
// The SDK tests build with the default flags and, as sdk_tests_llvm, with LLVM's -fno-rtti
// -fno-exceptions. EXPECT_BAD_ALLOC(Stmt) checks that Stmt reports an allocation failure the
// way the build does: std::bad_alloc with exceptions; without them through a BadAllocHandler
// that longjmps back (LLVM's install_bad_alloc_error_handler convention), so the test goes on in
// the same process with the same state. (Locals changed inside Stmt and read after it must be
// volatile.) EXPECT_PROGRAMMING_ERROR(Stmt, Regex): a death in debug builds (an assert), the
// release behaviour is the test's own business.
//
//===----------------------------------------------------------------------===//
#ifndef SPACES_TESTS_SDK_SUPPORT_H
#define SPACES_TESTS_SDK_SUPPORT_H

#include "spaces/Region.h"

#include <gtest/gtest.h>

#include <csetjmp>

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define SPACES_TEST_EXCEPTIONS 1
#define EXPECT_BAD_ALLOC(Stmt) EXPECT_THROW(Stmt, std::bad_alloc)
#else
#define SPACES_TEST_EXCEPTIONS 0
namespace spaces_test {
inline std::jmp_buf BadAllocJump;
inline void jumpBack(void *, const char *) { std::longjmp(BadAllocJump, 1); }
} // namespace spaces_test
#define EXPECT_BAD_ALLOC(Stmt)                                                                     \
  do {                                                                                             \
    volatile bool Reported = false;                                                                \
    spaces::installBadAllocHandler(spaces_test::jumpBack);                                         \
    if (setjmp(spaces_test::BadAllocJump) == 0) {                                                  \
      Stmt;                                                                                        \
    } else {                                                                                       \
      Reported = true;                                                                             \
    }                                                                                              \
    spaces::removeBadAllocHandler();                                                               \
    EXPECT_TRUE(Reported) << #Stmt " did not report an allocation failure";                        \
  } while (0)
#endif

#endif // SPACES_TESTS_SDK_SUPPORT_H
