#!/usr/bin/env bash
# Relay overhead: `colm serve` in front of `llama-server` (an upstream, `--upstream`) vs the same
# `llama-server` asked directly; same model, same server flags, interleaved in one run (for each
# repetition and N streams, both paths, the order alternating by repetition). Each measurement
# gets a freshly started llama-server (no prompt-cache carry-over between the two paths).
# Load: bench/lib/loadgen.py (official `openai` SDK), N concurrent streams × REQUESTS streamed
# requests of MAX_TOKENS tokens (ignore_eos), distinct GSM8K prompts, the same prompts for both
# paths. Writes docs/benchmarks/relay-overhead.md (never by hand).
#
# Usage: bench/relay-overhead.sh [MODEL_NAME]   (default: qwen2.5-coder-0.5b-instruct)
# Env:   THREADS (2), REPS (3), STREAMS ("1 4 8"), REQUESTS (4), MAX_TOKENS (64), CTX (2048)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
model="${1:-qwen2.5-coder-0.5b-instruct}"
threads="${THREADS:-2}"; reps="${REPS:-3}"; streams="${STREAMS:-1 4 8}"
requests="${REQUESTS:-4}"; max_tokens="${MAX_TOKENS:-64}"; ctx="${CTX:-2048}"
data="${DATA:-../shared/data/gsm8k/dev.jsonl}"
max_n=$(echo "$streams" | tr ' ' '\n' | sort -n | tail -1)

scripts/setup
python3 -c 'import openai' 2>/dev/null || pip install -q openai
cargo build --release -q -p colm-cli
server_bin="$(bench/build-llama-peer.sh llama-server)"
target/release/colm models pull "$model" >/dev/null
path="$(target/release/colm models path "$model")"
tmp="$(mktemp -d)"
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() { stop; rm -rf "$tmp"; }
trap cleanup EXIT


offset=0
for ((r = 1; r <= reps; r++)); do
  order="direct relay"; [ $((r % 2)) -eq 0 ] && order="relay direct"
  for n in $streams; do
    for path_kind in $order; do
      port=$(free_port)
      # One server configuration for every N: a deployment's llama-server with max_n slots.
      "$server_bin" -m "$path" --host 127.0.0.1 --port "$port" -t "$threads" -tb "$threads" \
        -c $((ctx * max_n)) -np "$max_n" --no-kv-unified -a "$model" >"$tmp/llama.log" 2>&1 &
      pids+=($!)
      wait_ready "http://127.0.0.1:$port"
      base="http://127.0.0.1:$port"
      if [ "$path_kind" = relay ]; then
        target/release/colm serve --bind 127.0.0.1:0 \
          --upstream "$model=http://127.0.0.1:$port/v1" >"$tmp/colm.log" 2>&1 &
        pids+=($!)
        base="$(wait_addr "$tmp/colm.log")"
      fi
      # Warm-up request, not measured.
      python3 bench/lib/loadgen.py "$base" "$model" --streams 1 --requests 1 --max-tokens 8 \
        --data "$data" --offset 999 >/dev/null
      python3 bench/lib/loadgen.py "$base" "$model" --streams "$n" --requests "$requests" \
        --max-tokens "$max_tokens" --data "$data" --offset "$offset" |
        sed "s/^/{\"path\": \"$path_kind\", \"rep\": $r, \"row\": /; s/$/}/" >>"$tmp/rows.jsonl"
      stop
    done
    offset=$((offset + n * requests))
  done
done

mkdir -p docs/benchmarks
python3 - "$tmp/rows.jsonl" "$model" "$threads" "$reps" "$requests" "$max_tokens" "$ctx" \
  "$(target/release/colm --version)" "$(machine)" "$streams" "$max_n" \
  >docs/benchmarks/relay-overhead.md <<'PY'
import json, statistics, sys, datetime
(rows_path, model, threads, reps, requests, max_tokens, ctx, version, machine, streams,
 max_n) = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
out = ["# Relay overhead: `colm serve` in front of `llama-server` vs `llama-server` directly\n",
       f"- date: {datetime.date.today().isoformat()}",
       f"- machine: {machine}, no GPU",
       f"- colm: {version}; llama-server built by `bench/build-llama-peer.sh llama-server` (the engine's vendored llama.cpp)",
       f"- model: {model}; llama-server `-t {threads} -c {int(ctx) * int(max_n)} -np {max_n} --no-kv-unified`, started afresh for every measurement; relay: `colm serve --upstream {model}=http://127.0.0.1:PORT/v1` on the same machine",
       f"- load: N streams × {requests} streamed requests, {max_tokens} tokens each (`ignore_eos`), greedy, distinct GSM8K dev prompts (the same for both paths), official `openai` SDK (`bench/lib/loadgen.py`)",
       f"- repetitions: {reps}, interleaved (for each repetition and N both paths; direct first in odd repetitions, relay first in even ones)",
       f"- command: `THREADS={threads} REPS={reps} STREAMS=\"{streams}\" REQUESTS={requests} MAX_TOKENS={max_tokens} CTX={ctx} bench/relay-overhead.sh {model}`\n",
       "Aggregate tok/s = all completion tokens / wall time of the run. TTFT = request sent → first content delta; "
       "latency = request sent → end of the stream; p50/p95 over the requests of one repetition, averaged over repetitions. "
       "Ratio = relay / direct tok/s (1.00: no loss); added = relay − direct, ms.\n",
       "| streams | direct tok/s | relay tok/s | ratio | TTFT p50 / p95 direct, ms | added TTFT p50 / p95, ms | latency p50 / p95 direct, ms | added latency p50 / p95, ms | errors |",
       "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
def agg(path, n):
    rs = [r["row"] for r in rows if r["path"] == path and r["row"]["streams"] == n]
    m = lambda k: statistics.mean(r[k] for r in rs)
    return {k: m(k) for k in ("tok_per_s", "ttft_p50_ms", "ttft_p95_ms", "latency_p50_ms", "latency_p95_ms")} | {
        "errors": sum(len(r["errors"]) for r in rs),
        "spread": (min(r["tok_per_s"] for r in rs), max(r["tok_per_s"] for r in rs))}
summary = []
for n in sorted({r["row"]["streams"] for r in rows}):
    d = agg("direct", n); c = agg("relay", n)
    ratio = c["tok_per_s"] / d["tok_per_s"]
    out.append(f"| {n} | {d['tok_per_s']:.1f} ({d['spread'][0]:.1f}–{d['spread'][1]:.1f}) | "
               f"{c['tok_per_s']:.1f} ({c['spread'][0]:.1f}–{c['spread'][1]:.1f}) | **{ratio:.3f}** | "
               f"{d['ttft_p50_ms']:.0f} / {d['ttft_p95_ms']:.0f} | "
               f"{c['ttft_p50_ms'] - d['ttft_p50_ms']:+.0f} / {c['ttft_p95_ms'] - d['ttft_p95_ms']:+.0f} | "
               f"{d['latency_p50_ms']:.0f} / {d['latency_p95_ms']:.0f} | "
               f"{c['latency_p50_ms'] - d['latency_p50_ms']:+.0f} / {c['latency_p95_ms'] - d['latency_p95_ms']:+.0f} | "
               f"{d['errors']} / {c['errors']} |")
    summary.append(f"{n} streams {ratio:.3f} (latency p50 {c['latency_p50_ms'] - d['latency_p50_ms']:+.0f} ms, "
                   f"p95 {c['latency_p95_ms'] - d['latency_p95_ms']:+.0f} ms)")
errs = [f"{r['path']} ×{r['row']['streams']}: {e}" for r in rows for e in r["row"]["errors"]]
if errs:
    out.append("\nErrors (as the client saw them): " + "; ".join(f"`{e}`" for e in errs[:5]))
out.append("\ntok/s ranges are min–max over repetitions. The relay and llama-server share the machine's cores, "
           "so the relay's own CPU time is part of what is measured.")
out.append(f"\nSummary (relay / direct aggregate tok/s, added latency): {'; '.join(summary)}.")
print("\n".join(out))
PY
cat docs/benchmarks/relay-overhead.md
