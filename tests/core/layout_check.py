#!/usr/bin/env python3
"""Each concern of sdk/src has one home (docs/design.md, issue 15): this fails when code drifts.

- override.cpp includes only the public header (and standard headers) and names no core internal:
  its forwarders reach the core through the spaces_* API alone, and override.cpp compiles alone
  against spaces.h.
- A region handle's kind is decided in one place: sh_by_handle (is this a shared region's
  handle?) is called only by region.cpp and shared.cpp itself.
- Blocks are freed by kind in one place: bump_free and shared_free are called only from free.cpp
  (and their own file); large_free from free.cpp, large.cpp and chunk.cpp (a region's release of
  its large blocks on reset/destroy).

usage: layout_check.py <repository root> <c++ compiler>
"""
import pathlib
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from os_layer_check import strip  # noqa: E402  (comments and strings blanked, lines kept)

CALLERS = {  # function -> files allowed to call it (besides the one defining it)
    "sh_by_handle": {"region.cpp", "shared.cpp"},
    "bump_free": {"free.cpp", "chunk.cpp"},
    "shared_free": {"free.cpp", "shared.cpp"},
    "large_free": {"free.cpp", "large.cpp", "chunk.cpp"},
}
STANDARD = {"climits", "cstdio", "cstdlib", "cstddef", "cstdint", "cstring", "malloc.h", "new", "stddef.h",
            "stdint.h", "stdlib.h", "errno.h", "cerrno"}


def main():
    root = pathlib.Path(sys.argv[1]).resolve()
    cxx = sys.argv[2] if len(sys.argv) > 2 else "c++"
    src = root / "sdk" / "src"
    bad = []
    ov = src / "override.cpp"
    text = ov.read_text()
    for lineno, line in enumerate(text.splitlines(), 1):
        m = re.match(r'\s*#\s*include\s*([<"])([^>"]+)[>"]', line)
        if m and not (m.group(1) == "<" and (m.group(2) == "spaces/spaces.h" or m.group(2) in STANDARD)):
            bad.append(f"sdk/src/override.cpp:{lineno}: includes {m.group(2)} (only <spaces/spaces.h> and "
                       "standard headers)")
    for lineno, line in enumerate(strip(text).splitlines(), 1):
        if re.search(r"\bspaces_core\b|\bSPACES_(INLINE|NOINLINE|LIKELY|UNLIKELY)\b", line):
            bad.append(f"sdk/src/override.cpp:{lineno}: names a core internal")
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([cxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", f"-I{root / 'sdk' / 'include'}",
                            str(ov)], capture_output=True, text=True, cwd=d)
        if r.returncode != 0:
            print(r.stderr[-3000:])
            bad.append("sdk/src/override.cpp does not compile against spaces.h alone")
    call = re.compile(r"(?<![\w.>:])(" + "|".join(CALLERS) + r")\s*\(")
    for f in sorted(src.glob("*.cpp")) + sorted(src.glob("*.h")):
        for lineno, line in enumerate(strip(f.read_text()).splitlines(), 1):
            for m in call.finditer(line):
                name = m.group(1)
                if f.name in CALLERS[name]:
                    continue
                if re.search(r"\b(void|bool|Slab\s*\*|ShAttach\s*\*)\s+" + name + r"\s*\(", line):
                    continue  # a declaration or the definition
                bad.append(f"{f.relative_to(root)}:{lineno}: calls {name}() (allowed in: "
                           f"{', '.join(sorted(CALLERS[name]))})")
    for b in bad:
        print(b)
    if bad:
        print(f"{len(bad)} violation(s) of the layout")
        return 1
    print("layout: ok (override over spaces.h alone; region kinds decided in region.cpp; frees by kind in free.cpp)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
