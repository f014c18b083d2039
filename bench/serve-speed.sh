#!/usr/bin/env bash
# Serving speed: `colm serve` vs `llama-server -np N`, same model, same threads, same context
# per sequence, llama.cpp built with the same flags, interleaved in one run (for each
# repetition and each N: colm, then llama-server). Load: bench/lib/loadgen.py (official
# `openai` SDK), N concurrent streams × REQUESTS streamed requests of MAX_TOKENS tokens
# (ignore_eos), distinct GSM8K prompts. Writes docs/benchmarks/serve-speed.md (never by hand).
#
# Usage: bench/serve-speed.sh [MODEL_NAME]   (default: qwen2.5-coder-0.5b-instruct)
# Env:   THREADS (2), REPS (2), STREAMS ("1 4 8"), REQUESTS (2), MAX_TOKENS (64), CTX (2048)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
model="${1:-qwen2.5-coder-0.5b-instruct}"
threads="${THREADS:-2}"; reps="${REPS:-2}"; streams="${STREAMS:-1 4 8}"
requests="${REQUESTS:-2}"; max_tokens="${MAX_TOKENS:-64}"; ctx="${CTX:-2048}"
data="${DATA:-../shared/data/gsm8k/dev.jsonl}"

scripts/setup
python3 -c 'import openai' 2>/dev/null || pip install -q openai
cargo build --release -q -p colm-cli
server_bin="$(bench/build-llama-peer.sh llama-server)"
case "$server_bin" in
  */llama-server-build/*) peer_src="the llama.cpp library vendored by llama-cpp-sys-2 (src/, ggml/: the engine's compute code) with server, common and mtmd sources from the llama-cpp-python 0.3.36 sdist" ;;
  *) peer_src="llama.cpp of the llama-cpp-python 0.3.36 sdist (its server did not build against the vendored copy)" ;;
esac
target/release/colm models pull "$model" >/dev/null
path="$(target/release/colm models path "$model")"
tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT


port=18400
offset=0
for ((r = 1; r <= reps; r++)); do
  for n in $streams; do
    for tool in colm llama-server; do
      port=$((port + 1))
      base="http://127.0.0.1:$port"
      if [ "$tool" = colm ]; then
        target/release/colm serve --model "$model" --bind "127.0.0.1:$port" --threads "$threads" \
          --ctx "$ctx" --parallel "$n" >"$tmp/server.log" 2>&1 &
        peer_flags=""
      else
        "$server_bin" -m "$path" --host 127.0.0.1 --port "$port" -t "$threads" -tb "$threads" \
          -c $((ctx * n)) -np "$n" --no-kv-unified -a "$model" >"$tmp/server.log" 2>&1 &
        peer_flags="--no-prompt-cache"
      fi
      pid=$!
      wait_ready "$base"
      # Warm-up request, not measured.
      python3 bench/lib/loadgen.py "$base" "$model" --streams 1 --requests 1 --max-tokens 8 \
        --data "$data" --offset 999 $peer_flags >/dev/null
      # Same prompts for both servers within a repetition and N.
      python3 bench/lib/loadgen.py "$base" "$model" --streams "$n" --requests "$requests" \
        --max-tokens "$max_tokens" --data "$data" --offset "$offset" $peer_flags |
        sed "s/^/{\"tool\": \"$tool\", \"rep\": $r, \"row\": /; s/$/}/" >>"$tmp/rows.jsonl"
      kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    done
    offset=$((offset + n * requests))
  done
done

mkdir -p docs/benchmarks
python3 - "$tmp/rows.jsonl" "$model" "$threads" "$reps" "$requests" "$max_tokens" "$ctx" \
  "$peer_src" "$(target/release/colm --version)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" "$(nproc)" \
  "$(free -g | awk '/Mem:/{print $2}')" "$streams" >docs/benchmarks/serve-speed.md <<'PY'
import json, statistics, sys, datetime
(rows_path, model, threads, reps, requests, max_tokens, ctx, peer_src, version, cpu, cores,
 mem, streams) = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
out = ["# Serving speed: `colm serve` vs `llama-server`\n",
       f"- date: {datetime.date.today().isoformat()}",
       f"- machine: {cpu}, {cores} cores, {mem} GiB RAM, no GPU",
       f"- colm: {version}; peer: llama-server from {peer_src}; both llama.cpp builds GGML_NATIVE=ON, GGML_OPENMP=OFF, Release",
       f"- model: {model}; threads {threads}; context {ctx} tokens per sequence (`--ctx {ctx} --parallel N` vs `-c {ctx}×N -np N --no-kv-unified`)",
       f"- load: N streams × {requests} streamed requests, {max_tokens} tokens each (`ignore_eos`), greedy, distinct GSM8K dev prompts, official `openai` SDK (`bench/lib/loadgen.py`)",
       f"- repetitions: {reps}, interleaved (for each repetition and N: colm, then llama-server)",
       f"- command: `THREADS={threads} REPS={reps} STREAMS=\"{streams}\" REQUESTS={requests} MAX_TOKENS={max_tokens} CTX={ctx} bench/serve-speed.sh {model}`\n",
       "Aggregate tok/s = all completion tokens / wall time of the run (prefill included). "
       "TTFT = request sent → first content delta; p50/p95 over the requests of one repetition, averaged over repetitions. "
       "Ratio = colm / llama-server (> 1: colm faster; for TTFT < 1: colm faster).\n",
       "| streams | colm tok/s | llama-server tok/s | ratio | colm TTFT p50 / p95 ms | llama-server TTFT p50 / p95 ms | errors |",
       "|---:|---:|---:|---:|---:|---:|---:|"]
def agg(tool, n):
    rs = [r["row"] for r in rows if r["tool"] == tool and r["row"]["streams"] == n]
    tps = statistics.mean(r["tok_per_s"] for r in rs)
    p50 = statistics.mean(r["ttft_p50_ms"] for r in rs)
    p95 = statistics.mean(r["ttft_p95_ms"] for r in rs)
    errs = sum(len(r["errors"]) for r in rs)
    spread = (min(r["tok_per_s"] for r in rs), max(r["tok_per_s"] for r in rs))
    return tps, p50, p95, errs, spread
summary = []
for n in sorted({r["row"]["streams"] for r in rows}):
    c = agg("colm", n); l = agg("llama-server", n)
    out.append(f"| {n} | {c[0]:.1f} ({c[4][0]:.1f}–{c[4][1]:.1f}) | {l[0]:.1f} ({l[4][0]:.1f}–{l[4][1]:.1f}) | "
               f"**{c[0]/l[0]:.2f}** | {c[1]:.0f} / {c[2]:.0f} | {l[1]:.0f} / {l[2]:.0f} | {c[3]} / {l[3]} |")
    summary.append(f"{n} streams {c[0]/l[0]:.2f}")
out.append("\ntok/s ranges are min–max over repetitions.")
out.append(f"\nSummary (colm / llama-server aggregate tok/s): {', '.join(summary)}.")
print("\n".join(out))
PY
cat docs/benchmarks/serve-speed.md
