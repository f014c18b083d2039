#!/usr/bin/env bash
# Shared references with real clients: CLIENTS real CoLM clients (DEVICES `colm client`
# processes with the client model, the requests spread evenly over them) ask each of QUESTIONS
# GSM8K dev questions at the same time, through `colm serve --share-ttl` on loopback, in the
# default reference mode (each client asks for guidance while it drafts, then refines its own
# draft). The server's decode tokens per client query are read from its /metrics
# (colm_completion_tokens_total) and set against the server model answering each question alone
# in the same run (bench/lib/shared_clients.py). Writes docs/benchmarks/shared-references.md
# (never edit by hand).
#
# Usage: bench/shared-references.sh   Env: CLIENTS (10), QUESTIONS (5), DEVICES (2),
#        MAX_TOKENS (512), SERVER (qwen2.5-coder-1.5b-instruct), CLIENT (qwen2.5-coder-0.5b-instruct),
#        OPTIONS (collaboration flags of `colm client`, e.g. "--refs 5 --aggregate vote"; default none)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
clients="${CLIENTS:-10}"; questions="${QUESTIONS:-5}"; devices="${DEVICES:-2}"
max_tokens="${MAX_TOKENS:-512}"
options="${OPTIONS:-}"
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

"$colm" serve --model "$server_model" --bind 127.0.0.1:0 --share-ttl 3600 \
  --store "$tmp/shared.sqlite" --max-queue 256 --ctx 4096 >"$tmp/serve.out" 2>"$tmp/serve.err" &
pids+=($!)
server="$(wait_addr "$tmp/serve.out")"
per_device=$(( (clients + devices - 1) / devices ))
urls=()
for d in $(seq 1 "$devices"); do
  "$colm" client --server-url "$server" --model "$client_model" --server-model "$server_model" \
    --listen 127.0.0.1:0 --parallel "$per_device" --ctx 4096 --deadline-ms 1800000 \
    --name "device-$d" $options >"$tmp/client-$d.out" 2>"$tmp/client-$d.err" &
  pids+=($!)
  urls+=("$(wait_addr "$tmp/client-$d.out")")
done
python3 bench/lib/shared_clients.py "$server" "$server_model" "$client_model" "${urls[@]}" \
  --clients "$clients" --questions "$questions" --max-tokens "$max_tokens" \
  --data ../shared/data/gsm8k/dev.jsonl >"$tmp/load.json"

mkdir -p docs/benchmarks
python3 - "$tmp/load.json" "$server_model" "$client_model" "$clients" "$questions" "$devices" \
  "$max_tokens" "$("$colm" --version)" "$(machine)" "$options" >docs/benchmarks/shared-references.md <<'PY'
import datetime, json, sys
path, server_model, client_model, clients, questions, devices, max_tokens, version, machine, options = sys.argv[1:]
given = f"OPTIONS='{options}' " if options else ""
r = json.load(open(path))
ratio = r["server_decode_per_query"] / max(r["server_alone_decode_per_query"], 1e-9)
out = ["# Shared references with real clients\n",
       f"- date: {datetime.date.today().isoformat()}; machine: {machine}; {version}",
       f"- command: `{given}CLIENTS={clients} QUESTIONS={questions} DEVICES={devices} MAX_TOKENS={max_tokens} bench/shared-references.sh`",
       f"- `colm serve --model {server_model} --share-ttl 3600` and {devices} `colm client --model "
       f"{client_model}{' ' + options if options else ''}` processes on loopback; for each of the first {questions} GSM8K dev "
       f"questions, {clients} client requests at once (spread over the devices), reference "
       f"mode (guidance fetched while drafting; the client refines its own draft); greedy, "
       f"max_tokens {max_tokens} per step. The server alone: the same question with the draft "
       f"prompt to the server model, once per question, in the same run.\n",
       "| | value |", "|---|---:|",
       f"| client queries answered | {r['answered']} of {r['queries']} ({r['fallbacks']} fallbacks) |",
       f"| server decode tokens, CoLM (`colm_completion_tokens_total`) | {r['server_decode_colm']:.0f} |",
       f"| **server decode tokens per client query, CoLM** | **{r['server_decode_per_query']:.1f}** |",
       f"| server decode tokens per query, server alone | {r['server_alone_decode_per_query']:.1f} |",
       f"| **CoLM / server alone** | **{100 * ratio:.1f}%** |",
       f"| shared-store hits | {r['shared_hits']:.0f} |",
       f"| client wall time per query p50 / p95 | {r['latency_p50_s']:.1f} s / {r['latency_p95_s']:.1f} s |",
       f"| wall time | {r['wall_s']:.0f} s |",
       f"| errors | {len(r['errors'])} {r['errors'][:3] if r['errors'] else ''} |",
       "",
       "The references and their synthesis read no client text, so the server computes them once "
       "per question (single flight, then the store) for every client asking it; each client's "
       "draft and refinement run on its own device.",
       "",
       f"Summary: {r['server_decode_per_query']:.1f} server decode tokens per client query with "
       f"{clients} clients per question, {100 * ratio:.1f}% of the server alone "
       f"({r['server_alone_decode_per_query']:.1f})."]
print("\n".join(out))
PY
cat docs/benchmarks/shared-references.md
