#!/usr/bin/env bash
# Runs vg_planted under valgrind memcheck: each planted error must be reported, the clean run
# must report no error and no leak. usage: run_memcheck.sh /path/to/vg_planted
set -u
bin=$1
pass=0
fail=0
expect() {  # case, regex memcheck's output must match
  local out
  out=$(valgrind --tool=memcheck --leak-check=full --error-exitcode=0 "$bin" "$1" 2>&1)
  if echo "$out" | grep -qE "$2"; then
    echo "ok   $1: reported"
    pass=$((pass + 1))
  else
    echo "FAIL $1: memcheck did not report /$2/"
    echo "$out" | tail -15
    fail=$((fail + 1))
  fi
}
expect use_after_free "Invalid read of size 1"
expect overflow "Invalid write of size 1"
expect leak "definitely lost: 100 bytes in 1 blocks"
expect use_after_destroy "Invalid read of size 1"
expect use_after_reset "Invalid read of size 1"
expect large_use_after_free "Invalid read of size 1"
expect slab_colour "Invalid read of size 1"
out=$(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite "$bin" clean 2>&1)
rc=$?
if echo "$out" | grep -q "ERROR SUMMARY: 0 errors" && [ $rc -eq 0 ]; then
  echo "ok   clean: no error, no leak"
  pass=$((pass + 1))
else
  echo "FAIL clean run (exit $rc)"
  echo "$out" | grep -E "Invalid|uninit|lost|ERROR SUMMARY|at 0x|by 0x" | head -30
  fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
