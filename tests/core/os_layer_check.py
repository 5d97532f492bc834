#!/usr/bin/env python3
"""The OS layer is a layer (docs/design.md): no file of sdk/src but os.cpp/os.h names a system call
or a libc runtime hook, and os.cpp compiles alone, knowing no allocator type.

usage: os_layer_check.py <repository root> <c++ compiler>
Fails (exit 1) naming each file:line that calls one of FORBIDDEN outside the OS layer.
"""
import pathlib
import re
import subprocess
import sys
import tempfile

FORBIDDEN = """mmap munmap mremap madvise mprotect shm_open shm_unlink open openat close read write pread
pwrite fstat stat lstat fchmod ftruncate fallocate fcntl ioctl dup dup2 usleep nanosleep sleep
sched_yield sched_getaffinity getpid gettid geteuid getuid syscall kill raise sigaction signal
pthread_atfork pthread_key_create pthread_setspecific pthread_getspecific pthread_create
pthread_self atexit getenv secure_getenv clock_gettime gettimeofday dl_iterate_phdr dladdr
_Unwind_Backtrace getauxval __builtin_ia32_pause __register_atfork __get_cpuid __cpuid_count""".split()
CALL = re.compile(r"(?<![\w.>])(?<!void )(?<!bool )(?<!int )\b(" + "|".join(map(re.escape, FORBIDDEN)) + r")\s*\(")


def strip(text):
    """Blanks comments and string/char literals, keeping line numbers."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def main():
    root = pathlib.Path(sys.argv[1]).resolve()
    cxx = sys.argv[2] if len(sys.argv) > 2 else "c++"
    src = root / "sdk" / "src"
    bad = []
    for f in sorted(src.glob("*.cpp")) + sorted(src.glob("*.h")):
        if f.name in ("os.cpp", "os.h"):
            continue
        for lineno, line in enumerate(strip(f.read_text()).splitlines(), 1):
            for m in CALL.finditer(line):
                bad.append(f"{f.relative_to(root)}:{lineno}: calls {m.group(1)}() outside the OS layer")
    for b in bad:
        print(b)
    # os.cpp alone: only os.h and system headers (no allocator type can leak in)
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([cxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", str(src / "os.cpp")],
                           capture_output=True, text=True, cwd=d)
        if r.returncode != 0:
            print(r.stderr[-3000:])
            bad.append("sdk/src/os.cpp does not compile alone")
    if bad:
        print(f"{len(bad)} violation(s) of the OS layer")
        return 1
    print("OS layer: ok (no system call outside os.cpp; os.cpp compiles alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
