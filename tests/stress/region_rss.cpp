// region_rss: memory of a destroyed (or reset) region really goes back to the OS. Builds a
// 200 MiB region of small and large blocks, checks VmRSS grew, destroys it, calls
// spaces_collect(1) and checks VmRSS fell back; the same for reset (which keeps the slabs used). A plain program (no
// GoogleTest) so that nothing else allocates in between.
#include <spaces/spaces.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "stress_util.h"

namespace {
long rssKiB() {
  FILE* f = std::fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmRSS:", 6) == 0) kib = std::atol(line + 6);
  if (f) std::fclose(f);
  return kib;
}
void fill(SpacesChunk c, size_t bytes) {
  size_t done = 0;
  for (unsigned i = 0; done < bytes; i++) {
    size_t n = (i % 64 == 0) ? 300000 : 16 + (i * 37) % 700;
    void* p = spaces_chunk_alloc(c, n, 0);
    if (!p) break;
    std::memset(p, 0x5a, n);
    done += n;
  }
}
}  // namespace

int main() {
  int passed = 0, failed = 0;
  auto check = [&](bool ok, const char* what, long a, long b) {
    std::printf("%s %s (%ld KiB -> %ld KiB)\n", ok ? "ok  " : "FAIL", what, a, b);
    ok ? passed++ : failed++;
  };
  spaces_collect(1);
  long base = rssKiB();
  SpacesChunk c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  fill(c, size_t(200) << 20);
  long full = rssKiB();
  check(full - base > 190 * 1024, "a 200 MiB region is resident", base, full);
  spaces_chunk_destroy(c);
  spaces_collect(1);
  long after = rssKiB();
  check(after - base < 8 * 1024, "destroy + spaces_collect(1) returns it to the OS", full, after);

  // Reset keeps the slabs the round used (option chunk_reset_keep) and returns everything else;
  // after 4 empty rounds, those go back too (all but chunk_keep_slabs).
  c = spaces_chunk_create(SPACES_CHUNK_EXCLUSIVE);
  fill(c, size_t(200) << 20);
  full = rssKiB();
  struct spaces_chunk_stats st;
  auto stats = [&] {
    std::memset(&st, 0, sizeof st);
    st.size = sizeof st;
    spaces_chunk_stats(c, &st);
  };
  stats();
  size_t slab_bytes = st.slabs * 65536;
  spaces_chunk_reset(c);
  spaces_collect(1);
  after = rssKiB();
  stats();
  check(st.live_blocks == 0 && st.large_blocks == 0 && st.footprint == slab_bytes,
        "reset leaves no block and keeps the slabs the round used", long(slab_bytes / 1024), long(st.footprint / 1024));
  // (RSS also keeps, per 4 MiB arena, its record's 64 KiB and slabs never used that shared a
  // 2 MiB huge page with used ones: not freed memory, so never purged)
  check(after - base < long(slab_bytes / 1024) + 32 * 1024,
        "reset + spaces_collect(1) returns the large blocks", full, after);
  for (int round = 0; round < 4; round++) spaces_chunk_reset(c);
  spaces_collect(1);
  after = rssKiB();
  stats();
  check(after - base < 8 * 1024, "4 more resets + spaces_collect(1) returns all but the kept slabs", full, after);
  check(st.footprint <= 4 * 65536, "resets after 4 empty rounds keep at most chunk_keep_slabs",
        long(st.live_blocks), long(st.footprint / 1024));
  spaces_chunk_destroy(c);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
