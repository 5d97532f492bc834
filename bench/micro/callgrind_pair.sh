#!/usr/bin/env bash
# Instructions per same-thread malloc(32)+free pair, counted by valgrind's callgrind (repeatable,
# unlike time): the difference between 1.1M and 0.1M pairs, divided by 1M, minus the loop's own
# instructions (counted with a no-op allocator-free run of the same loop shape: reported apart).
# usage: bench/micro/callgrind_pair.sh [LIB=path ...]   (default: spaces, glibc and the Debian
# jemalloc, tcmalloc, mimalloc); extra allocators as NAME=/path/to/lib.so
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 "$here/pair.c" -o "$work/pair"
libdir=/usr/lib/x86_64-linux-gnu
declare -a libs=("spaces=$root/build/release/sdk/libspaces.so" "glibc=" "jemalloc=$libdir/libjemalloc.so.2"
                 "tcmalloc=$libdir/libtcmalloc_minimal.so.4" "mimalloc=$libdir/libmimalloc.so.2")
[ $# -gt 0 ] && libs+=("$@")
count() {  # lib pairs -> total instructions
  LD_PRELOAD=$1 valgrind --tool=callgrind --callgrind-out-file="$work/out" "$work/pair" "$2" >/dev/null 2>&1
  awk '/^totals:/{print $2}' "$work/out"
}
printf "%-10s %s\n" allocator "instructions per malloc(32)+free pair (loop included: about 10)"
for spec in "${libs[@]}"; do
  name=${spec%%=*}
  lib=${spec#*=}
  if [ -n "$lib" ] && [ ! -f "$lib" ]; then echo "$name: missing $lib" >&2; continue; fi
  a=$(count "$lib" 100000)
  b=$(count "$lib" 1100000)
  printf "%-10s %s\n" "$name" "$(echo "scale=1; ($b - $a) / 1000000" | bc)"
done
