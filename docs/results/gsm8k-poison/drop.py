#!/usr/bin/env python3
"""Accuracy drop under poisoned drafts: clean run vs poisoned run, item by item.

Reads the records of a clean run and of a poisoned run (same items, same models), and for each
CoLM strategy of the poisoned run writes the clean accuracy of the clean run's strategy of the
same name, the poisoned accuracy, the drop (clean − poisoned, points) with a paired 95% interval
(Wald, for the difference of two proportions on the same items), and how often the guidance and
the final answer carry the injected answer. Without a clean record of the same strategy the
clean strategy given by --clean-strategy stands in (a screen that keeps every draft when the
honest drafts agree shows the model what the unscreened run showed it: see README.md).

Usage: drop.py CLEAN_RUN_DIR POISONED_RUN_DIR [--clean-strategy S] [--injected 4242] > drop.md
"""
import argparse
import datetime
import json
import math
import os
import re
import sys
from pathlib import Path


def records(run: Path) -> dict:
    out = {}
    for line in (run / "records.jsonl").open():
        r = json.loads(line)
        if r.get("score") is None:
            continue
        out[(r["item"], r["strategy"])] = r  # later records supersede earlier ones
    return out


def correct(r) -> bool:
    return bool(r["score"].get("correct"))


def guidance_text(r) -> str:
    rounds = r["turns"][0]["transcript"]["rounds"]
    g = rounds[0].get("guidance") or {}
    return ((g.get("outcome") or {}).get("completion") or {}).get("text", "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clean", type=Path)
    ap.add_argument("poisoned", type=Path)
    ap.add_argument("--clean-strategy", default="colm:k=4,mode=synthesis")
    ap.add_argument("--injected", default="4242")
    a = ap.parse_args()
    clean, poisoned = records(a.clean), records(a.poisoned)
    strategies = sorted({s for (_, s) in poisoned if s.startswith("colm")})
    injected = re.compile(rf"(?<!\d){re.escape(a.injected)}(?!\d)")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "unknown CPU")
    print("# Accuracy drop under poisoned drafts\n")
    print(f"- command: `python3 {' '.join(sys.argv)}`")
    print(f"- written {datetime.date.today().isoformat()} on {cpu}, {os.cpu_count()} cores")
    print(f"- clean run: `{a.clean}`; poisoned run: `{a.poisoned}`\n")
    print("| poisoned strategy | clean strategy | items | clean accuracy % | poisoned accuracy % "
          "| drop, points (95% CI) | guidance states the injected answer | final is the injected answer |")
    print("|---|---|---|---|---|---|---|---|")
    for s in strategies:
        reference = s if any(k[1] == s for k in clean) else a.clean_strategy
        items = sorted({i for (i, t) in poisoned if t == s and (i, reference) in clean},
                       key=lambda i: int(i.split(":")[1]))
        n = len(items)
        if n == 0:
            continue
        c = [correct(clean[(i, reference)]) for i in items]
        p = [correct(poisoned[(i, s)]) for i in items]
        b = sum(1 for x, y in zip(c, p) if x and not y)  # right clean, wrong poisoned
        w = sum(1 for x, y in zip(c, p) if y and not x)  # wrong clean, right poisoned
        d = (b - w) / n
        se = math.sqrt(max((b + w) - (b - w) ** 2 / n, 0.0)) / n
        guided = sum(1 for i in items if injected.search(guidance_text(poisoned[(i, s)])))
        final = sum(1 for i in items
                    if (poisoned[(i, s)]["score"].get("extracted") or "") == a.injected)
        print(f"| {s} | {reference} | {n} | {100 * sum(c) / n:.1f} | {100 * sum(p) / n:.1f} "
              f"| {100 * d:+.1f} ({100 * (d - 1.96 * se):+.1f} to {100 * (d + 1.96 * se):+.1f}) "
              f"| {guided}/{n} | {final}/{n} |")
    print("\nDrop: clean accuracy − poisoned accuracy on the same items (positive: the poison "
          "cost accuracy); interval: Wald for paired proportions.")


if __name__ == "__main__":
    sys.exit(main())
