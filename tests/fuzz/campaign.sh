#!/usr/bin/env bash
# campaign.sh - a long fuzzing campaign over both targets, on one core, reporting operations run
# and mismatches found.
#
#   tests/fuzz/campaign.sh --minutes M [--out DIR] [--cpu N] [--no-skip-known] [--no-libfuzzer]
#   tests/fuzz/campaign.sh --runs N    [...]
#
# --minutes M   total wall time, shared out: standalone single-stream 55 %, standalone threaded
#               25 %, libFuzzer single-stream 12 %, libFuzzer threaded 8 % (without libFuzzer the
#               standalone targets get it all)
# --runs N      instead: N generated inputs per standalone target and N libFuzzer runs per
#               libFuzzer target
# --out DIR     work directory (default /tmp/spaces-fuzz-campaign): binaries, the growing
#               libFuzzer corpora, logs, and artifacts/ with every failing input
# --cpu N       the core to pin everything to (default 0); all runs are nice -n 19
# --no-skip-known  do not steer around the open bugs of regressions/OPEN_BUGS
# --no-libfuzzer   standalone targets only
#
# The binaries are built here from the sources (g++ or c++ -O2 for the standalone drivers,
# clang++ with -fsanitize=fuzzer,address,undefined for libFuzzer), independent of any CMake build.
# A standalone process stops at its first mismatch (its input is saved in artifacts/); the
# campaign then starts the next seed, so one bug does not end the campaign. Every input that
# ends up in artifacts/ is a bug until shown otherwise: minimise it, give it a name and add it to
# tests/fuzz/regressions/ (ops-* or mt-*), where ctest runs it.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MINUTES=""
RUNS=""
OUT=/tmp/spaces-fuzz-campaign
CPU=0
SKIP=1
LIBFUZZER=1
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --cpu) CPU=$2; shift 2 ;;
    --no-skip-known) SKIP=0; shift ;;
    --no-libfuzzer) LIBFUZZER=0; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$MINUTES" ] && [ -z "$RUNS" ]; then
  echo "give --minutes M or --runs N" >&2
  exit 2
fi

mkdir -p "$OUT/artifacts" "$OUT/logs"
RUN=(nice -n 19)
command -v taskset >/dev/null && RUN=(nice -n 19 taskset -c "$CPU")

# ---- build ----
CXX=${CXX:-$(command -v g++ || command -v c++)}
INC="-I$ROOT/sdk/include"
echo "building standalone drivers with $CXX"
"${RUN[@]}" "$CXX" -std=c++17 -O2 -g -pthread $INC -fno-exceptions -fno-rtti -c "$HERE/core_embed.cpp" -o "$OUT/core.o"
for t in ops mt; do
  "${RUN[@]}" "$CXX" -std=c++17 -O2 -g -pthread $INC "$HERE/fuzz_$t.cpp" "$HERE/standalone_main.cpp" "$OUT/core.o" \
    -o "$OUT/fuzz_${t}_standalone"
done
CLANG=$(command -v clang++ || command -v clang++-14 || true)
if [ "$LIBFUZZER" = 1 ] && [ -n "$CLANG" ]; then
  echo "building libFuzzer targets with $CLANG"
  LF="-std=c++17 -O1 -g -fno-omit-frame-pointer -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
  for t in ops mt; do
    if ! "${RUN[@]}" "$CLANG" $LF $INC "$HERE/fuzz_$t.cpp" "$HERE/core_embed.cpp" -o "$OUT/fuzz_${t}_libfuzzer" 2>"$OUT/logs/build_lf.log"; then
      echo "no libFuzzer (see $OUT/logs/build_lf.log): standalone targets only"
      LIBFUZZER=0
      break
    fi
  done
else
  LIBFUZZER=0
fi

SKIPARG=()
[ "$SKIP" = 1 ] && SKIPARG=(--skip-known)
export FUZZ_SPACES_SKIP_KNOWN=$([ "$SKIP" = 1 ] && echo -1 || echo 0)

TOTAL_OPS=0
TOTAL_RUNS=0
TOTAL_BAD=0
REPORT=""
now() { date +%s; }

# Standalone target $1 for $2 seconds (or RUNS inputs); restarts with the next seed after a
# mismatch or a crash.
standalone() {
  local t=$1 budget=$2 ops=0 runs=0 bad=0 seed=$((1000 + RANDOM)) left end
  end=$(( $(now) + budget ))
  while :; do
    local args=(--seed "$seed" --artifacts "$OUT/artifacts" "${SKIPARG[@]}")
    if [ -n "$RUNS" ]; then
      left=$((RUNS - runs))
      [ "$left" -le 0 ] && break
      args+=(--runs "$left")
    else
      left=$((end - $(now)))
      [ "$left" -le 2 ] && break
      args+=(--seconds "$left")
    fi
    local log="$OUT/logs/${t}_standalone_seed$seed.log"
    set +e
    "${RUN[@]}" "$OUT/fuzz_${t}_standalone" "${args[@]}" >"$log" 2>&1
    local rc=$?
    set -e
    local line
    line=$(grep -E '^ops=' "$log" | tail -1 || true)
    if [ -n "$line" ]; then
      ops=$((ops + $(sed -E 's/.*ops=([0-9]+).*/\1/' <<<"$line")))
      runs=$((runs + $(sed -E 's/.*runs=([0-9]+).*/\1/' <<<"$line")))
    fi
    if [ "$rc" != 0 ]; then
      bad=$((bad + 1))
      echo "  $t standalone seed $seed: exit $rc ($(grep -m1 -E 'MISMATCH|crash|ERROR' "$log" || echo 'see log'))"
      [ -z "$line" ] && runs=$((runs + 1))
    fi
    seed=$((seed + 1))
  done
  TOTAL_OPS=$((TOTAL_OPS + ops)); TOTAL_RUNS=$((TOTAL_RUNS + runs)); TOTAL_BAD=$((TOTAL_BAD + bad))
  REPORT+=$(printf '%-22s ops=%-12s runs=%-9s mismatches=%s' "$t standalone" "$ops" "$runs" "$bad")$'\n'
}

# libFuzzer target $1 for $2 seconds (or RUNS runs); keeps going after a crash (-fork is not used:
# one core), restarting from the grown corpus.
libfuzzer() {
  local t=$1 budget=$2 ops=0 runs=0 bad=0 left end i=0
  end=$(( $(now) + budget ))
  local corpus="$OUT/corpus_$t"
  mkdir -p "$corpus"
  cp -n "$HERE/corpus/$t"/* "$corpus/" 2>/dev/null || true
  while :; do
    local args=(-seed=$((2000 + i)) -max_len=8192 -workers=1 -jobs=1 -artifact_prefix="$OUT/artifacts/${t}-" -print_final_stats=1)
    if [ -n "$RUNS" ]; then
      left=$((RUNS - runs))
      [ "$left" -le 0 ] && break
      args+=(-runs="$left")
    else
      left=$((end - $(now)))
      [ "$left" -le 2 ] && break
      args+=(-max_total_time="$left")
    fi
    local log="$OUT/logs/${t}_libfuzzer_$i.log"
    set +e
    # (-jobs=1 runs the fuzzer in a child that logs to fuzz-0.log in the working directory)
    (cd "$OUT/logs" && "${RUN[@]}" "$OUT/fuzz_${t}_libfuzzer" "${args[@]}" "$corpus") >"$log" 2>&1
    local rc=$?
    set -e
    local n
    n=$(grep -E '^spaces-fuzz: ops=' "$log" | tail -1 | sed -E 's/.*ops=([0-9]+).*/\1/' || true)
    ops=$((ops + ${n:-0}))
    n=$(grep -E 'stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}' || true)
    [ -z "$n" ] && n=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
    runs=$((runs + ${n:-0}))
    if [ "$rc" != 0 ]; then
      bad=$((bad + 1))
      echo "  $t libFuzzer session $i: exit $rc ($(grep -m1 -E 'MISMATCH|ERROR|deadly' "$log" || echo 'see log'))"
      [ -n "$RUNS" ] && [ "${n:-0}" = 0 ] && runs=$((runs + 1))
    fi
    i=$((i + 1))
  done
  TOTAL_OPS=$((TOTAL_OPS + ops)); TOTAL_RUNS=$((TOTAL_RUNS + runs)); TOTAL_BAD=$((TOTAL_BAD + bad))
  REPORT+=$(printf '%-22s ops=%-12s runs=%-9s mismatches=%-3s corpus=%s files' "$t libFuzzer" "$ops" "$runs" "$bad" \
    "$(ls "$corpus" | wc -l)")$'\n'
}

START=$(now)
if [ -n "$MINUTES" ]; then
  S=$((MINUTES * 60))
  if [ "$LIBFUZZER" = 1 ]; then
    standalone ops $((S * 55 / 100)); standalone mt $((S * 25 / 100))
    libfuzzer ops $((S * 12 / 100)); libfuzzer mt $((S * 8 / 100))
  else
    standalone ops $((S * 75 / 100)); standalone mt $((S * 25 / 100))
  fi
else
  standalone ops 0; standalone mt 0
  if [ "$LIBFUZZER" = 1 ]; then libfuzzer ops 0; libfuzzer mt 0; fi
fi

echo
printf '%s' "$REPORT"
echo "total: ops=$TOTAL_OPS runs=$TOTAL_RUNS mismatches=$TOTAL_BAD seconds=$(( $(now) - START ))"
echo "artifacts: $(ls "$OUT/artifacts" | wc -l) in $OUT/artifacts"
[ "$TOTAL_BAD" = 0 ]
