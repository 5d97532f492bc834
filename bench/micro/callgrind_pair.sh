#!/usr/bin/env bash
# Instructions per same-thread malloc(32)+free pair, and per operator new(32) + operator delete
# pair, plain and sized (C++14 operator delete(p, 32)), counted by valgrind's callgrind
# (repeatable, unlike time): the difference between 1.1M and 0.1M pairs, divided by 1M (the
# loop's own instructions, about 10, included); and per malloc(100000)+free pair (a medium class).
# usage: bench/micro/callgrind_pair.sh [LIB=path ...]   (default: spaces, glibc and the Debian
# jemalloc, tcmalloc, mimalloc); extra allocators as NAME=/path/to/lib.so
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 "$here/pair.c" -o "$work/pair"
c++ -O2 -fsized-deallocation "$here/pair_new.cpp" -o "$work/pair_new"
libdir=/usr/lib/x86_64-linux-gnu
declare -a libs=("spaces=$root/build/release/sdk/libspaces.so" "glibc=" "jemalloc=$libdir/libjemalloc.so.2"
                 "tcmalloc=$libdir/libtcmalloc_minimal.so.4" "mimalloc=$libdir/libmimalloc.so.2")
[ $# -gt 0 ] && libs+=("$@")
count() {  # lib program pairs [mode] -> total instructions
  LD_PRELOAD=$1 valgrind --tool=callgrind --callgrind-out-file="$work/out" "$work/$2" "$3" ${4:-} >/dev/null 2>&1
  awk '/^totals:/{print $2}' "$work/out"
}
per_pair() {  # lib program [mode] -> instructions per pair
  local a b
  a=$(count "$1" "$2" 100000 "${3:-}")
  b=$(count "$1" "$2" 1100000 "${3:-}")
  echo "scale=1; ($b - $a) / 1000000" | bc
}
printf "%-10s %10s %10s %10s %12s\n" allocator malloc+free new+delete "new+sized" "100000 B"
for spec in "${libs[@]}"; do
  name=${spec%%=*}
  lib=${spec#*=}
  if [ -n "$lib" ] && [ ! -f "$lib" ]; then echo "$name: missing $lib" >&2; continue; fi
  printf "%-10s %10s %10s %10s %12s\n" "$name" "$(per_pair "$lib" pair)" "$(per_pair "$lib" pair_new)" \
    "$(per_pair "$lib" pair_new sized)" "$(per_pair "$lib" pair 100000)"
done
