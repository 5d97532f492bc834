#include "test_internal.h"

#include <fstream>
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
