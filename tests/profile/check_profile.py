#!/usr/bin/env python3
"""End-to-end test of sampled heap profiling: runs profile_demo (linked with the override) under
SPACES_PROFILE, reads the profiles with google-pprof (Debian's google-perftools) and checks that
each allocation site holds what the program holds, within sampling error, in the whole profile
and split by region; then checks the profile written on a signal and at exit, and that nothing
is written with profiling off.

usage: check_profile.py <profile_demo> [<work dir>]
"""
import glob
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

MIB = 1 << 20
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def pprof(prog, path, *opts):
    """{function: cumulative MiB} from google-pprof --text."""
    r = subprocess.run(["google-pprof", "--text", *opts, prog, path], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        raise SystemExit(f"google-pprof failed on {path}")
    out = {}  # (pprof's --text figures for heap profiles are in MB)
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1].endswith("%") and f[4].endswith("%"):
            out[" ".join(f[5:])] = float(f[3])
    return out


def near(got, want_mib, what, tol=0.25, sample=65536):
    # A sampled estimate of B bytes rests on about B / sample samples: its relative standard
    # deviation is about 1 / sqrt(B / sample), 9 % for 8 MiB at the 64 KiB mean used below. The
    # bound is the larger of `tol` and 4.5 standard deviations, so that a correct profiler fails a
    # check about once in 150 000 (a 25 % bound alone is 2.8 deviations for 8 MiB: with 16 such
    # checks a run failed about once in 20 on a loaded machine).
    if sample and want_mib > 0:
        tol = max(tol, 4.5 / math.sqrt(want_mib * MIB / sample))
    check(abs(got - want_mib) <= tol * want_mib, f"{what}: {got:.1f} MiB, expected {want_mib} +-{int(tol * 100)} %")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    prog = os.path.abspath(sys.argv[1])
    if shutil.which("google-pprof") is None:
        raise SystemExit("google-pprof not found: install Debian's google-perftools (.ci/deps does)")
    work = tempfile.mkdtemp(prefix="spaces_profile_")
    try:
        env = dict(os.environ, SPACES_PROFILE=os.path.join(work, "p"), SPACES_PROFILE_SAMPLE="65536",
                   SPACES_PROFILE_SIGNAL="12")
        explicit = os.path.join(work, "explicit.heap")
        r = subprocess.run([prog, explicit], env=env, capture_output=True, text=True, timeout=300)
        print(r.stdout + r.stderr)
        check(r.returncode == 0 and "active 1" in r.stdout and "done" in r.stdout, "profile_demo ran with profiling on")
        for suffix in ["explicit.heap", "explicit.malloc.heap", "explicit.region.ast.heap", "explicit.region.tmp.heap"]:
            check(os.path.isfile(os.path.join(work, suffix)), f"{suffix} written")
        with open(explicit) as f:
            head = f.readline()
        check(re.match(r"heap profile: +\d+: +\d+ \[ +\d+: +\d+\] @ heap_v2/65536$", head) is not None,
              f"legacy header with the sampling rate: {head.strip()}")

        live = pprof(prog, explicit)
        for fn, mib in [("hold_small", 64), ("hold_pages", 16), ("hold_medium", 16), ("hold_huge", 16),
                        ("hold_remote_in_thread", 16), ("build_ast", 32), ("grow_buffer", 48),
                        ("shrink_buffer", 8)]:
            near(live.get(fn, 0.0), mib, f"in use, {fn}")
        for fn in ["churn", "free_remote_alloc", "fill_tmp"]:
            check(live.get(fn, 0.0) < 1.0, f"in use, {fn} holds nothing: {live.get(fn, 0.0):.1f} MiB")
        total = pprof(prog, explicit, "--alloc_space")
        for fn, mib in [("churn", 64), ("free_remote_alloc", 16), ("fill_tmp", 8), ("hold_small", 64)]:
            near(total.get(fn, 0.0), mib, f"allocated, {fn}")

        ast = pprof(prog, os.path.join(work, "explicit.region.ast.heap"))
        near(ast.get("build_ast", 0.0), 32, "region 'ast' profile, build_ast")
        check(ast.get("hold_small", 0.0) == 0.0, "region 'ast' profile has no malloc site")
        outside = pprof(prog, os.path.join(work, "explicit.malloc.heap"))
        near(outside.get("hold_small", 0.0), 64, "outside-regions profile, hold_small")
        check(outside.get("build_ast", 0.0) == 0.0, "outside-regions profile has no region site")
        tmp = pprof(prog, os.path.join(work, "explicit.region.tmp.heap"), "--alloc_space")
        near(tmp.get("fill_tmp", 0.0), 8, "destroyed region 'tmp', allocated by fill_tmp")

        numbered = sorted(glob.glob(os.path.join(work, "p.*.heap")))
        names = [os.path.basename(n) for n in numbered]
        print("numbered profiles:", names)
        check(len(numbered) >= 2 and re.match(r"p\.\d+\.0001\.heap$", names[0]) is not None,
              "a profile on SPACES_PROFILE_SIGNAL (p.<pid>.0001.heap)")
        if len(numbered) >= 2:
            sig = pprof(prog, [n for n in numbered if n.endswith(".0001.heap")][0])
            near(sig.get("hold_small", 0.0), 64, "signal profile, hold_small")
            last = [n for n in numbered if re.search(r"\.0002\.heap$", n)]
            check(len(last) == 1, "a profile at exit (p.<pid>.0002.heap)")
            if last:
                at_exit = pprof(prog, last[0])
                check(at_exit.get("hold_small", 0.0) < 1.0, "at exit, hold_small's blocks were freed")

        # Stress: every kind of block, threads, realloc, aligned, regions, fork, 1 KiB sampling;
        # everything freed before the dump, so the stress functions hold nothing in it.
        stress = os.path.join(work, "stress.heap")
        env_s = dict(os.environ, SPACES_PROFILE=os.path.join(work, "s"), SPACES_PROFILE_SAMPLE="1024")
        r = subprocess.run([prog, "--stress", stress], env=env_s, capture_output=True, text=True, timeout=600)
        print(r.stdout + r.stderr[-2000:])
        check(r.returncode == 0 and "stress done" in r.stdout, "stress run (exit code %d)" % r.returncode)
        if os.path.isfile(stress):
            live = pprof(prog, stress)
            total = pprof(prog, stress, "--alloc_space")
            for fn in ["stress_alloc", "stress_thread", "stress_regions"]:
                check(total.get(fn, 0.0) > 1.0, f"stress: {fn} allocated {total.get(fn, 0.0):.1f} MiB (sampled)")
                check(live.get(fn, 0.0) == 0.0, f"stress: {fn} holds nothing after its frees: {live.get(fn, 0.0):.1f} MiB")

        # Edge cases (an independent review's): a handler that allocates, called for a double
        # free of a sampled block (every block sampled: a report under the profiler's lock would
        # hang); a recycled region struct under another, long name; a path too long.
        edge = os.path.join(work, "edge")
        os.mkdir(edge)
        env_e = dict(os.environ, SPACES_PROFILE=os.path.join(edge, "e"), SPACES_PROFILE_SAMPLE="1")
        try:
            r = subprocess.run([prog, "--edge", edge], env=env_e, capture_output=True, text=True, timeout=120)
            out = r.stdout
        except subprocess.TimeoutExpired:
            out, r = "", None
        print(out)
        check(r is not None, "edge: no hang (a double free reported to an allocating handler while sampling)")
        check("reports 1" in out, "edge: the double free of a sampled block is reported once")
        check("long path: -1 ENAMETOOLONG" in out, "edge: a dump path too long fails with ENAMETOOLONG")
        check("edge done" in out, "edge run completed")
        long_name = "beta_region_with_a_name_longer_than_thirty_two_characters"
        beta = os.path.join(edge, "edge.region." + long_name + ".heap")
        check(os.path.isfile(beta), "edge: the long-named region has its own profile")
        if os.path.isfile(beta):
            b = pprof(prog, beta)
            near(b.get("beta_site", 0.0), 8192 * 64 / MIB, "edge: region beta's profile, beta_site", tol=0.02, sample=1)
            check(b.get("alpha_site", 0.0) == 0.0, "edge: no sample of destroyed region alpha in beta's profile")
        # "a b" and "a_b" (the first changed to a file name, so with a hash of it): a file each
        underscored = os.path.join(edge, "edge.region.a_b.heap")
        spaced = [n for n in os.listdir(edge) if re.fullmatch(r"edge\.region\.a_b~[0-9a-f]{8}\.heap", n)]
        check(os.path.isfile(underscored) and len(spaced) == 1,
              "edge: regions 'a b' and 'a_b' have a profile each (%s)" % sorted(os.listdir(edge)))
        if os.path.isfile(underscored) and len(spaced) == 1:
            u = pprof(prog, underscored)
            sp = pprof(prog, os.path.join(edge, spaced[0]))
            near(u.get("underscored_site", 0.0), 3.0, "edge: region a_b's profile, underscored_site", tol=0.02, sample=1)
            near(sp.get("spaced_site", 0.0), 10.0, "edge: region 'a b''s profile, spaced_site", tol=0.02, sample=1)
            check(u.get("spaced_site", 0.0) == 0.0, "edge: no sample of 'a b' in a_b's profile")
        alpha = os.path.join(edge, "edge.region.alpha.heap")
        if os.path.isfile(alpha):
            a = pprof(prog, alpha)
            check(a.get("alpha_site", 0.0) == 0.0 and a.get("beta_site", 0.0) == 0.0,
                  "edge: alpha's profile holds nothing in use (alpha destroyed, beta's samples are beta's)")

        # Off: nothing sampled, nothing written, spaces_profile_dump refuses.
        off = os.path.join(work, "off")
        os.mkdir(off)
        env_off = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
        r = subprocess.run([prog, os.path.join(off, "x.heap")], env=env_off, capture_output=True, text=True, timeout=300)
        check(r.returncode == 0 and "active 0" in r.stdout and "Invalid argument" in r.stderr,
              "profiling off: inactive, spaces_profile_dump says EINVAL")
        check(os.listdir(off) == [], "profiling off: no file written")
    finally:
        if failures:
            print("work dir kept:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all profile checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
