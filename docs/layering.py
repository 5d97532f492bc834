#!/usr/bin/env python3
"""Prints which file of sdk/src calls functions defined in which other file: the call graph
between the core's parts, as docs/design.md draws it ("Layering", the table under the picture).

usage: python3 docs/layering.py   (from the repository root)
A call is a name followed by "(" outside comments and string literals whose definition (a line
at column 0 ending in "{") is in another file; os.h/internal.h inline helpers are left out.
"""
import collections
import glob
import os
import re


def strip(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def main():
    files = sorted(f for f in glob.glob("sdk/src/*.cpp") if not f.endswith(("spaces.cpp", "override_tu.cpp")))
    defs = {}
    for f in files:
        for line in strip(open(f).read()).splitlines():
            m = re.match(r"^(?:[A-Za-z_][\w:<>*&]*[\s*&]+)+([a-z_][a-z0-9_]*)\s*\(.*\)\s*(?:const\s*)?(?:noexcept\s*)?\{", line)
            if m and m.group(1) not in ("if", "for", "while", "switch", "__attribute__"):
                defs.setdefault(m.group(1), os.path.basename(f))
    edges = collections.defaultdict(set)
    for f in files:
        me = os.path.basename(f)
        text = strip(open(f).read())
        for m in re.finditer(r"(?<![\w.>:])([a-z_][a-z0-9_]*)\s*\(", text):
            line = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
            if re.search(r"\bstatic\b[^;(=]*$", line):
                continue  # a member's declaration (a region's operations), not a call
            d = defs.get(m.group(1))
            if d and d != me:
                edges[me].add(d)
    for f in files:
        me = os.path.basename(f)
        print(f"{me:13} calls {', '.join(sorted(edges[me])) or '-'}")


if __name__ == "__main__":
    main()
