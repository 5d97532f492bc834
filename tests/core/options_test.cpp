#include "test_internal.h"

#include <algorithm>
#include <fstream>
#include <unistd.h>
#include <sstream>

TEST(Options, DefaultsAndRoundTrip) {
  EXPECT_EQ(spaces_option_get("slab_cache"), 8);
  EXPECT_EQ(spaces_option_set("slab_cache", 4), 0);
  EXPECT_EQ(spaces_option_get("slab_cache"), 4);
  EXPECT_EQ(spaces_option_set("slab_cache", 8), 0);
}

TEST(Options, UnknownNamesAndOutOfRangeValuesAreEinval) {
  errno = 0;
  EXPECT_EQ(spaces_option_get("no_such_option"), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(spaces_option_set("no_such_option", 1), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(spaces_option_set("huge_pages", 7), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(spaces_option_get(nullptr), -1);
}

TEST(Options, EveryOptionIsDocumented) {
  std::ifstream f(SPACES_SOURCE_DIR "/docs/options.md");
  ASSERT_TRUE(f) << "docs/options.md missing";
  std::stringstream ss;
  ss << f.rdbuf();
  std::string doc = ss.str();
#define SPACES_X(name, def, lo, hi, text) \
  EXPECT_NE(doc.find("`SPACES_" + upper(#name) + "`"), std::string::npos) << #name " is not in docs/options.md";
  auto upper = [](std::string s) {
    for (char& c : s) c = char(toupper(c));
    return s;
  };
  SPACES_OPTION_LIST(SPACES_X)
#undef SPACES_X
}

// Mistakes in SPACES_* variables are reported at start, one stderr line each, naming the variable
// and why; the option keeps its default. (Reads the environment the way initialisation does.)
TEST(Options, EnvironmentMistakesAreReportedOneLineEach) {
  const char* vars[][2] = {{"SPACES_PURGE_DELAY", "1000"},   {"SPACES_PURGE_DELAY_MS", "abc"},
                           {"SPACES_SLAB_CACHE", "10x"},     {"SPACES_ARENA_CACHE", "99999"},
                           {"SPACES_VERBOSE", "yes"},        {"SPACES_CHUNK_KEEP_SLABS", ""}};
  for (auto& v : vars) setenv(v[0], v[1], 1);
  long long before[kNumOptions];
  memcpy(before, g_options, sizeof before);
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  int saved = dup(2);
  dup2(pipefd[1], 2);
  options_init_from_env();
  dup2(saved, 2);
  close(saved);
  close(pipefd[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) > 0;) err.append(buf, size_t(n));
  close(pipefd[0]);
  for (auto& v : vars) unsetenv(v[0]);
  EXPECT_EQ(memcmp(before, g_options, sizeof before), 0) << "a refused value must not be applied";
  auto has = [&](const char* s) { return err.find(s) != std::string::npos; };
  EXPECT_TRUE(has("spaces: warning: SPACES_PURGE_DELAY=1000 ignored: unknown option (did you mean "
                  "SPACES_PURGE_DELAY_MS?)\n")) << err;
  EXPECT_TRUE(has("SPACES_PURGE_DELAY_MS=abc ignored: not an integer (expected an integer from -1 to 3600000)\n"));
  EXPECT_TRUE(has("SPACES_SLAB_CACHE=10x ignored: not an integer"));
  EXPECT_TRUE(has("SPACES_ARENA_CACHE=99999 ignored: out of range (expected an integer from 0 to 4096)\n"));
  EXPECT_TRUE(has("SPACES_VERBOSE=yes ignored: not an integer"));
  EXPECT_TRUE(has("SPACES_CHUNK_KEEP_SLABS= ignored: not an integer"));
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 6) << err;
}
