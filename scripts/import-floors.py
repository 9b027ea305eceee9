#!/usr/bin/env python3
"""The import graph of a crate's src/ (issue 13): one node per .rs file, an
edge A -> B when A names a path into B's module (`crate::`, `super::`,
`self::`, `profiler::` from the binary, or through a child module), resolved
to the longest prefix that is a module file. A file naming its own ancestor
(a child using its parent's items) is part of that module, not above it, so
that edge is left out; `mod x;` declarations are not imports. Prints the
circles and the floors (nodes on the longest chain, a circle counting as
one), and fails on a circle or more than MAX floors.

Usage: import-floors.py SRC [MAX]     (grep-level parsing: comments and
strings are skipped only roughly, which errs towards more edges)"""
import os
import re
import sys
from functools import lru_cache

src = sys.argv[1]
limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
BIN = "<bin>"

files = {}
for root, _, names in os.walk(src):
    for name in names:
        if name.endswith(".rs"):
            rel = os.path.relpath(os.path.join(root, name), src)
            parts = rel[:-3].split("/")
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts == ["lib"]:
                parts = []
            elif parts == ["main"]:
                parts = [BIN]
            elif parts and parts[0] == "cli":
                parts = [BIN] + parts
            files[rel] = tuple(parts)
by_module = {m: f for f, m in files.items()}
in_bin = {f for f, m in files.items() if m and m[0] == BIN}


def resolve(path):
    for n in range(len(path), -1, -1):
        if path[:n] in by_module:
            return by_module[path[:n]]
    return None


def expand(text):
    """`a::{b::c, d}` -> [`a::b::c`, `a::d`] (one level of braces)."""
    m = re.match(r"^(.*?)\{([^{}]*)\}", text)
    if not m:
        return [text]
    return [m.group(1) + x.strip() for x in m.group(2).split(",") if x.strip()]


edges = {f: set() for f in files}
for f, me in files.items():
    in_tests = False
    for line in open(os.path.join(src, f), encoding="utf-8"):
        code = re.sub(r'"([^"\\]|\\.)*"', '""', line).split("//")[0]
        if re.match(r"\s*mod tests\s*\{", code):
            in_tests = True
        base = me + (("tests",) if in_tests else ())
        found = []
        for m in re.finditer(r"\b(crate|profiler|super|self)::((?:\w+::)*(?:\{[^}]*\}|\w+|\*))", code):
            head = m.group(1)
            if head == "profiler" and f not in in_bin:
                continue
            if head in ("crate", "profiler"):
                start = (BIN,) if head == "crate" and f in in_bin else ()
            elif head == "super":
                start = base[:-1]
            else:
                start = base
            for full in expand(m.group(2)):
                segs = [s for s in full.split("::") if s and s != "*"]
                at = start
                while segs and segs[0] == "super":
                    at, segs = at[:-1], segs[1:]
                found.append(at + tuple(segs))
        m = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?use\s+((?:\w+::)*(?:\{[^}]*\}|\w+))", code)
        if m:
            for full in expand(m.group(1)):
                segs = tuple(s for s in full.split("::") if s)
                if segs and (base + segs[:1]) in by_module:
                    found.append(base + segs)
        for m in re.finditer(r"(?<![:\w])([a-z_]\w*)((?:::\w+)+)", code):
            head = m.group(1)
            if head in ("crate", "super", "self", "profiler"):
                continue
            segs = (head,) + tuple(s for s in m.group(2).split("::") if s)
            for start in (base, me):
                if (start + (head,)) in by_module:
                    found.append(start + segs)
                    break
        for path in found:
            t = resolve(path)
            if t and t != f:
                edges[f].add(t)
for f, me in files.items():
    edges[f] = {
        t for t in edges[f]
        if not (files[t] and len(files[t]) < len(me) and me[: len(files[t])] == files[t])
    }

# Circles: strongly connected components of more than one file.
index, low, stack, on, comp, counter = {}, {}, [], set(), {}, [0]
sys.setrecursionlimit(10000)


def strongconnect(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            strongconnect(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        while True:
            w = stack.pop()
            on.discard(w)
            comp[w] = v
            if w == v:
                break


for v in files:
    if v not in index:
        strongconnect(v)
members = {}
for v, c in comp.items():
    members.setdefault(c, []).append(v)
circles = [sorted(m) for m in members.values() if len(m) > 1]
cedges = {c: set() for c in members}
for v in files:
    cedges[comp[v]].update(comp[w] for w in edges[v] if comp[w] != comp[v])


@lru_cache(None)
def floor(c):
    return 1 + max((floor(d) for d in cedges[c]), default=0)


top = max(members, key=floor)
chain = [top]
while cedges[chain[-1]]:
    chain.append(max(cedges[chain[-1]], key=floor))
floors = floor(top)
for c in circles:
    print("circle: " + " <-> ".join(c))
print(f"{floors} floors, {len(circles)} circles, {len(files)} files; longest chain: "
      + " -> ".join("{" + ", ".join(sorted(members[c])) + "}" if len(members[c]) > 1 else c for c in chain))
if limit is not None and (circles or floors > limit):
    print(f"import-floors: want no circle and at most {limit} floors", file=sys.stderr)
    sys.exit(1)
