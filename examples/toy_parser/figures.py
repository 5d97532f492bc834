#!/usr/bin/env python3
"""figures.py - the toy parser's figures for docs/benchmarks.md, from one run.

Runs `toy_parser --nodes N --alloc MODE --json` for every mode in both binaries (toy_parser:
malloc is Spaces'; toy_parser_glibc: malloc is glibc's), interleaved, --runs times each, and
prints a markdown table of the medians: build (parse) time, teardown time and peak RSS, each
also as a ratio to bump in the same binary, followed by the ratios the issue asks about.

usage: examples/toy_parser/figures.py [--build-dir build/release] [--nodes 1000000] [--runs 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

MODES = ["region", "untracked", "pool", "malloc", "bump"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--nodes", type=int, default=1000000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    exe_dir = os.path.join(a.build_dir, "examples", "toy_parser")
    binaries = {"spaces": os.path.join(exe_dir, "toy_parser"), "glibc": os.path.join(exe_dir, "toy_parser_glibc")}

    load_before = os.getloadavg()[0]
    results = {}  # (malloc, mode) -> [figures]
    for run in range(a.runs):
        for malloc, exe in binaries.items():
            for mode in MODES:
                out = subprocess.run([exe, "--nodes", str(a.nodes), "--alloc", mode, "--json"],
                                     check=True, capture_output=True, text=True).stdout
                d = json.loads(out)
                assert d["malloc"] == malloc, (exe, d["malloc"])
                results.setdefault((malloc, mode), []).append(d)
    load_after = os.getloadavg()[0]

    checksums = {d["checksum"] for ds in results.values() for d in ds}
    if len(checksums) != 1:
        sys.exit("checksums differ: %s" % checksums)

    def med(malloc, mode, key):
        return statistics.median(d[key] for d in results[(malloc, mode)])

    print("toy_parser --nodes %d, %d runs per row (median), load average %.2f before, %.2f after; "
          "checksum %s in every run" % (a.nodes, a.runs, load_before, load_after, checksums.pop()))
    print()
    print("| binary (malloc) | mode | build (parse) | teardown | peak RSS | build / bump | teardown / bump "
          "| peak RSS / bump | page faults in build |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for malloc in binaries:
        b_build = med(malloc, "bump", "parse_ms")
        b_tear = med(malloc, "bump", "teardown_ms")
        b_rss = med(malloc, "bump", "peak_rss_kib")
        for mode in MODES:
            build, tear, rss, faults = (med(malloc, mode, k)
                                        for k in ("parse_ms", "teardown_ms", "peak_rss_kib", "parse_page_faults"))
            name = "toy_parser (Spaces)" if malloc == "spaces" else "toy_parser_glibc (glibc)"
            print("| %s | %s | %.1f ms | %.3f ms | %.1f MiB | %.2f | %.2f | %.2f | %d |" % (
                name, mode, build, tear, rss / 1024, build / b_build, tear / b_tear, rss / b_rss, faults))
    print()

    def ratio(num, den, key):
        return med(*num, key) / med(*den, key)

    print("Bars:")
    for mode in ("region", "untracked", "pool"):
        print("- %s build / bump build: %.3f (both in toy_parser), %.3f (both in toy_parser_glibc); bar <= 1.15" % (
            mode, ratio(("spaces", mode), ("spaces", "bump"), "parse_ms"),
            ratio(("glibc", mode), ("glibc", "bump"), "parse_ms")))
        print("- malloc build under glibc / %s build: %.3f (%s in toy_parser_glibc), %.3f (%s in toy_parser); "
              "bar >= 1.5" % (mode, ratio(("glibc", "malloc"), ("glibc", mode), "parse_ms"), mode,
                              ratio(("glibc", "malloc"), ("spaces", mode), "parse_ms"), mode))
    print("- per-node delete teardown / region teardown: %.0fx (glibc delete), %.0fx (Spaces delete); bar >= 20" % (
        ratio(("glibc", "malloc"), ("glibc", "region"), "teardown_ms"),
        ratio(("spaces", "malloc"), ("spaces", "region"), "teardown_ms")))
    for malloc in binaries:
        d = results[(malloc, "region")]
        before = statistics.median(x["rss_before_teardown_kib"] for x in d)
        after = statistics.median(x["rss_after_teardown_kib"] for x in d)
        collected = statistics.median(x["rss_after_collect_kib"] for x in d)
        ast = statistics.median(x["ast_bytes"] for x in d)
        print("- region teardown (%s malloc): the region held %.1f MiB; RSS %.1f MiB before teardown, %.1f MiB "
              "right after the destroy, %.1f MiB after spaces_collect(1): %.1f MiB back to the OS" % (
                  malloc, ast / 2**20, before / 1024, after / 1024, collected / 1024, (before - collected) / 1024))


if __name__ == "__main__":
    main()
