#!/usr/bin/env bash
# Time to first byte of a streamed `colm` answer on loopback: `colm serve` hosting the client
# model, the server model and the virtual `colm` model (CoLM, one round); N streamed requests
# one after the other, distinct GSM8K dev questions, raw HTTP (bench/lib/ttfb.py). For
# context, the same is measured for the client model alone (its first byte waits for its first
# token). Writes docs/benchmarks/stream-ttfb.md (never by hand).
#
# Usage: bench/stream-ttfb.sh
# Env:   CLIENT (qwen2.5-coder-0.5b-instruct), SERVER (qwen2.5-coder-1.5b-instruct),
#        REQUESTS (5), MAX_TOKENS (64), CTX (4096)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
client="${CLIENT:-qwen2.5-coder-0.5b-instruct}"; server="${SERVER:-qwen2.5-coder-1.5b-instruct}"
requests="${REQUESTS:-5}"; max_tokens="${MAX_TOKENS:-64}"; ctx="${CTX:-4096}"
data="${DATA:-../shared/data/gsm8k/dev.jsonl}"

scripts/setup
cargo build --release -q -p colm-cli
target/release/colm models pull "$client" "$server" >/dev/null
tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

target/release/colm serve --bind 127.0.0.1:0 --model "$client" --colm-client "$client" \
  --colm-server "$server" --ctx "$ctx" >"$tmp/server.log" 2>&1 &
pid=$!
base="$(wait_addr "$tmp/server.log")"
# Warm-up (page the weights in), not measured.
python3 bench/lib/ttfb.py "$base" "$client" --requests 1 --max-tokens 4 --data "$data" --offset 999 >/dev/null
python3 bench/lib/ttfb.py "$base" colm --requests "$requests" --max-tokens "$max_tokens" \
  --data "$data" >"$tmp/colm.json"
python3 bench/lib/ttfb.py "$base" "$client" --requests "$requests" --max-tokens "$max_tokens" \
  --data "$data" >"$tmp/single.json"

mkdir -p docs/benchmarks
python3 - "$tmp/colm.json" "$tmp/single.json" "$client" "$server" "$requests" "$max_tokens" \
  "$ctx" "$(target/release/colm --version)" "$(machine)" >docs/benchmarks/stream-ttfb.md <<'PY'
import json, sys, datetime
colm_path, single_path, client, server, requests, max_tokens, ctx, version, machine = sys.argv[1:]
runs = [("`colm` (virtual: CoLM over " + client + " + " + server + ")", json.load(open(colm_path))),
        (f"`{client}` alone", json.load(open(single_path)))]
fmt = lambda v: "–" if v is None else f"{v:.1f}"
out = ["# Time to first byte of a streamed answer\n",
       f"- date: {datetime.date.today().isoformat()}",
       f"- machine: {machine}, no GPU",
       f"- colm: {version}; `colm serve --model {client} --colm-client {client} --colm-server {server} --ctx {ctx}` on loopback",
       f"- load: {requests} streamed requests one after the other per model, {max_tokens} max tokens per step, greedy, distinct GSM8K dev questions; raw HTTP (`bench/lib/ttfb.py`)",
       f"- command: `REQUESTS={requests} MAX_TOKENS={max_tokens} CTX={ctx} bench/stream-ttfb.sh`\n",
       "Times from sending the request, ms: response headers; first server-sent event (for `colm`, the role chunk sent before any model answers); "
       "first progress event (a strategy step finished); first non-empty content delta; end of the stream.\n",
       "| model | measure | p50 ms | p95 ms | max ms |", "|---|---|---:|---:|---:|"]
names = {"headers_ms": "headers", "first_event_ms": "first event", "first_progress_ms": "first progress event",
         "first_content_ms": "first content delta", "done_ms": "end of stream"}
for label, run in runs:
    for k, name in names.items():
        s = run["summary"][k]
        if s["n"] == 0:
            continue
        out.append(f"| {label} | {name} | {fmt(s['p50'])} | {fmt(s['p95'])} | {fmt(s['max'])} |")
first = runs[0][1]["summary"]["first_event_ms"]
verdict = "met" if first["max"] is not None and first["max"] < 100 else "missed"
out.append(f"\nSummary: first byte of a streamed `colm` answer p50 {fmt(first['p50'])} ms, max {fmt(first['max'])} ms "
           f"over {first['n']} requests; target under 100 ms on loopback **{verdict}**.")
print("\n".join(out))
PY
cat docs/benchmarks/stream-ttfb.md
