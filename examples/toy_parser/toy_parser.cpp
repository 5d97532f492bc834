//===- toy_parser/toy_parser.cpp - The million-node AST demo --------------===//
//
// Generates (or reads) a toy program, parses it into an AST with one of four allocation
// strategies (Storage.h), runs the resolver pass (temporaries in a ScopedRegion), hashes and
// evaluates the tree to a checksum, prints what the memory looked like, and tears the tree
// down: for `--alloc region`, in one spaces_chunk_destroy. Run with --help for the options;
// docs/toy_parser.md describes the language, the modes and the figures.
//
// Exit status: 0 success; 1 the input is wrong (diagnostic on stderr); 2 bad command line;
// 3 a self-check failed (node count, leak, memory still held after destroy).
//
//===----------------------------------------------------------------------===//

#include "Evaluator.h"
#include "Generator.h"
#include "Parser.h"
#include "Resolver.h"
#include "Storage.h"

#include "spaces/Format.h"
#include "spaces/SDK.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>

using namespace toy;

namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point T) { return std::chrono::duration<double, std::milli>(Clock::now() - T).count(); }
/// Minor page faults of the process so far (first touches of fresh memory, mostly).
long minorFaults() {
  rusage U;
  getrusage(RUSAGE_SELF, &U);
  return U.ru_minflt;
}
/// CPU time of this thread: unlike wall time, not inflated when other processes take the CPU.
double cpuMs() {
  timespec Ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &Ts);
  return double(Ts.tv_sec) * 1e3 + double(Ts.tv_nsec) / 1e6;
}

//===----------------------------------------------------------------------===//
// Memory of the process
//===----------------------------------------------------------------------===//

struct MemoryUsage {
  size_t PeakKiB = 0; ///< VmHWM: the high-water mark of the resident set
  size_t RssKiB = 0;  ///< VmRSS
};

size_t fieldKiB(const char *Buf, const char *Name) {
  const char *P = std::strstr(Buf, Name);
  if (!P)
    return 0;
  P += std::strlen(Name);
  while (*P == ' ' || *P == '\t')
    P++;
  return size_t(std::strtoull(P, nullptr, 10));
}

/// Reads /proc/self/status with read(2) into a stack buffer: no allocation, so taking the
/// measurement does not disturb what it measures.
MemoryUsage readMemoryUsage() {
  MemoryUsage M;
  char Buf[8192];
  int Fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (Fd < 0)
    return M;
  size_t Len = 0;
  for (ssize_t N; Len + 1 < sizeof Buf && (N = ::read(Fd, Buf + Len, sizeof Buf - 1 - Len)) > 0;)
    Len += size_t(N);
  ::close(Fd);
  Buf[Len] = '\0';
  M.PeakKiB = fieldKiB(Buf, "VmHWM:");
  M.RssKiB = fieldKiB(Buf, "VmRSS:");
  return M;
}

std::string mib(double Bytes) { return fmt::format("{:.1f} MiB", Bytes / (1024.0 * 1024.0)); }

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

struct Options {
  size_t Nodes = 1000000;
  uint64_t Seed = 1;
  uint64_t MaxSteps = Evaluator::DefaultStepLimit;
  std::string File;       ///< --file: parse this instead of generating
  std::string EmitSource; ///< --emit-source: write the generated program here and stop
  std::string Alloc = "region";
  bool Json = false;
  bool ResultLine = false; // bench/run's RESULT line (AST build + teardown), after the report
  int Threads = 1;          // echoed in the RESULT line only
  bool DumpAST = false;
};

const char *Usage =
    "usage: toy_parser [--nodes N | --file PATH] [--alloc region|untracked|pool|malloc|bump] [--seed S]\n"
    "                  [--json] [--dump-ast] [--emit-source PATH] [--max-steps N]\n"
    "  --nodes N        generate a program of exactly N AST nodes (default 1000000)\n"
    "  --file PATH      parse PATH instead\n"
    "  --alloc MODE     where the AST lives (default region):\n"
    "                     region  everything in one spaces::Region, freed by one destroy\n"
    "                     untracked  the same, the Region created Untracked (no walk)\n"
    "                     pool    a spaces::TypedPool<T> per node kind, a Region for the rest\n"
    "                     malloc  new/delete per node, recursive teardown\n"
    "                     bump    llvm::BumpPtrAllocator\n"
    "  --seed S         generator seed (default 1)\n"
    "  --json           print one JSON line of the figures instead of the report\n"
    "  --result-line    also print bench/run's RESULT line (build = parse + pass, plus teardown)\n"
    "  --dump-ast       print the resolved tree as an s-expression (and main's value)\n"
    "  --emit-source P  write the generated program to P ('-': stdout) and exit\n"
    "  --max-steps N    stop evaluating after N steps (default 500000000)\n";

bool parseOptions(int Argc, char **Argv, Options &O) {
  for (int I = 1; I < Argc; I++) {
    std::string A = Argv[I];
    auto Value = [&](const char *Name) -> const char * {
      if (I + 1 >= Argc) {
        fmt::print(stderr, "toy_parser: {} needs a value\n", Name);
        return nullptr;
      }
      return Argv[++I];
    };
    auto Number = [&](const char *Name, uint64_t &Out) {
      const char *V = Value(Name);
      if (!V)
        return false;
      char *End;
      errno = 0;
      unsigned long long N = std::strtoull(V, &End, 10);
      if (*V == '-' || *End || End == V || errno) {
        fmt::print(stderr, "toy_parser: {} expects a non-negative integer, not '{}'\n", Name, V);
        return false;
      }
      Out = N;
      return true;
    };
    if (A == "--help" || A == "-h") {
      fmt::print("{}", Usage);
      std::exit(0);
    } else if (A == "--nodes") {
      uint64_t N;
      if (!Number("--nodes", N))
        return false;
      if (N < MinGeneratedNodes || N > 100000000) {
        fmt::print(stderr, "toy_parser: --nodes must be between {} and 100000000\n", MinGeneratedNodes);
        return false;
      }
      O.Nodes = size_t(N);
    } else if (A == "--seed") {
      if (!Number("--seed", O.Seed))
        return false;
    } else if (A == "--max-steps") {
      if (!Number("--max-steps", O.MaxSteps))
        return false;
    } else if (A == "--file" || A == "--alloc" || A == "--emit-source") {
      const char *V = Value(A.c_str());
      if (!V)
        return false;
      (A == "--file" ? O.File : A == "--alloc" ? O.Alloc : O.EmitSource) = V;
    } else if (A == "--json") {
      O.Json = true;
    } else if (A == "--result-line") {
      O.ResultLine = true;
    } else if (A == "--threads" && I + 1 < Argc) {
      O.Threads = std::atoi(Argv[++I]);  // bench/run passes it; the build is single-threaded
    } else if (A == "--dump-ast") {
      O.DumpAST = true;
    } else {
      fmt::print(stderr, "toy_parser: unknown option '{}'\n{}", A, Usage);
      return false;
    }
  }
  if (O.Alloc != "region" && O.Alloc != "untracked" && O.Alloc != "pool" && O.Alloc != "malloc" &&
      O.Alloc != "bump") {
    fmt::print(stderr, "toy_parser: --alloc must be region, untracked, pool, malloc or bump, not '{}'\n", O.Alloc);
    return false;
  }
  return true;
}

bool readFile(const std::string &Path, std::string &Text) {
  std::FILE *F = std::fopen(Path.c_str(), "rb");
  if (!F) {
    fmt::print(stderr, "toy_parser: error: cannot open '{}': {}\n", Path, std::strerror(errno));
    return false;
  }
  char Buf[65536];
  for (size_t N; (N = std::fread(Buf, 1, sizeof Buf, F)) > 0;) {
    Text.append(Buf, N);
    if (Text.size() > UINT32_MAX - 1) {
      fmt::print(stderr, "toy_parser: error: '{}' is larger than 4 GiB\n", Path);
      std::fclose(F);
      return false;
    }
  }
  bool Failed = std::ferror(F);
  std::fclose(F);
  if (Failed)
    fmt::print(stderr, "toy_parser: error: cannot read '{}'\n", Path);
  return !Failed;
}

//===----------------------------------------------------------------------===//
// One run
//===----------------------------------------------------------------------===//

struct Figures {
  const char *Mode = "";
  bool SpacesMalloc = false;
  size_t SourceBytes = 0, Nodes = 0;
  double GenerateMs = 0, ParseMs = 0, PassMs = 0, CheckMs = 0;
  double TeardownIdentsMs = 0, TeardownNodesMs = 0;
  double ParseCpuMs = 0, TeardownCpuMs = 0; ///< thread CPU time of the same steps
  long ParseFaults = 0;                       ///< minor page faults while parsing
  uint64_t Checksum = 0, Steps = 0;
  int64_t MainValue = 0;
  size_t AstBytes = 0;          ///< what the strategy held for the tree (see below)
  HeldRegions Held;             ///< Spaces regions held just before teardown
  long long FootprintAfter = -1; ///< region bytes still held after destroy (-1: no regions)
  MemoryUsage BeforeTeardown, AfterTeardown, AfterCollect;
  size_t PeakKiB = 0;
};

template <typename StorageT> size_t leakedObjects(const StorageT &S) {
  if constexpr (std::is_same_v<StorageT, MallocStorage>)
    return S.live();
  else
    return 0;
}

/// Releases a storage after an error (untimed), checking that nothing leaked.
template <typename StorageT> int abandon(std::optional<StorageT> &S, Program *Prog) {
  std::fflush(stdout);
  S->releaseIdentifiers();
  S->releaseNodes(Prog);
  size_t Leaked = leakedObjects(*S);
  S.reset();
  if (Leaked) {
    fmt::print(stderr, "toy_parser: internal error: {} allocations of the partial AST leaked\n", Leaked);
    return 3;
  }
  return 1;
}

template <typename StorageT> void printStorageReport(StorageT &S) {
  if constexpr (std::is_same_v<StorageT, RegionStorage> || std::is_same_v<StorageT, UntrackedStorage>) {
    fmt::print("region report:\n{}", spaces::LiveReport(S.region()));
  } else if constexpr (std::is_same_v<StorageT, PoolStorage>) {
    fmt::print("pool report: {:>10} {:>10} {:>6} {:>12}\n", "kind", "objects", "slot", "footprint");
    S.forEachPool([](const char *Kind, size_t Objects, size_t Slot, size_t Footprint) {
      if (Objects)
        fmt::print("             {:>10} {:>10} {:>6} {:>12}\n", Kind, Objects, Slot, Footprint);
    });
    fmt::print("region report (child arrays, strings, identifiers):\n{}", spaces::LiveReport(S.region()));
  } else if constexpr (std::is_same_v<StorageT, BumpStorage>) {
    fmt::print("bump report: {} bytes allocated in {} bytes of slabs (no per-object report: a bump "
               "allocator keeps no record of its objects)\n",
               S.bytesAllocated(), S.totalMemory());
  } else {
    fmt::print("malloc report: {} live allocations (nodes, child arrays, strings), each to be "
               "deleted on its own\n",
               S.live());
  }
}

template <typename StorageT> int run(const Options &O, const SourceFile &Src, Figures &F) {
  F.Mode = StorageT::Name;
  // Parse (the storage's creation included).
  auto T = Clock::now();
  double Cpu = cpuMs();
  long Faults = minorFaults();
  std::optional<StorageT> S(std::in_place);
  Program *Prog;
  {
    Parser<StorageT> P(Src, *S);
    Prog = P.parseProgram();
    F.ParseMs = msSince(T);
    F.ParseCpuMs = cpuMs() - Cpu;
    F.ParseFaults = minorFaults() - Faults;
    if (!Prog) {
      std::fflush(stdout);
      printDiagnostic(stderr, Src, P.diagnostic());
      return abandon(S, nullptr);
    }
  }
  // The pass.
  T = Clock::now();
  Resolver Res;
  bool Ok = Res.run(Prog);
  F.PassMs = msSince(T);
  if (!Ok) {
    std::fflush(stdout);
    printDiagnostic(stderr, Src, Res.diagnostic());
    return abandon(S, Prog);
  }
  // Check: hash every node, evaluate main.
  T = Clock::now();
  TreeHash H = hashProgram(Prog);
  Evaluator Eval(O.MaxSteps);
  Ok = Eval.run(Res.mainFunction(), F.MainValue);
  F.CheckMs = msSince(T);
  if (!Ok) {
    std::fflush(stdout);
    printDiagnostic(stderr, Src, Eval.diagnostic());
    return abandon(S, Prog);
  }
  F.Nodes = H.Nodes;
  F.Steps = Eval.steps();
  F.Checksum = checksum(H.Hash, F.MainValue);
  if (H.Nodes != S->nodesMade() || (O.File.empty() && H.Nodes != O.Nodes)) {
    fmt::print(stderr, "toy_parser: internal error: {} nodes in the tree, {} made, {} requested\n", H.Nodes,
               S->nodesMade(), O.File.empty() ? O.Nodes : H.Nodes);
    abandon(S, Prog);
    return 3;
  }

  if (O.DumpAST) {
    std::string Out;
    dumpProgram(Prog, Out);
    fmt::print("{}; nodes: {}\n; main() = {}\n", Out, F.Nodes, F.MainValue);
  } else if (!O.Json) {
    fmt::print("alloc: {}: {}\n", F.Mode, StorageT::Description);
    fmt::print("nodes: {}\n", F.Nodes);
    fmt::print("checksum: {:#018x} (main() = {}, {} evaluation steps)\n", F.Checksum, F.MainValue, F.Steps);
    fmt::print("pass: resolver resolved {} references in {} functions; its temporaries took {} bytes "
               "(peak footprint) of ScopedRegion 'resolver', destroyed with the pass\n",
               Res.References, Prog->Functions.size(), Res.ScratchPeakBytes);
    printStorageReport(*S);
  }

  // Teardown, in two timed steps; the process statistics in between are not timed.
  F.Held = S->held();
  if constexpr (std::is_same_v<StorageT, RegionStorage> || std::is_same_v<StorageT, PoolStorage>)
    F.AstBytes = F.Held.Footprint;
  else if constexpr (std::is_same_v<StorageT, BumpStorage>)
    F.AstBytes = S->totalMemory();
  std::fflush(stdout);
  F.BeforeTeardown = readMemoryUsage();
  Cpu = cpuMs();
  T = Clock::now();
  S->releaseIdentifiers();
  F.TeardownIdentsMs = msSince(T);
  F.TeardownCpuMs = cpuMs() - Cpu;
  spaces::ProcessStats P1 = spaces::processStats();
  Cpu = cpuMs();
  T = Clock::now();
  S->releaseNodes(Prog);
  F.TeardownNodesMs = msSince(T);
  F.TeardownCpuMs += cpuMs() - Cpu;
  spaces::ProcessStats P2 = spaces::processStats();
  size_t Leaked = leakedObjects(*S);
  S.reset();
  F.AfterTeardown = readMemoryUsage();
  spaces_collect(1);
  F.AfterCollect = readMemoryUsage();
  // VmHWM is only brought up to date when memory is unmapped, not when it is given back with
  // madvise(MADV_DONTNEED), so a late reading can miss the peak: keep the largest reading.
  F.PeakKiB = std::max({F.BeforeTeardown.PeakKiB, F.AfterTeardown.PeakKiB, F.AfterCollect.PeakKiB});

  if (Leaked) {
    fmt::print(stderr, "toy_parser: internal error: {} allocations leaked by the teardown\n", Leaked);
    return 3;
  }
  if (F.Held.Regions) {
    // What the destroy calls gave back, by the process-wide accounting: slabs leave the heaps,
    // large blocks are unmapped or returned to their arenas. A region holds nothing else, so
    // if that equals the footprint the regions had, they hold nothing now.
    long long Released = (long long)(P1.slabs_in_use - P2.slabs_in_use) * 65536 +
                         (long long)(P1.large_bytes - P2.large_bytes);
    F.FootprintAfter = (long long)F.Held.Footprint - Released;
    if (F.FootprintAfter != 0) {
      fmt::print(stderr,
                 "toy_parser: error: the regions held {} bytes before teardown and {} after it "
                 "(slabs in use {} -> {}, large bytes {} -> {})\n",
                 F.Held.Footprint, F.FootprintAfter, P1.slabs_in_use, P2.slabs_in_use, P1.large_bytes,
                 P2.large_bytes);
      return 3;
    }
  }
  return 0;
}

void printFigures(const Options &O, const Figures &F) {
  double Teardown = F.TeardownIdentsMs + F.TeardownNodesMs;
  if (O.ResultLine)
    fmt::print("RESULT name=toy_ast_{} threads={} ops={} seconds={:.6f} checksum={:016x} peak_rss_kib={}\n", F.Mode,
               O.Threads, F.Nodes, (F.ParseMs + F.PassMs + Teardown) / 1000.0, F.Checksum, F.PeakKiB);
  auto KiB = [](size_t K) { return double(K) * 1024.0; };
  if (O.Json) {
    fmt::print("{{\"mode\":\"{}\",\"malloc\":\"{}\",\"source\":\"{}\",\"nodes\":{},\"checksum\":\"{:#018x}\","
               "\"main\":{},\"steps\":{},\"source_bytes\":{},\"generate_ms\":{:.3f},\"parse_ms\":{:.3f},"
               "\"pass_ms\":{:.3f},\"check_ms\":{:.3f},\"teardown_ms\":{:.4f},"
               "\"teardown_identifiers_ms\":{:.4f},\"teardown_nodes_ms\":{:.4f},\"parse_cpu_ms\":{:.3f},"
               "\"teardown_cpu_ms\":{:.4f},\"parse_page_faults\":{},\"ast_bytes\":{},"
               "\"footprint_after_destroy\":{},\"peak_rss_kib\":{},\"rss_before_teardown_kib\":{},"
               "\"rss_after_teardown_kib\":{},\"rss_after_collect_kib\":{}}}\n",
               F.Mode, F.SpacesMalloc ? "spaces" : "glibc", O.File.empty() ? "generated" : "file", F.Nodes,
               F.Checksum, F.MainValue, F.Steps, F.SourceBytes, F.GenerateMs, F.ParseMs, F.PassMs, F.CheckMs,
               Teardown, F.TeardownIdentsMs, F.TeardownNodesMs, F.ParseCpuMs, F.TeardownCpuMs, F.ParseFaults, F.AstBytes,
               F.FootprintAfter < 0 ? std::string("null") : std::to_string(F.FootprintAfter), F.PeakKiB,
               F.BeforeTeardown.RssKiB, F.AfterTeardown.RssKiB, F.AfterCollect.RssKiB);
    return;
  }
  fmt::print("times: parse {:.2f} ms, pass {:.2f} ms, check {:.2f} ms (hash walk + evaluation), "
             "teardown {:.3f} ms\n",
             F.ParseMs, F.PassMs, F.CheckMs, Teardown);
  std::string How;
  if (!std::strcmp(F.Mode, "region") || !std::strcmp(F.Mode, "untracked"))
    How = fmt::format("identifier table {:.3f} ms (its bucket array: the entries die with the region) + one "
                      "spaces_chunk_destroy {:.3f} ms",
                      F.TeardownIdentsMs, F.TeardownNodesMs);
  else if (!std::strcmp(F.Mode, "pool"))
    How = fmt::format("identifier table {:.3f} ms + 15 TypedPool destructors and one spaces_chunk_destroy "
                      "{:.3f} ms",
                      F.TeardownIdentsMs, F.TeardownNodesMs);
  else if (!std::strcmp(F.Mode, "malloc"))
    How = fmt::format("identifier table {:.3f} ms (a free per entry) + a delete per node, array and string "
                      "{:.3f} ms",
                      F.TeardownIdentsMs, F.TeardownNodesMs);
  else
    How = fmt::format("identifier table {:.3f} ms (its bucket array) + ~BumpPtrAllocator {:.3f} ms",
                      F.TeardownIdentsMs, F.TeardownNodesMs);
  fmt::print("teardown: {}\n", How);
  if (F.FootprintAfter >= 0)
    fmt::print("teardown: the regions held {} bytes ({}); after destroy they hold {} bytes\n", F.Held.Footprint,
               mib(double(F.Held.Footprint)), F.FootprintAfter);
  long long Returned = (long long)F.BeforeTeardown.RssKiB - (long long)F.AfterCollect.RssKiB;
  fmt::print("memory: peak RSS {}; RSS {} before teardown, {} right after it, {} after spaces_collect(1): "
             "{} went back to the OS\n",
             mib(KiB(F.PeakKiB)), mib(KiB(F.BeforeTeardown.RssKiB)), mib(KiB(F.AfterTeardown.RssKiB)),
             mib(KiB(F.AfterCollect.RssKiB)), mib(double(Returned) * 1024.0));
}

} // namespace

int main(int Argc, char **Argv) {
  Options O;
  if (!parseOptions(Argc, Argv, O))
    return 2;

  SourceFile Src;
  Figures F;
  if (!O.File.empty()) {
    Src.Name = O.File;
    if (!readFile(O.File, Src.Text))
      return 1;
  } else {
    Src.Name = "<generated>";
    auto T = Clock::now();
    Src.Text = generateProgram(O.Nodes, O.Seed);
    F.GenerateMs = msSince(T);
    if (!O.EmitSource.empty()) {
      std::FILE *Out = O.EmitSource == "-" ? stdout : std::fopen(O.EmitSource.c_str(), "wb");
      if (!Out || std::fwrite(Src.Text.data(), 1, Src.Text.size(), Out) != Src.Text.size() ||
          (Out != stdout && std::fclose(Out) != 0)) {
        fmt::print(stderr, "toy_parser: error: cannot write '{}': {}\n", O.EmitSource, std::strerror(errno));
        return 1;
      }
      return 0;
    }
  }
  F.SourceBytes = Src.Text.size();

  // Which allocator serves plain malloc in this process: Spaces when the override is linked.
  void *Probe = std::malloc(1);
  F.SpacesMalloc = spaces_owns(Probe);
  std::free(Probe);

  if (!O.Json && !O.DumpAST) {
    if (F.SpacesMalloc)
      fmt::print("toy_parser: Spaces {} serves malloc and operator new (spaces::override is linked): the "
                 "whole program's memory, not only the AST's, is Spaces'\n",
                 spaces_version());
    else
      fmt::print("toy_parser: glibc serves malloc and operator new (this binary links spaces::spaces, the "
                 "API only); regions and pools are Spaces {}\n",
                 spaces_version());
    if (O.File.empty())
      fmt::print("source: generated, {} nodes requested, seed {}, {} bytes in {:.1f} ms\n", O.Nodes, O.Seed,
                 F.SourceBytes, F.GenerateMs);
    else
      fmt::print("source: {}, {} bytes\n", O.File, F.SourceBytes);
  }

  int Status;
  if (O.Alloc == "region")
    Status = run<RegionStorage>(O, Src, F);
  else if (O.Alloc == "untracked")
    Status = run<UntrackedStorage>(O, Src, F);
  else if (O.Alloc == "pool")
    Status = run<PoolStorage>(O, Src, F);
  else if (O.Alloc == "malloc")
    Status = run<MallocStorage>(O, Src, F);
  else
    Status = run<BumpStorage>(O, Src, F);
  if (Status == 0 && !O.DumpAST)
    printFigures(O, F);
  return Status;
}
