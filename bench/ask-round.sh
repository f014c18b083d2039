#!/usr/bin/env bash
# Wall time and tokens of one default `colm ask` round (defaults: client
# qwen2.5-coder-0.5b-instruct, server qwen2.5-coder-1.5b-instruct, first GSM8K test question),
# repeated REPS times (each a fresh process: model loading is excluded from the round's wall
# time but reported). Writes docs/benchmarks/ask-round.md (never edit it by hand).
#
# In the default reference mode the draft and the reference are written at the same time; the
# summary sets the round's wall time against the sum of its steps and against max(draft,
# references) + guidance + refinement. On one machine the two models share the cores (with all
# cores each they take turns); `--threads 1` gives each model its own core, as a device and a
# server on two machines.
#
# Usage: bench/ask-round.sh [extra colm ask flags]
# Env: REPS (default 3), OUT (default docs/benchmarks/ask-round.md)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
reps="${REPS:-3}"
out_file="${OUT:-docs/benchmarks/ask-round.md}"
scripts/setup
cargo build --release -q -p colm-cli
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for ((r = 1; r <= reps; r++)); do
  start=$(date +%s.%N)
  target/release/colm ask --json "$@" >"$tmp/run$r.json"
  end=$(date +%s.%N)
  echo "$start $end" >"$tmp/run$r.time"
done
mkdir -p docs/benchmarks
python3 - "$tmp" "$reps" "$(target/release/colm --version)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" "$(nproc)" "$*" \
  "$out_file" >"$out_file" <<'PY'
import json, sys, statistics, datetime
tmp, reps, version, cpu, cores, extra, out_file = sys.argv[1:]
reps = int(reps)
out = ["# One `colm ask` round on the defaults\n",
       f"- date: {datetime.date.today().isoformat()}",
       f"- machine: {cpu}, {cores} cores, no GPU",
       f"- colm: {version}",
       f"- command: `REPS={reps}{'' if out_file == 'docs/benchmarks/ask-round.md' else ' OUT=' + out_file} bench/ask-round.sh{(' ' + extra) if extra else ''}`",
       "",
       "| run | round wall s | process wall s | step | model | prompt tok | completion tok | step wall s | gen tok/s |",
       "|---|---|---|---|---|---|---|---|---|"]
walls, sums, overlaps = [], [], []
for r in range(1, reps + 1):
    rec = json.load(open(f"{tmp}/run{r}.json"))
    s, e = map(float, open(f"{tmp}/run{r}.time").read().split())
    walls.append(rec["wall_ms"] / 1000)
    steps = []
    if rec.get("selection"):
        steps.append(rec["selection"]["step"])
    refs = rec.get("references") or {}
    if refs.get("selection"):
        steps.append(refs["selection"]["step"])
    steps += refs.get("steps", [])
    for rd in rec["rounds"]:
        steps += rd["drafts"] + ([rd["guidance"]] if rd["guidance"] else []) + rd.get("critiques", []) + rd["refinements"]
    sums.append(sum(st["wall_ms"] for st in steps) / 1000)
    side = lambda kind: max([st["wall_ms"] for st in steps if st["kind"] == kind] or [0]) / 1000
    overlaps.append(side("selection") + max(side("draft"), side("reference")) + side("guidance") + side("refinement"))
    for i, st in enumerate(steps):
        c = st["outcome"].get("completion")
        u = c["usage"] if c else {"prompt_tokens": "-", "completion_tokens": "-"}
        tg = (c["usage"]["completion_tokens"] * 1000 / c["timings"]["generation_ms"]) if c and c["timings"]["generation_ms"] > 0 else 0
        lead = f"| {r} | {rec['wall_ms']/1000:.1f} | {e-s:.1f} " if i == 0 else "| | | "
        out.append(lead + f"| {st['kind']} | {st['model']} | {u['prompt_tokens']} | {u['completion_tokens']} | {st['wall_ms']/1000:.1f} | {tg:.1f} |")
out.append("")
out.append(f"Round wall time: mean {statistics.mean(walls):.1f} s over {reps} runs "
           f"(min {min(walls):.1f}, max {max(walls):.1f}). Greedy decoding, so the runs repeat the same text; "
           "the process wall time adds model loading (and building the engine threads). In the reference "
           "modes the draft and the references run at the same time (a step's wall time includes waiting "
           "for the other model's turn on the cores), and a guidance step without a model call (one "
           "reference passed on as guidance) takes no time.")
out.append("")
out.append("")
out.append(f"Summary: one round in {statistics.mean(walls):.1f} s (mean of {reps}); its steps one after "
           f"the other would take {statistics.mean(sums):.1f} s, and max(draft, references) + guidance + "
           f"refinement is {statistics.mean(overlaps):.1f} s.")
out.append("")
out.append("Final answer of the last run (client-1):\n")
out.append("```text\n" + rec["final_answers"][0]["text"].strip() + "\n```")
print("\n".join(out))
PY
cat docs/benchmarks/ask-round.md
