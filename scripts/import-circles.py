#!/usr/bin/env python3
"""Finds import circles between the modules of each crate under crates/.

A module depends on another when its code (comments and `#[cfg(test)]` parts left out) names
it by a `crate::` or `super::` path. A module and its own submodules are one unit (a parent
declares and re-exports its children). Prints each circle with the edges that close it and
exits 1 when there is one, 0 otherwise.

Usage: scripts/import-circles.py [CRATES_DIR]   (default: crates/ of this checkout)
"""

import os
import re
import sys


def modules(src):
    """Each .rs file of a crate's src/ and its module path (a tuple of names)."""
    out = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                parts = []
            out[path] = tuple(parts)
    return out


def code_of(path):
    """The file's text without comments and test-only modules."""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"#\[cfg\(test\)\]\s*mod \w+\s*\{.*", "", text, flags=re.S)
    text = re.sub(r"#\[cfg\(test\)\]\s*mod \w+;", "", text)
    return re.sub(r"//[^\n]*", "", text)


def edges_of(src):
    files = modules(src)
    known = set(files.values())
    edges = {}
    for path, me in files.items():
        if me and me[-1] == "tests":
            continue
        for m in re.finditer(r"\b(crate|super)((?:::\w+)+)", code_of(path)):
            names = m.group(2).split("::")[1:]
            base = [] if m.group(1) == "crate" else list(me[:-1])
            full = base + names
            target = next(
                (tuple(full[:n]) for n in range(len(full), 0, -1) if tuple(full[:n]) in known),
                None,
            )
            if target is None or target[: len(me)] == me or me[: len(target)] == target:
                continue
            edges.setdefault(me, set()).add(target)
    return edges


def circles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def name(m):
    return "::".join(m) or "crate root"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "crates"
    )
    bad = False
    for crate in sorted(os.listdir(root)):
        src = os.path.join(root, crate, "src")
        if not os.path.isdir(src):
            continue
        edges = edges_of(src)
        for comp in circles(edges):
            bad = True
            print(f"{crate}: import circle {' <-> '.join(name(m) for m in comp)}")
            for a in comp:
                for b in sorted(edges.get(a, ())):
                    if b in comp:
                        print(f"    {name(a)} -> {name(b)}")
    if not bad:
        print("no import circles between the modules of any crate")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
