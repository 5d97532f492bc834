#!/usr/bin/env bash
# Instructions per free() of a 64-byte block, local (the thread that made it) and remote (another
# thread, the owner alive), counted by valgrind's callgrind over free_all() alone (the loop's own
# instructions, about 4, included): bench/micro/remote.c with 1M blocks; and per local free() of a
# 100 000-byte block (a medium class, most blocks past their slab's first granule): every other one
# of 20 000 blocks, counted over free_half(), so that no slab empties and the path is measured alone.
# usage: bench/micro/callgrind_free.sh [NAME=path/to/lib.so ...]   (default: spaces, glibc and the
# Debian jemalloc, tcmalloc, mimalloc)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -pthread "$here/remote.c" -o "$work/remote"
libdir=/usr/lib/x86_64-linux-gnu
declare -a libs=("spaces=$root/build/release/sdk/libspaces.so" "glibc=" "jemalloc=$libdir/libjemalloc.so.2"
                 "tcmalloc=$libdir/libtcmalloc_minimal.so.4" "mimalloc=$libdir/libmimalloc.so.2")
[ $# -gt 0 ] && libs+=("$@")
per_free() {  # lib mode [blocks size] -> instructions per free
  local n=${3:-1000000}
  local fn=free_all counted=$n
  if [ "$2" = half ]; then fn=free_half counted=$((n / 2)); fi
  LD_PRELOAD=$1 valgrind --tool=callgrind --toggle-collect=$fn --callgrind-out-file="$work/out" \
    "$work/remote" "$n" "$2" "${4:-64}" >/dev/null 2>&1
  echo "scale=1; $(awk '/^totals:/{print $2}' "$work/out") / $counted" | bc
}
printf "%-10s %10s %10s %14s\n" allocator local remote "local 100000"
for spec in "${libs[@]}"; do
  name=${spec%%=*}
  lib=${spec#*=}
  if [ -n "$lib" ] && [ ! -f "$lib" ]; then echo "$name: missing $lib" >&2; continue; fi
  printf "%-10s %10s %10s %14s\n" "$name" "$(per_free "$lib" local)" "$(per_free "$lib" remote)" \
    "$(per_free "$lib" half 20000 100000)"
done
