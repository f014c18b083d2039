#!/usr/bin/env bash
# Soak: `colm serve` with a small real model under REQUESTS requests at CONCURRENCY in flight over
# loopback, across chat completions, one-shot guidance and shared sessions (bench/lib/soak.py).
# Reports the status counts, latency p50/p95 per kind and the server's resident memory (VmRSS)
# after a warm-up and after the run. Goal (issue 17): no status outside 200/201/202 (success),
# 429 and 503; RSS growth under 5%. Writes docs/benchmarks/soak.md (never by hand).
#
# Usage: bench/soak.sh
# Env:   MODEL (gemma-3-270m), REQUESTS (10000), CONCURRENCY (64)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
model="${MODEL:-gemma-3-270m}"; requests="${REQUESTS:-10000}"; concurrency="${CONCURRENCY:-64}"
data="${DATA:-../shared/data/gsm8k/dev.jsonl}"

scripts/setup
cargo build --release -q -p colm-cli
target/release/colm models pull "$model" >/dev/null
tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

target/release/colm serve --bind 127.0.0.1:0 --model "$model" >"$tmp/server.log" 2>&1 &
pid=$!
base="$(wait_addr "$tmp/server.log")"
rss() { awk '/VmRSS/{print $2}' "/proc/$pid/status"; }
# Warm-up (weights paged in, pools and caches filled), not measured.
python3 bench/lib/soak.py "$base" "$model" --requests 300 --concurrency "$concurrency" \
  --data "$data" >/dev/null
rss_before="$(rss)"
python3 bench/lib/soak.py "$base" "$model" --requests "$requests" --concurrency "$concurrency" \
  --data "$data" >"$tmp/soak.json"
rss_after="$(rss)"

mkdir -p docs/benchmarks
python3 - "$tmp/soak.json" "$rss_before" "$rss_after" "$model" "$(target/release/colm --version)" \
  "$(machine)" >docs/benchmarks/soak.md <<'PY'
import json, sys, datetime
r = json.load(open(sys.argv[1]))
before, after = int(sys.argv[2]), int(sys.argv[3])
model, version, machine = sys.argv[4:7]
growth = 100.0 * (after - before) / before
ok = {"200", "201", "202", "429", "503"}
bad = {k: v for k, v in r["statuses"].items() if k not in ok}
print("# Soak: colm serve under sustained mixed load\n")
print("Command: `bench/soak.sh` (REQUESTS=%d, CONCURRENCY=%d, MODEL=%s)\n"
      % (r["requests"], r["concurrency"], model))
print("- date: %s; machine: %s; %s" % (datetime.date.today(), machine, version))
print("- load: %d requests, %d in flight, in turn a chat completion (max_tokens 2), one-shot "
      "`vote` guidance, and a shared session (create, draft, guidance); distinct GSM8K questions"
      % (r["requests"], r["concurrency"]))
print("- wall time %.1f s\n" % r["wall_s"])
print("| HTTP status | answers |\n|---|---|")
for k, v in r["statuses"].items():
    print("| %s | %d |" % (k, v))
print("\n| kind | requests | p50 ms | p95 ms |\n|---|---|---|---|")
for k, v in r["latency_ms"].items():
    print("| %s | %d | %.1f | %.1f |" % (k, v["n"], v["p50"], v["p95"]))
print("\nServer RSS after a 300-request warm-up: %.1f MiB; after the run: %.1f MiB; growth %.2f%%."
      % (before / 1024, after / 1024, growth))
print("\nGoal: no status outside 200/201/202, 429 and 503 — %s; RSS growth under 5%% — %s."
      % ("met" if not bad else "**missed** (%s)" % bad, "met" if growth < 5 else "**missed**"))
PY
cat docs/benchmarks/soak.md
