#!/usr/bin/env python3
"""Unit tests of the benchmark runner's pure logic (bench/run): parsing, statistics, ranking, the markdown
table and the docs section. Standard library only: python3 bench/test_run.py"""

import importlib.machinery
import importlib.util
import math
import shutil
import struct
import tempfile
import unittest
from pathlib import Path

_path = Path(__file__).resolve().parent / "run"
_loader = importlib.machinery.SourceFileLoader("bench_run", str(_path))
_spec = importlib.util.spec_from_loader("bench_run", _loader)
run = importlib.util.module_from_spec(_spec)
_loader.exec_module(run)


def rec(workload, threads, alloc, seconds, rss=1000, status="ok", checksum="00ab", rep=1, stats=None, error=""):
    return {"workload": workload, "threads": threads, "allocator": alloc, "rep": rep, "status": status,
            "seconds": seconds if status == "ok" else None, "maxrss_kib": rss, "checksum": checksum,
            "stats": stats or {}, "error": error}


class ParseTest(unittest.TestCase):
    def test_result_line(self):
        out = "warming up\nRESULT name=larson threads=2 ops=400 seconds=1.250000 checksum=00ff peak_rss_kib=812\n"
        r = run.parse_result(out)
        self.assertEqual(r["name"], "larson")
        self.assertEqual(r["threads"], 2)
        self.assertEqual(r["ops"], 400)
        self.assertEqual(r["seconds"], 1.25)
        self.assertEqual(r["checksum"], "00ff")
        self.assertEqual(r["peak_rss_kib"], 812)

    def test_last_result_line_wins(self):
        out = "RESULT name=a threads=1 ops=1 seconds=9 checksum=1\nRESULT name=a threads=1 ops=1 seconds=2 checksum=1"
        self.assertEqual(run.parse_result(out)["seconds"], 2.0)

    def test_missing_or_broken_result(self):
        self.assertIsNone(run.parse_result("no result here\n"))
        self.assertIsNone(run.parse_result("RESULT name=x threads=1 ops=1 checksum=1\n"))   # no seconds
        self.assertIsNone(run.parse_result("RESULT name=x seconds=fast\n"))
        self.assertIsNone(run.parse_result(" RESULT name=x seconds=1\n"))   # must start the line

    def test_result_without_rss_is_accepted(self):
        r = run.parse_result("RESULT name=toy threads=1 ops=5 seconds=0.5 checksum=7")
        self.assertNotIn("peak_rss_kib", r)

    def test_stats(self):
        out = "STAT name=leak_growth live_bytes=1000 rss_over_live=1.25\nRESULT name=x seconds=1\n"
        self.assertEqual(run.parse_stats(out), {"live_bytes": 1000.0, "rss_over_live": 1.25})

    def test_threads(self):
        self.assertEqual(run.parse_threads("1,nproc", 2), [1, 2])
        self.assertEqual(run.parse_threads("1,nproc", 1), [1])
        self.assertEqual(run.parse_threads("4, 1,4", 8), [1, 4])
        with self.assertRaises(ValueError):
            run.parse_threads("0", 2)
        with self.assertRaises(ValueError):
            run.parse_threads(",", 2)


class WorkloadTableTest(unittest.TestCase):
    def test_every_entry_has_both_settings(self):
        for name, e in run.WORKLOADS.items():
            self.assertTrue(e["binary"])
            self.assertIsInstance(e["full"], list, name)
            self.assertIsInstance(e["quick"], list, name)
            self.assertNotIn("--smoke", e["full"] + e["quick"], name)
            self.assertNotIn("--threads", e["args"] + e["full"] + e["quick"], name)

    def test_select_by_entry_or_binary_name(self):
        self.assertEqual(run.select_workloads(None), list(run.WORKLOADS))
        self.assertEqual(run.select_workloads("tight"), ["tight_single", "tight_batch"])
        # report order; a binary name selects every entry of that binary
        self.assertEqual(run.select_workloads("xthread,larson"), ["larson", "larson_sized", "xthread"])
        self.assertEqual(run.select_workloads("xthread,larson_sized"), ["larson_sized", "xthread"])
        self.assertEqual(run.select_workloads("tight_batch,tight"), ["tight_single", "tight_batch"])
        with self.assertRaises(ValueError):
            run.select_workloads("nosuch")

    def test_single_threaded_workloads_run_once(self):
        self.assertEqual(run.thread_counts("toy_ast_malloc", [1, 2]), [1])
        self.assertEqual(run.thread_counts("toy_ast_malloc", [4, 16]), [1])
        self.assertEqual(run.thread_counts("larson", [1, 2]), [1, 2])
        singles = [n for n, e in run.WORKLOADS.items() if e.get("single_threaded")]
        self.assertEqual(singles, ["toy_ast_malloc"])

    def test_command(self):
        cmd = run.workload_command("/b/tight", "tight_batch", 2, quick=True)
        self.assertEqual(cmd[:5], ["/b/tight", "--mode", "batch", "--threads", "2"])
        self.assertEqual(cmd[5:], run.WORKLOADS["tight_batch"]["quick"])


class LocateTest(unittest.TestCase):
    def test_spaces_from_build_tree_glibc_without_preload(self):
        with tempfile.TemporaryDirectory() as d:
            build = Path(d)
            found, skipped = run.locate_allocators(["spaces", "glibc"], build)
            self.assertEqual(found, {"glibc": None})
            self.assertIn("spaces", skipped)
            self.assertIn(str(build / run.SPACES_LIB), skipped["spaces"])
            (build / run.SPACES_LIB).parent.mkdir(parents=True)
            (build / run.SPACES_LIB).write_bytes(b"")
            found, skipped = run.locate_allocators(["spaces", "glibc"], build)
            self.assertEqual(found, {"spaces": str(build / run.SPACES_LIB), "glibc": None})
            self.assertEqual(skipped, {})

    def test_missing_system_allocator_is_skipped(self):
        saved = run.ALLOCATORS["mimalloc"]["lib"]
        run.ALLOCATORS["mimalloc"]["lib"] = ["/nonexistent/libmimalloc.so.2"]
        try:
            found, skipped = run.locate_allocators(["glibc", "mimalloc"], Path("/nonexistent"))
        finally:
            run.ALLOCATORS["mimalloc"]["lib"] = saved
        self.assertEqual(list(found), ["glibc"])
        self.assertEqual(skipped, {"mimalloc": "not found at /nonexistent/libmimalloc.so.2"})

    def test_workload_binary_search_order(self):
        with tempfile.TemporaryDirectory() as d:
            build = Path(d)
            self.assertIsNone(run.locate_binary(build, "larson"))
            for pattern in reversed(run.WORKLOAD_BIN):
                p = build / pattern.format(binary="larson")
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text("")
                p.chmod(0o755)
            self.assertEqual(run.locate_binary(build, "larson"), build / run.WORKLOAD_BIN[0].format(binary="larson"))


class StatsTest(unittest.TestCase):
    def test_median(self):
        self.assertEqual(run.median([3, 1, 2]), 2)
        self.assertEqual(run.median([4, 1, 2, 3]), 2.5)

    def test_ratios(self):
        self.assertEqual(run.ratios({"a": 2.0, "b": 1.0, "c": 3.0}), {"a": 2.0, "b": 1.0, "c": 3.0})
        self.assertEqual(run.ratios({}), {})
        r = run.ratios({"a": 0.0, "b": 1.0})
        self.assertEqual(r["a"], 1.0)
        self.assertTrue(math.isinf(r["b"]))

    def test_ranks_with_ties(self):
        self.assertEqual(run.ranks({"a": 1.0, "b": 1.0, "c": 2.0}), {"a": 1, "b": 1, "c": 3})
        self.assertEqual(run.ranks({"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0}), {"a": 4, "b": 2, "c": 2, "d": 1})
        self.assertEqual(run.ranks({"a": 0.1 + 0.2, "b": 0.3}), {"a": 1, "b": 1})   # float noise is a tie

    def test_geomean(self):
        groups = [{"rows": {"a": {"time_ratio": 1.0}, "b": {"time_ratio": 4.0}}},
                  {"rows": {"a": {"time_ratio": 4.0}, "b": {"n_ok": 0}}}]
        gm = run.geomean_ratios(groups, ["a", "b", "c"], "time")
        self.assertAlmostEqual(gm["a"][0], 2.0)
        self.assertEqual(gm["a"][1], 2)
        self.assertEqual(gm["b"], (4.0, 1))
        self.assertNotIn("c", gm)


class SummaryTest(unittest.TestCase):
    ALLOCS = ["spaces", "glibc", "jemalloc"]

    def runs(self):
        return [
            rec("larson", 1, "spaces", 1.0, rss=2000, rep=1), rec("larson", 1, "spaces", 3.0, rss=4000, rep=2),
            rec("larson", 1, "spaces", 2.0, rss=3000, rep=3),
            rec("larson", 1, "glibc", 4.0, rss=1000, rep=1), rec("larson", 1, "glibc", 4.0, rss=1000, rep=2),
            rec("larson", 1, "glibc", 4.0, rss=1000, rep=3),
            rec("larson", 1, "jemalloc", 2.0, rss=1000, rep=1), rec("larson", 1, "jemalloc", 2.0, rss=1000, rep=2),
            rec("larson", 1, "jemalloc", 0, status="failed", error="exit code 3: larson: FAILED", rep=3),
            rec("larson", 2, "spaces", 0, status="failed", error="signal 11"),
            rec("larson", 2, "glibc", 1.5), rec("larson", 2, "jemalloc", 3.0),
        ]

    def test_medians_ratios_ranks_and_ties(self):
        groups = run.summarize(self.runs(), self.ALLOCS)
        self.assertEqual([(g["workload"], g["threads"]) for g in groups], [("larson", 1), ("larson", 2)])
        rows = groups[0]["rows"]
        self.assertEqual(rows["spaces"]["median_s"], 2.0)
        self.assertEqual((rows["spaces"]["min_s"], rows["spaces"]["max_s"]), (1.0, 3.0))
        self.assertEqual(rows["spaces"]["median_rss_kib"], 3000)
        self.assertEqual((rows["spaces"]["min_rss_kib"], rows["spaces"]["max_rss_kib"]), (2000, 4000))
        # spaces and jemalloc tie on median time: both rank 1, glibc is 3rd
        self.assertEqual([rows[a]["time_rank"] for a in self.ALLOCS], [1, 3, 1])
        self.assertEqual([rows[a]["time_ratio"] for a in self.ALLOCS], [1.0, 2.0, 1.0])
        self.assertEqual([rows[a]["rss_rank"] for a in self.ALLOCS], [3, 1, 1])
        self.assertEqual(rows["spaces"]["rss_ratio"], 3.0)

    def test_partly_failed_allocator_uses_its_good_runs(self):
        row = run.summarize(self.runs(), self.ALLOCS)[0]["rows"]["jemalloc"]
        self.assertEqual((row["n_ok"], row["n_failed"]), (2, 1))
        self.assertEqual(row["median_s"], 2.0)
        self.assertEqual(row["errors"], ["exit code 3: larson: FAILED"])

    def test_wholly_failed_allocator_has_no_rank(self):
        rows = run.summarize(self.runs(), self.ALLOCS)[1]["rows"]
        self.assertEqual(rows["spaces"]["n_ok"], 0)
        self.assertNotIn("time_ratio", rows["spaces"])
        self.assertNotIn("time_rank", rows["spaces"])
        self.assertEqual(rows["glibc"]["time_rank"], 1)
        self.assertEqual(rows["jemalloc"]["time_ratio"], 2.0)

    def test_missing_allocator_is_absent(self):
        groups = run.summarize(self.runs(), self.ALLOCS + ["mimalloc"])
        self.assertNotIn("mimalloc", groups[0]["rows"])

    def test_stats_medians(self):
        runs = [rec("leak_growth", 1, "glibc", 1.0, stats={"rss_over_live": r}) for r in (1.2, 1.0, 1.1)]
        row = run.summarize(runs, ["glibc"])[0]["rows"]["glibc"]
        self.assertEqual(row["stats"], {"rss_over_live": 1.1})

    def test_checksum_mismatch_fails_the_odd_run(self):
        runs = [rec("pareto", 1, "glibc", 1.0, checksum="aa"), rec("pareto", 1, "spaces", 1.0, checksum="bb"),
                rec("pareto", 1, "jemalloc", 1.0, checksum="aa"), rec("pareto", 2, "spaces", 1.0, checksum="cc")]
        run.flag_checksum_mismatches(runs)
        self.assertEqual([r["status"] for r in runs], ["ok", "failed", "ok", "ok"])
        self.assertIn("differs", runs[1]["error"])

    def test_checksum_without_glibc_or_majority_is_not_judged(self):
        runs = [rec("pareto", 1, "spaces", 1.0, checksum="aa"), rec("pareto", 1, "jemalloc", 1.0, checksum="bb")]
        run.flag_checksum_mismatches(runs)
        self.assertEqual([r["status"] for r in runs], ["ok", "ok"])


class MarkdownTest(unittest.TestCase):
    def table(self, skipped=None):
        groups = run.summarize(SummaryTest().runs(), SummaryTest.ALLOCS)
        return run.markdown_table(groups, SummaryTest.ALLOCS + ["mimalloc"], skipped)

    def test_shape(self):
        md = self.table()
        lines = md.splitlines()
        header = next(l for l in lines if l.startswith("| workload | threads |"))
        self.assertEqual(header, "| workload | threads | spaces | glibc | jemalloc |")   # mimalloc never ran
        rows = [l for l in lines if l.startswith("| larson |")]
        self.assertEqual(len(rows), 4)   # 2 groups x (time, rss)
        for l in lines:
            if l.startswith("|"):
                self.assertEqual(l.count("|"), header.count("|"), l)

    def test_cells(self):
        md = self.table()
        time_row = next(l for l in md.splitlines() if l.startswith("| larson | 1 |"))
        cells = [c.strip() for c in time_row.strip("|").split("|")]
        self.assertEqual(cells[2], "**1.00** · 2.000 s (1–3) #1")
        self.assertEqual(cells[3], "2.00 · 4.000 s (4) #3")
        self.assertEqual(cells[4], "**1.00** · 2.000 s (2) #1 (1 failed)")
        failed_row = next(l for l in md.splitlines() if l.startswith("| larson | 2 |"))
        self.assertIn("FAILED (1/1)", failed_row)
        self.assertIn("### Failed runs", md)
        self.assertIn("spaces: 1 of 1 runs failed: signal 11", md)

    def test_geomean_row_counts_missing_groups(self):
        md = self.table()
        gm = next(l for l in md.splitlines() if l.startswith("| geometric mean"))
        cells = [c.strip() for c in gm.strip("|").split("|")]
        self.assertEqual(cells[2], "1.00 (1/2)")   # spaces has a ratio in one group of two
        self.assertEqual(cells[3], f"{math.sqrt(2.0 * 1.0):.2f}")

    def test_skipped_allocators_are_named(self):
        md = self.table({"mimalloc": "not found at /usr/lib/x/libmimalloc.so.2"})
        self.assertIn("Skipped allocators: mimalloc (not found at /usr/lib/x/libmimalloc.so.2)", md)

    def test_skipped_workloads_are_named(self):
        md = run.markdown_table([], ["glibc"], None, ["toy_ast"])
        self.assertIn("Skipped workloads (no binary): toy_ast", md)



class ChartTest(unittest.TestCase):
    """The chart data: bars at the median ratio, whiskers over the repetitions, one panel per thread count."""

    def layout(self, field="time"):
        groups = run.summarize(SummaryTest().runs(), SummaryTest.ALLOCS)
        return run.chart_entries(groups, SummaryTest.ALLOCS, field)

    def test_entries(self):
        lay = self.layout()
        self.assertEqual(lay["threads"], [1, 2])
        self.assertEqual(lay["workloads"], ["larson"])
        e = {(x["panel"], SummaryTest.ALLOCS[x["alloc"]]): x for x in lay["entries"]}
        # larson/1t: best median 2.0 s (spaces and jemalloc); spaces ran 1, 2, 3 s
        self.assertEqual((e[0, "spaces"]["median"], e[0, "spaces"]["lo"], e[0, "spaces"]["hi"]), (1.0, 0.5, 1.5))
        self.assertEqual((e[0, "glibc"]["median"], e[0, "glibc"]["lo"], e[0, "glibc"]["hi"]), (2.0, 2.0, 2.0))
        self.assertEqual(e[0, "jemalloc"]["n"], 2)   # its failed run is left out
        # larson/2t: spaces failed; glibc is the best
        self.assertTrue(e[1, "spaces"]["failed"])
        self.assertEqual(e[1, "jemalloc"]["median"], 2.0)
        # bar slots: workload i, allocator j -> i * (allocators + gap) + j, the same in every panel
        self.assertEqual([e[p, a]["y"] for p in (0, 1) for a in SummaryTest.ALLOCS], [0, 1, 2] * 2)

    def test_rss_whiskers(self):
        e = {(x["panel"], SummaryTest.ALLOCS[x["alloc"]]): x for x in self.layout("rss")["entries"]}
        self.assertEqual((e[0, "spaces"]["median"], e[0, "spaces"]["lo"], e[0, "spaces"]["hi"]), (3.0, 2.0, 4.0))

    def test_missing_allocator_has_no_bar(self):
        groups = run.summarize(SummaryTest().runs(), SummaryTest.ALLOCS)
        lay = run.chart_entries(groups, SummaryTest.ALLOCS + ["mimalloc"], "time")
        self.assertNotIn(3, [x["alloc"] for x in lay["entries"]])

    def test_gnuplot_data(self):
        groups = run.summarize(SummaryTest().runs(), SummaryTest.ALLOCS)
        data = run.gnuplot_data(groups, SummaryTest.ALLOCS, "time").splitlines()
        self.assertTrue(data[0].startswith("# panel alloc y median min max"))
        self.assertEqual(data[1], '0 0 0 1.0000 0.5000 1.5000 "larson/1t spaces"')
        self.assertEqual(data[3], '0 2 2 1.0000 1.0000 1.0000 "larson/1t jemalloc"')
        self.assertEqual(data[4], "# larson/2t spaces: every run failed")
        self.assertEqual(data[5], '1 1 1 1.0000 1.0000 1.0000 "larson/2t glibc"')

    def test_log_axis(self):
        self.assertEqual(run.nice_ticks(0.3, 200), [0.5, 1, 2, 5, 10, 20, 50, 100, 200])
        self.assertEqual(run.nice_ticks(0.3, 200, (1,)), [1, 10, 100])
        # from a round value at or below min(0.5, lowest whisker / 1.05), to one above the highest * 1.1
        self.assertEqual(run.chart_range([{"lo": 0.9, "hi": 1.2}]), (0.5, 2))
        self.assertEqual(run.chart_range([{"lo": 0.43, "hi": 150.0}, {"failed": True}]), (0.3, 200))

    def test_script(self):
        lay = self.layout()
        s = run.gnuplot_script(Path("/t/time_ratios.dat"), Path("/t/time_ratios.png"), "pngcairo",
                               SummaryTest.ALLOCS, "time", lay)
        self.assertIn(f"size {run.CHART_WIDTH},", s)
        self.assertIn("set logscale x", s)
        self.assertIn("reverse Left", s)              # legend: swatch, then name
        self.assertIn("with xerrorbars", s)           # min-max whiskers
        self.assertIn("set title '1 thread'", s)
        self.assertIn("set title '2 threads'", s)
        self.assertIn("'spaces: all runs failed'", s)
        for a in SummaryTest.ALLOCS:
            self.assertIn(f"title '{a}'", s)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


class RedrawTest(unittest.TestCase):
    """bench/run --redraw DIR: the charts again from DIR/runs.json, with no build and no runs."""

    def setUp(self):
        self.saved = run.build, run.run_all, run.install_packages
        run.build = run.run_all = run.install_packages = self.fail_call

    def tearDown(self):
        run.build, run.run_all, run.install_packages = self.saved

    def fail_call(self, *args, **kwargs):
        raise AssertionError("--redraw must not build, install or run")

    def test_load_runs_keeps_the_run_order_of_allocators(self):
        with tempfile.TemporaryDirectory() as d:
            meta = {"preload": {"jemalloc": "/x/libjemalloc.so.2", "glibc": None}}
            run.write_runs(Path(d), SummaryTest().runs(), meta)
            runs, meta2, allocs = run.load_runs(Path(d))
        self.assertEqual(len(runs), len(SummaryTest().runs()))
        self.assertEqual(meta2, meta)
        self.assertEqual(allocs, ["jemalloc", "glibc", "spaces"])   # preload order, then any others

    def test_missing_results(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(SystemExit):
                run.main(["--redraw", d])

    @unittest.skipUnless(shutil.which("gnuplot"), "gnuplot is not installed")
    def test_redraw_draws_both_charts(self):
        with tempfile.TemporaryDirectory() as d:
            run.write_runs(Path(d), SummaryTest().runs(), {"preload": {a: None for a in SummaryTest.ALLOCS}})
            self.assertEqual(run.main(["--redraw", d]), 0)
            for name in ("time_ratios.png", "rss_ratios.png"):
                w, h = png_size(Path(d) / name)
                self.assertEqual(w, run.CHART_WIDTH)
                self.assertGreater(h, 200)
            self.assertTrue((Path(d) / "time_ratios.dat").is_file())
            self.assertFalse((Path(d) / "summary.md").exists())   # charts only


class DocsTest(unittest.TestCase):
    def test_replace_between_markers(self):
        doc = "# B\n\nintro\n<!-- bench:begin -->\nold\ntable\n<!-- bench:end -->\n\nafter\n"
        out = run.replace_section(doc, "new\n")
        self.assertEqual(out, "# B\n\nintro\n<!-- bench:begin -->\nnew\n<!-- bench:end -->\n\nafter\n")
        self.assertEqual(run.replace_section(out, "new"), out)   # idempotent

    def test_append_when_markers_missing(self):
        out = run.replace_section("# Benchmarks\n", "t")
        self.assertEqual(out, "# Benchmarks\n\n<!-- bench:begin -->\nt\n<!-- bench:end -->\n")
        self.assertEqual(run.replace_section("", "t"), "<!-- bench:begin -->\nt\n<!-- bench:end -->\n")

    def test_section_content(self):
        meta = {"date": "2024-01-01 10:00", "command": "bench/run --quick", "reps": 2, "quick": True,
                "threads": [1, 2], "machine": {"cpu": "Test CPU", "cores": 2, "kernel": "6.1.0", "os": "Debian",
                                               "memory_gib": 4.0, "allocators": {"glibc": "libc6 2.36"}}}
        s = run.docs_section("| t |", meta, ["figures/bench_time_ratios.png"])
        self.assertIn("Test CPU, 2 logical cores", s)
        self.assertIn("kernel 6.1.0", s)
        self.assertIn("glibc: libc6 2.36", s)
        self.assertIn("`bench/run --quick`", s)
        self.assertIn("| t |", s)
        self.assertIn("![bench time ratios](figures/bench_time_ratios.png)", s)


if __name__ == "__main__":
    unittest.main()
