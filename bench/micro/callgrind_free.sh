#!/usr/bin/env bash
# Instructions per free() of a 64-byte block, local (the thread that made it) and remote (another
# thread, the owner alive), counted by valgrind's callgrind over free_all() alone (the loop's own
# instructions, about 4, included): bench/micro/remote.c with 1M blocks.
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
per_free() {  # lib mode -> instructions per free
  LD_PRELOAD=$1 valgrind --tool=callgrind --toggle-collect=free_all --callgrind-out-file="$work/out" \
    "$work/remote" 1000000 "$2" >/dev/null 2>&1
  echo "scale=1; $(awk '/^totals:/{print $2}' "$work/out") / 1000000" | bc
}
printf "%-10s %10s %10s\n" allocator local remote
for spec in "${libs[@]}"; do
  name=${spec%%=*}
  lib=${spec#*=}
  if [ -n "$lib" ] && [ ! -f "$lib" ]; then echo "$name: missing $lib" >&2; continue; fi
  printf "%-10s %10s %10s\n" "$name" "$(per_free "$lib" local)" "$(per_free "$lib" remote)"
done
