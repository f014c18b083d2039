#!/usr/bin/env python3
"""Compares the records of two `colm eval` runs item by item, bit for bit except for what a
clock measures (`wall_ms`, `prompt_ms`, `generation_ms`): every prompt, answer, token count,
log-probability and score must be equal. Used to show that a refactor left a strategy's
behaviour unchanged (issue 32: the eval of `colm` on GSM8K dev 1-20 at --concurrency 1).

Usage: scripts/same-records.py RUN_A RUN_B   (run folders holding records.jsonl)
Exit status 0 when every record of A has an equal record in B (by suite, item, strategy).
"""
import json
import sys

CLOCKS = {"wall_ms", "prompt_ms", "generation_ms"}


def without_clocks(v):
    if isinstance(v, dict):
        return {k: without_clocks(x) for k, x in v.items() if k not in CLOCKS}
    if isinstance(v, list):
        return [without_clocks(x) for x in v]
    return v


def records(run):
    out = {}
    with open(f"{run}/records.jsonl") as f:
        for line in f:
            r = json.loads(line)
            out[(r["suite"], r["item"], r["strategy"])] = without_clocks(r)
    return out


def first_difference(a, b, path=""):
    if type(a) is not type(b):
        return path or "."
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else path


def main():
    a, b = records(sys.argv[1]), records(sys.argv[2])
    same = 0
    for key, ra in sorted(a.items()):
        rb = b.get(key)
        if rb is None:
            print(f"{key}: missing in {sys.argv[2]}")
            continue
        d = first_difference(ra, rb)
        if d:
            print(f"{key}: differs at {d}")
        else:
            same += 1
    print(f"{same} of {len(a)} records equal (clock fields aside)")
    sys.exit(0 if same == len(a) and len(a) > 0 else 1)


main()
