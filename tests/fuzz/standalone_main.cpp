// standalone_main.cpp - runs a fuzz target without libFuzzer: over given files, or over random
// inputs, so the same decoder and model run in the override build, under valgrind, or built with
// any compiler.
//
//   fuzz_ops_standalone [options] [FILE|DIR]...
//     FILE|DIR          run each input (directories: every regular file in them) once
//     --runs N          run N generated inputs
//     --minutes M       ... or generate until M minutes have passed (--seconds S likewise);
//                       with --runs too, whichever comes first
//     --seed S          seed of the generator (input k of seed S is always the same bytes)
//     --max-len L       largest generated input in bytes (default 8192)
//     --keep-going      do not stop at the first mismatch
//     --skip-known      steer around the open core bugs listed in regressions/OPEN_BUGS
//     --artifacts DIR   where failing generated inputs are written (default: .)
//     --stats           also print how often each op ran and what the checks saw
//     --no-slack        do not write the bytes between the request and usable_size (for a core
//                       built with SPACES_VALGRIND under memcheck)
//   Prints `ops=<total> mismatches=<n> runs=<r> seconds=<s>`; exits 1 after a mismatch.
#include "ops.h"

#include <chrono>
#include <csignal>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
};

// A generated input: random bytes, but each input favours a few ops (a "profile") so that long
// stretches of region traffic, realloc chains or pool churn happen more often than in uniform
// bytes, and two inputs in three keep most sizes small (decode_size bands 0..12): large blocks
// cost page faults, not checks, so this buys operations per second where they find the most.
std::vector<uint8_t> generate(uint64_t seed, uint64_t run, size_t max_len) {
  Rng r{fuzz::mix64(seed * 0x9E3779B97F4A7C15ull + run) | 1};
  size_t max_recs = max_len > fuzz::kHeaderBytes ? (max_len - fuzz::kHeaderBytes) / fuzz::kRecBytes : 0;
  size_t nrec = max_recs ? 1 + r.next() % (r.next() % 2 ? std::min<size_t>(max_recs, 200) : max_recs) : 0;
  std::vector<uint8_t> v(fuzz::kHeaderBytes + nrec * fuzz::kRecBytes);
  v[0] = uint8_t(r.next());
  v[1] = uint8_t(r.next());
  uint8_t fav[4];
  unsigned nfav = unsigned(r.next() % 5);
  for (unsigned i = 0; i < nfav; i++) fav[i] = uint8_t(r.next() % fuzz::kNumOps);
  unsigned small = unsigned(r.next() % 3);  // 0: any size; 1: all small; 2: 7 in 8 small
  for (size_t i = 0; i < nrec; i++) {
    uint8_t* p = &v[fuzz::kHeaderBytes + i * fuzz::kRecBytes];
    uint64_t x = r.next();
    memcpy(p, &x, fuzz::kRecBytes);
    if (nfav && x >> 62 == 0) p[0] = fav[(x >> 56) % nfav];
    if ((small == 1 || (small == 2 && (x >> 48) % 8 != 0)) && (p[2] & 15) >= 13)
      p[2] = uint8_t((p[2] & ~15) | (p[2] & 15) % 13);
  }
  return v;
}

// A crash (not a model mismatch) kills the process: the signal handler saves the generated input
// that was running, with async-signal-safe calls only, then lets the signal take its course.
const uint8_t* g_cur_data = nullptr;
size_t g_cur_size = 0;
char g_cur_path[4096];
void on_crash(int sig) {
  if (g_cur_data && g_cur_path[0]) {
    int fd = open(g_cur_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t w = write(fd, g_cur_data, g_cur_size);
      (void)w;
      close(fd);
      static const char msg[] = "spaces-fuzz: crash; the input was written to ";
      w = write(2, msg, sizeof msg - 1);
      w = write(2, g_cur_path, strlen(g_cur_path));
      w = write(2, "\n", 1);
    }
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

bool read_file(const std::string& path, std::vector<uint8_t>& out) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) return false;
  out.clear();
  uint8_t buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  fclose(f);
  return true;
}

void list_inputs(const std::string& path, std::vector<std::string>& out) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    fprintf(stderr, "cannot read %s\n", path.c_str());
    exit(2);
  }
  if (!S_ISDIR(st.st_mode)) {
    out.push_back(path);
    return;
  }
  std::vector<std::string> names;
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') names.push_back(path + "/" + e->d_name);
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (auto& n : names)
    if (stat(n.c_str(), &st) == 0 && S_ISREG(st.st_mode)) out.push_back(n);
}

}  // namespace

int main(int argc, char** argv) {
  fuzz::g_abort_on_mismatch = false;
  fuzz::g_report_at_exit = false;
  uint64_t runs = 0, seed = 1;
  double seconds = 0;
  size_t max_len = 8192;
  bool keep_going = false, generate_inputs = false, stats = false;
  std::string artifacts = ".";
  std::vector<std::string> files;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--runs") runs = strtoull(val(), nullptr, 10), generate_inputs = true;
    else if (a == "--minutes") seconds = 60 * strtod(val(), nullptr), generate_inputs = true;
    else if (a == "--seconds") seconds = strtod(val(), nullptr), generate_inputs = true;
    else if (a == "--seed") seed = strtoull(val(), nullptr, 10);
    else if (a == "--max-len") max_len = strtoull(val(), nullptr, 10);
    else if (a == "--keep-going") keep_going = true;
    else if (a == "--skip-known") fuzz::g_skip_known = ~0u;
    else if (a == "--artifacts") artifacts = val();
    else if (a == "--stats") stats = true;
    else if (a == "--no-slack") fuzz::g_touch_slack = false;
    else if (a.size() > 1 && a[0] == '-') {
      fprintf(stderr, "unknown option %s (see the comment at the top of standalone_main.cpp)\n", a.c_str());
      return 2;
    } else {
      list_inputs(a, files);
    }
  }
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE}) signal(sig, on_crash);
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  uint64_t done = 0, bad = 0;
  auto run_one = [&](const std::vector<uint8_t>& in, const std::string& name) -> bool {
    LLVMFuzzerTestOneInput(in.data(), in.size());
    done++;
    if (!fuzz::g_failed) return true;
    bad++;
    fprintf(stderr, "spaces-fuzz: mismatch in %s\n", name.c_str());
    return keep_going;
  };
  bool go = true;
  for (const std::string& f : files) {
    std::vector<uint8_t> in;
    if (!read_file(f, in)) {
      fprintf(stderr, "cannot read %s\n", f.c_str());
      return 2;
    }
    if (!(go = run_one(in, f))) break;
  }
  for (uint64_t k = 0; go && generate_inputs && (runs == 0 || k < runs) && (seconds == 0 || elapsed() < seconds); k++) {
    std::vector<uint8_t> in = generate(seed, k, max_len);
    std::string name = artifacts + "/mismatch-seed" + std::to_string(seed) + "-run" + std::to_string(k);
    snprintf(g_cur_path, sizeof g_cur_path, "%s", name.c_str());
    g_cur_data = in.data();
    g_cur_size = in.size();
    bool ok = run_one(in, "generated input " + std::to_string(k) + " of seed " + std::to_string(seed));
    if (fuzz::g_failed) {
      if (FILE* f = fopen(name.c_str(), "wb")) {
        fwrite(in.data(), 1, in.size(), f);
        fclose(f);
        fprintf(stderr, "spaces-fuzz: input written to %s\n", name.c_str());
      }
    }
    go = ok;
  }
  printf("ops=%llu mismatches=%llu runs=%llu seconds=%.1f\n", (unsigned long long)fuzz::g_ops.load(),
         (unsigned long long)bad, (unsigned long long)done, elapsed());
  if (stats) {
    for (int o = 0; o < fuzz::kNumOps; o++)
      printf("  %-20s %llu\n", fuzz::kOpNames[o], (unsigned long long)fuzz::g_op_counts[o].load());
    for (int e = 0; e < fuzz::kNumEvents; e++)
      printf("  %-34s %llu\n", fuzz::kEventNames[e], (unsigned long long)fuzz::g_events[e].load());
  }
  fflush(stdout);
  return bad ? 1 : 0;
}
