#!/usr/bin/env bash
# Shared regions against Boost.Interprocess managed_shared_memory: installs the Boost headers if
# missing (Debian libboost-dev), builds the release preset's shared_bench, runs the three cases
# whose figures docs/benchmarks.md reports. Extra arguments go to every run (e.g. --reps 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! dpkg-query -W -f='${Status}' libboost-dev 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libboost-dev
fi
cmake --preset release >/dev/null
cmake --build --preset release --target shared_bench -- --no-print-directory >/dev/null
b=build/release/bench/shared_bench
"$b" --procs 2 --threads 1 "$@"
"$b" --procs 2 --threads 1 --handoff "$@"
"$b" --procs 2 --threads 2 "$@"
"$b" --procs 1 --threads 1 "$@"
