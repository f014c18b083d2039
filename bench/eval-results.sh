#!/usr/bin/env bash
# The first CoLM results (issue 4): client qwen2.5-coder-0.5b-instruct, server
# qwen2.5-coder-1.5b-instruct, strategies local / server / colm (K=1, R=1, synthesis) /
# colm critique, on GSM8K dev items 1–100 and ARC-Challenge dev items 1–100.
#
#   bench/eval-results.sh [gsm8k|arc]...      (default: both)
#
# Runs are resumable (runs/<suite>-100, kept out of git); each finished run's report (Markdown,
# JSON, plots) is written to docs/results/<suite>-100/ with the exact command. Hours on 2 cores:
# start it with nohup and check runs/<suite>-100.log. CONCURRENCY (default 4) items are in
# flight per strategy (batched decoding; 1 = bit-reproducible greedy runs).
set -euo pipefail
cd "$(dirname "$0")/.."
CONCURRENCY="${CONCURRENCY:-4}"
LIMIT="${LIMIT:-100}"
COLM="${COLM:-target/release/colm}"
[ -x "$COLM" ] || cargo build --release -p colm-cli
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(gsm8k arc)
for suite in "${suites[@]}"; do
  case "$suite" in
    gsm8k) data=../shared/data/gsm8k/dev.jsonl ;;
    arc) data=../shared/data/arc/arc-challenge-dev.jsonl ;;
    *) echo "unknown suite $suite (gsm8k, arc)" >&2; exit 2 ;;
  esac
  out="runs/$suite-$LIMIT"
  cmd=(colm eval "$suite" --data "$data" --limit "$LIMIT"
       --client qwen2.5-coder-0.5b-instruct --server qwen2.5-coder-1.5b-instruct
       --strategy local --strategy server --strategy colm --strategy colm:mode=critique
       --concurrency "$CONCURRENCY" --out "$out")
  mkdir -p runs
  "$COLM" "${cmd[@]:1}" >> "runs/$suite-$LIMIT.log" 2>&1
  "$COLM" eval report "$out" --to "docs/results/$suite-$LIMIT" --command "${cmd[*]}" > /dev/null
  echo "docs/results/$suite-$LIMIT/report.md"
done
