#!/usr/bin/env bash
# Warm times of each reuse case alone in its own process (regions_bench --only CASE --warm):
# no other allocator's memory competes for the caches, which in one shared process moved a
# case's time by up to 5-20 % depending on what ran just before it. The processes are
# interleaved (every case once per pass, the order rotating), and each case's figure is the
# median over passes of its process's median round; the ratios are to llvm::BumpPtrAllocator.
# usage: bench/regions/warm_alone.sh [--passes P] [--n N] [--reps R] [path/to/regions_bench]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
passes=7 n=1000000 reps=20 bin=$root/build/release/bench/regions_bench
while [ $# -gt 0 ]; do
  case $1 in
    --passes) passes=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    *) bin=$1; shift ;;
  esac
done
cases=(region-alloc untracked-alloc bump-alloc region-create untracked-create bump-create)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((p = 0; p < passes; p++)); do
  for ((k = 0; k < ${#cases[@]}; k++)); do
    c=${cases[$(((k + p) % ${#cases[@]}))]}
    "$bin" --only "$c" --warm --reps "$reps" --n "$n" | awk -v c="$c" '/warm median/{print c, $(NF-1)}' >>"$out"
  done
done
python3 - "$out" "$n" "$passes" <<'PY'
import collections, statistics, sys
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    c, ms = line.split()
    t[c].append(float(ms))
print(f"warm, each case alone in its process, N={sys.argv[2]}, median of {sys.argv[3]} processes (ms; ratio to BumpPtr)")
print(f"{'case':10s} {'Region':>16s} {'Untracked':>16s} {'BumpPtr':>10s}")
for op in ("alloc", "create"):
    b = statistics.median(t["bump-" + op])
    cells = []
    for a in ("region", "untracked"):
        m = statistics.median(t[f"{a}-{op}"])
        cells.append(f"{m:7.3f} ({m / b:4.2f})")
    print(f"{'Allocate' if op == 'alloc' else 'create':10s} {cells[0]:>16s} {cells[1]:>16s} {b:10.3f}")
PY
