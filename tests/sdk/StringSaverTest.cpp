//===- StringSaverTest.cpp - spaces::StringSaver ---------------------------===//
//
// Copies live in the region, NUL-terminated, until reset; they convert to llvm::StringRef; and
// an llvm::StringMap over the same region interns them (one copy per distinct string).
//
//===----------------------------------------------------------------------===//
#include "spaces/StringSaver.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"

#include <gtest/gtest.h>

#include "SdkTestSupport.h"

#include <string>

using spaces::Region;
using spaces::StringSaver;

TEST(StringSaver, CopiesLiveInTheRegionUntilReset) {
  Region R("strings");
  StringSaver Saver(R);
  std::string Source = "identifier";
  std::string_view Copy = Saver.save(Source);
  Source[0] = 'X';  // the copy is independent
  EXPECT_EQ(Copy, "identifier");
  EXPECT_EQ(Copy.data()[Copy.size()], '\0') << "NUL-terminated, like llvm::StringSaver";
  EXPECT_TRUE(R.owns(Copy.data()));
  EXPECT_EQ(Saver.save("").size(), 0u);
  llvm::StringRef Ref(Copy.data(), Copy.size());
  EXPECT_TRUE(Ref.equals("identifier"));
  EXPECT_EQ(R.stats().live_blocks, 2u);
  R.reset();
  EXPECT_EQ(R.stats().live_blocks, 0u);
}

TEST(StringSaver, InterningWithAStringMapOverTheSameRegion) {
  Region R("interned");
  llvm::StringMap<unsigned, Region &> Interned(R);
  const char *Words[] = {"int", "main", "return", "int", "main", "int"};
  for (const char *W : Words)
    Interned[W]++;
  EXPECT_EQ(Interned.size(), 3u);
  EXPECT_EQ(Interned["int"], 3u);
  EXPECT_TRUE(R.owns(&*Interned.find("main"))) << "the entries (key bytes included) are in the region";
}

TEST(StringSaver, CeilingIsReportedAsABadAlloc) {
  Region R;
  ASSERT_TRUE(R.setCeiling(1 << 20));
  StringSaver Saver(R);
  std::string Big(2 << 20, 'x');
  EXPECT_BAD_ALLOC(Saver.save(Big));
}
