#!/usr/bin/env python3
"""Parses spaces_stats_print_json (schema 1, docs/debugging.md) from stats_json_dump: every
documented key is there with the right type, and the figures match the heap the program built;
then the same at exit with SPACES_SHOW_STATS=json."""
import json
import os
import subprocess
import sys

dump = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


PROCESS_KEYS = ["reserved_bytes", "committed_bytes", "peak_committed_bytes", "arenas",
                "arena_granules_in_use", "granules_cached", "granules_cached_in_heaps", "live_bytes", "live_blocks",
                "free_slots", "free_slot_bytes", "large_blocks", "large_bytes", "huge_blocks",
                "huge_bytes", "purges", "mmap_calls"]


def check_schema(d):
    check(d.get("schema") == 1, "schema is 1")
    check(isinstance(d.get("version"), str), "version is a string")
    p = d.get("process", {})
    for k in PROCESS_KEYS:
        check(isinstance(p.get(k), int) and p[k] >= 0, "process.%s is a non-negative integer" % k)
    t = d.get("heaps", {}).get("thread", {})
    for k in ["created", "abandoned", "threads_started", "slabs_in_use"]:
        check(isinstance(t.get(k), int), "heaps.thread.%s" % k)
    r = d.get("heaps", {}).get("regions", {})
    for k in ["live", "footprint_bytes"]:
        check(isinstance(r.get(k), int), "heaps.regions.%s" % k)
    classes = d.get("size_classes")
    check(isinstance(classes, list) and classes, "size_classes is a non-empty list")
    sizes = [c.get("size") for c in classes or []]
    check(sizes == sorted(sizes), "size_classes in increasing size")
    for c in classes or []:
        for k in ["size", "slabs", "live_blocks", "live_bytes", "free_slots"]:
            check(isinstance(c.get(k), int), "size_classes[].%s" % k)
        check(c.get("live_bytes") == c.get("live_blocks", 0) * c.get("size", 0), "live_bytes = blocks * size")
    check(isinstance(d.get("regions"), list), "regions is a list")
    for reg in d.get("regions", []):
        check(reg.get("name") is None or isinstance(reg.get("name"), str), "regions[].name")
        check(isinstance(reg.get("exclusive"), bool), "regions[].exclusive")
        check(isinstance(reg.get("untracked"), bool), "regions[].untracked")
        for k in ["footprint_bytes", "peak_footprint_bytes", "ceiling_bytes", "ceiling_hits"]:
            check(isinstance(reg.get(k), int), "regions[].%s" % k)
    check(d.get("regions_omitted") == 0, "regions_omitted")
    opts = d.get("options", {})
    for k in ["purge_delay_ms", "dirty_max_kib", "show_stats", "chunk_huge_pages"]:
        check(isinstance(opts.get(k), int), "options.%s" % k)


out = subprocess.run([dump], capture_output=True, text=True, check=True).stdout
d = json.loads(out)
check_schema(d)
p = d["process"]
check(p["live_bytes"] >= 5000 * 100, "live_bytes counts the 5000 mallocs")
c112 = [c for c in d["size_classes"] if c["size"] == 112]
check(c112 and c112[0]["live_blocks"] >= 5000, "the 112-byte class holds the 5000 blocks")
by_name = {r["name"]: r for r in d["regions"]}
ast = by_name.get("ast")
check(ast is not None, "the Region named ast is listed")
if ast:
    check(ast["exclusive"] is True, "ast is exclusive")
    check(ast["ceiling_bytes"] == 1 << 20, "ast's ceiling")
    check(0 < ast["footprint_bytes"] <= 1 << 20, "ast's footprint")
odd = by_name.get('we"ird\\name\n')
check(odd is not None and odd["exclusive"] is False, "a name with a quote, a backslash and a newline round-trips")
check(d["heaps"]["regions"]["live"] >= 2, "two live regions")

env = dict(os.environ, SPACES_SHOW_STATS="json")
err = subprocess.run([dump, "--quiet"], capture_output=True, text=True, check=True, env=env).stderr
lines = [line for line in err.splitlines() if line.startswith("{")]
check(len(lines) == 1, "SPACES_SHOW_STATS=json prints one JSON object at exit")
if lines:
    e = json.loads(lines[0])
    check_schema(e)
    check(e["options"]["show_stats"] == 2, "show_stats is 2")
    check(any(r["name"] == "kept" for r in e["regions"]), "a region alive at exit is listed")

for f in failures:
    print("FAIL:", f)
print("%d checks failed" % len(failures))
sys.exit(1 if failures else 0)
