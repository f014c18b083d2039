#!/usr/bin/env bash
# The device's draft only when it is needed: a CoLM round from real `colm client` devices
# against `colm serve` on loopback, default (reference) mode, CLIENTS clients per question (one
# store miss, then CLIENTS − 1 store hits at once), for two arms interleaved question by
# question: `always` (`colm client --draft always`: the device drafts at once, as colm did before
# `draft=auto`) and `auto` (the default: the device asks for the guidance first and drafts only
# when it is late). Each arm has its own `colm serve` and store, so both meet the same misses.
# Device decode tokens per client query come from each answer's `usage` (every draft, cancelled
# draft and refinement the device ran); round latency is request → answer at the device
# endpoint (bench/lib/draft_clients.py). Writes docs/benchmarks/draft-when-needed.md (never by
# hand).
#
# Usage: bench/draft-when-needed.sh   Env: CLIENTS (10), QUESTIONS (4), MAX_TOKENS (512),
#        SERVER (qwen2.5-coder-1.5b-instruct), CLIENT (qwen2.5-coder-0.5b-instruct)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
clients="${CLIENTS:-10}"; questions="${QUESTIONS:-4}"; max_tokens="${MAX_TOKENS:-512}"
server_model="${SERVER:-qwen2.5-coder-1.5b-instruct}"; client_model="${CLIENT:-qwen2.5-coder-0.5b-instruct}"
scripts/setup
cargo build --release -q -p colm-cli
colm=target/release/colm
"$colm" models pull "$server_model" >/dev/null
"$colm" models pull "$client_model" >/dev/null
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

arms=()
for arm in always auto; do
  "$colm" serve --model "$server_model" --bind 127.0.0.1:0 --share-ttl 3600 \
    --store "$tmp/$arm.sqlite" --max-queue 256 --ctx 4096 >"$tmp/serve-$arm.out" 2>"$tmp/serve-$arm.err" &
  pids+=($!)
  server="$(wait_addr "$tmp/serve-$arm.out")"
  flags=""; [ "$arm" = always ] && flags="--draft always"
  "$colm" client --server-url "$server" --model "$client_model" --server-model "$server_model" \
    --listen 127.0.0.1:0 --parallel "$clients" --ctx 4096 --deadline-ms 1800000 \
    --name "device-$arm" $flags >"$tmp/client-$arm.out" 2>"$tmp/client-$arm.err" &
  pids+=($!)
  arms+=(--arm "$arm" "$(wait_addr "$tmp/client-$arm.out")")
done
python3 bench/lib/draft_clients.py "$client_model" "${arms[@]}" --clients "$clients" \
  --questions "$questions" --max-tokens "$max_tokens" \
  --data ../shared/data/gsm8k/dev.jsonl >"$tmp/load.json"

mkdir -p docs/benchmarks
python3 - "$tmp/load.json" "$server_model" "$client_model" "$clients" "$questions" \
  "$max_tokens" "$("$colm" --version)" "$(machine)" >docs/benchmarks/draft-when-needed.md <<'PY'
import datetime, json, statistics, sys
path, server_model, client_model, clients, questions, max_tokens, version, machine = sys.argv[1:]
r = json.load(open(path))
rows = r["rows"]
def of(arm, kind=None):
    return [x for x in rows if x["arm"] == arm and (kind is None or x["kind"] == kind)]
def p50(xs):
    return statistics.median(xs) if xs else float("nan")
stats = {}
for arm in ("always", "auto"):
    stats[arm] = {
        "n": len(of(arm)),
        "decode": statistics.mean(x["decode_tokens"] for x in of(arm)),
        "decode_hit": statistics.mean(x["decode_tokens"] for x in of(arm, "hit")),
        "decode_miss": statistics.mean(x["decode_tokens"] for x in of(arm, "miss")),
        "hit_p50": p50([x["latency_s"] for x in of(arm, "hit")]),
        "miss_p50": p50([x["latency_s"] for x in of(arm, "miss")]),
        "fallbacks": sum(x["fallback"] for x in of(arm)),
    }
a, b = stats["always"], stats["auto"]
same = sum(
    1 for x in of("auto") for y in of("always")
    if x["question"] == y["question"] and x["kind"] == y["kind"] == "miss" and x["answer"] == y["answer"]
)
dec = b["decode"] / a["decode"]; lat = b["hit_p50"] / a["hit_p50"]
out = ["# The device's draft only when it is needed\n",
       f"- date: {datetime.date.today().isoformat()}; machine: {machine}; {version}",
       f"- command: `CLIENTS={clients} QUESTIONS={questions} MAX_TOKENS={max_tokens} bench/draft-when-needed.sh`",
       f"- per arm: `colm serve --model {server_model} --share-ttl 3600` (its own store) and one "
       f"`colm client --model {client_model} --parallel {clients}` on loopback, default reference mode, "
       f"greedy, max_tokens {max_tokens} per step; `always` adds `--draft always`. For each of the first "
       f"{questions} GSM8K dev questions, interleaved (both arms on a question, then the next), {clients} client "
       f"queries per arm: one (a store miss), then {int(clients) - 1} at once (store hits).\n",
       "| | `always` (before) | `auto` (default) | auto / always |", "|---|---:|---:|---:|",
       f"| client queries answered | {a['n']} | {b['n']} | |",
       f"| **device decode tokens per client query** | {a['decode']:.1f} | {b['decode']:.1f} | **{dec:.2f}** |",
       f"| … on a store miss | {a['decode_miss']:.1f} | {b['decode_miss']:.1f} | {b['decode_miss'] / a['decode_miss']:.2f} |",
       f"| … on a store hit | {a['decode_hit']:.1f} | {b['decode_hit']:.1f} | {b['decode_hit'] / a['decode_hit']:.2f} |",
       f"| **round latency p50, store hit** | {a['hit_p50']:.1f} s | {b['hit_p50']:.1f} s | **{lat:.2f}** |",
       f"| round latency p50, store miss | {a['miss_p50']:.1f} s | {b['miss_p50']:.1f} s | {b['miss_p50'] / a['miss_p50']:.2f} |",
       f"| fallback answers | {a['fallbacks']} | {b['fallbacks']} | |",
       f"| errors | {len(r['errors'])} {r['errors'][:3] if r['errors'] else ''} | | |",
       "",
       f"Summary: device decode tokens ≤ 0.6× of `always`: {dec:.2f}× ({'met' if dec <= 0.6 else 'missed'}); "
       f"p50 round latency on a store hit ≤ 0.6×: {lat:.2f}× ({'met' if lat <= 0.6 else 'missed'}). "
       f"Same final answer on the miss query of a question in both arms: {same} of {questions} "
       "(the refinement reads the guidance and the question, not the draft)."]
print("\n".join(out))
PY
cat docs/benchmarks/draft-when-needed.md
