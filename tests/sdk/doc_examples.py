#!/usr/bin/env python3
"""Compiles every C++ example of docs/sdk.md, so the documentation cannot drift from the SDK.

Each ```c++ block becomes the body of a function in one translation unit, after a prelude that
includes the SDK (and fmt, LLVM ADT) and declares the names the examples take as given (Ident,
Node, Token, Len, Ast...). Blocks preceded by a "<!-- synopsis: ... -->" line are declarations
for the reader and are skipped. The unit is compiled with -fsyntax-only by the given compiler.
usage: doc_examples.py DOC CXX INCLUDE_DIR [extra compiler flags...]
"""
import os
import re
import subprocess
import sys
import tempfile

PRELUDE = r'''
#include <spaces/Format.h>
#include <spaces/SDK.h>

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"

#include <fmt/format.h>

#include <functional>
#include <map>
#include <memory_resource>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace doc {
struct Ident {
  Ident(const char *, int) {}
  void resolve() {}
  char Pad[32];
};
struct Node {};
struct Token {
  int Kind;
};
struct TokenText {
  std::string_view spelling() const { return "main"; }
};
inline TokenText Tok;
inline const char *Name = "n";
inline int Loc = 0;
inline size_t Len = 3;
inline spaces::Region Ast("ast");
} // namespace doc
using namespace doc;
'''


def blocks(text):
    lines = text.split('\n')
    skip = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith('<!-- synopsis'):
            skip = True
        elif line.startswith('```c++'):
            body = []
            start = i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith('```'):
                body.append(lines[i])
                i += 1
            if not skip:
                yield start, '\n'.join(body)
            skip = False
        i += 1


def main():
    doc, cxx, include = sys.argv[1], sys.argv[2], sys.argv[3]
    extra = sys.argv[4:]
    text = open(doc).read()
    unit = [PRELUDE]
    count = 0
    for line, body in blocks(text):
        count += 1
        unit.append(f'#line {line} "{os.path.basename(doc)}"\nvoid example_{count}() {{\n{body}\n}}\n')
    if count == 0:
        print('no examples found', file=sys.stderr)
        return 1
    with tempfile.NamedTemporaryFile('w', suffix='.cpp', delete=False) as f:
        f.write('\n'.join(unit))
        path = f.name
    cmd = [cxx, '-std=c++17', '-fsyntax-only', '-I', include, '-isystem', '/usr/lib/llvm-14/include',
           '-DLLVM_DISABLE_ABI_BREAKING_CHECKS_ENFORCING=1', *extra, path]
    r = subprocess.run(cmd)
    os.unlink(path)
    print(f'{count} examples of {doc} compiled' if r.returncode == 0 else f'examples of {doc} do not compile')
    return r.returncode


if __name__ == '__main__':
    sys.exit(main())
