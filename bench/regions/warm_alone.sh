#!/usr/bin/env bash
# Warm times of each reuse case alone in its own process (regions_bench --only CASE --warm):
# no other allocator's memory competes for the caches, which in one shared process moved a
# case's time by up to 5-20 % depending on what ran just before it. The processes are
# interleaved (every case once per pass, the order rotating). Each case's time is the median over
# passes of its process's median round; each ratio (to llvm::BumpPtrAllocator) is the median over
# passes of that pass's ratio, with the quartiles: one process's time moves by up to +-25 % on
# this VM (both allocators alike), so a ratio of two medians of 15 processes still moved by 0.3
# between runs, and the per-pass ratios, taken minutes apart at most, are the steadier figure.
# --noise runs BumpPtrAllocator's two cases twice per pass and reports each against itself: the
# ratio this VM gives two identical processes (the noise floor of the figures above).
# usage: bench/regions/warm_alone.sh [--passes P] [--n N] [--reps R] [--noise] [path/to/regions_bench]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
passes=7 n=1000000 reps=20 noise=0 bin=$root/build/release/bench/regions_bench
while [ $# -gt 0 ]; do
  case $1 in
    --passes) passes=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --noise) noise=1; shift ;;
    *) bin=$1; shift ;;
  esac
done
cases=(region-alloc untracked-alloc bump-alloc region-create untracked-create bump-create)
[ "$noise" = 1 ] && cases=(bump-alloc bump-alloc#2 bump-create bump-create#2)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((p = 0; p < passes; p++)); do
  for ((k = 0; k < ${#cases[@]}; k++)); do
    c=${cases[$(((k + p) % ${#cases[@]}))]}
    "$bin" --only "${c%#2}" --warm --reps "$reps" --n "$n" | awk -v c="$c" -v p="$p" '/warm median/{print p, c, $(NF-1)}' >>"$out"
  done
done
python3 - "$out" "$n" "$passes" "$noise" <<'PY'
import collections, statistics, sys
t = collections.defaultdict(dict)  # case -> pass -> ms
for line in open(sys.argv[1]):
    p, c, ms = line.split()
    t[c][int(p)] = float(ms)
if sys.argv[4] == "1":
    for op in ("alloc", "create"):
        a, b = t[f"bump-{op}#2"], t[f"bump-{op}"]
        r = sorted(a[p] / b[p] for p in a if p in b)
        q = lambda f: r[int(f * (len(r) - 1))]
        print(f"noise floor, BumpPtr {op} against itself: {statistics.median(r):4.2f} ({q(.25):4.2f}-{q(.75):4.2f})")
    sys.exit(0)
print(f"warm, each case alone in its process, N={sys.argv[2]}, {sys.argv[3]} passes: median ms (median ratio to BumpPtr of the passes, quartiles)")
print(f"{'case':10s} {'Region':>28s} {'Untracked':>28s} {'BumpPtr':>10s}")
for op in ("alloc", "create"):
    bump = t["bump-" + op]
    cells = []
    for a in ("region", "untracked"):
        mine = t[f"{a}-{op}"]
        r = sorted(mine[p] / bump[p] for p in mine if p in bump)
        q = lambda f: r[int(f * (len(r) - 1))]
        cells.append(f"{statistics.median(mine.values()):6.3f} ({statistics.median(r):4.2f}, {q(.25):4.2f}-{q(.75):4.2f})")
    print(f"{'Allocate' if op == 'alloc' else 'create':10s} {cells[0]:>28s} {cells[1]:>28s} {statistics.median(bump.values()):10.3f}")
PY
