// quickstart: a program whose malloc and operator new are Spaces' (linked with spaces::override).
// It builds a word-frequency table of a generated text with std::map/std::string, hands blocks
// between threads, and prints what Spaces holds, before and after spaces_collect().
#include <spaces/spaces.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

int main() {
  auto t0 = std::chrono::steady_clock::now();
  std::map<std::string, int> freq;
  unsigned x = 12345;
  for (int i = 0; i < 2000000; i++) {
    x = x * 1103515245u + 12345u;
    std::string w = "w" + std::to_string((x >> 8) % 50000);
    freq[w]++;
  }
  std::vector<std::unique_ptr<int[]>> handed;
  for (int i = 0; i < 100000; i++) handed.emplace_back(new int[(i % 64) + 1]);
  std::thread t([&] { handed.clear(); });  // freed by another thread
  t.join();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  void* probe = malloc(64);
  std::printf("Spaces %s serves malloc: %s\n", spaces_version(), spaces_owns(probe) ? "yes" : "no");
  free(probe);
  std::printf("distinct words: %zu, work took %.1f ms\n", freq.size(), ms);
  std::fflush(stdout);  // spaces_stats_print writes to the fd directly
  spaces_stats_print(1);
  freq.clear();
  spaces_collect(1);
  struct spaces_stats st;
  st.size = sizeof st;
  spaces_stats(&st);
  std::printf("after clearing the table and spaces_collect(1): committed %zu KiB\n", st.committed_bytes / 1024);
  return 0;
}
