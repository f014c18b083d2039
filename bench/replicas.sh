#!/usr/bin/env bash
# Replicas with shared state: CLIENTS concurrent clients ask QUESTIONS GSM8K dev questions each
# (one-shot reference-mode guidance, bench/lib/replica_clients.py) of
#   (1) one `colm serve` (--threads 2; state in memory, shared references in SQLite), and
#   (2) two `colm serve` replicas (--threads 1 each: the same two cores) sharing a fresh
#       redis-server (`--state`), the clients spread evenly over them;
# both with `--share-ttl`, interleaved over REPS repetitions, each run on fresh state. Reports
# reference computations (model calls) per client query and p50/p95 latency. Writes
# docs/benchmarks/replicas.md (never by hand).
#
# Usage: bench/replicas.sh   Env: CLIENTS (100), QUESTIONS (10), MAX_TOKENS (128), REPS (2),
#        SERVER (qwen2.5-coder-1.5b-instruct)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
clients="${CLIENTS:-100}"; questions="${QUESTIONS:-10}"; max_tokens="${MAX_TOKENS:-128}"
reps="${REPS:-2}"; model="${SERVER:-qwen2.5-coder-1.5b-instruct}"
data="${DATA:-../shared/data/gsm8k/dev.jsonl}"
scripts/setup --tests  # redis-server
python3 -c 'import httpx' 2>/dev/null || pip install -q httpx
cargo build --release -q -p colm-cli
colm=target/release/colm
"$colm" models pull "$model" >/dev/null
tmp="$(mktemp -d)"
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() { stop; rm -rf "$tmp"; }
trap cleanup EXIT

serve() { # $1 = log, rest = flags; started in this shell (its pid kept for stop)
  local log="$1"; shift
  "$colm" serve --model "$model" --bind 127.0.0.1:0 --share-ttl 3600 "$@" >"$log" 2>&1 &
  pids+=($!)
}

for ((r = 1; r <= reps; r++)); do
  order="one two"; [ $((r % 2)) -eq 0 ] && order="two one"
  for setup in $order; do
    if [ "$setup" = one ]; then
      serve "$tmp/one.log" --threads 2 --store "$tmp/refs-$r.sqlite"
      urls=("$(wait_addr "$tmp/one.log")")
    else
      port=$(free_port)
      redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no >"$tmp/redis.log" 2>&1 &
      pids+=($!)
      for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
      serve "$tmp/a.log" --threads 1 --state "redis://127.0.0.1:$port"
      serve "$tmp/b.log" --threads 1 --state "redis://127.0.0.1:$port"
      urls=("$(wait_addr "$tmp/a.log")" "$(wait_addr "$tmp/b.log")")
    fi
    python3 bench/lib/replica_clients.py "$model" "$data" "${urls[@]}" --clients "$clients" \
      --questions "$questions" --max-tokens "$max_tokens" |
      sed "s/^/{\"setup\": \"$setup\", \"rep\": $r, \"row\": /; s/$/}/" >>"$tmp/rows.jsonl"
    stop
  done
done

mkdir -p docs/benchmarks
python3 - "$tmp/rows.jsonl" "$model" "$clients" "$questions" "$max_tokens" "$reps" \
  "$("$colm" --version)" "$(machine)" >docs/benchmarks/replicas.md <<'PY'
import json, statistics, sys, datetime
rows_path, model, clients, questions, max_tokens, reps, version, machine = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
out = ["# Replicas with shared state: two `colm serve` + Redis vs one\n",
       f"- date: {datetime.date.today().isoformat()}",
       f"- machine: {machine}, no GPU; {version}; redis-server {__import__('subprocess').run(['redis-server','--version'],capture_output=True,text=True).stdout.split()[2]}",
       f"- model: {model} (server model and the one reference writer), `--share-ttl 3600`",
       f"- one: `colm serve --threads 2` (state in memory, references in SQLite); two: two `colm serve --threads 1 --state redis://…` on the same two cores, sharing a fresh redis-server",
       f"- load: {clients} concurrent clients × {questions} GSM8K dev questions each, one-shot `POST /v1/colm/guidance` (mode reference, max_tokens {max_tokens}), client c on replica c mod R, starting at question c mod {questions} (`bench/lib/replica_clients.py`)",
       f"- repetitions: {reps}, interleaved (one first in odd repetitions), fresh state each run",
       f"- command: `CLIENTS={clients} QUESTIONS={questions} MAX_TOKENS={max_tokens} REPS={reps} SERVER={model} bench/replicas.sh`\n",
       "Reference computations = model calls of the server model (from the replicas' /metrics, summed); "
       "per query = over all client queries. Latency = request sent → guidance received; p50/p95 over the "
       "run's requests, averaged over repetitions.\n",
       "| setup | queries | errors | reference computations (per query) | shared-store hits | p50 ms | p95 ms | wall s |",
       "|---|---:|---:|---:|---:|---:|---:|---:|"]
summary = []
for setup, label in (("one", "1 replica"), ("two", "2 replicas + Redis")):
    rs = [r["row"] for r in rows if r["setup"] == setup]
    m = lambda k: statistics.mean(r[k] for r in rs)
    out.append(f"| {label} | {rs[0]['queries']} | {sum(r['error_count'] for r in rs)} | "
               f"{m('model_calls'):.1f} ({m('calls_per_query'):.4f}) | {m('hits'):.0f} | "
               f"{m('p50_ms'):.0f} | {m('p95_ms'):.0f} | {m('wall_s'):.1f} |")
    summary.append((label, m('calls_per_query'), m('p95_ms')))
errs = [e for r in rows for e in r["row"]["errors"]]
if errs:
    out.append("\nFirst errors: " + "; ".join(f"`{e}`" for e in errs[:3]))
out.append(f"\nSummary: reference computations per client query {summary[0][1]:.4f} (1 replica) vs "
           f"{summary[1][1]:.4f} (2 replicas + Redis); p95 latency {summary[0][2]:.0f} ms vs {summary[1][2]:.0f} ms.")
print("\n".join(out))
PY
cat docs/benchmarks/replicas.md
