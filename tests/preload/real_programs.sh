#!/usr/bin/env bash
# Runs real programs with and without LD_PRELOAD=libspaces.so and requires identical output.
# Each program must also show that Spaces was really loaded (SPACES_VERBOSE prints its banner).
# usage: real_programs.sh /path/to/libspaces.so WORKDIR
set -u
lib=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
cd "$work" || exit 1
pass=0
fail=0

run_case() {  # name, then the command
  local name=$1
  shift
  "$@" >glibc.out 2>glibc.err
  local rc_glibc=$?
  LD_PRELOAD="$lib" "$@" >spaces.out 2>spaces.err
  local rc_spaces=$?
  if [ $rc_glibc -ne $rc_spaces ] || ! cmp -s glibc.out spaces.out; then
    echo "FAIL $name: exit $rc_glibc vs $rc_spaces or output differs"
    diff glibc.out spaces.out | head -5
    head -5 spaces.err
    fail=$((fail + 1))
    return
  fi
  if ! SPACES_VERBOSE=1 LD_PRELOAD="$lib" "$@" 2>&1 >/dev/null | grep -q "spaces: version"; then
    echo "FAIL $name: Spaces was not loaded"
    fail=$((fail + 1))
    return
  fi
  echo "ok   $name ($(wc -c <spaces.out) bytes of identical output)"
  pass=$((pass + 1))
}

py=$(command -v python3)
if [ -n "$py" ]; then
  cat >alloc_heavy.py <<'PY'
import random, json
random.seed(7)
d = {}
for i in range(300000):
    k = "k%d" % random.randrange(50000)
    d[k] = [random.random() for _ in range(random.randrange(8))] + ["x" * random.randrange(300)]
    if i % 3 == 0:
        d.pop("k%d" % random.randrange(50000), None)
s = json.dumps(d, sort_keys=True)
t = json.loads(s)
print(len(s), len(t), sum(len(v) for v in t.values()))
print(sorted(t)[:5])
PY
  run_case "python3 allocation-heavy script" "$py" alloc_heavy.py
fi

if command -v g++ >/dev/null; then
  cat >prog.cpp <<'CPP'
#include <map>
#include <string>
#include <vector>
#include <iostream>
#include <algorithm>
template <int N> struct Fib { static constexpr long v = Fib<N - 1>::v + Fib<N - 2>::v; };
template <> struct Fib<0> { static constexpr long v = 0; };
template <> struct Fib<1> { static constexpr long v = 1; };
int main() {
  std::map<std::string, std::vector<int>> m;
  for (int i = 0; i < 1000; i++) m["k" + std::to_string(i % 97)].push_back(i);
  std::cout << m.size() << " " << Fib<60>::v << "\n";
}
CPP
  run_case "g++ compiling a file" g++ -O2 -std=c++17 -c prog.cpp -o /dev/stdout
fi

if command -v git >/dev/null; then
  rm -rf repo && mkdir repo && (cd repo && git init -q && for i in $(seq 1 200); do echo "line $i" >>f$((i % 17)).txt; done)
  export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
  export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t
  (cd repo && git add -A && git commit -qm init)
  run_case "git log/diff/gc on a repository" bash -c 'cd repo && git log --stat && git diff HEAD~0 --stat && git count-objects -v | grep -v size'
fi

if command -v sqlite3 >/dev/null; then
  cat >q.sql <<'SQL'
create table t(a integer primary key, b text, c real);
with recursive n(x) as (select 1 union all select x + 1 from n where x < 200000)
insert into t select x, printf('row %d %d', x, (x * 7919) % 10007), x * 0.5 from n;
create index tb on t(b);
select count(*), sum(c), min(b), max(b) from t;
select b from t where a % 9973 = 0 order by b;
SQL
  run_case "sqlite3 building and querying a 200k-row table" sqlite3 :memory: ".read q.sql"
fi

seq 1 400000 | awk '{ print ($1 * 7919) % 100003, "line", $1 }' >big.txt
run_case "sort of a large file" sort big.txt
run_case "sort -n of a large file" sort -n -k1,1 big.txt

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
