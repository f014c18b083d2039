#!/usr/bin/env bash
# Shared guidance under load: server model calls per client query when CLIENTS simulated
# clients ask QUESTIONS distinct questions (bench/lib/shared_load.py: scripted drafts, random
# arrivals over SPREAD s, one synthesis request each) to `colm serve --share-ttl`, on loopback
# with the real server model. Model calls are read from the server's /metrics
# (colm_model_calls_total). Writes docs/benchmarks/shared-guidance.md (never edit by hand).
#
# Usage: bench/shared-guidance.sh   Env: CLIENTS (200), QUESTIONS (20), SPREAD (60),
#        MAX_TOKENS (64), MODEL (qwen2.5-coder-1.5b-instruct)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
clients="${CLIENTS:-200}"; questions="${QUESTIONS:-20}"; spread="${SPREAD:-60}"
max_tokens="${MAX_TOKENS:-64}"; model="${MODEL:-qwen2.5-coder-1.5b-instruct}"
scripts/setup
cargo build --release -q -p colm-cli
colm=target/release/colm
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

"$colm" serve --model "$model" --bind 127.0.0.1:0 --share-ttl 3600 --store "$tmp/shared.sqlite" \
  --max-queue 256 >"$tmp/serve.out" 2>"$tmp/serve.err" &
pids+=($!)
server="$(wait_addr "$tmp/serve.out")"
python3 bench/lib/shared_load.py "$server" "$model" --clients "$clients" --questions "$questions" \
  --spread "$spread" --max-tokens "$max_tokens" --data ../shared/data/gsm8k/dev.jsonl >"$tmp/load.json"
curl -sf "$server/metrics" >"$tmp/metrics.txt"

mkdir -p docs/benchmarks
python3 - "$tmp/load.json" "$tmp/metrics.txt" "$model" "$clients" "$questions" "$spread" \
  "$max_tokens" "$("$colm" --version)" "$(machine)" >docs/benchmarks/shared-guidance.md <<'PY'
import datetime, json, re, sys
load_path, metrics_path, model, clients, questions, spread, max_tokens, version, machine = sys.argv[1:]
load = json.load(open(load_path))
metrics = open(metrics_path).read()
def series(name):
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", metrics, re.M)
    return float(m.group(1)) if m else 0.0
calls = series(f'colm_model_calls_total{{model="{model}"}}')
hits = series("colm_shared_guidance_hits_total")
out = ["# Shared guidance under load\n",
       f"- date: {datetime.date.today().isoformat()}; machine: {machine}; {version}",
       f"- command: `CLIENTS={clients} QUESTIONS={questions} SPREAD={spread} MAX_TOKENS={max_tokens} MODEL={model} bench/shared-guidance.sh`",
       f"- `colm serve --model {model} --share-ttl 3600` on loopback; {clients} simulated clients "
       f"(scripted drafts, no client model), {questions} distinct GSM8K dev questions "
       f"({int(clients) // int(questions)} clients each), random arrivals over {spread} s, one synthesis "
       f"request each (`POST /v1/colm/guidance`, max_tokens {max_tokens})\n",
       "| | value |", "|---|---:|",
       f"| client queries answered | {load['ok']} of {clients} |",
       f"| server model calls (`colm_model_calls_total`) | {calls:.0f} |",
       f"| **server model calls per client query** | **{calls / max(load['ok'], 1):.3f}** |",
       f"| answers served from the shared store (`shared: true`) | {load['shared_answers']} |",
       f"| shared-store hits (`colm_shared_guidance_hits_total`) | {hits:.0f} |",
       f"| latency p50 / p95 per query | {load['latency_p50_s']:.2f} s / {load['latency_p95_s']:.2f} s |",
       f"| wall time | {load['wall_s']:.1f} s |",
       f"| errors | {len(load['errors'])} {load['errors'] if load['errors'] else ''} |",
       "",
       "Without sharing every one-shot request calls the server model once (1.000 calls per query). "
       "With sharing, the first request for a question calls the model; requests for the same "
       "question that arrive while it runs wait for it (single flight) and later ones read the "
       "store, so the calls equal the distinct questions.",
       "",
       f"Summary: {calls / max(load['ok'], 1):.3f} server model calls per client query "
       f"({calls:.0f} calls for {load['ok']} queries on {questions} questions)."]
print("\n".join(out))
PY
cat docs/benchmarks/shared-guidance.md
