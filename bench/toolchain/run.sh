#!/usr/bin/env bash
# Toolchain binaries on Spaces: compiles real C++ translation units with g++-12 and clang-14 under
# LD_PRELOAD of each allocator and reports compile time and peak RSS, medians of --reps runs
# (interleaved: every allocator once per repetition), as ratios to glibc.
#   TUs: the toy parser's main TU (toy_parser.cpp) (examples/toy_parser) and a heavy LLVM-header TU
#        (bench/toolchain/llvm_heavy.cpp: IR, ADT, Support).
#   usage: bench/toolchain/run.sh [--reps N] [--smoke] [--spaces LIB] [NAME=/path/lib.so ...]
#   (--smoke: one repetition of the LLVM TU at -O0 with g++, glibc and Spaces: the test suite runs
#   it to keep the script working; --spaces: the libspaces.so to test, default the release build.)
# Needs: the release preset built (build/release/sdk/libspaces.so), /usr/bin/time, llvm-14-dev,
# and the Debian allocators (libjemalloc2, libtcmalloc-minimal4, libmimalloc2.0), which it
# installs if missing. Timing is never asserted: this prints a table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
reps=5
smoke=0
extra=()
spaces_lib=$root/build/release/sdk/libspaces.so
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2 ;;
    --smoke) smoke=1; reps=1; shift ;;
    --spaces) spaces_lib=$2; shift 2 ;;
    *=*) extra+=("$1"); shift ;;
    *) echo "usage: $0 [--reps N] [--smoke] [--spaces LIB] [NAME=/path/lib.so ...]" >&2; exit 2 ;;
  esac
done
libdir=/usr/lib/x86_64-linux-gnu
[ -f "$spaces_lib" ] || { echo "build the release preset first ($spaces_lib missing)" >&2; exit 2; }
if [ $smoke = 0 ]; then
  missing=()
  for p in libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 time; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
  allocs=("glibc=" "spaces=$spaces_lib" "jemalloc=$libdir/libjemalloc.so.2"
          "tcmalloc=$libdir/libtcmalloc_minimal.so.4" "mimalloc=$libdir/libmimalloc.so.2" ${extra[@]+"${extra[@]}"})
  compilers=(g++ clang++)
  tus=("toy_parser:$root/examples/toy_parser/toy_parser.cpp" "llvm_heavy:$here/llvm_heavy.cpp")
else
  allocs=("glibc=" "spaces=$spaces_lib")
  compilers=(g++)
  tus=("llvm_heavy:$here/llvm_heavy.cpp")
fi
opt=-O2
[ $smoke = 1 ] && opt=-O0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(-std=c++17 "$opt" -c -I"$root/sdk/include" -I"$root/examples/toy_parser" -isystem /usr/lib/llvm-14/include
       -DLLVM_DISABLE_ABI_BREAKING_CHECKS_ENFORCING=1 -o "$work/out.o")
# one compile: prints "seconds kib"
compile() {  # lib compiler tu
  local lib=$1 cc=$2 tu=$3
  if [ -n "$lib" ]; then
    LD_PRELOAD=$lib /usr/bin/time -f "%e %M" -o "$work/t" "$cc" "${flags[@]}" "$tu" 2>"$work/err" ||
      { cat "$work/err" >&2; return 1; }
  else
    /usr/bin/time -f "%e %M" -o "$work/t" "$cc" "${flags[@]}" "$tu" 2>"$work/err" || { cat "$work/err" >&2; return 1; }
  fi
  tail -1 "$work/t"
}
: > "$work/results"
for ((r = 0; r < reps; r++)); do
  for cc in "${compilers[@]}"; do
    for tu in "${tus[@]}"; do
      for a in "${allocs[@]}"; do
        out=$(compile "${a#*=}" "$cc" "${tu#*:}")
        echo "${tu%%:*} $cc ${a%%=*} $out" >> "$work/results"
      done
    done
  done
done
echo "toolchain: $reps rep(s), medians; ratio = allocator / glibc (time and peak RSS of the compiler process)"
python3 - "$work/results" <<'EOF'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tu, cc, alloc, sec, kib = line.split()
    rows[(tu, cc, alloc)].append((float(sec), int(kib)))
order = []
for k in rows:
    if (k[0], k[1]) not in order:
        order.append((k[0], k[1]))
print(f"| TU | compiler | allocator | time s | time ratio | peak RSS MiB | RSS ratio |")
print(f"|---|---|---|---:|---:|---:|---:|")
for tu, cc in order:
    base = rows[(tu, cc, "glibc")]
    bt = statistics.median(x[0] for x in base)
    bm = statistics.median(x[1] for x in base)
    for (t2, c2, alloc), v in rows.items():
        if (t2, c2) != (tu, cc):
            continue
        t = statistics.median(x[0] for x in v)
        m = statistics.median(x[1] for x in v)
        print(f"| {tu} | {cc} | {alloc} | {t:.2f} | {t / bt:.3f} | {m / 1024:.1f} | {m / bm:.3f} |")
EOF
