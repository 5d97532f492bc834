#!/usr/bin/env bash
# Instructions per allocation of spaces::Region, tracked and Untracked (Allocate of 8..128 B, create<32-byte node>)
# against llvm::BumpPtrAllocator, counted by valgrind's callgrind (repeatable, unlike time): only
# the allocation loop is counted (--toggle-collect), 1M allocations into one region or allocator,
# page refills included, divided by 1M. The loop's own instructions (the size table load, the
# pointer sum, the loop test, and for Allocate the 8-byte write into the block: about 9) are in
# both columns.
# usage: bench/regions/callgrind_region.sh [path/to/regions_bench]   (default: the release build)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/build/release/bench/regions_bench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
per() {  # case -> instructions per allocation
  valgrind --tool=callgrind --toggle-collect='*onlyLoop*' --callgrind-out-file="$work/out" \
    "$bin" --only "$1" --n 1000000 >/dev/null 2>&1
  echo "scale=1; $(awk '/^totals:/{print $2}' "$work/out") / 1000000" | bc
}
printf "%-16s %10s %10s %10s\n" case Region Untracked BumpPtr
printf "%-16s %10s %10s %10s\n" "Allocate(8..128)" "$(per region-alloc)" "$(per untracked-alloc)" "$(per bump-alloc)"
printf "%-16s %10s %10s %10s\n" "create<Node32>" "$(per region-create)" "$(per untracked-create)" "$(per bump-create)"
