#!/usr/bin/env bash
# mutation_check.sh - shows that the fuzzers catch bugs planted on purpose. Each mutant is a
# scratch copy of sdk/ and tests/fuzz/ (default under /tmp/spaces-mutants; the source tree is never
# touched) with one bug planted by an exact text substitution; the standalone driver is built
# against it and run over generated inputs until the first mismatch or crash. The run count
# printed is the 1-based index of the first failing generated input for that seed, so a result
# is reproducible with: <mutant>/fuzz_<target> --skip-known --seed S --runs N
#
#   tests/fuzz/mutation_check.sh [--out DIR] [--seeds "1 2 3"] [--max-runs N] [--cpus LIST] [MUTANT...]
#
# --cpus LIST  cores for taskset (default 0: one core); the race mutants are found far sooner with
#              two (0,1), since one core only interleaves threads at preemption points
# Mutants: size_class_off_by_one lost_remote_free ceiling_race walk_skips_last realloc_copy_short
#          untracked_page_reused
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=/tmp/spaces-mutants
SEEDS="1 2 3"
MAX_RUNS=20000
CPUS=0
MUTANTS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --max-runs) MAX_RUNS=$2; shift 2 ;;
    --cpus) CPUS=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) MUTANTS+=("$1"); shift ;;
  esac
done
[ ${#MUTANTS[@]} = 0 ] && MUTANTS=(size_class_off_by_one lost_remote_free ceiling_race walk_skips_last realloc_copy_short
                                    untracked_page_reused)
RUN=(nice -n 19)
command -v taskset >/dev/null && RUN=(nice -n 19 taskset -c "$CPUS")
CXX=${CXX:-$(command -v g++ || command -v c++)}

# plant NAME: prints the target that should catch it, edits $DIR/sdk/src.
plant() {
  local name=$1 dir=$2
  python3 - "$name" "$dir/sdk/src" <<'PY'
import sys
name, src = sys.argv[1], sys.argv[2]
def sub(path, old, new):
    p = f"{src}/{path}"
    s = open(p).read()
    assert s.count(old) == 1, (path, old)
    open(p, "w").write(s.replace(old, new))
if name == "size_class_off_by_one":
    # class_of rounds (size + 6) / 8: a size just above a class boundary (8k + 1) gets the class
    # below it, one byte too small. The malloc fast path indexes direct[] itself, so only the
    # slow paths (a refill, aligned and region allocations) are affected.
    sub("internal.h", "return g_classes.of[(size + 7) >> 3];", "return g_classes.of[(size + 6) >> 3];")
elif name == "lost_remote_free":
    # The owner takes the remote-free stack with a load and a store instead of one CAS: a block
    # another thread pushes in between is lost (never reusable, still counted as live).
    sub("slab.cpp", """  uintptr_t tf = s->thread_free.load(std::memory_order_relaxed);
  do {
    if (tf_ptr(tf) == base) return 0;
  } while (!s->thread_free.compare_exchange_weak(tf, base | (tf & kStateMask), std::memory_order_acquire,
                                                 std::memory_order_relaxed));""",
        """  uintptr_t tf = s->thread_free.load(std::memory_order_acquire);
  if (tf_ptr(tf) == base) return 0;
  s->thread_free.store(base | (tf & kStateMask), std::memory_order_relaxed);""")
elif name == "ceiling_race":
    # Large blocks of a shared region are allocated without the region lock ("they only need
    # large_lock"), and chunk_reserve tests the ceiling, then adds: two racing reservations both
    # pass the test and the footprint overshoots the ceiling.
    sub("chunk.cpp", """  for (int attempt = 0;; attempt++) {
    AllocSide side(c);""", """  if (size > kSmallMax && align <= 16 && !(c->flags & SPACES_CHUNK_EXCLUSIVE)) {
    bool outer = t_chunk_alloc;
    t_chunk_alloc = true;
    void* p = large_alloc(size, 0, zero, c);
    t_chunk_alloc = outer;
    if (p != nullptr) return p;
  }
  for (int attempt = 0;; attempt++) {
    AllocSide side(c);""")
    sub("chunk.cpp", """  size_t cur = c->footprint.load(std::memory_order_relaxed);
  for (;;) {
    size_t ceil = c->ceiling.load(std::memory_order_relaxed);
    if (ceil != 0 && (cur + bytes > ceil || cur + bytes < cur)) {
      c->ceiling_blocked = true;
      return false;
    }
    if (c->footprint.compare_exchange_weak(cur, cur + bytes, std::memory_order_relaxed)) break;
  }""", """  size_t cur = c->footprint.load(std::memory_order_relaxed);
  size_t ceil = c->ceiling.load(std::memory_order_relaxed);
  if (ceil != 0 && (cur + bytes > ceil || cur + bytes < cur)) {
    c->ceiling_blocked = true;
    return false;
  }
  cur = c->footprint.fetch_add(bytes, std::memory_order_relaxed);""")
elif name == "walk_skips_last":
    # The walk stops one slot early: the last block carved in each slab is never visited.
    sub("chunk.cpp", "for (uintptr_t i = 0; i < carved; i++) {", "for (uintptr_t i = 0; i + 1 < carved; i++) {")
elif name == "realloc_copy_short":
    # realloc of a thread-heap small block copies one byte less than it keeps.
    sub("alloc.cpp", "copy_block(n, p, size < usable ? size : usable);",
        "copy_block(n, p, (size < usable ? size : usable) - 1);")
elif name == "untracked_page_reused":
    # Sealing an untracked region's page counts nothing carved in it, so the page looks empty and
    # is started over while its blocks are live (their frees are no-ops, never counted back).
    sub("chunk.cpp", "  uint64_t add = (n << 32) + (top - (base + kBumpFirst));",
        "  uint64_t add = untracked ? 0 : (n << 32) + (top - (base + kBumpFirst));")
else:
    sys.exit(f"unknown mutant {name}")
PY
}

target_of() {
  case "$1" in
    lost_remote_free|ceiling_race) echo mt ;;
    *) echo ops ;;
  esac
}

printf '%-24s %-7s %s\n' mutant target "runs to detection (per seed; - = not found in $MAX_RUNS runs)"
for m in "${MUTANTS[@]}"; do
  dir="$OUT/$m"
  rm -rf "$dir"
  mkdir -p "$dir/tests"
  cp -r "$ROOT/sdk" "$dir/sdk"
  cp -r "$HERE" "$dir/tests/fuzz"
  plant "$m" "$dir"
  t=$(target_of "$m")
  "${RUN[@]}" "$CXX" -std=c++17 -O2 -g -pthread -I"$dir/sdk/include" -fno-exceptions -fno-rtti \
    -c "$dir/tests/fuzz/core_embed.cpp" -o "$dir/core.o"
  "${RUN[@]}" "$CXX" -std=c++17 -O2 -g -pthread -I"$dir/sdk/include" "$dir/tests/fuzz/fuzz_$t.cpp" \
    "$dir/tests/fuzz/standalone_main.cpp" "$dir/core.o" -o "$dir/fuzz_$t"
  results=""
  for s in $SEEDS; do
    log="$dir/seed$s.log"
    set +e
    (cd "$dir" && "${RUN[@]}" "./fuzz_$t" --skip-known --seed "$s" --runs "$MAX_RUNS" >"$log" 2>&1)
    set -e
    k=$(grep -oE 'generated input [0-9]+|mismatch-seed[0-9]+-run[0-9]+' "$log" | head -1 | grep -oE '[0-9]+$' || true)
    if [ -n "$k" ]; then
      results+="seed $s: $((k + 1)) ($(grep -m1 -oE 'MISMATCH[^:]*: .{0,90}|crash' "$log" | head -1)); "
    else
      results+="seed $s: - ; "
    fi
  done
  printf '%-24s %-7s %s\n' "$m" "$t" "$results"
done
